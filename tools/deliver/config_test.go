package deliver

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const streamARN = "arn:aws:kinesis:us-east-1:000000000000:stream/orders"

// TestParseConfig reads a full CreateDeliveryStream request and a minimal one.
func TestParseConfig(t *testing.T) {
	c, warnings, err := ParseConfig([]byte(`{
	  "DeliveryStreamName": "orders-to-s3",
	  "DeliveryStreamType": "KinesisStreamAsSource",
	  "KinesisStreamSourceConfiguration": {"KinesisStreamARN": "` + streamARN + `", "RoleARN": "arn:aws:iam::000000000000:role/r"},
	  "ExtendedS3DestinationConfiguration": {
	    "BucketARN": "arn:aws:s3:::my-bucket",
	    "Prefix": "orders/!{timestamp:yyyy/MM/dd}/",
	    "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
	    "BufferingHints": {"SizeInMBs": 64, "IntervalInSeconds": 60},
	    "CompressionFormat": "HADOOP_SNAPPY",
	    "CustomTimeZone": "Asia/Tokyo",
	    "ProcessingConfiguration": {"Enabled": true, "Processors": [{"Type": "AppendDelimiterToRecord", "Parameters": [{"ParameterName": "Delimiter", "ParameterValue": "\\r\\n"}]}]},
	    "CloudWatchLoggingOptions": {"Enabled": false}
	  }}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "orders-to-s3" || c.Stream != "orders" || c.Destination.Bucket != "my-bucket" || c.BufferSize != 64<<20 ||
		c.BufferInterval != time.Minute || c.Compression != HadoopSnappy || c.Extension != ".snappy" || string(c.Delimiter) != "\r\n" ||
		c.Location.String() != "Asia/Tokyo" || c.Prefix.String() != "orders/!{timestamp:yyyy/MM/dd}/" {
		t.Errorf("config %+v", c)
	}
	if len(warnings) != 2 {
		t.Errorf("warnings %q, want the logging options' and the roles'", warnings)
	}
	c, _, err = ParseConfig([]byte(`{"DeliveryStreamName": "d", "KinesisStreamSourceConfiguration": {"KinesisStreamARN": "` + streamARN + `"},
	  "ExtendedS3DestinationConfiguration": {"BucketARN": "file:///var/lib/out", "ProcessingConfiguration": {"Enabled": true, "Processors": [{"Type": "AppendDelimiterToRecord"}]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Destination.Dir != "/var/lib/out" || c.BufferSize != 5<<20 || c.BufferInterval != 300*time.Second || c.Compression != Uncompressed ||
		c.Extension != "" || string(c.Delimiter) != "\n" || c.Prefix.String() != defaultTimePrefix || c.Location != time.UTC {
		t.Errorf("defaults %+v", c)
	}
}

// TestParseConfigErrors: each bad request is refused with an error wrapping ErrConfig that
// names the problem.
func TestParseConfigErrors(t *testing.T) {
	src := `"DeliveryStreamName": "d", "KinesisStreamSourceConfiguration": {"KinesisStreamARN": "` + streamARN + `"}`
	dest := func(s string) string {
		return `{` + src + `, "ExtendedS3DestinationConfiguration": {"BucketARN": "arn:aws:s3:::bucket"` + s + `}}`
	}
	for _, tc := range []struct{ in, want string }{
		{`[]`, "not a JSON object"},
		{`{"KinesisStreamSourceConfiguration": {"KinesisStreamARN": "` + streamARN + `"}}`, "DeliveryStreamName is required"},
		{`{"DeliveryStreamName": "a b"}`, "DeliveryStreamName is required"},
		{`{` + src + `}`, "ExtendedS3DestinationConfiguration is required"},
		{`{"DeliveryStreamName": "d", "ExtendedS3DestinationConfiguration": {}}`, "KinesisStreamARN is required"},
		{`{"DeliveryStreamName": "d", "KinesisStreamSourceConfiguration": {"KinesisStreamARN": "arn:aws:sqs:x"}}`, "not a stream ARN"},
		{`{` + src + `, "DeliveryStreamType": "DirectPut"}`, "only KinesisStreamAsSource"},
		{`{` + src + `, "RedshiftDestinationConfiguration": {}}`, "RedshiftDestinationConfiguration is not supported"},
		{`{` + src + `, "Colour": 1}`, `unknown field "Colour"`},
		{`{` + src + `, "ExtendedS3DestinationConfiguration": {}}`, "BucketARN is required"},
		{`{` + src + `, "ExtendedS3DestinationConfiguration": {"BucketARN": "arn:aws:s3:::B"}}`, "neither a bucket ARN"},
		{dest(`, "BufferingHints": {"SizeInMBs": 129}`), "SizeInMBs 129"},
		{dest(`, "BufferingHints": {"IntervalInSeconds": 901}`), "IntervalInSeconds 901"},
		{dest(`, "CompressionFormat": "SNAPPY"`), `"SNAPPY": want UNCOMPRESSED`},
		{dest(`, "FileExtension": "gz"`), "FileExtension"},
		{dest(`, "CustomTimeZone": "Mars/Olympus"`), "CustomTimeZone"},
		{dest(`, "ProcessingConfiguration": {"Enabled": true, "Processors": [{"Type": "Lambda"}]}`), `"Lambda" is not supported`},
		{dest(`, "ProcessingConfiguration": {"Enabled": true, "Processors": [{"Type": "AppendDelimiterToRecord", "Parameters": [{"ParameterName": "Delimiter", "ParameterValue": ""}]}]}`), "non-empty"},
		{dest(`, "S3BackupMode": "Enabled"`), "S3BackupMode"},
		{dest(`, "DataFormatConversionConfiguration": {}`), "DataFormatConversionConfiguration"},
		{dest(`, "DynamicPartitioningConfiguration": {"Enabled": true}`), "DynamicPartitioningConfiguration"},
		{dest(`, "Prefix": "!{timestamp:yyyy}/"`), "ErrorOutputPrefix is required"},
	} {
		_, _, err := ParseConfig([]byte(tc.in))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want ErrConfig saying %q", tc.in, err, tc.want)
		}
	}
}
