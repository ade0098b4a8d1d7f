package load

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/internal/jsonscan"
)

// TestAppendPutRecords checks the hand-written PutRecords input against encoding/json's
// reading of it, and each record's data against appendData, for sizes around the header.
func TestAppendPutRecords(t *testing.T) {
	pl := newPayload(0xfeed, 1, 4096, 3)
	recs := []pending{}
	for i, n := range []int{0, 1, 15, 16, 17, 18, 19, 20, 100, 4096} {
		recs = append(recs, pending{sent: int64(1e18) + int64(i), key: int32(i % 3), size: int32(n)})
	}
	body := pl.appendPutRecords(nil, "s.t-r_1", recs)
	var in struct {
		StreamName string
		Records    []struct {
			Data         []byte
			PartitionKey string
		}
	}
	if err := json.Unmarshal(body, &in); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if in.StreamName != "s.t-r_1" || len(in.Records) != len(recs) {
		t.Fatalf("stream %q, %d records", in.StreamName, len(in.Records))
	}
	for i, r := range in.Records {
		want := pl.appendData(nil, int(recs[i].size), recs[i].sent)
		if string(r.Data) != string(want) || r.PartitionKey != pl.keys[recs[i].key] {
			t.Errorf("record %d (%d bytes): data or key differs", i, recs[i].size)
		}
		sent, ok := readHeader(r.Data, 0xfeed)
		if ok != (recs[i].size >= headerLen) || ok && sent != recs[i].sent {
			t.Errorf("record %d (%d bytes): header %d, %v", i, recs[i].size, sent, ok)
		}
	}
}

