package lambda

import (
	"encoding/json"
	"reflect"
	"slices"
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
	if size := tr.eventSize(&recs[0]) + tr.eventSize(&recs[1]) + 16; size < len(b) {
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
