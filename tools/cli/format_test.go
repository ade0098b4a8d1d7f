package cli

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
)

func TestAppendData(t *testing.T) {
	tests := []struct {
		data string
		want string
	}{
		{"hello", "hello"},
		{"hello world", "hello world"},
		{`{"t": 21.5}`, `{"t": 21.5}`},
		{"héllo ✓ 日本", "héllo ✓ 日本"},
		{"", "base64:"},
		{"a\tb", "base64:YQli"},
		{"line\n", "base64:bGluZQo="},
		{"\x00\x01\x02", "base64:AAEC"},
		{"\xff\xfe", "base64://4="},
		{"del\x7f", "base64:ZGVsfw=="},
		{"c1\u0085", "base64:YzHChQ=="},
		{"base64:abc", "base64:YmFzZTY0OmFiYw=="}, // would read as base64 otherwise
		{"base64", "base64"},
	}
	for _, tt := range tests {
		got := string(AppendData(nil, []byte(tt.data)))
		if got != tt.want {
			t.Errorf("AppendData(%q) = %q, want %q", tt.data, got, tt.want)
		}
		if IsText([]byte(tt.data)) != (got == tt.data) {
			t.Errorf("IsText(%q) disagrees with AppendData", tt.data)
		}
	}
}

func TestAppendKey(t *testing.T) {
	tests := []struct{ key, want string }{
		{"user1", "user1"},
		{"clé-✓", "clé-✓"},
		{"two words", `"two words"`},
		{"tab\there", `"tab\there"`},
		{`"quoted"`, `"\"quoted\""`},
		{`in"side`, `in"side`},
		{"", `""`},
		{"\xff", `"\xff"`},
	}
	for _, tt := range tests {
		if got := string(appendKey(nil, []byte(tt.key))); got != tt.want {
			t.Errorf("appendKey(%q) = %s, want %s", tt.key, got, tt.want)
		}
	}
}

func TestRecordLineAndJSON(t *testing.T) {
	r := client.Record{Key: []byte("user1"), Data: []byte("hello"), Shard: 1, Position: 5,
		Arrival: time.Date(2024, 5, 4, 20, 21, 32, 123_456_789, time.FixedZone("CEST", 2*3600))}
	const want = "shardId-000000000001 10000000000000000000000000000000000018446744073709551621 2024-05-04T18:21:32.123Z user1 hello\n"
	if got := string(AppendRecordLine(nil, &r)); got != want {
		t.Errorf("line\n got %q\nwant %q", got, want)
	}
	r.Data, r.Flags = []byte{0, 1}, flagEncrypted
	b, err := json.Marshal(NewRecordJSON(&r))
	if err != nil {
		t.Fatal(err)
	}
	const wantJSON = `{"ShardId":"shardId-000000000001","SequenceNumber":"10000000000000000000000000000000000018446744073709551621",` +
		`"ApproximateArrivalTimestamp":"2024-05-04T18:21:32.123Z","PartitionKey":"user1","Data":"AAE=","EncryptionType":"KMS"}`
	if string(b) != wantJSON {
		t.Errorf("JSON\n got %s\nwant %s", b, wantJSON)
	}
}

func TestParseStart(t *testing.T) {
	for s, want := range map[string]client.Start{
		"TRIM_HORIZON": client.TrimHorizon, "trim-horizon": client.TrimHorizon, "latest": client.Latest,
		"AT_SEQUENCE_NUMBER": client.AtSequenceNumber, "after_sequence_number": client.AfterSequenceNumber,
		"At-Timestamp": client.AtTimestamp,
	} {
		if got, err := ParseStart(s); err != nil || got != want {
			t.Errorf("ParseStart(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "HORIZON", "AT_SEQUENCE", "0"} {
		if _, err := ParseStart(s); !errors.Is(err, ErrInput) {
			t.Errorf("ParseStart(%q): %v, want ErrInput", s, err)
		}
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2024, 5, 4, 20, 21, 32, 500_000_000, time.UTC)
	for _, s := range []string{"2024-05-04T20:21:32.5Z", "2024-05-04T22:21:32.5+02:00", "1714854092.5"} {
		got, err := ParseTime(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "yesterday", "2024-05-04", "-5", "NaN", "1e300"} {
		if _, err := ParseTime(s); !errors.Is(err, ErrInput) {
			t.Errorf("ParseTime(%q): %v, want ErrInput", s, err)
		}
	}
}

func TestParseShard(t *testing.T) {
	for s, want := range map[string]uint32{"shardId-000000000007": 7, "7": 7, "shardId-000000000000": 0} {
		if got, err := ParseShard(s); err != nil || got != want {
			t.Errorf("ParseShard(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "shard 1", "shardId-", "shardId-x"} {
		if _, err := ParseShard(s); !errors.Is(err, ErrInput) {
			t.Errorf("ParseShard(%q): %v, want ErrInput", s, err)
		}
	}
}

func TestKeyShare(t *testing.T) {
	tests := []struct {
		start, end, want string
	}{
		{"0", "340282366920938463463374607431768211455", "100.00%"},
		{"0", "170141183460469231731687303715884105727", "50.00%"},
		{"0", "113427455640312821154458202477256070484", "33.33%"},
		{"0", "0", "2.9e-37%"},
		{"5", "4", "?"},
		{"x", "4", "?"},
	}
	for _, tt := range tests {
		if got := keyShare(HashKeyRange{tt.start, tt.end}); got != tt.want {
			t.Errorf("keyShare(%s, %s) = %s, want %s", tt.start, tt.end, got, tt.want)
		}
	}
}

// TestAggregatedRecordForms: a user record of an aggregated record prints its sub-sequence
// number after its sequence number, and in JSON as SubSequenceNumber (0 included).
func TestAggregatedRecordForms(t *testing.T) {
	r := client.Record{Key: []byte("k"), Data: []byte("v"), Shard: 1, Position: 5, Arrival: time.UnixMilli(0),
		Aggregated: true, SubSeq: 0, ExplicitHashKey: []byte("42")}
	line := string(AppendRecordLine(nil, &r))
	if want := "shardId-000000000001 " + r.SequenceNumber() + "/0 1970-01-01T00:00:00.000Z k v\n"; line != want {
		t.Fatalf("line %q, want %q", line, want)
	}
	j := string(appendJSONLine(nil, NewRecordJSON(&r)))
	if !strings.Contains(j, `"SubSequenceNumber":0,"ExplicitHashKey":"42"`) {
		t.Fatalf("JSON %s", j)
	}
	r.Aggregated = false
	if j := string(appendJSONLine(nil, NewRecordJSON(&r))); strings.Contains(j, "SubSequenceNumber") {
		t.Fatalf("JSON of an ordinary record %s", j)
	}
	if line := string(AppendRecordLine(nil, &r)); strings.Contains(line, "/") {
		t.Fatalf("line of an ordinary record %q", line)
	}
}
