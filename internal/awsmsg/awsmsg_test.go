package awsmsg

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestMessages pins the messages byte for byte: they are the ones Kinesis sends, and the
// ones the engine and the server sent before they were built here.
func TestMessages(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Validation(Violation(Int(0), "limit", ValueRange(1, 10000))),
			"1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value less than or equal to 10000 and greater than or equal to 1"},
		{Validation(Violation(Null, "resourceARN", NotNull)),
			"1 validation error detected: Value null at 'resourceARN' failed to satisfy constraint: Member must not be null"},
		{Validation(Violation(Hidden, "tags", LengthRange(1, 200))),
			"1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 200 and greater than or equal to 1"},
		{Validation(Violation(Hidden, "records.3.member.data", LengthAtMost(1048576))),
			"1 validation error detected: Value at 'records.3.member.data' failed to satisfy constraint: Member must have length less than or equal to 1048576"},
		{Validation(Violation(Str("x"), "tagKeys", Each(LengthAtMost(128), LengthAtLeast(1)))),
			"1 validation error detected: Value 'x' at 'tagKeys' failed to satisfy constraint: Member must satisfy constraint: [Member must have length less than or equal to 128, Member must have length greater than or equal to 1]"},
		{Validation(Violation(Str("MAYBE"), "minimumThroughputBillingCommitment.status", Enum("ENABLED", "DISABLED"))),
			"1 validation error detected: Value 'MAYBE' at 'minimumThroughputBillingCommitment.status' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED]"},
		{Validation(Violation(Str("a b"), "streamName", PatternLength("[a-zA-Z0-9_.-]+", 1, 128))),
			"1 validation error detected: Value 'a b' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and length between 1 and 128"},
		{Validation(Violation(Str("x"), "newStartingHashKey", Pattern(`0|([1-9]\d{0,38})`))),
			`1 validation error detected: Value 'x' at 'newStartingHashKey' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\d{0,38})`},
		{Validation(Violation(Int(-1), "warmThroughputMiBps", ValueAtLeast(0))),
			"1 validation error detected: Value '-1' at 'warmThroughputMiBps' failed to satisfy constraint: Member must have value greater than or equal to 0"},
		{Validation(Violation(Int(5), "maxRecordSizeInKiB", ValueBetween(1024, 10240))),
			"1 validation error detected: Value '5' at 'maxRecordSizeInKiB' failed to satisfy constraint: Member must have value between 1024 and 10240"},
		{Validation(Violation(List([]string{"A", "B"}), "shardLevelMetrics", Each(Enum("X", "ALL")))),
			"1 validation error detected: Value '[A, B]' at 'shardLevelMetrics' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [X, ALL]]"},
		{Validation(Violation(List(nil), "shardLevelMetrics", LengthRange(1, 7))),
			"1 validation error detected: Value '[]' at 'shardLevelMetrics' failed to satisfy constraint: Member must have length less than or equal to 7 and greater than or equal to 1"},
		{Validation(Violation(Null, "a", NotNull), Violation(Int(0), "b", ValueAtLeast(1))),
			"2 validation errors detected: Value null at 'a' failed to satisfy constraint: Member must not be null; Value '0' at 'b' failed to satisfy constraint: Member must have value greater than or equal to 1"},
		{StreamNotFound("s", "1"), "Stream s under account 1 not found."},
		{ShardNotFound("shardId-000000000001", "s", "1"), "Shard shardId-000000000001 in stream s under account 1 does not exist"},
		{ConsumerNotFound("arn:c"), "Consumer arn:c not found."},
		{ConsumerNameNotFound("app", "s", "1"), "Consumer app under stream s not found for account 1."},
		{ResourceNotFound("arn:r"), "Resource arn:r not found."},
		{StreamNotActive("s", "1", "UPDATING"), "Stream s under account 1 is UPDATING, not ACTIVE."},
	} {
		if tc.got != tc.want {
			t.Errorf("got  %q\nwant %q", tc.got, tc.want)
		}
	}
}

// TestEchoBounded: a client's value is echoed up to its bound, cut on a character boundary.
func TestEchoBounded(t *testing.T) {
	long := strings.Repeat("é", MaxEcho) // 2 bytes each
	for _, tc := range []struct {
		name string
		got  string
		max  int
	}{
		{"Str", Str(long), MaxEcho + 5},
		{"List", List([]string{long, long}), MaxEcho + 7},
		{"StreamNotFound", StreamNotFound(strings.Repeat("s", 3*MaxEchoName), "1"), MaxEchoName + 3 + len("Stream  under account 1 not found.")},
		{"ConsumerNotFound", ConsumerNotFound(strings.Repeat("c", 3*MaxEchoName)), MaxEchoName + 3 + len("Consumer  not found.")},
	} {
		if len(tc.got) > tc.max || !utf8.ValidString(tc.got) {
			t.Errorf("%s: %d bytes (at most %d), valid UTF-8 %v", tc.name, len(tc.got), tc.max, utf8.ValidString(tc.got))
		}
	}
	if got := Bound("aé", 2); got != "a..." {
		t.Errorf("Bound cut a character: %q", got)
	}
	if got := Bound("abc", 3); got != "abc" {
		t.Errorf("Bound shortened a value within its bound: %q", got)
	}
	if got := Str(strings.Repeat("x", 300)); got != "'"+strings.Repeat("x", MaxEcho)+"...'" {
		t.Errorf("Str kept %d bytes, want the first %d", len(got)-2, MaxEcho)
	}
}
