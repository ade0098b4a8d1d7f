package stream

import (
	"errors"
	"fmt"
	"github.com/sluice-streams/sluice/shardmap"
	"sync"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/segment"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testEngine(t *testing.T, dir string, c *clock, limits string) *Engine {
	t.Helper()
	l, err := ParseLimits(limits)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(Options{Dir: dir, Now: c.Now, Limits: l, SegmentSize: segment.MinSegmentSize,
		Durability: segment.Durability{Mode: segment.Sync}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type got struct {
	key, data string
	seq       SeqNum
}

// drain reads shard from an iterator until it returns no records.
func drain(t *testing.T, e *Engine, it string, shard ShardID) ([]got, string) {
	t.Helper()
	var out []got
	for range 1000 {
		r, err := e.GetRecords(it, 100)
		if err != nil {
			t.Fatal(err)
		}
		recs := r.Records.Records()
		for recs.Next() {
			rec := recs.Record()
			out = append(out, got{string(rec.Key), string(rec.Data), SeqNum{Shard: shard, Pos: rec.Seq}})
		}
		n := r.Records.Count
		r.Release()
		if r.NextIterator == "" || n == 0 {
			return out, r.NextIterator
		}
		it = r.NextIterator
	}
	t.Fatal("drain did not end")
	return nil, ""
}

func TestCreatePutGetRestart(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, dir, c, "off")
	if err := e.CreateStream(CreateStreamInput{Name: "orders", ShardCount: 3}); err != nil {
		t.Fatal(err)
	}
	var entries []PutEntry
	for i := range 60 {
		entries = append(entries, PutEntry{PartitionKey: fmt.Sprintf("customer-%d", i%7), Data: []byte(fmt.Sprintf("order %d", i))})
	}
	res, err := e.PutRecords("orders", entries)
	if err != nil {
		t.Fatal(err)
	}
	perShard := map[ShardID][]int{}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("record %d: %v", i, r.Err)
		}
		if r.Seq.Shard != r.Shard {
			t.Fatalf("record %d: sequence number of shard %d, routed to %d", i, r.Seq.Shard, r.Shard)
		}
		perShard[r.Shard] = append(perShard[r.Shard], i)
	}
	if len(perShard) < 2 {
		t.Fatalf("7 keys went to %d of 3 shards", len(perShard))
	}
	d, err := e.Describe("orders")
	if err != nil || len(d.Shards) != 3 || d.Status != StatusActive || d.ARN != "arn:aws:kinesis:us-east-1:000000000000:stream/orders" {
		t.Fatalf("describe: %+v, %v", d, err)
	}
	check := func(e *Engine) {
		for shard, idx := range perShard {
			it, err := e.GetShardIterator(IteratorInput{Stream: "orders", Shard: shard, Type: TrimHorizon})
			if err != nil {
				t.Fatal(err)
			}
			recs, _ := drain(t, e, it, shard)
			if len(recs) != len(idx) {
				t.Fatalf("shard %d: %d records, want %d", shard, len(recs), len(idx))
			}
			for j, i := range idx {
				if recs[j].key != entries[i].PartitionKey || recs[j].data != string(entries[i].Data) || recs[j].seq != res[i].Seq {
					t.Fatalf("shard %d record %d: %+v, want %s %q %v", shard, j, recs[j], entries[i].PartitionKey, entries[i].Data, res[i].Seq)
				}
			}
			// AT and AFTER a sequence number.
			mid := res[idx[len(idx)/2]].Seq
			for _, tc := range []struct {
				typ  IteratorType
				from int
			}{{AtSequenceNumber, len(idx) / 2}, {AfterSequenceNumber, len(idx)/2 + 1}} {
				it, err := e.GetShardIterator(IteratorInput{Stream: "orders", Shard: shard, Type: tc.typ, Seq: mid})
				if err != nil {
					t.Fatal(err)
				}
				recs, _ := drain(t, e, it, shard)
				if len(recs) != len(idx)-tc.from {
					t.Fatalf("%s: %d records, want %d", tc.typ, len(recs), len(idx)-tc.from)
				}
			}
		}
	}
	check(e)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = testEngine(t, dir, c, "off")
	defer e.Close()
	if names := e.ListStreams(); len(names) != 1 || names[0] != "orders" {
		t.Fatalf("streams after restart: %v", names)
	}
	check(e)
}

func TestLatestAndTimestamp(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "off")
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	put := func(data string) SeqNum {
		res, err := e.PutRecords("s", []PutEntry{{PartitionKey: "k", Data: []byte(data)}})
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res[0].Err)
		}
		return res[0].Seq
	}
	put("old")
	latest, err := e.GetShardIterator(IteratorInput{Stream: "s", Shard: 0, Type: Latest})
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)
	mark := c.Now()
	put("new")
	recs, _ := drain(t, e, latest, 0)
	if len(recs) != 1 || recs[0].data != "new" {
		t.Fatalf("LATEST read %+v", recs)
	}
	at, err := e.GetShardIterator(IteratorInput{Stream: "s", Shard: 0, Type: AtTimestamp, Timestamp: mark})
	if err != nil {
		t.Fatal(err)
	}
	recs, _ = drain(t, e, at, 0)
	if len(recs) != 1 || recs[0].data != "new" {
		t.Fatalf("AT_TIMESTAMP read %+v", recs)
	}
	if _, err := e.GetShardIterator(IteratorInput{Stream: "s", Shard: 0, Type: AtTimestamp, Timestamp: c.Now().Add(time.Hour)}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("timestamp in the future: %v", err)
	}
	// An iterator expires after five minutes.
	it, _ := e.GetShardIterator(IteratorInput{Stream: "s", Shard: 0, Type: TrimHorizon})
	c.Advance(IteratorTTL + time.Second)
	if _, err := e.GetRecords(it, 10); !errors.Is(err, ErrExpiredIterator) {
		t.Fatalf("old iterator: %v", err)
	}
}

