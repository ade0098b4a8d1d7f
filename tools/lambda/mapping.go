package lambda

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Mapping is the part of a CreateEventSourceMapping request that this trigger reads, with
// Lambda's defaults filled in by ParseMapping.
type Mapping struct {
	EventSourceArn string
	// FunctionName, when the request names one, is the function's name in its ARN and in
	// AWS_LAMBDA_FUNCTION_NAME.
	FunctionName string
	// BatchSize is the most records of one invocation: 1…10,000, 100 by default.
	BatchSize int
	// BatchingWindow is MaximumBatchingWindowInSeconds: 0…300 s.
	BatchingWindow time.Duration
	// StartingPosition is TRIM_HORIZON, LATEST or AT_TIMESTAMP (at StartingTimestamp).
	StartingPosition  string
	StartingTimestamp time.Time
	// ParallelizationFactor is how many batches of one shard run at once: 1…10. Records
	// are spread over them by partition key, so a key's records stay in order.
	ParallelizationFactor int
	// BisectOnError splits a batch that failed in two before retrying it.
	BisectOnError bool
	// MaxRetries is MaximumRetryAttempts: -1 (until the records expire) … 10,000.
	MaxRetries int
	// MaxRecordAge is MaximumRecordAgeInSeconds: 0 (-1 in the request) means no limit,
	// else 60 s … 604,800 s.
	MaxRecordAge time.Duration
	// ReportBatchItemFailures is FunctionResponseTypes ["ReportBatchItemFailures"].
	ReportBatchItemFailures bool
	// TumblingWindow is TumblingWindowInSeconds: 0 (none) … 900 s.
	TumblingWindow time.Duration
	// OnFailure is DestinationConfig.OnFailure.Destination: a stream ARN
	// (arn:aws:kinesis:…:stream/NAME) or a file path; "" drops records that fail for good.
	OnFailure string
}

// mappingJSON is the request as it comes, pointers telling absent from zero.
type mappingJSON struct {
	EventSourceArn                 *string
	FunctionName                   *string
	BatchSize                      *int
	MaximumBatchingWindowInSeconds *int
	StartingPosition               *string
	StartingPositionTimestamp      *float64
	ParallelizationFactor          *int
	BisectBatchOnFunctionError     *bool
	MaximumRetryAttempts           *int
	MaximumRecordAgeInSeconds      *int
	FunctionResponseTypes          []string
	DestinationConfig              *struct {
		OnFailure *struct{ Destination string }
		OnSuccess *struct{ Destination string }
	}
	TumblingWindowInSeconds *int
	Enabled                 *bool
}

// ignoredKeys are keys of CreateEventSourceMapping that mean nothing to a Kinesis trigger
// run locally; ParseMapping reports them as warnings.
var ignoredKeys = []string{"Enabled", "Tags", "KMSKeyArn", "MetricsConfig", "FilterCriteria", "LoggingConfig"}

// foreignKeys are keys of CreateEventSourceMapping for other event sources (queues, Kafka,
// MQ, DocumentDB): they are refused, as Lambda refuses them for a Kinesis stream.
var foreignKeys = []string{"Queues", "Topics", "SourceAccessConfigurations", "SelfManagedEventSource",
	"SelfManagedKafkaEventSourceConfig", "AmazonManagedKafkaEventSourceConfig", "ScalingConfig",
	"DocumentDBEventSourceConfig", "ProvisionedPollerConfig"}

