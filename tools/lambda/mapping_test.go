package lambda

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/orders"

func TestParseMapping(t *testing.T) {
	base := `"EventSourceArn":"` + arn + `","StartingPosition":"TRIM_HORIZON"`
	for _, tc := range []struct {
		name, json string
		check      func(Mapping) bool
		warn       string
		err        string
	}{
		{name: "defaults", json: `{` + base + `}`, check: func(m Mapping) bool {
			return m.BatchSize == 100 && m.ParallelizationFactor == 1 && m.MaxRetries == -1 && m.MaxRecordAge == 0 &&
				!m.BisectOnError && !m.ReportBatchItemFailures && m.OnFailure == "" && m.BatchingWindow == 0
		}},
		{name: "everything", json: `{` + base + `,"FunctionName":"f","BatchSize":10000,"MaximumBatchingWindowInSeconds":5,
			"ParallelizationFactor":10,"BisectBatchOnFunctionError":true,"MaximumRetryAttempts":10000,
			"MaximumRecordAgeInSeconds":60,"FunctionResponseTypes":["ReportBatchItemFailures"],
			"DestinationConfig":{"OnFailure":{"Destination":"/tmp/x"}},"TumblingWindowInSeconds":900}`,
			check: func(m Mapping) bool {
				return m.FunctionName == "f" && m.BatchSize == 10000 && m.BatchingWindow == 5*time.Second &&
					m.ParallelizationFactor == 10 && m.BisectOnError && m.MaxRetries == 10000 &&
					m.MaxRecordAge == time.Minute && m.ReportBatchItemFailures && m.OnFailure == "/tmp/x" &&
					m.TumblingWindow == 15*time.Minute
			}},
		{name: "at timestamp", json: `{"EventSourceArn":"` + arn + `","StartingPosition":"AT_TIMESTAMP","StartingPositionTimestamp":1700000000.5}`,
			check: func(m Mapping) bool { return m.StartingTimestamp.Equal(time.UnixMilli(1700000000500)) }},
		{name: "record age -1", json: `{` + base + `,"MaximumRecordAgeInSeconds":-1}`, check: func(m Mapping) bool { return m.MaxRecordAge == 0 }},
		{name: "ignored key", json: `{` + base + `,"FilterCriteria":{}}`, warn: "FilterCriteria is ignored"},
		{name: "disabled", json: `{` + base + `,"Enabled":false}`, warn: "Enabled is false"},
		{name: "unknown keys", json: `{` + base + `,"BatchSise":5,"Foo":1}`, err: "unknown keys BatchSise, Foo"},
		{name: "queue key", json: `{` + base + `,"Queues":["q"]}`, err: "Queues does not apply"},
		{name: "no arn", json: `{"StartingPosition":"LATEST"}`, err: "EventSourceArn is required"},
		{name: "not a stream arn", json: `{"EventSourceArn":"arn:aws:sqs:eu-west-1:1:q","StartingPosition":"LATEST"}`, err: "not a stream ARN"},
		{name: "no starting position", json: `{"EventSourceArn":"` + arn + `"}`, err: "StartingPosition is required"},
		{name: "bad starting position", json: `{"EventSourceArn":"` + arn + `","StartingPosition":"EARLIEST"}`, err: "want TRIM_HORIZON"},
		{name: "timestamp without AT_TIMESTAMP", json: `{` + base + `,"StartingPositionTimestamp":1}`, err: "AT_TIMESTAMP only"},
		{name: "AT_TIMESTAMP without timestamp", json: `{"EventSourceArn":"` + arn + `","StartingPosition":"AT_TIMESTAMP"}`, err: "needs StartingPositionTimestamp"},
		{name: "batch size 0", json: `{` + base + `,"BatchSize":0}`, err: "BatchSize 0"},
		{name: "batch size 10001", json: `{` + base + `,"BatchSize":10001}`, err: "BatchSize 10001"},
		{name: "window 301", json: `{` + base + `,"MaximumBatchingWindowInSeconds":301}`, err: "MaximumBatchingWindowInSeconds 301"},
		{name: "parallelization 11", json: `{` + base + `,"ParallelizationFactor":11}`, err: "ParallelizationFactor 11"},
		{name: "retries -2", json: `{` + base + `,"MaximumRetryAttempts":-2}`, err: "MaximumRetryAttempts -2"},
		{name: "record age 59", json: `{` + base + `,"MaximumRecordAgeInSeconds":59}`, err: "MaximumRecordAgeInSeconds 59"},
		{name: "response type", json: `{` + base + `,"FunctionResponseTypes":["Other"]}`, err: `FunctionResponseTypes "Other"`},
		{name: "tumbling window 901", json: `{` + base + `,"TumblingWindowInSeconds":901}`, err: "TumblingWindowInSeconds 901"},
		{name: "on success", json: `{` + base + `,"DestinationConfig":{"OnSuccess":{"Destination":"x"}}}`, err: "OnSuccess"},
		{name: "wrong type", json: `{` + base + `,"BatchSize":"ten"}`, err: "BatchSize"},
		{name: "not an object", json: `[1]`, err: "not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, warnings, err := ParseMapping([]byte(tc.json))
			if tc.err != "" {
				if !errors.Is(err, ErrMapping) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.warn != "" && (len(warnings) != 1 || !strings.Contains(warnings[0], tc.warn)) {
				t.Errorf("warnings %q, want %q", warnings, tc.warn)
			}
			if tc.warn == "" && len(warnings) > 0 {
				t.Errorf("warnings %q", warnings)
			}
			if tc.check != nil && !tc.check(m) {
				t.Errorf("mapping %+v", m)
			}
			if m.EventSourceArn != arn {
				t.Errorf("EventSourceArn %q", m.EventSourceArn)
			}
		})
	}
}