func TestEngineErrors(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "kinesis")
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "a", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	other := SeqNum{Shard: 5, Pos: 1}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"create existing", e.CreateStream(CreateStreamInput{Name: "a", ShardCount: 1}), ErrResourceInUse},
		{"bad name", e.CreateStream(CreateStreamInput{Name: "a/b", ShardCount: 1}), ErrValidation},
		{"zero shards", e.CreateStream(CreateStreamInput{Name: "b", ShardCount: 0}), ErrValidation},
		{"too many shards", e.CreateStream(CreateStreamInput{Name: "b", ShardCount: 5000}), ErrLimitExceeded},
		{"bad mode", e.CreateStream(CreateStreamInput{Name: "b", ShardCount: 1, Mode: "FAST"}), ErrValidation},
		{"delete missing", e.DeleteStream("nope", false), ErrResourceNotFound},
		{"put missing", second(e.PutRecords("nope", []PutEntry{{PartitionKey: "k"}})), ErrResourceNotFound},
		{"put empty key", second(e.PutRecords("a", []PutEntry{{PartitionKey: ""}})), ErrValidation},
		{"put too big", second(e.PutRecords("a", []PutEntry{{PartitionKey: "k", Data: make([]byte, 1<<20+1)}})), ErrValidation},
		{"put none", second(e.PutRecords("a", nil)), ErrValidation},
		{"iterator bad shard", second(e.GetShardIterator(IteratorInput{Stream: "a", Shard: 9, Type: TrimHorizon})), ErrResourceNotFound},
		{"iterator bad type", second(e.GetShardIterator(IteratorInput{Stream: "a", Shard: 0, Type: 0})), ErrValidation},
		{"iterator foreign seq", second(e.GetShardIterator(IteratorInput{Stream: "a", Shard: 0, Type: AtSequenceNumber, Seq: other})), ErrInvalidArgument},
		{"get garbage", second(e.GetRecords("garbage", 10)), ErrInvalidArgument},
		{"get bad limit", second(e.GetRecords("garbage", 0)), ErrValidation},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want.(*Error).Kind)
		}
	}
	// A deleted and recreated stream refuses the old incarnation's iterators.
	it, err := e.GetShardIterator(IteratorInput{Stream: "a", Shard: 0, Type: TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteStream("a", false); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Millisecond)
	if err := e.CreateStream(CreateStreamInput{Name: "a", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.GetRecords(it, 10); !errors.Is(err, ErrResourceNotFound) {
		t.Fatalf("iterator of a deleted stream: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

// mustKey parses a decimal hash key.
func mustKey(t testing.TB, s string) shardmap.Key {
	t.Helper()
	k, err := shardmap.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestWriteThrottling(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "kinesis")
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "t", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	entries := make([]PutEntry, 500)
	for i := range entries {
		entries[i] = PutEntry{PartitionKey: "k", Data: []byte("x")}
	}
	ok, throttled := 0, 0
	for range 3 { // 1,500 records in the same instant: 1,000 fit
		res, err := e.PutRecords("t", entries)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			switch {
			case r.Err == nil:
				ok++
			case errors.Is(r.Err, ErrProvisionedThroughputExceeded):
				throttled++
			default:
				t.Fatal(r.Err)
			}
		}
	}
	if ok != WriteRecordsPerSec || throttled != 500 {
		t.Fatalf("%d accepted, %d throttled; want 1000 and 500", ok, throttled)
	}
	c.Advance(time.Second)
	res, _ := e.PutRecords("t", entries[:1])
	if res[0].Err != nil {
		t.Fatalf("after a second: %v", res[0].Err)
	}
}

func TestReadThrottlingAndRequestBound(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "kinesis")
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "t", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	big := make([]PutEntry, 11)
	for i := range big {
		big[i] = PutEntry{PartitionKey: "k", Data: make([]byte, 1<<20)}
	}
	if err := e.SetMaxRecordSize("t", 2048); err != nil {
		t.Fatal(err)
	}
	if _, err := e.PutRecords("t", big); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("an 11 MiB request: %v", err)
	}
	it, err := e.GetShardIterator(IteratorInput{Stream: "t", Shard: 0, Type: TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	for i := range ReadCallsPerSec {
		r, err := e.GetRecords(it, 10)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		it = r.NextIterator
		r.Release()
	}
	if _, err := e.GetRecords(it, 10); !errors.Is(err, ErrProvisionedThroughputExceeded) {
		t.Fatalf("sixth call in a second: %v", err)
	}
	c.Advance(time.Second)
	r, err := e.GetRecords(it, 10)
	if err != nil {
		t.Fatalf("after a second: %v", err)
	}
	r.Release()
}
