package server

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestErrorMessages pins, byte for byte, the messages clients get for bad input, whichever
// layer finds it (server, account or engine): they are Kinesis's wording.
func TestErrorMessages(t *testing.T) {
	addr := hygieneServer(t)
	long := strings.Repeat("x", 1000)
	for _, tc := range []struct {
		op, body, typ, msg string
	}{
		{"ListStreams", `{"Limit":0}`, "ValidationException",
			"1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 10000 and greater than or equal to 1"},
		{"CreateStream", `{"StreamName":"a b","ShardCount":1}`, "ValidationException",
			"1 validation error detected: Value 'a b' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and length between 1 and 128"},
		{"DescribeStreamSummary", `{"StreamName":"nope"}`, "ResourceNotFoundException",
			"Stream nope under account 000000000000 not found."},
		{"TagResource", `{"Tags":{"k":"v"}}`, "ValidationException",
			"1 validation error detected: Value null at 'resourceARN' failed to satisfy constraint: Member must not be null"},
		{"GetResourcePolicy", `{"ResourceARN":"not-an-arn"}`, "ValidationException",
			`1 validation error detected: Value 'not-an-arn' at 'resourceARN' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\d{12}:.*stream/\S+ and length between 1 and 2048`},
		{"GetResourcePolicy", `{"ResourceARN":"arn:aws:kinesis:eu-west-1:000000000000:stream/s"}`, "ResourceNotFoundException",
			"Resource arn:aws:kinesis:eu-west-1:000000000000:stream/s not found."},
		{"UpdateAccountSettings", `{"MinimumThroughputBillingCommitment":{"Status":"MAYBE"}}`, "ValidationException",
			"1 validation error detected: Value 'MAYBE' at 'minimumThroughputBillingCommitment.status' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED]"},
		{"UpdateStreamWarmThroughput", `{"StreamName":"s","WarmThroughputMiBps":-1}`, "ValidationException",
			"1 validation error detected: Value '-1' at 'warmThroughputMiBps' failed to satisfy constraint: Member must have value greater than or equal to 0"},
		{"EnableEnhancedMonitoring", `{"StreamName":"s","ShardLevelMetrics":[]}`, "ValidationException",
			"1 validation error detected: Value '[]' at 'shardLevelMetrics' failed to satisfy constraint: Member must have length less than or equal to 7 and greater than or equal to 1"},
		// An echoed value is cut to its first 256 bytes.
		{"UpdateAccountSettings", `{"MinimumThroughputBillingCommitment":{"Status":"` + long + `"}}`, "ValidationException",
			"1 validation error detected: Value '" + long[:256] + "...' at 'minimumThroughputBillingCommitment.status' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED]"},
	} {
		status, body, typ := rawPost(t, addr, "/", tc.op, "", []byte(tc.body))
		var out struct {
			Message string `json:"message"`
		}
		if err := json.Unmarshal([]byte(body), &out); err != nil {
			t.Fatalf("%s: %v: %s", tc.op, err, body)
		}
		if status != 400 || typ != tc.typ || out.Message != tc.msg {
			t.Errorf("%s %.60s: %d %s\n got %q\nwant %q", tc.op, tc.body, status, typ, out.Message, tc.msg)
		}
	}
}
