package server

import (
	"encoding/json"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/sluice-streams/sluice/internal/awsmsg"
)

// edgeAnswer is an answer of the JSON API: status, error type and message.
type edgeAnswer struct {
	status  int
	errType string
	msg     string
	body    []byte
}

func edgeCall(t *testing.T, addr, op, body string) edgeAnswer {
	t.Helper()
	resp, b := h2Call(t, http1Client(nil), "http://"+addr, op, body)
	a := edgeAnswer{status: resp.StatusCode, errType: resp.Header.Get("X-Amzn-ErrorType"), body: b}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s: error body %q: %v", op, b, err)
		}
		a.msg = e.Message
	}
	return a
}

// want checks an error answer: its type and, when contains is set, a part of its message.
func (a edgeAnswer) want(t *testing.T, what, errType, contains string) {
	t.Helper()
	if a.status != 400 || a.errType != errType || !strings.Contains(a.msg, contains) {
		t.Fatalf("%s: %d %s %q, want 400 %s with %q", what, a.status, a.errType, a.msg, errType, contains)
	}
	if len(a.msg) > maxMessage+len("...") {
		t.Fatalf("%s: a message of %d bytes", what, len(a.msg))
	}
}

// futureMessage matches the message of a timestamp in the future.
var futureMessage = regexp.MustCompile(`^The timestampInMillis parameter cannot be greater than the currentTimestampInMillis\. timestampInMillis: (-?\d+), currentTimestampInMillis: (\d+)$`)

// checkFuture checks that a is the InvalidArgumentException of a timestamp in the future with
// the given milliseconds, and a current time between before and now.
func checkFuture(t *testing.T, what string, a edgeAnswer, ms int64, before time.Time) {
	t.Helper()
	m := futureMessage.FindStringSubmatch(a.msg)
	if a.status != 400 || a.errType != "InvalidArgumentException" || m == nil {
		t.Fatalf("%s: %d %s %q, want the InvalidArgumentException of a future timestamp", what, a.status, a.errType, a.msg)
	}
	now, _ := strconv.ParseInt(m[2], 10, 64)
	if m[1] != strconv.FormatInt(ms, 10) || now < before.UnixMilli() || now > time.Now().UnixMilli() {
		t.Fatalf("%s: %q, want timestampInMillis %d and the current time", what, a.msg, ms)
	}
}

