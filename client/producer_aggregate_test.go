//go:build linux

// Linux only: these tests run the in-process server of server_test.go.

package client

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/kpl"
	"github.com/sluice-streams/sluice/stream"
)

// userID names a user record: its record's sequence number and its sub-sequence number.
func userID(seq SeqNum, sub uint64) string { return fmt.Sprintf("%v/%d", seq, sub) }

// userCollector is a Handler keeping the user records it got, by userID.
type userCollector struct {
	mu      sync.Mutex
	seen    map[string]string // userID → "key=data"
	raw     int               // records with the KPL magic
	dups    []string
	changed chan struct{}
}

func newUserCollector() *userCollector {
	return &userCollector{seen: map[string]string{}, changed: make(chan struct{})}
}

func (c *userCollector) handle(_ context.Context, b *Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range b.Records {
		id := userID(r.Seq(), r.SubSeq)
		if _, dup := c.seen[id]; dup {
			c.dups = append(c.dups, id)
		}
		c.seen[id] = string(r.Key) + "=" + string(r.Data)
		if kpl.HasMagic(r.Data) {
			c.raw++
		}
	}
	close(c.changed)
	c.changed = make(chan struct{})
	return nil
}

func (c *userCollector) waitFor(t *testing.T, ctx context.Context, n int, runErr <-chan error) {
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

// putUsers puts n records, keys of the form prefix-(i mod keys), and returns their outcomes
// by userID, failing on an error or on a key whose records were appended out of Put order.
func putUsers(t *testing.T, ctx context.Context, p *Producer, prefix string, n, keys int) (map[string]string, []Outcome) {
	t.Helper()
	fs := make([]*Future, n)
	for i := range n {
		f, err := p.Put(ctx, fmt.Sprintf("%s-%d", prefix, i%keys), fmt.Appendf(nil, "%s:%d", prefix, i))
		if err != nil {
			t.Fatal(err)
		}
		fs[i] = f
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	outs := make([]Outcome, n)
	last := map[int]Outcome{}
	for i, f := range fs {
		<-f.Done()
		o, _ := f.Outcome()
		if o.Err != nil {
			t.Fatalf("record %d: %v", i, o.Err)
		}
		if prev, ok := last[i%keys]; ok && !(prev.SeqNum.Less(o.SeqNum) || prev.SeqNum == o.SeqNum && prev.SubSeq < o.SubSeq) {
			t.Fatalf("record %d of key %d at %v/%d, after %v/%d", i, i%keys, o.SeqNum, o.SubSeq, prev.SeqNum, prev.SubSeq)
		}
		last[i%keys] = o
		id := userID(o.SeqNum, o.SubSeq)
		if _, dup := want[id]; dup {
			t.Fatalf("two records at %s", id)
		}
		want[id] = fmt.Sprintf("%s-%d=%s:%d", prefix, i%keys, prefix, i)
		outs[i] = o
	}
	return want, outs
}

// consumeUsers reads the whole stream with a consumer configured by cfg until n user
// records came, and returns the collector.
func consumeUsers(t *testing.T, ctx context.Context, c *Client, cfg ConsumerConfig, n int) *userCollector {
	t.Helper()
	co, err := c.NewConsumer("s", cfg)
	if err != nil {
		t.Fatal(err)
	}
	col := newUserCollector()
	cctx, cancel := context.WithCancel(ctx)
	runErr := runConsumer(cctx, co, col.handle)
	col.waitFor(t, ctx, n, runErr)
	cancel()
	<-runErr
	return col
}

func sameUsers(t *testing.T, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d user records read, %d put", len(got), len(want))
	}
	for id, w := range want {
		if got[id] != w {
			t.Fatalf("user record %s: read %q, put %q", id, got[id], w)
		}
	}
}

// TestProducerAggregate: with Aggregate, records are packed per shard into aggregated
// records of at most MaxAggregateBytes, each outcome names the aggregate and the record's
// index there, each key's records keep their order, and a consumer reads back every record
// once at that (sequence number, sub-sequence number) — or the aggregates as stored with Raw.
func TestProducerAggregate(t *testing.T) {
	ts := startServer(t, stream.Options{Limits: stream.Limits{Off: true}})
	ts.createStream(t, "s", 2)
	c := ts.client(t, Config{})
	ctx := testCtx(t, 60*time.Second)
	p := newProducer(t, c, "s", ProducerConfig{Aggregate: true, MaxAggregateBytes: 4096, Linger: time.Hour})
	const n = 2000
	want, outs := putUsers(t, ctx, p, "k", n, 100)
	aggregated, records := 0, map[SeqNum]bool{}
	for _, o := range outs {
		if o.Aggregated {
			aggregated++
		}
		records[o.SeqNum] = true
	}
	st := p.Stats()
	// 2000 records of ~12 bytes in aggregates of at most 4 KiB: a few dozen, and at most
	// one lone record per shard (the last of a flush).
	if aggregated < n-2 || st.Aggregates < 4 || st.Aggregates > 40 || len(records) != int(st.Aggregates)+n-aggregated {
		t.Fatalf("%d of %d records aggregated, %d aggregates, %d records appended", aggregated, n, st.Aggregates, len(records))
	}
	if got := ts.puts.Load(); got > 4 {
		t.Errorf("%d put requests for %d aggregates", got, st.Aggregates)
	}

	col := consumeUsers(t, ctx, c, ConsumerConfig{}, n)
	sameUsers(t, col.seen, want)
	if len(col.dups) > 0 || col.raw != 0 {
		t.Fatalf("duplicates %v; %d records not de-aggregated", col.dups, col.raw)
	}

	raw := consumeUsers(t, ctx, c, ConsumerConfig{Raw: true}, len(records))
	if len(raw.seen) != len(records) || raw.raw != int(st.Aggregates) {
		t.Fatalf("raw: %d records, %d with the KPL magic; want %d and %d", len(raw.seen), raw.raw, len(records), st.Aggregates)
	}
	for id := range raw.seen {
		if !strings.HasSuffix(id, "/0") {
			t.Fatalf("raw record %s has a sub-sequence number", id)
		}
	}
}

// TestProducerAggregateReshard: aggregates grouped with a stale shard map (the shard split
// after the producer listed it) land in a child that does not hold all their keys; the
// producer aggregates their records again for the right children, and a consumer, which
// drops such an aggregate as the KCL does, reads every record exactly once.
func TestProducerAggregateReshard(t *testing.T) {
	ts := startServer(t, stream.Options{Limits: stream.Limits{Off: true}})
	ts.createStream(t, "s", 1)
	c := ts.client(t, Config{})
	ctx := testCtx(t, 60*time.Second)
	p := newProducer(t, c, "s", ProducerConfig{Aggregate: true, Linger: time.Hour})
	before, _ := putUsers(t, ctx, p, "a", 300, 100)
	if err := ts.eng.SplitShard("s", 0, mustKey(t, "170141183460469231731687303715884105728")); err != nil {
		t.Fatal(err)
	}
	after, outs := putUsers(t, ctx, p, "b", 300, 100)
	if p.Stats().Rerouted == 0 {
		t.Fatal("no aggregate was rerouted after the split")
	}
	for i, o := range outs {
		if o.Shard == 0 {
			t.Fatalf("record %d was appended to the closed parent", i)
		}
	}
	for id, v := range after {
		before[id] = v
	}
	col := consumeUsers(t, ctx, c, ConsumerConfig{}, len(before))
	sameUsers(t, col.seen, before)
	if len(col.dups) > 0 {
		t.Fatalf("duplicates %v", col.dups)
	}
}

// TestProducerAggregateInOrderBatching: in order, an aggregate that has lingered is not
// sealed while its shard's previous aggregate is on its way (it keeps filling), and is sealed
// once that one is done; a batch of aggregates is sealed at about one full aggregate, not at
// MaxBatchBytes, and its deadline is Linger after its oldest aggregate's first Put.
func TestProducerAggregateInOrderBatching(t *testing.T) {
	const linger = time.Second
	p := &Producer{cfg: ProducerConfig{Aggregate: true, Linger: linger, MaxBatchRecords: 500, MaxBatchBytes: 5 << 20},
		maxAgg: 1 << 20, wake: make(chan struct{}, 1), keys: map[string]*keyState{},
		aggs: map[uint32]*aggregator{}, ordKeys: map[uint32]string{}, shards: map[uint32]*shardState{}}
	p.senders.L = &p.mu
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	fill := func(shard uint32, records int, put time.Time) *aggregator {
		a := &aggregator{shard: shard, deadline: put.Add(linger)}
		for i := range records {
			u := &rec{key: "k" + strconv.Itoa(i), data: make([]byte, 100), shard: shard, put: put}
			a.recs = append(a.recs, u)
			a.b.Add(u.key, "", u.data)
		}
		p.aggs[shard] = a
		return a
	}
	// Shard 0's first aggregate goes; the second, lingered already, must wait and keep filling.
	fill(0, 10, now.Add(-2*linger))
	p.tickAggregatesLocked(now, func(time.Time) {})
	if len(p.aggs) != 0 || len(p.open) != 1 || len(p.open[0].recs) != 1 {
		t.Fatalf("first aggregate: %d aggregators left, %d open batches; want it sealed into one", len(p.aggs), len(p.open))
	}
	first := p.open[0].recs[0]
	if !p.open[0].deadline.Equal(first.put.Add(linger)) {
		t.Fatalf("batch deadline %v after the first Put, want %v", p.open[0].deadline.Sub(first.put), linger)
	}
	second := fill(0, 10, now.Add(-2*linger))
	p.tickAggregatesLocked(now, func(time.Time) {})
	if p.aggs[0] != second || len(p.open[0].recs) != 1 {
		t.Fatal("an aggregate was sealed while its shard's previous one is on its way")
	}
	var done []*rec
	p.finishLocked(first, SeqNum{Shard: 0, Position: 1}, nil, now, &done)
	if len(done) != 10 || !done[3].out.Aggregated || done[3].out.SubSeq != 3 {
		t.Fatalf("%d outcomes of the first aggregate, want 10 with their sub-sequence numbers", len(done))
	}
	p.tickAggregatesLocked(now, func(time.Time) {})
	if len(p.aggs) != 0 || len(p.open[0].recs) != 2 || p.open[0].recs[1].subs == nil {
		t.Fatalf("after the first is done: %d aggregators, %d records in the open batch; want the second sealed into it",
			len(p.aggs), len(p.open[0].recs))
	}
	// Aggregates of other shards, 600 KB each: the batch is sealed past 1 MiB, not at 5 MiB.
	p.open, p.ready = nil, nil
	for shard := uint32(1); shard <= 2; shard++ {
		fill(shard, 6000, now.Add(-2*linger))
	}
	p.tickAggregatesLocked(now, func(time.Time) {})
	if len(p.ready) != 1 || len(p.ready[0].recs) != 2 || len(p.open) != 0 {
		t.Fatalf("%d ready batches, %d open; want one sealed batch of the two aggregates", len(p.ready), len(p.open))
	}
}
