package stream

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluice-streams/sluice/segment"
)

// seamLog is a ShardLog of the test's own, over a segment.Log, that counts the appends and
// reads the engine makes through the seam.
type seamLog struct {
	*segment.Log
	appends, reads *atomic.Int64
}

func (l seamLog) Append(batch []segment.Record) error {
	l.appends.Add(1)
	return l.Log.Append(batch)
}

func (l seamLog) Read(from uint64, maxRecords, maxBytes int) (segment.View, error) {
	l.reads.Add(1)
	return l.Log.Read(from, maxRecords, maxBytes)
}

// TestEngineThroughShardLogSeam runs the engine's data paths over a ShardLog of the test's
// own: every shard is opened through Options.OpenShardLog, every append and read goes
// through the interface, and resharding and subscriptions work unchanged on top of it.
func TestEngineThroughShardLogSeam(t *testing.T) {
	var (
		mu             sync.Mutex
		opened         = map[ShardID]bool{}
		appends, reads atomic.Int64
	)
	open := func(cfg ShardLogConfig) (ShardLog, error) {
		l, err := segment.Open(cfg.Dir, cfg.Opts)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		opened[cfg.Shard] = true
		mu.Unlock()
		return seamLog{Log: l, appends: &appends, reads: &reads}, nil
	}
	e, err := Open(Options{Dir: t.TempDir(), Limits: Limits{Off: true}, OpenShardLog: open,
		Durability: segment.Durability{Mode: segment.None}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 2}); err != nil {
		t.Fatal(err)
	}
	cons, err := e.RegisterConsumer("s", "c")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := e.Subscribe(SubscribeInput{ConsumerARN: cons.ARN, Shard: 0, Type: TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	entries := make([]PutEntry, 50)
	for i := range entries {
		entries[i] = PutEntry{PartitionKey: string(rune('a' + i%26)), Data: []byte{byte(i)}}
	}
	res, err := e.PutRecords("s", entries)
	if err != nil {
		t.Fatal(err)
	}
	perShard := map[ShardID]int{}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		perShard[r.Shard]++
	}
	if got := appends.Load(); got != int64(len(perShard)) {
		t.Fatalf("%d appends through the seam for a call touching %d shards", got, len(perShard))
	}
	// A subscription is woken through the seam's Changed and reads through its Read.
	ev, err := sub.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ev.Records.Count != perShard[0] {
		t.Fatalf("subscription event: %d records, want shard 0's %d", ev.Records.Count, perShard[0])
	}
	ev.Release()
	// Resharding opens the children through the seam too.
	if err := e.SplitShard("s", 1, mustKey(t, "255211775190703847597530955573826158592")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	for _, id := range []ShardID{0, 1, 2, 3} {
		if !opened[id] {
			t.Errorf("shard %d was not opened through Options.OpenShardLog", id)
		}
	}
	mu.Unlock()
	for id := ShardID(0); id < 2; id++ {
		it, err := e.GetShardIterator(IteratorInput{Stream: "s", Shard: id, Type: TrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		before := reads.Load()
		recs, _ := drain(t, e, it, id)
		if len(recs) != perShard[id] || reads.Load() == before {
			t.Fatalf("shard %d: %d records (want %d), %d reads through the seam", id, len(recs), perShard[id], reads.Load()-before)
		}
	}
}