func TestDecodePutRecords(t *testing.T) {
	seq := client.SeqNum{Shard: 2, Position: 9}.String()
	body := ` { "FailedRecordCount" : 1, "EncryptionType":null, "Records" : [
		{"ShardId":"shardId-000000000002","SequenceNumber":"` + seq + `"},
		{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"slow \"down\" \u00e9"},
		{"SequenceNumber":"` + seq + `","ShardId":"shardId-000000000002","Extra":[1,{"a":null}]}
	], "Other": {"x": [true, false, -1.5e3]} } `
	s := jsonscan.Scanner{AllowControl: true}
	out, err := decodePutRecords(&s, []byte(body), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []putResult{{id: recID{2, 9}}, {err: "ProvisionedThroughputExceededException"}, {id: recID{2, 9}}}
	if len(out) != len(want) {
		t.Fatalf("%d results, want %d", len(out), len(want))
	}
	for i := range want {
		if out[i] != want[i] {
			t.Errorf("result %d: %+v, want %+v", i, out[i], want[i])
		}
	}
	for _, bad := range []string{
		``, `{`, `{"Records":[{}]}`, `{"Records":[{"ShardId":1}]}`, `{"Records":[}`, `{"Records":[]} x`,
		`{"Records":"a`, `{"Records":[{"SequenceNumber":"1\q"}]}`, `[1]`, `{"a":tru}`,
	} {
		if _, err := decodePutRecords(&s, []byte(bad), nil); err == nil {
			t.Errorf("decodePutRecords(%q) accepted it", bad)
		}
	}
}

func TestDecodeRecords(t *testing.T) {
	const run = 77
	pl := newPayload(run, 3, 100, 1)
	sent := time.Now().UnixNano()
	data := func(n int) string { return base64.StdEncoding.EncodeToString(pl.appendData(nil, n, sent)) }
	seq := func(pos uint64) string { return client.SeqNum{Shard: 5, Position: pos}.String() }
	other := newPayload(run+1, 3, 100, 1)
	body := `{"Records":[
		{"SequenceNumber":"` + seq(1) + `","ApproximateArrivalTimestamp":1.7e9,"Data":"` + data(100) + `","PartitionKey":"k\u0031"},
		{"Data":"` + data(16) + `","SequenceNumber":"` + seq(2) + `","PartitionKey":"key"},
		{"SequenceNumber":"` + seq(3) + `","Data":"` + data(15) + `","PartitionKey":"k"},
		{"SequenceNumber":"` + seq(4) + `","Data":"","PartitionKey":"k"},
		{"SequenceNumber":"` + seq(5) + `","Data":"` + base64.StdEncoding.EncodeToString(other.appendData(nil, 50, sent)) + `","PartitionKey":"k"}
	],"MillisBehindLatest":12,"NextShardIterator":"it\/er","ChildShards":[{"ShardId":"shardId-000000000008","ParentShards":["shardId-000000000005"],"HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"1"}}]}`
	var got []readRecord
	s := jsonscan.Scanner{AllowControl: true}
	ans, err := decodeRecords(&s, []byte(body), 5, run, func(r *readRecord) { got = append(got, *r) })
	if err != nil {
		t.Fatal(err)
	}
	want := []readRecord{
		{pos: 1, n: 100, sent: sent, timed: true},
		{pos: 2, n: 16, sent: sent, timed: true},
		{pos: 3, n: 15},
		{pos: 4, n: 0},
		{pos: 5, n: 50}, // another run's record: not timed
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	if ans.next != "it/er" || ans.millisBehind != 12 || ans.last != seq(5) || strings.Join(ans.children, ",") != "shardId-000000000008" {
		t.Errorf("answer %+v", ans)
	}

	// The end of a shard: no iterator, and a continuation event shape.
	ans, err = decodeRecords(&s, []byte(`{"Records":[],"NextShardIterator":null,"MillisBehindLatest":0}`), 5, run, func(*readRecord) {})
	if err != nil || ans.next != "" || ans.last != "" {
		t.Errorf("end of shard: %+v, %v", ans, err)
	}
	ans, err = decodeRecords(&s, []byte(`{"Records":[],"ContinuationSequenceNumber":"`+seq(9)+`","MillisBehindLatest":0}`), 5, run, func(*readRecord) {})
	if err != nil || ans.next != seq(9) {
		t.Errorf("event: %+v, %v", ans, err)
	}
	for _, bad := range []string{
		`{"Records":[{"Data":"AAAA"}]}`,
		`{"Records":[{"SequenceNumber":"1","Data":"AAA"}]}`,
		`{"Records":[{"SequenceNumber":"1","Data":"!!!!"}]}`,
		`{"Records":[{"SequenceNumber":1}]}`,
		`{"MillisBehindLatest":1.5}`,
		`{"MillisBehindLatest":12345678901234567890}`,
		`{"Records":[` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `]}`,
	} {
		if _, err := decodeRecords(&s, []byte(bad), 5, run, func(*readRecord) {}); err == nil {
			t.Errorf("decodeRecords(%q) accepted it", bad)
		}
	}
}

func TestScannerStrings(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"plain"`, "plain"},
		{`"a\"b\\c\/d\b\f\n\r\t"`, "a\"b\\c/d\b\f\n\r\t"},
		{`"\u00e9\u20ac"`, "é€"},
		{`"\ud83d\ude00"`, "😀"},
		{`"\ud83d"`, "\ufffd"},
	}
	s := jsonscan.Scanner{AllowControl: true}
	for _, tt := range tests {
		s.Reset([]byte(tt.in))
		got := string(str(&s))
		if s.End(); got != tt.want || s.Err() != nil {
			t.Errorf("str(%s) = %q, %v; want %q", tt.in, got, s.Err(), tt.want)
		}
	}
	for _, bad := range []string{`"abc`, `"\x"`, `"\u12"`, `"\u12g4"`, `abc`, `"a\`} {
		s.Reset([]byte(bad))
		str(&s)
		if s.Err() == nil {
			t.Errorf("str(%s) accepted it", bad)
		}
	}
	for _, tt := range []struct{ in, want string }{
		{"a\"b\\c\x01", `"a\"b\\c\u0001"`},
		{"shardId-000000000001", `"shardId-000000000001"`},
	} {
		if got := string(jsonscan.AppendString(nil, tt.in)); got != tt.want {
			t.Errorf("jsonscan.AppendString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestAPIErrorAnswer(t *testing.T) {
	tests := []struct{ body, header, name, msg string }{
		{`{"__type":"com.amazonaws.kinesis#ResourceNotFoundException","message":"no"}`, "", "ResourceNotFoundException", "no"},
		{`{"__type":"LimitExceededException","Message":"slow"}`, "", "LimitExceededException", "slow"},
		{`not json`, "ValidationException:http://x", "ValidationException", ""},
	}
	for _, tt := range tests {
		name, msg := apiErrorAnswer([]byte(tt.body), tt.header)
		if name != tt.name || msg != tt.msg {
			t.Errorf("apiErrorAnswer(%s) = %q, %q; want %q, %q", tt.body, name, msg, tt.name, tt.msg)
		}
	}
}
