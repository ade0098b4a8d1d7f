package deliver

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Config is the part of a CreateDeliveryStream request that this delivery reads, with
// Firehose's defaults filled in by ParseConfig.
type Config struct {
	// Name is DeliveryStreamName: the first part of every object's name.
	Name string
	// Version is the delivery stream's version in object names: 1, as a new delivery
	// stream's.
	Version int
	// StreamARN is KinesisStreamSourceConfiguration.KinesisStreamARN; Stream is its name.
	StreamARN, Stream string
	// Destination is BucketARN: arn:aws:s3:::BUCKET, or file://DIR for a local directory.
	Destination Destination
	// Prefix and ErrorPrefix are Prefix and ErrorOutputPrefix after Firehose's rules:
	// !{timestamp:yyyy/MM/dd/HH/} appended to a prefix without a timestamp expression, and
	// the error prefix derived from the prefix when it is absent.
	Prefix, ErrorPrefix Prefix
	// BufferSize is BufferingHints.SizeInMBs in bytes (1…128 MiB, 5 MiB by default);
	// BufferInterval is IntervalInSeconds (0…900 s, 300 s by default).
	BufferSize     int
	BufferInterval time.Duration
	// Compression is CompressionFormat; Extension is FileExtension, or the compression's.
	Compression Compression
	Extension   string
	// Delimiter is what the AppendDelimiterToRecord processor appends to each record; nil
	// when the processor is off.
	Delimiter []byte
	// Location is CustomTimeZone, UTC by default: the zone of the timestamps in names.
	Location *time.Location
}

// Destination is where objects go: an S3 bucket, or a local directory.
type Destination struct {
	Bucket string // the bucket of arn:aws:s3:::BUCKET
	Dir    string // the directory of file://DIR
}

// configJSON is the request as it comes, pointers telling absent from zero.
type configJSON struct {
	DeliveryStreamName               *string
	DeliveryStreamType               *string
	KinesisStreamSourceConfiguration *struct {
		KinesisStreamARN *string
		RoleARN          *string
	}
	ExtendedS3DestinationConfiguration *s3ConfigJSON
	// Accepted and ignored, with a warning.
	Tags                                       json.RawMessage
	DeliveryStreamEncryptionConfigurationInput json.RawMessage
}

type s3ConfigJSON struct {
	BucketARN         *string
	RoleARN           *string
	Prefix            *string
	ErrorOutputPrefix *string
	BufferingHints    *struct {
		SizeInMBs         *int
		IntervalInSeconds *int
	}
	CompressionFormat       *string
	FileExtension           *string
	CustomTimeZone          *string
	ProcessingConfiguration *struct {
		Enabled    *bool
		Processors []struct {
			Type       string
			Parameters []struct{ ParameterName, ParameterValue string }
		}
	}
	S3BackupMode *string
	// Refused when enabled; accepted when disabled.
	DataFormatConversionConfiguration *struct{ Enabled *bool }
	DynamicPartitioningConfiguration  *struct{ Enabled *bool }
	// Accepted and ignored, with a warning.
	CloudWatchLoggingOptions json.RawMessage
	EncryptionConfiguration  json.RawMessage
}

// otherDestinations are the destinations of CreateDeliveryStream other than extended S3.
var otherDestinations = []string{"S3DestinationConfiguration", "RedshiftDestinationConfiguration",
	"ElasticsearchDestinationConfiguration", "AmazonopensearchserviceDestinationConfiguration",
	"SplunkDestinationConfiguration", "HttpEndpointDestinationConfiguration",
	"AmazonOpenSearchServerlessDestinationConfiguration", "MSKSourceConfiguration",
	"SnowflakeDestinationConfiguration", "IcebergDestinationConfiguration", "DirectPutSourceConfiguration",
	"DatabaseSourceConfiguration"}

