package agent

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Config is an agent.json file: the Kinesis Agent's configuration, read as that agent reads it.
type Config struct {
	// CheckpointFile keeps the progress of every flow (checkpointFile); "" means the caller's
	// default.
	CheckpointFile string
	// Endpoint is kinesis.endpoint: the server's URL; "" means the caller's default.
	Endpoint string
	// AccessKeyID and SecretAccessKey are awsAccessKeyId and awsSecretAccessKey; empty means
	// the standard AWS variables and files.
	AccessKeyID, SecretAccessKey string
	Flows                        []Flow
}

// Position is where a file found at the first start is read from (initialPosition).
type Position int

// The initial positions.
const (
	EndOfFile   Position = iota // END_OF_FILE, the Kinesis Agent's default
	StartOfFile                 // START_OF_FILE
)

// Flow is one entry of flows: files matching a pattern, sent to one stream.
type Flow struct {
	FilePattern string // a glob (filepath.Match syntax); its directory part may hold no pattern
	Stream      string // kinesisStream
	// Deterministic is partitionKeyOption DETERMINISTIC: the key is the hex MD5 of the
	// record's data. RANDOM (the default) draws a random 128-bit key per record.
	Deterministic   bool
	InitialPosition Position
	// MultiLineStart is multiLineStartPattern: a record starts with a line it matches and
	// takes the lines after it that it does not match. Nil: one record per line.
	MultiLineStart *regexp.Regexp
	// SkipHeaderLines lines at the start of every file are not sent.
	SkipHeaderLines int
	// TruncatedRecordTerminator ends a record cut to MaxRecordBytes; "\n" by default.
	TruncatedRecordTerminator string
	// A batch (one PutRecords) is sent when it is MaxBufferAge old, or holds MaxBufferRecords
	// records or MaxBufferBytes bytes of keys and data.
	MaxBufferAge     time.Duration
	MaxBufferBytes   int
	MaxBufferRecords int
	// PollInterval is minTimeBetweenFilePollsMillis: how often the files are looked at.
	PollInterval time.Duration
	// Processors are the dataProcessingOptions, applied in order.
	Processors []Processor
}

// MaxRecordBytes is the most data a record may hold; a longer one is cut
// (TruncatedRecordTerminator), as the Kinesis Agent cuts records for Kinesis Data Streams.
const MaxRecordBytes = 1 << 20

// Defaults and bounds of the buffer settings, the Kinesis Agent's for Kinesis Data Streams
// (doc.go, Settings): the age within 1 s and 15 min, 1 minute by default; bytes and records
// up to PutRecords' limits, 5 MiB and 500, which are also the defaults.
const (
	defaultBufferAge     = 60 * time.Second
	minBufferAge         = time.Second
	maxBufferAge         = 15 * time.Minute
	defaultBufferBytes   = 5 << 20
	defaultBufferRecords = 500
	defaultPollInterval  = 100 * time.Millisecond
)

// Keys of the Kinesis Agent that sluice's agent reads but does not apply: they are reported
// as warnings. Any other key that is not known is an error.
var (
	ignoredTopKeys = []string{"cloudwatch.emitMetrics", "cloudwatch.endpoint", "firehose.endpoint", "sts.endpoint",
		"assumeRoleARN", "assumeRoleExternalId", "shutdownTimeoutMillis", "sendingThreadsMaxQueueSize",
		"maxSendingThreads", "log.level", "log.maxBackupIndex", "log.maxFileSize"}
	ignoredFlowKeys = []string{"aggregatedRecordSizeBytes", "maxRetries", "retryInitialBackoffMillis",
		"retryMaxBackoffMillis", "publishQueueCapacity", "fileFooterPattern"}
)

// ParseConfig reads an agent.json. It returns the warnings about keys it ignores, and an
// error wrapping ErrConfig for a key no Kinesis Agent knows, a missing or bad value.
func ParseConfig(b []byte) (Config, []string, error) {
	var c Config
	var warnings []string
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return c, nil, fmt.Errorf("%w: not a JSON object: %v", ErrConfig, err)
	}
	known := []string{"checkpointFile", "kinesis.endpoint", "awsAccessKeyId", "awsSecretAccessKey", "flows"}
	if err := checkKeys(top, "", known, ignoredTopKeys, &warnings); err != nil {
		return c, nil, err
	}
	fields := []struct {
		key string
		dst *string
	}{{"checkpointFile", &c.CheckpointFile}, {"kinesis.endpoint", &c.Endpoint},
		{"awsAccessKeyId", &c.AccessKeyID}, {"awsSecretAccessKey", &c.SecretAccessKey}}
	for _, f := range fields {
		if err := decodeKey(top, "", f.key, f.dst); err != nil {
			return c, nil, err
		}
	}
	var flows []map[string]json.RawMessage
	if err := decodeKey(top, "", "flows", &flows); err != nil {
		return c, nil, err
	}
	if len(flows) == 0 {
		return c, nil, fmt.Errorf("%w: flows: at least one flow is needed", ErrConfig)
	}
	for i, raw := range flows {
		f, err := parseFlow(raw, fmt.Sprintf("flows[%d].", i), &warnings)
		if err != nil {
			return c, nil, err
		}
		for _, g := range c.Flows {
			if g.FilePattern == f.FilePattern && g.Stream == f.Stream {
				return c, nil, fmt.Errorf("%w: flows[%d]: the flow of %s to %s is there twice", ErrConfig, i, f.FilePattern, f.Stream)
			}
		}
		c.Flows = append(c.Flows, f)
	}
	return c, warnings, nil
}