// TestEdgeTimestamps sends timestamps that no int64 count of milliseconds holds, and ones far
// in the future that it does, to every operation that takes one, in JSON and CBOR.
func TestEdgeTimestamps(t *testing.T) {
	hs := startH2Server(t, Options{})
	if a := edgeCall(t, hs.addr, "CreateStream", `{"StreamName":"ts","ShardCount":1}`); a.status != 200 {
		t.Fatalf("CreateStream: %d %s", a.status, a.body)
	}
	iterator := func(ts string) string {
		return `{"StreamName":"ts","ShardId":"shardId-000000000000","ShardIteratorType":"AT_TIMESTAMP","Timestamp":` + ts + `}`
	}
	for _, tc := range []struct{ ts, want string }{
		{"1e20", "out of range"},
		{"-1e20", "out of range"},
		{"9223372036854775", "out of range"},
		{"-9223372036854775", "out of range"},
		{"1e400", "out of range"},
		{`"NaN"`, "not a number"},
		{`"Inf"`, "not a number"},
		{`"` + strings.Repeat("9", 100000) + `"`, "out of range"},
	} {
		a := edgeCall(t, hs.addr, "GetShardIterator", iterator(tc.ts))
		a.want(t, "GetShardIterator at "+awsmsg.Bound(tc.ts, 20), "SerializationException", tc.want)
		if strings.Contains(a.msg, "-9146744073709551616") || strings.Contains(a.msg, "timestampInMillis") {
			t.Fatalf("GetShardIterator at %s: %q", awsmsg.Bound(tc.ts, 20), a.msg)
		}
		a = edgeCall(t, hs.addr, "SubscribeToShard", `{"ConsumerARN":"arn:aws:kinesis:us-east-1:000000000000:stream/ts/consumer/c:1","ShardId":"shardId-000000000000","StartingPosition":{"Type":"AT_TIMESTAMP","Timestamp":`+tc.ts+`}}`)
		a.want(t, "SubscribeToShard at "+awsmsg.Bound(tc.ts, 20), "SerializationException", tc.want)
		a = edgeCall(t, hs.addr, "ListShards", `{"StreamName":"ts","ShardFilter":{"Type":"AT_TIMESTAMP","Timestamp":`+tc.ts+`}}`)
		a.want(t, "ListShards at "+awsmsg.Bound(tc.ts, 20), "SerializationException", tc.want)
	}
	before := time.Now()
	checkFuture(t, "1e12 s", edgeCall(t, hs.addr, "GetShardIterator", iterator("1e12")), 1e15, before)
	checkFuture(t, "the largest timestamp", edgeCall(t, hs.addr, "GetShardIterator", iterator(strconv.FormatInt(maxEpochSeconds, 10))), maxEpochSeconds*1000, before)
	checkFuture(t, "a fraction", edgeCall(t, hs.addr, "GetShardIterator", iterator("4102444800.5")), 4102444800500, before)
	if a := edgeCall(t, hs.addr, "ListShards", `{"StreamName":"ts","ShardFilter":{"Type":"AT_TIMESTAMP","Timestamp":1e12}}`); a.status != 200 {
		t.Fatalf("ListShards at a future timestamp: %d %s", a.status, a.body)
	}

	// CBOR: tag 1 over milliseconds, as the AWS SDK for Java writes it.
	c := cborAPI{t: t, url: "http://" + hs.addr, http: http1Client(nil)}
	cborIterator := func(ts any) []byte {
		b, err := cbor.Marshal(map[string]any{"StreamName": "ts", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_TIMESTAMP",
			"Timestamp": cbor.Tag{Number: 1, Content: ts}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, ts := range []any{1e308, -1e308, uint64(math.MaxUint64), int64(math.MinInt64)} {
		resp, b := c.call("GetShardIterator", cborIterator(ts))
		c.error(resp, b, 400, "SerializationException")
	}
	before = time.Now()
	resp, b := c.call("GetShardIterator", cborIterator(uint64(1e15)))
	c.error(resp, b, 400, "InvalidArgumentException")
	var e map[string]string
	if err := cbor.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	checkFuture(t, "CBOR 1e15 ms", edgeAnswer{status: resp.StatusCode, errType: resp.Header.Get("X-Amzn-ErrorType"), msg: e["message"]}, 1e15, before)
}

// TestEdgePutValidation sends PutRecord and PutRecords inputs that AWS refuses, in JSON and
// CBOR, checks each answer, and then that none of them stored anything.
func TestEdgePutValidation(t *testing.T) {
	hs := startH2Server(t, Options{})
	if a := edgeCall(t, hs.addr, "CreateStream", `{"StreamName":"pv","ShardCount":1}`); a.status != 200 {
		t.Fatalf("CreateStream: %d %s", a.status, a.body)
	}
	data := b64("x")
	longKey := strings.Repeat("7", 100000)
	for _, tc := range []struct {
		name, op, body, errType, contains string
	}{
		{"empty hash key", "PutRecord", `{"StreamName":"pv","Data":"` + data + `","PartitionKey":"k","ExplicitHashKey":""}`,
			"ValidationException", `Value '' at 'explicitHashKey' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\d{0,38})`},
		{"empty hash key in a batch", "PutRecords", `{"StreamName":"pv","Records":[{"Data":"` + data + `","PartitionKey":"k"},{"Data":"` + data + `","PartitionKey":"k","ExplicitHashKey":""}]}`,
			"ValidationException", `Value '' at 'records.2.member.explicitHashKey'`},
		{"hash key with a leading zero", "PutRecord", `{"StreamName":"pv","Data":"` + data + `","PartitionKey":"k","ExplicitHashKey":"01"}`,
			"ValidationException", `at 'explicitHashKey'`},
		{"hash key past 2^128-1", "PutRecord", `{"StreamName":"pv","Data":"` + data + `","PartitionKey":"k","ExplicitHashKey":"340282366920938463463374607431768211456"}`,
			"InvalidArgumentException", "[0, 2^128-1]"},
		{"100 KB hash key", "PutRecord", `{"StreamName":"pv","Data":"` + data + `","PartitionKey":"k","ExplicitHashKey":"` + longKey + `"}`,
			"ValidationException", "Value '" + longKey[:maxEcho] + "...' at 'explicitHashKey'"},
		{"lone surrogate in a key", "PutRecord", `{"StreamName":"pv","Data":"` + data + `","PartitionKey":"a\ud800"}`,
			"SerializationException", "lone UTF-16 surrogate"},
		{"lone surrogate in a batch key", "PutRecords", `{"StreamName":"pv","Records":[{"Data":"` + data + `","PartitionKey":"\udfff"}]}`,
			"SerializationException", "lone UTF-16 surrogate"},
		{"lone surrogate in a control-plane name", "AddTagsToStream", `{"StreamName":"pv","Tags":{"k":"\ud800x"}}`,
			"SerializationException", "lone UTF-16 surrogate"},
		{"empty partition key", "PutRecord", `{"StreamName":"pv","Data":"` + data + `","PartitionKey":""}`,
			"ValidationException", "Value at 'partitionKey' failed to satisfy constraint"},
		{"long partition key", "PutRecord", `{"StreamName":"pv","Data":"` + data + `","PartitionKey":"` + strings.Repeat("k", 257) + `"}`,
			"ValidationException", "Value at 'partitionKey' failed to satisfy constraint"},
		{"long partition key in a batch", "PutRecords", `{"StreamName":"pv","Records":[{"Data":"` + data + `","PartitionKey":"` + strings.Repeat("k", 257) + `"}]}`,
			"ValidationException", "Value at 'records.1.member.partitionKey'"},
		{"data over the limit", "PutRecord", `{"StreamName":"pv","Data":"` + b64(strings.Repeat("d", 1<<20+1)) + `","PartitionKey":"k"}`,
			"ValidationException", "Value at 'data' failed to satisfy constraint"},
		{"missing data", "PutRecord", `{"StreamName":"pv","PartitionKey":"k"}`,
			"ValidationException", "Value null at 'data'"},
		{"sequence number for ordering", "PutRecord", `{"StreamName":"pv","Data":"` + data + `","PartitionKey":"k","SequenceNumberForOrdering":"x1"}`,
			"ValidationException", "Value 'x1' at 'sequenceNumberForOrdering'"},
		{"100 KB stream name", "PutRecord", `{"StreamName":"` + strings.Repeat("s", 100000) + `","Data":"` + data + `","PartitionKey":"k"}`,
			"ValidationException", "Value '" + strings.Repeat("s", maxEcho) + "...' at 'streamName'"},
		{"stream name off the pattern", "PutRecords", `{"StreamName":"p v","Records":[{"Data":"` + data + `","PartitionKey":"k"}]}`,
			"ValidationException", "Value 'p v' at 'streamName'"},
		{"100 KB name to create", "CreateStream", `{"StreamName":"` + strings.Repeat("n", 100000) + `","ShardCount":1}`,
			"ValidationException", "Value '" + strings.Repeat("n", maxEcho) + "...' at 'streamName'"},
		{"100 KB consumer name", "RegisterStreamConsumer", `{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/pv","ConsumerName":"` + strings.Repeat("c", 100000) + `"}`,
			"ValidationException", "Value 'ccc"}, // the engine's message, cut to maxMessage
		{"100 KB shard id", "ListShards", `{"StreamName":"pv","ExclusiveStartShardId":"` + strings.Repeat("z", 100000) + `"}`,
			"InvalidArgumentException", strings.Repeat("z", maxEcho) + "..."},
	} {
		a := edgeCall(t, hs.addr, tc.op, tc.body)
		a.want(t, tc.name, tc.errType, tc.contains)
		if tc.op == "PutRecord" && strings.Contains(a.msg, "records.") {
			t.Fatalf("%s: PutRecord names a PutRecords member: %q", tc.name, a.msg)
		}
	}

	// CBOR: a byte string is a blob only in Data; a text string in Data is read as base64.
	c := cborAPI{t: t, url: "http://" + hs.addr, http: http1Client(nil)}
	for _, in := range []map[string]any{
		{"StreamName": "pv", "Data": []byte("x"), "PartitionKey": []byte("k")},
		{"StreamName": []byte("pv"), "Data": []byte("x"), "PartitionKey": "k"},
		{"StreamName": "pv", "Data": []byte("x"), "PartitionKey": "k", "ExplicitHashKey": []byte("1")},
		{"StreamName": "pv", "Data": "not base64!", "PartitionKey": "k"},
	} {
		body, err := cbor.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		resp, b := c.call("PutRecord", body)
		c.error(resp, b, 400, "SerializationException")
	}
	c.ok("PutRecord", map[string]any{"StreamName": "pv", "Data": b64("text"), "PartitionKey": "k"}, nil)

	// Only the last record went in.
	var it struct{ ShardIterator string }
	a := edgeCall(t, hs.addr, "GetShardIterator", `{"StreamName":"pv","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}`)
	if err := json.Unmarshal(a.body, &it); err != nil || a.status != 200 {
		t.Fatalf("GetShardIterator: %d %s", a.status, a.body)
	}
	var recs struct {
		Records []struct {
			Data         []byte
			PartitionKey string
		}
	}
	a = edgeCall(t, hs.addr, "GetRecords", `{"ShardIterator":"`+it.ShardIterator+`"}`)
	if err := json.Unmarshal(a.body, &recs); err != nil || a.status != 200 {
		t.Fatalf("GetRecords: %d %s", a.status, a.body)
	}
	if len(recs.Records) != 1 || string(recs.Records[0].Data) != "text" || recs.Records[0].PartitionKey != "k" {
		t.Fatalf("stored %+v, want only the record with text data", recs.Records)
	}
}