// ParseConfig decodes a CreateDeliveryStream request with a Kinesis stream source and an
// extended S3 destination, checks it as Firehose does, and fills in the defaults. Keys that
// mean nothing here (roles, tags, logging, encryption) come back as warnings; unknown keys,
// other sources and destinations, and features this delivery lacks (Lambda processors,
// format conversion, dynamic partitioning, S3 backup) are an error wrapping ErrConfig.
func ParseConfig(b []byte) (Config, []string, error) {
	bad := func(format string, a ...any) (Config, []string, error) {
		return Config{}, nil, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return bad("not a JSON object: %v", err)
	}
	for _, k := range otherDestinations {
		if _, ok := raw[k]; ok {
			return bad("%s is not supported: the source is a Kinesis stream and the destination ExtendedS3DestinationConfiguration", k)
		}
	}
	var j configJSON
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&j); err != nil {
		return bad("%v", err)
	}
	var warnings []string
	if j.DeliveryStreamName == nil || !validName(*j.DeliveryStreamName) {
		return bad("DeliveryStreamName is required: 1…64 letters, digits, '_', '-' or '.'")
	}
	c := Config{Name: *j.DeliveryStreamName, Version: 1, BufferSize: 5 << 20, BufferInterval: 300 * time.Second, Location: time.UTC}
	if t := j.DeliveryStreamType; t != nil && *t != "KinesisStreamAsSource" {
		return bad("DeliveryStreamType %q: only KinesisStreamAsSource is supported", *t)
	}
	src := j.KinesisStreamSourceConfiguration
	if src == nil || src.KinesisStreamARN == nil {
		return bad("KinesisStreamSourceConfiguration.KinesisStreamARN is required")
	}
	c.StreamARN = *src.KinesisStreamARN
	name, err := streamName(c.StreamARN)
	if err != nil {
		return bad("KinesisStreamSourceConfiguration.KinesisStreamARN: %v", err)
	}
	c.Stream = name
	if j.Tags != nil {
		warnings = append(warnings, "Tags are ignored")
	}
	if j.DeliveryStreamEncryptionConfigurationInput != nil {
		warnings = append(warnings, "DeliveryStreamEncryptionConfigurationInput is ignored")
	}
	s := j.ExtendedS3DestinationConfiguration
	if s == nil {
		return bad("ExtendedS3DestinationConfiguration is required")
	}
	if s.BucketARN == nil {
		return bad("ExtendedS3DestinationConfiguration.BucketARN is required")
	}
	if c.Destination, err = parseDestination(*s.BucketARN); err != nil {
		return bad("BucketARN: %v", err)
	}
	if h := s.BufferingHints; h != nil {
		if h.SizeInMBs != nil {
			if n := *h.SizeInMBs; n < 1 || n > 128 {
				return bad("BufferingHints.SizeInMBs %d: want 1…128", n)
			}
			c.BufferSize = *h.SizeInMBs << 20
		}
		if h.IntervalInSeconds != nil {
			if n := *h.IntervalInSeconds; n < 0 || n > 900 {
				return bad("BufferingHints.IntervalInSeconds %d: want 0…900", n)
			}
			c.BufferInterval = time.Duration(*h.IntervalInSeconds) * time.Second
		}
	}
	if s.CompressionFormat != nil {
		if c.Compression, err = parseCompression(*s.CompressionFormat); err != nil {
			return bad("CompressionFormat: %v", err)
		}
	}
	c.Extension = c.Compression.Extension()
	if s.FileExtension != nil {
		e := *s.FileExtension
		if len(e) < 2 || len(e) > 128 || e[0] != '.' || strings.ContainsAny(e, "/\\") || !printable(e) {
			return bad("FileExtension %q: want a '.' followed by 1…127 printable characters other than '/'", e)
		}
		c.Extension = e
	}
	if s.CustomTimeZone != nil && *s.CustomTimeZone != "" {
		loc, err := time.LoadLocation(*s.CustomTimeZone)
		if err != nil {
			return bad("CustomTimeZone %q: %v", *s.CustomTimeZone, err)
		}
		c.Location = loc
	}
	if c.Delimiter, err = parseProcessing(s); err != nil {
		return Config{}, nil, err
	}
	if m := s.S3BackupMode; m != nil && *m != "Disabled" {
		return bad("S3BackupMode %q: only Disabled is supported", *m)
	}
	if f := s.DataFormatConversionConfiguration; f != nil && (f.Enabled == nil || *f.Enabled) {
		return bad("DataFormatConversionConfiguration is not supported")
	}
	if f := s.DynamicPartitioningConfiguration; f != nil && f.Enabled != nil && *f.Enabled {
		return bad("DynamicPartitioningConfiguration is not supported")
	}
	if s.CloudWatchLoggingOptions != nil {
		warnings = append(warnings, "CloudWatchLoggingOptions are ignored: errors go to stderr")
	}
	if s.EncryptionConfiguration != nil {
		warnings = append(warnings, "EncryptionConfiguration is ignored: objects are stored as the bucket's default encryption stores them")
	}
	if src.RoleARN != nil || s.RoleARN != nil {
		warnings = append(warnings, "RoleARN is ignored: the server and S3 are reached with the credentials of the environment")
	}
	if c.Prefix, c.ErrorPrefix, err = parsePrefixes(s.Prefix, s.ErrorOutputPrefix); err != nil {
		return bad("%v", err)
	}
	return c, warnings, nil
}

