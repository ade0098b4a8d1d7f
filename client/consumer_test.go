//go:build linux

// Linux only: these tests run the in-process server of server_test.go.

package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// collector is a Handler that keeps what it got, in the order of handler calls.
type collector struct {
	mu      sync.Mutex
	seen    map[SeqNum]string // record → "key=data"
	dups    []SeqNum
	calls   int
	first   map[uint32]int // shard → its first handler call
	last    map[uint32]int // shard → its last handler call
	changed chan struct{}  // closed and replaced at each batch
}

func newCollector() *collector {
	return &collector{seen: map[SeqNum]string{}, first: map[uint32]int{}, last: map[uint32]int{}, changed: make(chan struct{})}
}

func (c *collector) handle(_ context.Context, b *Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if _, ok := c.first[b.Shard]; !ok {
		c.first[b.Shard] = c.calls
	}
	c.last[b.Shard] = c.calls
	prev := uint64(0)
	for _, r := range b.Records {
		if r.Shard != b.Shard || r.Position <= prev {
			return fmt.Errorf("batch of shard %d holds %v after position %d", b.Shard, r.Seq(), prev)
		}
		prev = r.Position
		if _, dup := c.seen[r.Seq()]; dup {
			c.dups = append(c.dups, r.Seq())
		}
		c.seen[r.Seq()] = string(r.Key) + "=" + string(r.Data)
	}
	close(c.changed)
	c.changed = make(chan struct{})
	return nil
}

// waitFor waits until the collector holds n records, or fails the test at ctx's end.
func (c *collector) waitFor(t *testing.T, ctx context.Context, n int, runErr <-chan error) {
	t.Helper()
	for {
		c.mu.Lock()
		got, ch := len(c.seen), c.changed
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case err := <-runErr:
			t.Fatalf("Run returned %v with %d of %d records", err, got, n)
		case <-ctx.Done():
			t.Fatalf("%d of %d records consumed", got, n)
		}
	}
}

// putN puts n records with keys prefix-i and returns where they went.
func putN(t *testing.T, ctx context.Context, p *Producer, prefix string, n int) map[SeqNum]string {
	t.Helper()
	fs := make([]*Future, n)
	for i := range n {
		f, err := p.Put(ctx, fmt.Sprintf("%s-%d", prefix, i), fmt.Appendf(nil, "%s:%d", prefix, i))
		if err != nil {
			t.Fatal(err)
		}
		fs[i] = f
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	out := map[SeqNum]string{}
	for i, s := range waitAll(t, ctx, fs) {
		out[s] = fmt.Sprintf("%s-%d=%s:%d", prefix, i, prefix, i)
	}
	return out
}

// runConsumer runs co with h on a goroutine; the channel gets Run's error.
func runConsumer(ctx context.Context, co *Consumer, h Handler) <-chan error {
	done := make(chan error, 1)
	go func() { done <- co.Run(ctx, h) }()
	return done
}

// lineageTest puts records, splits a shard and merges one child with its neighbour while a
// consumer (made by newConsumer) reads, and checks that every record is consumed exactly
// once and every shard only after its parents.
func lineageTest(t *testing.T, ts *testServer, c *Client, newConsumer func() *Consumer) {
	ctx := testCtx(t, 120*time.Second)
	p := newProducer(t, c, "s", ProducerConfig{Unordered: true})
	cp := NewMemoryCheckpointer()
	col := newCollector()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	co := newConsumer()
	co.cfg.Checkpointer = cp
	runErr := runConsumer(cctx, co, col.handle)

	want := putN(t, ctx, p, "a", 100)
	col.waitFor(t, ctx, len(want), runErr)
	// Shard 0 (the lower half of the keys) splits into 2 and 3; then 3 merges with 1 into 4.
	if err := ts.eng.SplitShard("s", 0, mustKey(t, "85070591730234615865843651857942052864")); err != nil {
		t.Fatal(err)
	}
	for s, v := range putN(t, ctx, p, "b", 100) {
		want[s] = v
	}
	col.waitFor(t, ctx, len(want), runErr)
	if err := ts.eng.MergeShards("s", 3, 1); err != nil {
		t.Fatal(err)
	}
	for s, v := range putN(t, ctx, p, "c", 100) {
		want[s] = v
	}
	col.waitFor(t, ctx, len(want), runErr)
	cancel()
	if err := <-runErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}

	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.dups) > 0 {
		t.Fatalf("records consumed twice: %v", col.dups)
	}
	if len(col.seen) != len(want) {
		t.Fatalf("consumed %d records, put %d", len(col.seen), len(want))
	}
	for s, w := range want {
		if col.seen[s] != w {
			t.Fatalf("at %v: %q, want %q", s, col.seen[s], w)
		}
	}
	shards, err := c.ListShards(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if len(shards) != 5 {
		t.Fatalf("shards %+v", shards)
	}
	for _, s := range shards {
		id := uint32(s.ID)
		for _, parent := range []shardmap.ShardID{s.Parent, s.AdjacentParent} {
			if parent == shardmap.NoParent {
				continue
			}
			if _, read := col.first[id]; read && col.first[id] <= col.last[uint32(parent)] {
				t.Errorf("shard %d (first batch: call %d) read before its parent %d was done (last batch: call %d)",
					id, col.first[id], parent, col.last[uint32(parent)])
			}
		}
	}
	for _, id := range []uint32{0, 1, 3} {
		if got, ok, _ := cp.Get(ctx, id); !ok || !got.Ended {
			t.Errorf("closed shard %d: checkpoint %+v", id, got)
		}
	}
	for _, id := range []uint32{2, 4} {
		if got, ok, _ := cp.Get(ctx, id); !ok || got.Ended || got.Position == 0 {
			t.Errorf("open shard %d: checkpoint %+v %v", id, got, ok)
		}
	}
}