// checkKeys reports the keys of obj that are neither known nor ignored (an error) and the
// ignored ones (warnings); at is the path of obj in the file.
func checkKeys(obj map[string]json.RawMessage, at string, known, ignored []string, warnings *[]string) error {
	var unknown []string
	for k := range obj {
		switch {
		case slices.Contains(known, k):
		case slices.Contains(ignored, k):
			*warnings = append(*warnings, at+k+" is ignored")
		default:
			unknown = append(unknown, at+k)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("%w: unknown keys %s", ErrConfig, strings.Join(unknown, ", "))
	}
	slices.Sort(*warnings)
	return nil
}

// decodeKey decodes obj[key] into dst when it is there.
func decodeKey(obj map[string]json.RawMessage, at, key string, dst any) error {
	v, ok := obj[key]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(v, dst); err != nil {
		return fmt.Errorf("%w: %s%s: %v", ErrConfig, at, key, err)
	}
	return nil
}

func parseFlow(raw map[string]json.RawMessage, at string, warnings *[]string) (Flow, error) {
	f := Flow{MaxBufferAge: defaultBufferAge, MaxBufferBytes: defaultBufferBytes, MaxBufferRecords: defaultBufferRecords,
		PollInterval: defaultPollInterval, TruncatedRecordTerminator: "\n"}
	if _, ok := raw["deliveryStream"]; ok {
		return f, fmt.Errorf("%w: %sdeliveryStream: sluice serves Kinesis Data Streams, not Firehose: use kinesisStream", ErrConfig, at)
	}
	known := []string{"filePattern", "kinesisStream", "partitionKeyOption", "initialPosition", "multiLineStartPattern",
		"skipHeaderLines", "truncatedRecordTerminator", "maxBufferAgeMillis", "maxBufferSizeBytes",
		"maxBufferSizeRecords", "minTimeBetweenFilePollsMillis", "dataProcessingOptions"}
	if err := checkKeys(raw, at, known, ignoredFlowKeys, warnings); err != nil {
		return f, err
	}
	var keyOpt, initial, multi string
	var term *string
	var ageMs, pollMs *int64
	var bytes, records, skip *int
	var opts []map[string]json.RawMessage
	for _, d := range []struct {
		key string
		dst any
	}{{"filePattern", &f.FilePattern}, {"kinesisStream", &f.Stream}, {"partitionKeyOption", &keyOpt},
		{"initialPosition", &initial}, {"multiLineStartPattern", &multi}, {"skipHeaderLines", &skip},
		{"truncatedRecordTerminator", &term}, {"maxBufferAgeMillis", &ageMs}, {"maxBufferSizeBytes", &bytes},
		{"maxBufferSizeRecords", &records}, {"minTimeBetweenFilePollsMillis", &pollMs}, {"dataProcessingOptions", &opts}} {
		if err := decodeKey(raw, at, d.key, d.dst); err != nil {
			return f, err
		}
	}
	bad := func(key, format string, a ...any) (Flow, error) {
		return f, fmt.Errorf("%w: %s%s: %s", ErrConfig, at, key, fmt.Sprintf(format, a...))
	}
	if f.FilePattern == "" {
		return bad("filePattern", "required")
	}
	if strings.ContainsAny(dirOf(f.FilePattern), "*?[") {
		return bad("filePattern", "%q: only the file name may hold a pattern", f.FilePattern)
	}
	if f.Stream == "" {
		return bad("kinesisStream", "required")
	}
	switch keyOpt {
	case "", "RANDOM":
	case "DETERMINISTIC":
		f.Deterministic = true
	default:
		return bad("partitionKeyOption", "%q: want RANDOM or DETERMINISTIC", keyOpt)
	}
	switch initial {
	case "", "END_OF_FILE":
	case "START_OF_FILE":
		f.InitialPosition = StartOfFile
	default:
		return bad("initialPosition", "%q: want START_OF_FILE or END_OF_FILE", initial)
	}
	if multi != "" {
		re, err := regexp.Compile(multi)
		if err != nil {
			return bad("multiLineStartPattern", "%v", err)
		}
		f.MultiLineStart = re
	}
	if skip != nil {
		if *skip < 0 {
			return bad("skipHeaderLines", "%d is negative", *skip)
		}
		f.SkipHeaderLines = *skip
	}
	if term != nil {
		if *term == "" || len(*term) > 1024 {
			return bad("truncatedRecordTerminator", "want 1 to 1024 bytes")
		}
		f.TruncatedRecordTerminator = *term
	}
	if ageMs != nil {
		if age := time.Duration(*ageMs) * time.Millisecond; age < minBufferAge || age > maxBufferAge {
			return bad("maxBufferAgeMillis", "%d: want %d to %d", *ageMs, minBufferAge.Milliseconds(), maxBufferAge.Milliseconds())
		}
		f.MaxBufferAge = time.Duration(*ageMs) * time.Millisecond
	}
	if bytes != nil {
		if *bytes < 1 || *bytes > defaultBufferBytes {
			return bad("maxBufferSizeBytes", "%d: want 1 to %d", *bytes, defaultBufferBytes)
		}
		f.MaxBufferBytes = *bytes
	}
	if records != nil {
		if *records < 1 || *records > defaultBufferRecords {
			return bad("maxBufferSizeRecords", "%d: want 1 to %d", *records, defaultBufferRecords)
		}
		f.MaxBufferRecords = *records
	}
	if pollMs != nil {
		if *pollMs < 1 {
			return bad("minTimeBetweenFilePollsMillis", "%d: want at least 1", *pollMs)
		}
		f.PollInterval = time.Duration(*pollMs) * time.Millisecond
	}
	for i, o := range opts {
		p, err := parseProcessor(o, fmt.Sprintf("%sdataProcessingOptions[%d].", at, i), warnings)
		if err != nil {
			return f, err
		}
		f.Processors = append(f.Processors, p)
	}
	return f, nil
}
