package stream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/segment"
)

// sealLog is a SealingLog of the test's own over a segment.Log: sealed, it refuses appends
// with ErrLogSealed, as a replicated log does once any node's resharding sealed it.
type sealLog struct {
	*segment.Log
	sealed  atomic.Bool
	seals   atomic.Int64
	stale   atomic.Uint64 // the token StaleSeals names while sealed (0: none)
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

// StaleSeals names the token the test declared stale, whatever age: the test decides.
func (l *sealLog) StaleSeals(time.Duration) []uint64 {
	if t := l.stale.Load(); t != 0 && l.sealed.Load() {
		return []uint64{t}
	}
	return nil
}

// sealEngine opens an engine (over cat; nil: the local catalog) whose shard logs are
// sealLogs and creates stream "s" of two shards in it. logOf returns a shard's log.
func sealEngine(t *testing.T, cat Catalog) (e *Engine, logOf func(ShardID) *sealLog) {
	t.Helper()
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
	e, err := Open(Options{Dir: t.TempDir(), Limits: Limits{Off: true}, OpenShardLog: open, Catalog: cat,
		Durability: segment.Durability{Mode: segment.None}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 2}); err != nil {
		t.Fatal(err)
	}
	return e, func(id ShardID) *sealLog {
		mu.Lock()
		defer mu.Unlock()
		return logs[id]
	}
}

// TestReshardSealsSealingLogs reshards a stream whose logs are SealingLogs: the engine closes
// a parent at the position Seal returns; a put refused because another node sealed the shard
// waits for the resharding to reach this engine and lands in a child; one whose shard no
// resharding closes fails with a retryable InternalFailure.
func TestReshardSealsSealingLogs(t *testing.T) {
	e, logOf := sealEngine(t, nil)
	low, high := mustKey(t, "1"), mustKey(t, "340282366920938463463374607431768211455")
	key0 := PutEntry{PartitionKey: "k", ExplicitHashKey: &low, Data: []byte("to shard 0")}
	key1 := PutEntry{PartitionKey: "k", ExplicitHashKey: &high, Data: []byte("to shard 1")}
	for range 5 {
		if _, err := e.PutRecords("s", []PutEntry{key0, key1}); err != nil {
			t.Fatal(err)
		}
	}
	l0, l1 := logOf(0), logOf(1)

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

// memCatalog is a shared Catalog in memory whose saves can fail: with drop, a save stores
// nothing and fails; with lose, it stores the entry (its watch reports it) and fails, as a
// save whose answer was lost. The last failed save is kept in lost.
type memCatalog struct {
	mu         sync.Mutex
	entries    map[string]CatalogEntry
	rev        int64
	events     chan CatalogEvent
	drop, lose bool
	lost       struct {
		data []byte
		prev int64
	}
}

func newMemCatalog() *memCatalog {
	return &memCatalog{entries: map[string]CatalogEntry{}, events: make(chan CatalogEvent, 64)}
}

func (c *memCatalog) failWith(drop, lose bool) {
	c.mu.Lock()
	c.drop, c.lose = drop, lose
	c.mu.Unlock()
}

func (c *memCatalog) Load() ([]CatalogEntry, int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []CatalogEntry
	for _, e := range c.entries {
		out = append(out, e)
	}
	return out, c.rev, nil
}

func (c *memCatalog) Save(name string, data []byte, prev int64) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	unanswered := errorf(KindInternalFailure, "the test catalog did not answer")
	if c.drop {
		c.lost.data, c.lost.prev = data, prev
		return 0, unanswered
	}
	if cur, ok := c.entries[name]; ok != (prev != 0) || ok && cur.Rev != prev {
		return 0, fmt.Errorf("%s at %d: %w", name, prev, ErrCatalogConflict)
	}
	c.rev++
	ent := CatalogEntry{Name: name, Data: slices.Clone(data), Rev: c.rev, Source: "test catalog"}
	c.entries[name] = ent
	c.events <- CatalogEvent{Kind: CatalogPut, Entry: ent}
	if c.lose {
		c.lost.data, c.lost.prev = data, prev
		return 0, unanswered
	}
	return c.rev, nil
}

func (c *memCatalog) Delete(name string, prev int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.entries[name]; !ok || cur.Rev != prev {
		return fmt.Errorf("%s at %d: %w", name, prev, ErrCatalogConflict)
	}
	c.rev++
	delete(c.entries, name)
	c.events <- CatalogEvent{Kind: CatalogDelete, Entry: CatalogEntry{Name: name, Rev: c.rev}}
	return nil
}

func (c *memCatalog) Watch(ctx context.Context, from int64) <-chan CatalogEvent {
	out := make(chan CatalogEvent)
	go func() {
		defer close(out)
		for {
			select {
			case ev := <-c.events:
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// TestReshardLostSaveSettles splits a stream of SealingLogs while its shared catalog does
// not answer. A save that stored nothing: the parent stays sealed (puts to it fail,
// retryably) until the catalog answers again; then the engine fences the lost save (its
// compare can never succeed any more) and unseals the parent, which takes records again,
// still open. A save that stored the change and lost its answer: the watch brings the split,
// and the parent, closed, stays sealed.
func TestReshardLostSaveSettles(t *testing.T) {
	for _, lose := range []bool{false, true} {
		t.Run(map[bool]string{false: "not saved", true: "saved, answer lost"}[lose], func(t *testing.T) {
			cat := newMemCatalog()
			e, logOf := sealEngine(t, cat)
			low := mustKey(t, "1")
			key0 := PutEntry{PartitionKey: "k", ExplicitHashKey: &low, Data: []byte("to shard 0")}
			if _, err := e.PutRecord("s", key0); err != nil {
				t.Fatal(err)
			}
			l0 := logOf(0)

			cat.failWith(!lose, lose)
			err := e.SplitShard("s", 0, mustKey(t, "85070591730234615865843651857942052864"))
			if KindOf(err) != KindInternalFailure {
				t.Fatalf("split with the catalog unanswering: %v; want InternalFailure", err)
			}
			if !lose {
				if !l0.sealed.Load() {
					t.Fatal("the parent was unsealed while the catalog could still take the split")
				}
				if _, err := e.PutRecord("s", key0); KindOf(err) != KindInternalFailure || !errors.Is(err, ErrLogSealed) {
					t.Fatalf("put to the sealed parent: %v; want an InternalFailure wrapping ErrLogSealed", err)
				}
			}
			cat.failWith(false, false)

			want := 2 // open shards once settled
			if lose {
				want = 3
			}
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				d, err := e.Describe("s")
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, sd := range d.Shards {
					if sd.Open {
						n++
					}
				}
				if n == want && l0.sealed.Load() == lose {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d open shards, parent sealed %v; want %d, sealed %v", n, l0.sealed.Load(), want, lose)
				}
			}
			res, err := e.PutRecord("s", key0)
			if err != nil || (res.Shard == 0) == lose {
				t.Fatalf("put after the catalog answered: shard %s, %v", res.Shard, err)
			}
			if !lose {
				if _, err := cat.Save("s", cat.lost.data, cat.lost.prev); !errors.Is(err, ErrCatalogConflict) {
					t.Fatalf("the lost save, committed late: %v; want ErrCatalogConflict (fenced)", err)
				}
			}
		})
	}
}

// TestReleaseStaleSeals: a seal that outlived its resharding (its node died before the
// catalog save) on a shard the catalog has open is released by Maintain, after a fence that
// makes the dead resharding's save fail if it ever reaches the catalog; a stale seal of a
// shard a committed resharding closed is kept.
func TestReleaseStaleSeals(t *testing.T) {
	cat := newMemCatalog()
	e, logOf := sealEngine(t, cat)
	l0, l1 := logOf(0), logOf(1)

	// Another node's resharding sealed shard 0 and died before its save, which compares
	// with the revision it read.
	cat.mu.Lock()
	lost := cat.entries["s"]
	cat.mu.Unlock()
	if _, err := l0.Seal(77); err != nil {
		t.Fatal(err)
	}
	if err := e.Maintain(); err != nil {
		t.Fatal(err)
	}
	if !l0.sealed.Load() {
		t.Fatal("a seal not yet stale was released")
	}
	l0.stale.Store(77)
	if err := e.Maintain(); err != nil {
		t.Fatal(err)
	}
	if l0.sealed.Load() {
		t.Fatal("a stale seal of an open shard was not released")
	}
	if _, err := cat.Save("s", lost.Data, lost.Rev); !errors.Is(err, ErrCatalogConflict) {
		t.Fatalf("the dead resharding's save, arriving late: %v; want ErrCatalogConflict (fenced)", err)
	}
	low := mustKey(t, "1")
	if res, err := e.PutRecord("s", PutEntry{PartitionKey: "k", ExplicitHashKey: &low, Data: []byte("after")}); err != nil || res.Shard != 0 {
		t.Fatalf("put to the released shard: shard %s, %v", res.Shard, err)
	}

	// A committed split closed shard 1 at its seal: stale or not, that seal stays.
	if err := e.SplitShard("s", 1, mustKey(t, "255211775190703847597530955573826158592")); err != nil {
		t.Fatal(err)
	}
	l1.stale.Store(99)
	if err := e.Maintain(); err != nil {
		t.Fatal(err)
	}
	if !l1.sealed.Load() {
		t.Fatal("the seal of a shard a committed resharding closed was released")
	}
}
