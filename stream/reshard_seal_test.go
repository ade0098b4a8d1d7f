package stream

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluice-streams/sluice/segment"
)

// sealLog is a SealingLog of the test's own over a segment.Log: sealed, it refuses appends
// with ErrLogSealed, as a replicated log does once any node's resharding sealed it.
type sealLog struct {
	*segment.Log
	sealed  atomic.Bool
	seals   atomic.Int64
	refused chan struct{} // a tick per refused append, dropped when full
}

func (l *sealLog) Append(batch []segment.Record) error {
	if l.sealed.Load() {
		select {
		case l.refused <- struct{}{}:
		default:
		}
		return fmt.Errorf("test log: %w", ErrLogSealed)
	}
	return l.Log.Append(batch)
}

func (l *sealLog) Seal(uint64) (uint64, error) {
	l.seals.Add(1)
	l.sealed.Store(true)
	return l.Log.Tip(), nil
}

func (l *sealLog) Unseal(uint64) error {
	l.sealed.Store(false)
	return nil
}

// TestReshardSealsSealingLogs reshards a stream whose logs are SealingLogs: the engine closes
// a parent at the position Seal returns; a put refused because another node sealed the shard
// waits for the resharding to reach this engine and lands in a child; one whose shard no
// resharding closes fails with a retryable InternalFailure.
func TestReshardSealsSealingLogs(t *testing.T) {
	var mu sync.Mutex
	logs := map[ShardID]*sealLog{}
	open := func(cfg ShardLogConfig) (ShardLog, error) {
		l, err := segment.Open(cfg.Dir, cfg.Opts)
		if err != nil {
			return nil, err
		}
		sl := &sealLog{Log: l, refused: make(chan struct{}, 1)}
		mu.Lock()
		logs[cfg.Shard] = sl
		mu.Unlock()
		return sl, nil
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
	low, high := mustKey(t, "1"), mustKey(t, "340282366920938463463374607431768211455")
	key0 := PutEntry{PartitionKey: "k", ExplicitHashKey: &low, Data: []byte("to shard 0")}
	key1 := PutEntry{PartitionKey: "k", ExplicitHashKey: &high, Data: []byte("to shard 1")}
	for range 5 {
		if _, err := e.PutRecords("s", []PutEntry{key0, key1}); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	l0, l1 := logs[0], logs[1]
	mu.Unlock()

	// Another node sealed shard 0: a put waits, then lands in a child once the split is here.
	l0.sealed.Store(true)
	done := make(chan PutResult, 1)
	go func() {
		res, err := e.PutRecord("s", key0)
		if err != nil {
			res.Err = err
		}
		done <- res
	}()
	<-l0.refused // the put met the seal before the split
	if err := e.SplitShard("s", 0, mustKey(t, "85070591730234615865843651857942052864")); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if res.Err != nil || res.Shard == 0 {
		t.Fatalf("put refused by the seal: shard %s, %v; want a child of shard 0", res.Shard, res.Err)
	}
	d, err := e.Describe("s")
	if err != nil {
		t.Fatal(err)
	}
	for _, sd := range d.Shards {
		if sd.ID == 0 && (sd.Open || sd.EndingSeq.Pos != l0.Tip() || l0.seals.Load() != 1) {
			t.Fatalf("shard 0: open %v, ending %d, %d seals; want closed at its tip %d by one Seal", sd.Open, sd.EndingSeq.Pos, l0.seals.Load(), l0.Tip())
		}
	}

	// Sealed, and no resharding closes it here: a retryable failure, nothing appended.
	l1.sealed.Store(true)
	tip := l1.Tip()
	_, err = e.PutRecord("s", key1)
	if KindOf(err) != KindInternalFailure || !errors.Is(err, ErrLogSealed) {
		t.Fatalf("put to a sealed shard still open here: %v; want an InternalFailure wrapping ErrLogSealed", err)
	}
	if l1.Tip() != tip {
		t.Fatalf("shard 1's tip moved from %d to %d", tip, l1.Tip())
	}
}