// ParseMapping decodes a CreateEventSourceMapping request, checks it as Lambda does for a
// Kinesis source, and fills in the defaults. Keys that the request may carry but that do
// not apply here come back as warnings; unknown keys, keys of other event sources and
// settings this trigger lacks (on-success destinations) are an error
// wrapping ErrMapping.
func ParseMapping(b []byte) (Mapping, []string, error) {
	var warnings []string
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Mapping{}, nil, fmt.Errorf("%w: not a JSON object: %v", ErrMapping, err)
	}
	known := map[string]bool{}
	for _, f := range []string{"EventSourceArn", "FunctionName", "BatchSize", "MaximumBatchingWindowInSeconds",
		"StartingPosition", "StartingPositionTimestamp", "ParallelizationFactor", "BisectBatchOnFunctionError",
		"MaximumRetryAttempts", "MaximumRecordAgeInSeconds", "FunctionResponseTypes", "DestinationConfig",
		"TumblingWindowInSeconds", "Enabled"} {
		known[f] = true
	}
	var unknown []string
	for k := range raw {
		switch {
		case slices.Contains(foreignKeys, k):
			return Mapping{}, nil, fmt.Errorf("%w: %s does not apply to a Kinesis stream", ErrMapping, k)
		case slices.Contains(ignoredKeys, k):
			if k != "Enabled" {
				warnings = append(warnings, k+" is ignored")
			}
		case !known[k]:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return Mapping{}, nil, fmt.Errorf("%w: unknown keys %s", ErrMapping, strings.Join(unknown, ", "))
	}
	var j mappingJSON
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&j); err != nil {
		return Mapping{}, nil, fmt.Errorf("%w: %v", ErrMapping, err)
	}
	m := Mapping{BatchSize: 100, StartingPosition: "", ParallelizationFactor: 1, MaxRetries: -1}
	bad := func(format string, a ...any) (Mapping, []string, error) {
		return Mapping{}, nil, fmt.Errorf("%w: "+format, append([]any{ErrMapping}, a...)...)
	}
	if j.EventSourceArn == nil || *j.EventSourceArn == "" {
		return bad("EventSourceArn is required")
	}
	m.EventSourceArn = *j.EventSourceArn
	if _, _, err := parseStreamARN(m.EventSourceArn); err != nil {
		return bad("EventSourceArn: %v", err)
	}
	if j.FunctionName != nil {
		m.FunctionName = *j.FunctionName
	}
	if j.BatchSize != nil {
		if *j.BatchSize < 1 || *j.BatchSize > 10000 {
			return bad("BatchSize %d: want 1…10000", *j.BatchSize)
		}
		m.BatchSize = *j.BatchSize
	}
	if j.MaximumBatchingWindowInSeconds != nil {
		if w := *j.MaximumBatchingWindowInSeconds; w < 0 || w > 300 {
			return bad("MaximumBatchingWindowInSeconds %d: want 0…300", w)
		}
		m.BatchingWindow = time.Duration(*j.MaximumBatchingWindowInSeconds) * time.Second
	}
	if j.StartingPosition == nil {
		return bad("StartingPosition is required for a Kinesis stream: TRIM_HORIZON, LATEST or AT_TIMESTAMP")
	}
	m.StartingPosition = *j.StartingPosition
	switch m.StartingPosition {
	case "TRIM_HORIZON", "LATEST":
		if j.StartingPositionTimestamp != nil {
			return bad("StartingPositionTimestamp goes with StartingPosition AT_TIMESTAMP only")
		}
	case "AT_TIMESTAMP":
		if j.StartingPositionTimestamp == nil || *j.StartingPositionTimestamp < 0 {
			return bad("StartingPosition AT_TIMESTAMP needs StartingPositionTimestamp (Unix seconds)")
		}
		m.StartingTimestamp = time.UnixMilli(int64(*j.StartingPositionTimestamp * 1000))
	default:
		return bad("StartingPosition %q: want TRIM_HORIZON, LATEST or AT_TIMESTAMP", m.StartingPosition)
	}
	if j.ParallelizationFactor != nil {
		if p := *j.ParallelizationFactor; p < 1 || p > 10 {
			return bad("ParallelizationFactor %d: want 1…10", p)
		}
		m.ParallelizationFactor = *j.ParallelizationFactor
	}
	if j.BisectBatchOnFunctionError != nil {
		m.BisectOnError = *j.BisectBatchOnFunctionError
	}
	if j.MaximumRetryAttempts != nil {
		if r := *j.MaximumRetryAttempts; r < -1 || r > 10000 {
			return bad("MaximumRetryAttempts %d: want -1…10000", r)
		}
		m.MaxRetries = *j.MaximumRetryAttempts
	}
	if j.MaximumRecordAgeInSeconds != nil {
		switch a := *j.MaximumRecordAgeInSeconds; {
		case a == -1:
		case a < 60 || a > 604800:
			return bad("MaximumRecordAgeInSeconds %d: want -1 or 60…604800", a)
		default:
			m.MaxRecordAge = time.Duration(a) * time.Second
		}
	}
	for _, t := range j.FunctionResponseTypes {
		if t != "ReportBatchItemFailures" {
			return bad("FunctionResponseTypes %q: want ReportBatchItemFailures", t)
		}
		m.ReportBatchItemFailures = true
	}
	if dc := j.DestinationConfig; dc != nil {
		if dc.OnSuccess != nil && dc.OnSuccess.Destination != "" {
			return bad("DestinationConfig.OnSuccess is not supported for a stream source")
		}
		if dc.OnFailure != nil {
			m.OnFailure = dc.OnFailure.Destination
		}
	}
	if j.TumblingWindowInSeconds != nil {
		if w := *j.TumblingWindowInSeconds; w < 0 || w > 900 {
			return bad("TumblingWindowInSeconds %d: want 0…900", w)
		}
		m.TumblingWindow = time.Duration(*j.TumblingWindowInSeconds) * time.Second
	}
	if j.Enabled != nil && !*j.Enabled {
		warnings = append(warnings, "Enabled is false: the trigger runs anyway")
	}
	return m, warnings, nil
}

// parseStreamARN returns the region and stream name of arn:aws:kinesis:REGION:ACCOUNT:stream/NAME.
func parseStreamARN(arn string) (region, name string, err error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "kinesis" || !strings.HasPrefix(parts[5], "stream/") ||
		len(parts[5]) == len("stream/") || strings.Contains(parts[5][len("stream/"):], "/") {
		return "", "", fmt.Errorf("%q is not a stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)", arn)
	}
	return parts[3], parts[5][len("stream/"):], nil
}

// accountOf returns the account of an ARN, or "" when it has none.
func accountOf(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 5 {
		return ""
	}
	return parts[4]
}
