package stream

import (
	"errors"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/shardmap"
)

// TestReadShard reads by position what GetRecords reads by iterator: the same records, the
// same next position, the end of a closed shard, the same metrics and read limits.
func TestReadShard(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "kinesis")
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	var entries []PutEntry
	for _, d := range []string{"a", "b", "c", "d"} {
		entries = append(entries, PutEntry{PartitionKey: "k", Data: []byte(d)})
	}
	res, err := e.PutRecords("s", entries)
	if err != nil {
		t.Fatal(err)
	}
	// read returns the records, released, and how many there were.
	read := func(in ReadInput) (Records, int, error) {
		t.Helper()
		in.Stream = "s"
		r, err := e.ReadShard(in)
		n := r.Records.Count
		r.Release() // Next stays
		return r, n, err
	}

	r, n, err := read(ReadInput{Type: AfterSequenceNumber, Pos: res[0].Seq.Pos, MaxRecords: 2})
	if err != nil || n != 2 || r.Records.Next != res[2].Seq.Pos+1 || r.NextIterator != "" || r.ShardEnd {
		t.Fatalf("AFTER the first record, 2 records: %+v %v", r, err)
	}
	it, err := e.GetShardIterator(IteratorInput{Stream: "s", Shard: 0, Type: AfterSequenceNumber, Seq: res[0].Seq})
	if err != nil {
		t.Fatal(err)
	}
	viaIterator, err := e.GetRecords(it, 2)
	if err != nil {
		t.Fatal(err)
	}
	viaIterator.Release()
	if viaIterator.Records.Next != r.Records.Next || viaIterator.NextIterator == "" {
		t.Fatalf("GetRecords: next %d, ReadShard: next %d", viaIterator.Records.Next, r.Records.Next)
	}

	for _, bad := range []ReadInput{{Type: TrimHorizon}, {Type: TrimHorizon, MaxRecords: 10_001}, {Type: 0, MaxRecords: 1}} {
		if _, _, err := read(bad); !errors.Is(err, ErrValidation) {
			t.Fatalf("%+v: %v, want a validation error", bad, err)
		}
	}
	if _, _, err := read(ReadInput{Shard: 7, Type: TrimHorizon, MaxRecords: 1}); !errors.Is(err, ErrResourceNotFound) {
		t.Fatalf("unknown shard: %v", err)
	}
	// Five reads a second on this clock: GetRecords took one, ReadShard one, and the failed
	// ones none (they were refused before the limit).
	for i := range 3 {
		if _, _, err := read(ReadInput{Type: TrimHorizon, MaxRecords: 1}); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
	}
	if _, _, err := read(ReadInput{Type: TrimHorizon, MaxRecords: 1}); !errors.Is(err, ErrProvisionedThroughputExceeded) {
		t.Fatalf("sixth read in a second: %v", err)
	}
	c.Advance(time.Second)

	if err := e.SplitShard("s", 0, shardmap.Key{Hi: 1 << 63}); err != nil {
		t.Fatal(err)
	}
	r, n, err = read(ReadInput{Type: TrimHorizon, MaxRecords: 100})
	if err != nil || n != 4 || !r.ShardEnd || len(r.ChildShards) != 2 {
		t.Fatalf("closed shard: %+v %v", r, err)
	}
	r, n, err = read(ReadInput{Type: TrimHorizon, MaxRecords: 2})
	if err != nil || n != 2 || r.ShardEnd || r.ChildShards != nil {
		t.Fatalf("closed shard, not read to its end: %+v %v", r, err)
	}
	var m StreamMetrics
	for _, sm := range e.Metrics() {
		if sm.Stream == "s" {
			m = sm
		}
	}
	if m.GetRecordsSuccess != 7 || m.GetRecordsRecords != 2+2+1+1+1+4+2 {
		t.Fatalf("metrics: %d calls answered, %d records", m.GetRecordsSuccess, m.GetRecordsRecords)
	}
}