// parseProcessing returns the delimiter of the AppendDelimiterToRecord processor, nil when
// processing is off. Other processors are refused.
func parseProcessing(s *s3ConfigJSON) ([]byte, error) {
	p := s.ProcessingConfiguration
	if p == nil || p.Enabled == nil || !*p.Enabled {
		return nil, nil
	}
	var delim []byte
	for _, pr := range p.Processors {
		if pr.Type != "AppendDelimiterToRecord" {
			return nil, fmt.Errorf("%w: processor %q is not supported: only AppendDelimiterToRecord", ErrConfig, pr.Type)
		}
		delim = []byte("\n")
		for _, prm := range pr.Parameters {
			if prm.ParameterName != "Delimiter" {
				return nil, fmt.Errorf("%w: AppendDelimiterToRecord: parameter %q: want Delimiter", ErrConfig, prm.ParameterName)
			}
			v, err := strconv.Unquote(`"` + strings.ReplaceAll(prm.ParameterValue, `"`, `\"`) + `"`)
			if err != nil || v == "" {
				return nil, fmt.Errorf("%w: AppendDelimiterToRecord: Delimiter %q: want a non-empty string (escapes such as \\n allowed)", ErrConfig, prm.ParameterValue)
			}
			delim = []byte(v)
		}
	}
	return delim, nil
}

// parseDestination reads a BucketARN: arn:aws:s3:::BUCKET (any partition), or file://DIR.
func parseDestination(arn string) (Destination, error) {
	if dir, ok := strings.CutPrefix(arn, "file://"); ok {
		if dir == "" {
			return Destination{}, fmt.Errorf("%q names no directory", arn)
		}
		return Destination{Dir: dir}, nil
	}
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "s3" || parts[3] != "" || parts[4] != "" || !validBucket(parts[5]) {
		return Destination{}, fmt.Errorf("%q is neither a bucket ARN (arn:aws:s3:::BUCKET) nor file://DIR", arn)
	}
	return Destination{Bucket: parts[5]}, nil
}

// validBucket reports whether b is a bucket name: 3…63 lowercase letters, digits, '.' and
// '-', starting and ending with a letter or digit.
func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i := 0; i < len(b); i++ {
		ch := b[i]
		alnum := ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9'
		if !alnum && (i == 0 || i == len(b)-1 || ch != '.' && ch != '-') {
			return false
		}
	}
	return true
}

// validName reports whether n is a delivery stream name: 1…64 of [a-zA-Z0-9_.-].
func validName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for i := 0; i < len(n); i++ {
		ch := n[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '_' || ch == '.' || ch == '-') {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// streamName returns the stream name of arn:aws:kinesis:REGION:ACCOUNT:stream/NAME.
func streamName(arn string) (string, error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "kinesis" || !strings.HasPrefix(parts[5], "stream/") ||
		len(parts[5]) == len("stream/") || strings.Contains(parts[5][len("stream/"):], "/") {
		return "", fmt.Errorf("%q is not a stream ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME)", arn)
	}
	return parts[5][len("stream/"):], nil
}
