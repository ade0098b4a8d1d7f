// Command handler is a Lambda function for the tests of package lambda, built with
// github.com/aws/aws-lambda-go as a function deployed to AWS would be. For each invocation
// it appends one JSON line to $HANDLER_LOG (unless empty) with the event's records, before
// it handles them. A record whose data starts with
//
//	fail   fails: the invocation returns an error, or, with $PARTIAL=1, reports the
//	       record in batchItemFailures
//	crash  makes the process exit with status 3
//	block  makes the invocation wait until the file $RELEASE exists
//
// With tumbling windows, the state's "count" adds up the records of the window, and the
// line logs the window, the state received and whether the invocation is the final one.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// line is what the log gets for one invocation.
type line struct {
	RequestID string                      `json:"requestId"`
	Function  string                      `json:"function"`
	Deadline  bool                        `json:"deadline"`
	Records   []events.KinesisEventRecord `json:"records"`
	Window    *events.Window              `json:"window,omitempty"`
	State     map[string]string           `json:"state,omitempty"`
	Final     bool                        `json:"final,omitempty"`
}

func handle(ctx context.Context, ev events.KinesisTimeWindowEvent) (events.KinesisTimeWindowEventResponse, error) {
	var resp events.KinesisTimeWindowEventResponse
	if err := logEvent(ctx, ev); err != nil {
		return resp, err
	}
	if ev.ShardID != "" { // a tumbling window
		n, _ := strconv.Atoi(ev.State["count"])
		resp.State = map[string]string{"count": strconv.Itoa(n + len(ev.Records))}
	}
	partial := os.Getenv("PARTIAL") == "1"
	for _, r := range ev.Records {
		data := string(r.Kinesis.Data)
		switch {
		case strings.HasPrefix(data, "fail"):
			if !partial {
				return resp, errors.New("record " + r.Kinesis.SequenceNumber + " failed")
			}
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.KinesisBatchItemFailure{ItemIdentifier: r.Kinesis.SequenceNumber})
		case strings.HasPrefix(data, "crash"):
			os.Exit(3)
		case strings.HasPrefix(data, "block"):
			for {
				if _, err := os.Stat(os.Getenv("RELEASE")); err == nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	return resp, nil
}

// logEvent appends the invocation's line to $HANDLER_LOG.
func logEvent(ctx context.Context, ev events.KinesisTimeWindowEvent) error {
	if os.Getenv("HANDLER_LOG") == "" {
		return nil
	}
	l := line{Records: ev.Records, Function: os.Getenv("AWS_LAMBDA_FUNCTION_NAME"), State: ev.State, Final: ev.IsFinalInvokeForWindow}
	if ev.ShardID != "" {
		l.Window = &ev.Window
	}
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		l.RequestID = lc.AwsRequestID
	}
	_, l.Deadline = ctx.Deadline()
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(os.Getenv("HANDLER_LOG"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func main() {
	lambda.Start(handle)
}
