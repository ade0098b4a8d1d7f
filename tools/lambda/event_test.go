package lambda

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/sluice-streams/sluice/client"
)

// TestEventIsKinesisEvent encodes records and decodes them with aws-lambda-go's
// events.KinesisEvent: every field comes back, and no key is left over.
func TestEventIsKinesisEvent(t *testing.T) {
	tr := &Trigger{streamARN: arn, region: "eu-west-1", role: "arn:aws:iam::123456789012:role/r"}
	arrival := time.UnixMilli(1700000000123)
	recs := []client.Record{
		{Key: []byte("user \"1\""), Data: []byte{0, 1, 2, 255}, Shard: 3, Position: 42, Arrival: arrival},
		{Key: []byte("ключ"), Data: nil, Shard: 3, Position: 43, Arrival: arrival.Add(time.Second), Flags: 1},
	}
	b := tr.appendEvent(nil, recs, nil)
	if size := evEmpty + eventSize(&recs[0], tr.recordFixed()) + 1 + eventSize(&recs[1], tr.recordFixed()); size != len(b) {
		t.Errorf("eventSize says %d bytes, the event has %d", size, len(b))
	}
	var ev events.KinesisEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if len(ev.Records) != 2 {
		t.Fatalf("%d records", len(ev.Records))
	}
	for i, r := range ev.Records {
		seq := recs[i].SequenceNumber()
		want := events.KinesisEventRecord{AwsRegion: "eu-west-1", EventID: "shardId-000000000003:" + seq,
			EventName: "aws:kinesis:record", EventSource: "aws:kinesis", EventSourceArn: arn, EventVersion: "1.0",
			InvokeIdentityArn: tr.role, Kinesis: events.KinesisRecord{KinesisSchemaVersion: "1.0",
				PartitionKey: string(recs[i].Key), SequenceNumber: seq, Data: r.Kinesis.Data,
				ApproximateArrivalTimestamp: r.Kinesis.ApproximateArrivalTimestamp}}
		if i == 1 {
			want.Kinesis.EncryptionType = "KMS"
		}
		if !reflect.DeepEqual(r, want) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, r, want)
		}
		if !slices.Equal(r.Kinesis.Data, recs[i].Data) && len(recs[i].Data) > 0 {
			t.Errorf("record %d: data %v", i, r.Kinesis.Data)
		}
		if d := r.Kinesis.ApproximateArrivalTimestamp.Sub(recs[i].Arrival).Abs(); d > time.Microsecond { // a float of seconds
			t.Errorf("record %d: arrival %v, want %v", i, r.Kinesis.ApproximateArrivalTimestamp.Time, recs[i].Arrival)
		}
	}
	// Nothing but the fields of events.KinesisEvent.
	var generic struct {
		Records []map[string]json.RawMessage
	}
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	fields := func(v any) []string {
		b, _ := json.Marshal(v)
		var m map[string]json.RawMessage
		json.Unmarshal(b, &m)
		var out []string
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	for i, r := range generic.Records {
		var keys []string
		for k := range r {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if want := fields(ev.Records[i]); !slices.Equal(keys, want) {
			t.Errorf("record %d keys %v, want %v", i, keys, want)
		}
		var kin map[string]json.RawMessage
		json.Unmarshal(r["kinesis"], &kin)
		var kkeys []string
		for k := range kin {
			kkeys = append(kkeys, k)
		}
		slices.Sort(kkeys)
		if want := fields(ev.Records[i].Kinesis); !slices.Equal(kkeys, want) {
			t.Errorf("record %d kinesis keys %v, want %v", i, kkeys, want)
		}
	}
}

func TestFirstFailure(t *testing.T) {
	batch := []client.Record{{Shard: 1, Position: 10}, {Shard: 1, Position: 11}, {Shard: 1, Position: 12}}
	seq := func(i int) string { return batch[i].SequenceNumber() }
	other := client.SeqNum{Shard: 2, Position: 11}.String()
	for _, tc := range []struct {
		resp string
		at   int
		ok   bool
	}{
		{"", 3, true},
		{"null", 3, true},
		{"{}", 3, true},
		{`{"batchItemFailures":[]}`, 3, true},
		{`{"batchItemFailures":[{"itemIdentifier":"` + seq(1) + `"}]}`, 1, true},
		{`{"batchItemFailures":[{"itemIdentifier":"` + seq(2) + `"},{"itemIdentifier":"` + seq(0) + `"}]}`, 0, true},
		{`{"batchItemFailures":[{"itemIdentifier":""}]}`, 0, false},
		{`{"batchItemFailures":[{"itemIdentifier":null}]}`, 0, false},
		{`{"batchItemFailures":[{"id":"` + seq(1) + `"}]}`, 0, false},
		{`{"batchItemFailures":[{"itemIdentifier":"` + other + `"}]}`, 0, false},
		{`{"batchItemFailures":[{"itemIdentifier":"` + client.SeqNum{Shard: 1, Position: 99}.String() + `"}]}`, 0, false},
		{`not json`, 0, false},
	} {
		at, ok := firstFailure([]byte(tc.resp), batch)
		if at != tc.at || ok != tc.ok {
			t.Errorf("%s: (%d, %v), want (%d, %v)", tc.resp, at, ok, tc.at, tc.ok)
		}
	}
}

// TestJSONStringLen compares jsonStringLen with encoding/json on seeded random strings of
// ASCII, control bytes, HTML characters, multi-byte runes, U+2028 and invalid UTF-8.
func TestJSONStringLen(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	pieces := []string{"a", "Z", "0", " ", "\"", "\\", "/", "\b", "\f", "\n", "\r", "\t", "\x00", "\x1f", "\x7f",
		"<", ">", "&", "é", "ключ", "€", "😀", "\u2028", "\u2029", "\xff", "\xc3", "\xe2\x82", "\ufffd"}
	for range 2000 {
		var s strings.Builder
		for range rng.IntN(20) {
			s.WriteString(pieces[rng.IntN(len(pieces))])
		}
		b, err := json.Marshal(s.String())
		if err != nil {
			t.Fatal(err)
		}
		if got := jsonStringLen(s.String()); got != len(b) {
			t.Fatalf("jsonStringLen(%q) = %d, encoding/json writes %d bytes: %s", s.String(), got, len(b), b)
		}
	}
}

// checkSplit sizes the first batch of recs with batchLen and encodes it: the event is valid
// JSON of at most 6 MB, exactly as long as the sizes say, and one record more (unless
// BatchSize or recs ended it) would not fit. It returns the batch's length.
func checkSplit(t *testing.T, tr *Trigger, recs []client.Record) int {
	t.Helper()
	n := tr.batchLen(recs, 0)
	ev := tr.appendEvent(nil, recs[:n], nil)
	if !json.Valid(ev) {
		t.Fatal("the event is not valid JSON")
	}
	if len(ev) > maxPayload {
		t.Fatalf("a batch of %d records is an event of %d bytes, over %d", n, len(ev), maxPayload)
	}
	est := evEmpty - 1
	for i := range recs[:n] {
		est += 1 + eventSize(&recs[i], tr.recordFixed())
	}
	if est != len(ev) {
		t.Errorf("the sizes of %d records add up to %d bytes, the event has %d", n, est, len(ev))
	}
	if n < len(recs) && n < tr.m.BatchSize {
		if more := len(tr.appendEvent(nil, recs[:n+1], nil)); more <= maxPayload {
			t.Errorf("the batch stops at %d records, but %d make an event of %d bytes, within %d", n, n+1, more, maxPayload)
		}
	}
	return n
}

// TestBatchFillsThePayload: records that make an event of exactly 6 MB go in one batch; one
// byte more and the last record waits for the next. Records of 100 bytes fill a batch as
// Lambda's would, up to the last one that fits.
func TestBatchFillsThePayload(t *testing.T) {
	tr := &Trigger{streamARN: arn, region: "eu-west-1", role: "arn:aws:iam::123456789012:role/r", m: Mapping{BatchSize: 10000}}
	arrival := time.UnixMilli(1700000000123)
	keys := []string{"plain", "with \"quotes\" and \\", "<html>&", "ключ", "\u2028\x01", "\xff\xfe"}
	var recs []client.Record
	for i, k := range keys {
		recs = append(recs, client.Record{Key: []byte(k), Data: make([]byte, 785800+i), Shard: uint32(i * 1000),
			Position: uint64(1) << (10 * i), Arrival: arrival.Add(time.Duration(i) * 12345 * time.Hour), Flags: uint16(i % 2)})
	}
	size := evEmpty - 1
	for i := range recs {
		size += 1 + eventSize(&recs[i], tr.recordFixed())
	}
	if size > maxPayload || size < maxPayload-2000 {
		t.Fatalf("the records take %d bytes: the test needs them just under %d", size, maxPayload)
	}
	last := &recs[len(recs)-1]
	last.Key = append(last.Key, strings.Repeat("k", maxPayload-size)...)
	if n := checkSplit(t, tr, recs); n != len(recs) {
		t.Errorf("an event of exactly %d bytes: the batch takes %d of %d records", maxPayload, n, len(recs))
	}
	last.Key = append(last.Key, 'k')
	if n := checkSplit(t, tr, recs); n != len(recs)-1 {
		t.Errorf("one byte over %d: the batch takes %d of %d records", maxPayload, n, len(recs))
	}

	small := make([]client.Record, 10000)
	for i := range small {
		small[i] = client.Record{Key: fmt.Appendf(nil, "k%d", i), Data: make([]byte, 100), Shard: 1, Position: uint64(i), Arrival: arrival}
	}
	n := checkSplit(t, tr, small)
	t.Logf("records of 100 bytes: %d in a batch, each %d bytes of the event", n, eventSize(&small[0], tr.recordFixed()))
}