// TestConsumerLineage reads in shared mode across a split and a merge.
func TestConsumerLineage(t *testing.T) {
	ts := startServer(t, stream.Options{Limits: stream.Limits{Off: true}})
	ts.createStream(t, "s", 2)
	c := ts.client(t, Config{})
	lineageTest(t, ts, c, func() *Consumer {
		co, err := c.NewConsumer("s", ConsumerConfig{ReadsPerSecond: 50, PollInterval: 20 * time.Millisecond, MaxRecords: 7})
		if err != nil {
			t.Fatal(err)
		}
		return co
	})
	if ts.gets.Load() == 0 {
		t.Fatal("no native get")
	}
}

// TestConsumerFanOut reads with enhanced fan-out across a split and a merge: records are
// pushed through native subscriptions.
func TestConsumerFanOut(t *testing.T) {
	ts := startServer(t, stream.Options{Limits: stream.Limits{Off: true}})
	ts.createStream(t, "s", 2)
	c := ts.client(t, Config{})
	lineageTest(t, ts, c, func() *Consumer {
		co, err := c.NewConsumer("s", ConsumerConfig{ConsumerName: "app"})
		if err != nil {
			t.Fatal(err)
		}
		return co
	})
	if n := ts.gets.Load(); n != 0 {
		t.Fatalf("%d native gets by an enhanced fan-out consumer", n)
	}
	ctx := testCtx(t, 30*time.Second)
	sum, err := c.DescribeStreamSummary(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if sum.Consumers != 1 {
		t.Fatalf("%d consumers registered", sum.Consumers)
	}
	// A second consumer by the same name finds the registered one.
	info, err := c.DescribeStreamConsumer(ctx, sum.ARN, "app", "")
	if err != nil {
		t.Fatal(err)
	}
	co, err := c.NewConsumer("s", ConsumerConfig{ConsumerName: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if arn, err := co.fanOutConsumer(ctx); err != nil || arn != info.ARN {
		t.Fatalf("fanOutConsumer: %s %v, want %s", arn, err, info.ARN)
	}
}

// TestConsumerCheckpointResume stops a consumer part-way and resumes from its checkpoints
// with another: together they see every record exactly once.
func TestConsumerCheckpointResume(t *testing.T) {
	for _, fanOut := range []bool{false, true} {
		t.Run(fmt.Sprintf("fanOut=%v", fanOut), func(t *testing.T) {
			ts := startServer(t, stream.Options{Limits: stream.Limits{Off: true}})
			ts.createStream(t, "s", 2)
			c := ts.client(t, Config{})
			ctx := testCtx(t, 120*time.Second)
			p := newProducer(t, c, "s", ProducerConfig{Unordered: true})
			want := putN(t, ctx, p, "r", 200)
			cp := NewMemoryCheckpointer()
			cfg := ConsumerConfig{Checkpointer: cp, ReadsPerSecond: 50, PollInterval: 20 * time.Millisecond, MaxRecords: 10}
			if fanOut {
				cfg.ConsumerName = "app"
			}

			first := newCollector()
			cctx, cancel := context.WithCancel(ctx)
			co, err := c.NewConsumer("s", cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = co.Run(cctx, func(ctx context.Context, b *Batch) error {
				first.handle(ctx, b)
				first.mu.Lock()
				if len(first.seen) >= 60 {
					cancel()
				}
				first.mu.Unlock()
				return nil
			})
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("first Run: %v", err)
			}
			if n := len(first.seen); n < 60 || (!fanOut && n == len(want)) {
				t.Fatalf("first run consumed %d records", n)
			}
			if fanOut {
				// The server refuses a new subscription to a shard within 5 s of the previous
				// one; the consumer retries until it is let in.
				t.Log("resubscribing")
			}

			second := newCollector()
			cctx, cancel = context.WithCancel(ctx)
			defer cancel()
			co2, err := c.NewConsumer("s", cfg)
			if err != nil {
				t.Fatal(err)
			}
			runErr := runConsumer(cctx, co2, second.handle)
			second.waitFor(t, ctx, len(want)-len(first.seen), runErr)
			cancel()
			if err := <-runErr; !errors.Is(err, context.Canceled) {
				t.Fatalf("second Run: %v", err)
			}
			for s := range second.seen {
				if _, again := first.seen[s]; again {
					t.Fatalf("record %v consumed by both runs", s)
				}
			}
			if len(first.seen)+len(second.seen) != len(want) || len(first.dups)+len(second.dups) > 0 {
				t.Fatalf("consumed %d + %d records (duplicates %v %v), put %d", len(first.seen), len(second.seen), first.dups, second.dups, len(want))
			}
		})
	}
}

// TestConsumerStarts: Latest reads only what comes after the start; AtTimestamp before every
// record reads them all; a handler's error stops Run.
func TestConsumerStarts(t *testing.T) {
	ts := startServer(t, stream.Options{Limits: stream.Limits{Off: true}})
	ts.createStream(t, "s", 2)
	c := ts.client(t, Config{})
	ctx := testCtx(t, 120*time.Second)
	p := newProducer(t, c, "s", ProducerConfig{Unordered: true})
	before := putN(t, ctx, p, "before", 20)

	// Latest: once both shards have anchored their position, what is put next is read.
	cp := &notifyingCheckpointer{set: make(chan uint32, 16)}
	co, err := c.NewConsumer("s", ConsumerConfig{Start: Latest, Checkpointer: cp, ReadsPerSecond: 50, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := runConsumer(cctx, co, col.handle)
	for anchored := map[uint32]bool{}; len(anchored) < 2; {
		select {
		case id := <-cp.set:
			anchored[id] = true
		case err := <-runErr:
			t.Fatalf("Run: %v", err)
		case <-ctx.Done():
			t.Fatal("the Latest consumer never anchored its shards")
		}
	}
	after := putN(t, ctx, p, "after", 20)
	col.waitFor(t, ctx, len(after), runErr)
	cancel()
	if err := <-runErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	for s := range col.seen {
		if _, ok := after[s]; !ok {
			t.Fatalf("Latest consumer read %v (%s), put before it started", s, col.seen[s])
		}
	}

	// AtTimestamp an hour ago: everything.
	co, err = c.NewConsumer("s", ConsumerConfig{Start: AtTimestamp, StartTime: time.Now().Add(-time.Hour), ReadsPerSecond: 50})
	if err != nil {
		t.Fatal(err)
	}
	errStop := errors.New("stop")
	all := newCollector()
	err = co.Run(ctx, func(ctx context.Context, b *Batch) error {
		all.handle(ctx, b)
		all.mu.Lock()
		defer all.mu.Unlock()
		if len(all.seen) == len(before)+len(after) {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Run: %v, want the handler's error", err)
	}

	for _, bad := range []ConsumerConfig{{Start: AtTimestamp}, {Start: AfterSequenceNumber}, {MaxRecords: 10001}} {
		if _, err := c.NewConsumer("s", bad); err == nil {
			t.Errorf("NewConsumer(%+v) accepted", bad)
		}
	}
}

// TestConsumerServerRestart: the server goes away and comes back on the same address while
// a producer writes and a consumer reads; both retry until it is back, and every record is
// consumed exactly once.
func TestConsumerServerRestart(t *testing.T) {
	for _, fanOut := range []bool{false, true} {
		t.Run(fmt.Sprintf("fanOut=%v", fanOut), func(t *testing.T) {
			ts := startServer(t, stream.Options{Limits: stream.Limits{Off: true}})
			ts.createStream(t, "s", 2)
			c := ts.client(t, Config{})
			ctx := testCtx(t, 120*time.Second)
			p := newProducer(t, c, "s", ProducerConfig{Unordered: true, BaseBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
			cfg := ConsumerConfig{ReadsPerSecond: 50, PollInterval: 20 * time.Millisecond, BaseBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
			if fanOut {
				cfg.ConsumerName = "app"
			}
			co, err := c.NewConsumer("s", cfg)
			if err != nil {
				t.Fatal(err)
			}
			col := newCollector()
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			runErr := runConsumer(cctx, co, col.handle)
			want := putN(t, ctx, p, "a", 50)
			col.waitFor(t, ctx, len(want), runErr)
			ts.restart(t)
			for s, v := range putN(t, ctx, p, "b", 50) {
				want[s] = v
			}
			col.waitFor(t, ctx, len(want), runErr)
			cancel()
			if err := <-runErr; !errors.Is(err, context.Canceled) {
				t.Fatalf("Run: %v", err)
			}
			if len(col.dups) > 0 || len(col.seen) != len(want) {
				t.Fatalf("consumed %d records, put %d; twice: %v", len(col.seen), len(want), col.dups)
			}
			if fanOut && ts.subs.Load() < 4 {
				t.Fatalf("%d subscriptions for 2 shards across a restart", ts.subs.Load())
			}
		})
	}
}

// TestConsumerFanOutLifetime: when a subscription's 5 minutes are over (on the engine's
// clock, moved forward here), the consumer resubscribes from the continuation and misses
// nothing.
func TestConsumerFanOutLifetime(t *testing.T) {
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	ts := startServer(t, stream.Options{Limits: stream.Limits{Off: true}, Now: now})
	ts.createStream(t, "s", 1)
	c := ts.client(t, Config{})
	ctx := testCtx(t, 120*time.Second)
	p := newProducer(t, c, "s", ProducerConfig{Unordered: true})
	co, err := c.NewConsumer("s", ConsumerConfig{ConsumerName: "app"})
	if err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := runConsumer(cctx, co, col.handle)
	want := putN(t, ctx, p, "a", 20)
	col.waitFor(t, ctx, len(want), runErr)
	if n := ts.subs.Load(); n != 1 {
		t.Fatalf("%d subscriptions before the lifetime is over", n)
	}
	skew.Store(int64(6 * time.Minute))
	for i := 0; ts.subs.Load() < 2; i++ {
		// The subscription notices its age when it wakes: at an append.
		for s, v := range putN(t, ctx, p, fmt.Sprintf("b%d", i), 1) {
			want[s] = v
		}
		col.waitFor(t, ctx, len(want), runErr)
	}
	for s, v := range putN(t, ctx, p, "c", 20) {
		want[s] = v
	}
	col.waitFor(t, ctx, len(want), runErr)
	cancel()
	if err := <-runErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	if len(col.dups) > 0 || len(col.seen) != len(want) {
		t.Fatalf("consumed %d records, put %d; twice: %v", len(col.seen), len(want), col.dups)
	}
}

// notifyingCheckpointer is a MemoryCheckpointer that tells which shard each Set was for.
type notifyingCheckpointer struct {
	MemoryCheckpointer
	set chan uint32
}

func (n *notifyingCheckpointer) Set(ctx context.Context, shard uint32, cp Checkpoint) error {
	n.MemoryCheckpointer.Set(ctx, shard, cp)
	select {
	case n.set <- shard:
	default:
	}
	return nil
}
