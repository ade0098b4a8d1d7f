package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/tools/lambda"
)

// runLambda runs a Lambda function's handler against a stream as an event source mapping
// would, until SIGINT or SIGTERM (status 0); the trigger is package lambda's.
func runLambda(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("lambda", "--handler PATH --event-source-mapping FILE [flags]", stderr)
	def := os.Getenv(endpointEnv)
	if def == "" {
		def = client.DefaultEndpoint
	}
	endpoint := fs.String("endpoint", def, "server `URL`; "+endpointEnv+" sets the default")
	handler := fs.String("handler", "", "the function's executable (`path`): a binary built with aws-lambda-go, or a custom runtime's bootstrap (required)")
	mappingFile := fs.String("event-source-mapping", "", "`file` holding the JSON of a CreateEventSourceMapping request (required)")
	checkpoint := fs.String("checkpoint", "", "`file` keeping the progress; default: the mapping file's path + .checkpoint")
	name := fs.String("function-name", "", "function `name` (AWS_LAMBDA_FUNCTION_NAME); default: the mapping's FunctionName, else the handler's file name")
	timeout := fs.Duration("timeout", 3*time.Second, "the function's `timeout`")
	memory := fs.Int("memory", 128, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE in `MB`")
	withDescription(fs, `
Runs an unmodified Lambda function against a stream, the way a Kinesis event source
mapping does: it hosts the Lambda runtime API on loopback, starts the handler with
AWS_LAMBDA_RUNTIME_API pointing at it (one process per batch in flight), and invokes it
with Lambda's Kinesis events, shard by shard in order, with the mapping's batching,
retries, bisection, partial batch responses, tumbling windows and on-failure destination (a stream ARN or a
file). Progress is kept in the checkpoint file: a restart resumes where it stopped.
The handler's output goes to stderr. Ctrl-C stops.`)
	if status, stop := parseFlags(fs, args); stop {
		return status
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "sluice lambda: "+format+"\n", a...)
		return exitUsage
	}
	if *handler == "" || *mappingFile == "" {
		return usageErr("--handler and --event-source-mapping are required")
	}
	if *timeout <= 0 || *memory <= 0 {
		return usageErr("--timeout and --memory must be positive")
	}
	b, err := os.ReadFile(*mappingFile)
	if err != nil {
		return usageErr("%v", err)
	}
	m, warnings, err := lambda.ParseMapping(b)
	if err != nil {
		return usageErr("%s: %v", *mappingFile, err)
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "sluice lambda: %s: %s\n", *mappingFile, w)
	}
	if *checkpoint == "" {
		*checkpoint = *mappingFile + ".checkpoint"
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := client.New(client.Config{Endpoint: *endpoint, Logger: logger})
	if err != nil {
		return usageErr("--endpoint: %v", err)
	}
	defer c.Close()
	trig, err := lambda.New(c, lambda.Options{Mapping: m, CheckpointFile: *checkpoint, Logger: logger,
		Function: lambda.FunctionConfig{Handler: *handler, Name: *name, Timeout: *timeout, MemoryMB: *memory, Output: stderr, Logger: logger}})
	if err != nil {
		fmt.Fprintf(stderr, "sluice lambda: %v\n", err)
		if errors.Is(err, lambda.ErrMapping) {
			return exitUsage
		}
		return exitError
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	fmt.Fprintf(stdout, "sluice lambda: invoking %s with %s\n", *handler, m.EventSourceArn)
	start := time.Now()
	err = trig.Run(ctx)
	trig.Close()
	st := trig.Stats()
	secs := time.Since(start).Seconds()
	fmt.Fprintf(stdout, "sluice lambda: %d invocations, %d records succeeded (%.0f records/s), %d function errors, %d partial failures, %d batches (%d records) failed for good\n",
		st.Invocations, st.Records, float64(st.Records)/secs, st.FunctionErrors, st.PartialErrors, st.FailedBatches, st.FailedRecords)
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "sluice lambda: %v\n", err)
		return exitError
	}
	return exitOK
}
