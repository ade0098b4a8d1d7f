//go:build linux

// Linux only: these tests run the in-process server of server_test.go.

package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/stream"
)

// waitAll waits for every future and fails the test on a record's error.
func waitAll(t *testing.T, ctx context.Context, fs []*Future) []SeqNum {
	t.Helper()
	out := make([]SeqNum, len(fs))
	for i, f := range fs {
		seq, err := f.Wait(ctx)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		out[i] = seq
	}
	return out
}

func newProducer(t *testing.T, c *Client, stream string, cfg ProducerConfig) *Producer {
	t.Helper()
	p, err := c.NewProducer(testCtx(t, 30*time.Second), stream, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(testCtx(t, 30*time.Second)) })
	return p
}

// TestProducerBatchByCount: with a linger time that never ends, full batches (500 records)
// go at once and the rest waits for Flush.
func TestProducerBatchByCount(t *testing.T) {
	ts := startServer(t, stream.Options{Limits: stream.Limits{Off: true}})
	ts.createStream(t, "s", 4)
	c := ts.client(t, Config{})
	p := newProducer(t, c, "s", ProducerConfig{Linger: time.Hour})
	ctx := testCtx(t, 60*time.Second)
	var fs []*Future
	for i := range 1000 {
		f, err := p.Put(ctx, fmt.Sprintf("key-%d", i), []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	waitAll(t, ctx, fs)
	if n := ts.puts.Load(); n != 2 {
		t.Fatalf("%d put requests for 1000 records, want 2", n)
	}
	f, err := p.Put(ctx, "last", []byte("y"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Outcome(); !ok {
		t.Fatal("Flush returned before the record's outcome")
	}
	if n := ts.puts.Load(); n != 3 {
		t.Fatalf("%d put requests after Flush, want 3", n)
	}
	if s := p.Stats(); s.Requests != 3 || s.Appended != 1001 || s.Failed != 0 || s.Retries != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestProducerBatchBySize: batches are cut at MaxBatchBytes of keys and data.
func TestProducerBatchBySize(t *testing.T) {
	ts := startServer(t, stream.Options{Limits: stream.Limits{Off: true}})
	ts.createStream(t, "s", 2)
	c := ts.client(t, Config{})
	p := newProducer(t, c, "s", ProducerConfig{Linger: time.Hour, MaxBatchBytes: 64 << 10})
	ctx := testCtx(t, 60*time.Second)
	data := make([]byte, 1024-len("k0000"))
	var fs []*Future
	for i := range 256 { // 64 records of 1 KiB fill a batch
		f, err := p.Put(ctx, fmt.Sprintf("k%04d", i), data)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	waitAll(t, ctx, fs)
	if n := ts.puts.Load(); n != 4 {
		t.Fatalf("%d put requests for 256 KiB in batches of 64 KiB, want 4", n)
	}
	// 65 records: a full batch, and one that waits for Flush.
	for i := range 65 {
		f, err := p.Put(ctx, fmt.Sprintf("j%04d", i), data)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs[:0], f)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := ts.puts.Load(); n != 6 {
		t.Fatalf("%d put requests, want 4 + 2", n)
	}
}

// TestProducerLinger: a batch that never fills is sent when its linger time is over,
// without Flush.
func TestProducerLinger(t *testing.T) {
	ts := startServer(t, stream.Options{Limits: stream.Limits{Off: true}})
	ts.createStream(t, "s", 1)
	c := ts.client(t, Config{})
	p := newProducer(t, c, "s", ProducerConfig{Linger: 20 * time.Millisecond})
	ctx := testCtx(t, 60*time.Second)
	var fs []*Future
	for i := range 10 {
		f, err := p.Put(ctx, fmt.Sprintf("k%d", i), []byte("v"))
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	waitAll(t, ctx, fs)
	if n := ts.puts.Load(); n < 1 || n > 10 {
		t.Fatalf("%d put requests for 10 records", n)
	}
}

// TestProducerKeyOrder: by default a key has one record in flight, so its records go one
// request each and land in Put order; Unordered batches them together.
func TestProducerKeyOrder(t *testing.T) {
	ts := startServer(t, stream.Options{Limits: stream.Limits{Off: true}})
	ts.createStream(t, "s", 2)
	c := ts.client(t, Config{})
	ctx := testCtx(t, 60*time.Second)
	for _, unordered := range []bool{false, true} {
		before := ts.puts.Load()
		p := newProducer(t, c, "s", ProducerConfig{Linger: time.Hour, MaxBatchRecords: 50, Unordered: unordered})
		var fs []*Future
		for i := range 50 {
			f, err := p.Put(ctx, "hot", fmt.Appendf(nil, "%d", i))
			if err != nil {
				t.Fatal(err)
			}
			fs = append(fs, f)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		seqs := waitAll(t, ctx, fs)
		for i := 1; i < len(seqs); i++ {
			if !seqs[i-1].Less(seqs[i]) {
				t.Fatalf("unordered=%v: record %d at %v, after record %d at %v", unordered, i, seqs[i], i-1, seqs[i-1])
			}
		}
		want := int64(50)
		if unordered {
			want = 1
		}
		if n := ts.puts.Load() - before; n != want {
			t.Fatalf("unordered=%v: %d put requests for 50 records of one key, want %d", unordered, n, want)
		}
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// TestProducerThrottled puts far more than the shards' capacity (the kinesis profile scaled
// to a fifth): records are refused with ProvisionedThroughputExceeded and retried until
// every one is appended, and each key's records are in the log in Put order, as a consumer
// reading the shards sees them.
func TestProducerThrottled(t *testing.T) {
	ts := startServer(t, stream.Options{Limits: stream.Limits{Factor: 0.2}})
	ts.createStream(t, "s", 2)
	c := ts.client(t, Config{})
	p := newProducer(t, c, "s", ProducerConfig{})
	ctx := testCtx(t, 120*time.Second)
	const keys, perKey = 16, 100 // 1,600 records; the shards take 200 a second each
	fs := make([][]*Future, keys)
	for i := range perKey {
		for k := range keys {
			f, err := p.Put(ctx, fmt.Sprintf("key-%d", k), fmt.Appendf(nil, "key-%d:%d:%s", k, i, strings.Repeat(".", 80)))
			if err != nil {
				t.Fatal(err)
			}
			fs[k] = append(fs[k], f)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[SeqNum]string{}
	for k := range keys {
		seqs := waitAll(t, ctx, fs[k])
		for i, s := range seqs {
			if i > 0 && !seqs[i-1].Less(s) {
				t.Fatalf("key-%d: record %d at %v, after record %d at %v", k, i, s, i-1, seqs[i-1])
			}
			want[s] = fmt.Sprintf("key-%d:%d", k, i)
		}
	}
	st := p.Stats()
	t.Logf("producer stats %+v", st)
	if st.Throttled == 0 || st.Retries == 0 || st.Appended != keys*perKey {
		t.Fatalf("stats %+v: want throttling and retries", st)
	}
	// Consume: every record is where its outcome said, and each key's records come in order.
	got := map[SeqNum]string{}
	var mu sync.Mutex
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	co, err := c.NewConsumer("s", ConsumerConfig{ReadsPerSecond: 0.9, PollInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]int{}
	var orderErr error
	err = co.Run(cctx, func(_ context.Context, b *Batch) error {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range b.Records {
			parts := strings.SplitN(string(r.Data), ":", 3)
			if parts[0] != string(r.Key) || parts[1] != fmt.Sprint(next[parts[0]]) {
				orderErr = fmt.Errorf("record %s:%s of key %s at %v, want number %d", parts[0], parts[1], r.Key, r.Seq(), next[parts[0]])
				return orderErr
			}
			next[parts[0]]++
			got[r.Seq()] = parts[0] + ":" + parts[1]
		}
		if len(got) == len(want) {
			cancel()
		}
		return nil
	})
	if orderErr != nil {
		t.Fatal(orderErr)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	for s, w := range want {
		if got[s] != w {
			t.Fatalf("at %v: %q, want %q", s, got[s], w)
		}
	}
}

// TestProducerFlushOutcomes: Flush and Close report what became of every record.
func TestProducerFlushOutcomes(t *testing.T) {
	ts := startServer(t, stream.Options{Limits: stream.Limits{Off: true}})
	ts.createStream(t, "s", 2)
	c := ts.client(t, Config{})
	ctx := testCtx(t, 60*time.Second)
	p, err := c.NewProducer(ctx, "s", ProducerConfig{BaseBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Put(ctx, "", nil); !errors.Is(err, ErrBadKey) {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := p.Put(ctx, strings.Repeat("é", 257), nil); !errors.Is(err, ErrBadKey) {
		t.Fatalf("key of 257 characters: %v", err)
	}
	if _, err := p.Put(ctx, "\xff", nil); !errors.Is(err, ErrBadKey) {
		t.Fatalf("key not UTF-8: %v", err)
	}
	if _, err := p.Put(ctx, "k", make([]byte, 1<<20+1)); !errors.Is(err, ErrRecordTooLarge) {
		t.Fatalf("record of 1 MiB + 1: %v", err)
	}
	var fs []*Future
	var mu sync.Mutex
	var called []Outcome
	for i := range 100 {
		if i%2 == 0 {
			f, err := p.Put(ctx, fmt.Sprint(i%7), []byte("v"))
			if err != nil {
				t.Fatal(err)
			}
			fs = append(fs, f)
			continue
		}
		err := p.PutFunc(ctx, fmt.Sprint(i%7), []byte("v"), func(o Outcome) {
			mu.Lock()
			called = append(called, o)
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	for i, f := range fs {
		o, ok := f.Outcome()
		if !ok || o.Err != nil || o.Position == 0 || o.Attempts != 1 {
			t.Fatalf("record %d after Flush: %+v %v", i, o, ok)
		}
	}
	mu.Lock()
	if len(called) != 50 {
		t.Fatalf("%d callbacks after Flush, want 50", len(called))
	}
	for _, o := range called {
		if o.Err != nil {
			t.Fatalf("callback outcome %+v", o)
		}
	}
	mu.Unlock()

	// The stream goes away: the next records fail with ResourceNotFound, and Flush says so.
	if err := ts.eng.DeleteStream("s", false); err != nil {
		t.Fatal(err)
	}
	fs = fs[:0]
	for i := range 5 {
		f, err := p.Put(ctx, fmt.Sprint(i), []byte("v"))
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	err = p.Flush(ctx)
	var fe *FlushError
	if !errors.As(err, &fe) || fe.Failed != 5 || !errors.Is(err, ErrNotFound) {
		t.Fatalf("Flush after DeleteStream: %v", err)
	}
	for i, f := range fs {
		if _, err := f.Wait(ctx); !errors.Is(err, ErrNotFound) {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := p.Put(ctx, "k", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if err := p.Close(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if s := p.Stats(); s.Appended != 100 || s.Failed != 5 {
		t.Fatalf("stats %+v", s)
	}
}

// TestProducerCloseGivesUp: with the server gone, records are retried until Close's context
// ends; then each fails with ErrClosed, and Put blocks while MaxBuffered is reached.
func TestProducerCloseGivesUp(t *testing.T) {
	ts := startServer(t, stream.Options{Limits: stream.Limits{Off: true}})
	ts.createStream(t, "s", 1)
	c := ts.client(t, Config{})
	ctx := testCtx(t, 60*time.Second)
	p, err := c.NewProducer(ctx, "s", ProducerConfig{MaxBuffered: 10 * (recOverhead + 3), BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ts.stop()
	var fs []*Future
	var outcomes []Outcome
	var mu sync.Mutex
	for i := range 10 {
		if i == 9 {
			err := p.PutFunc(ctx, "k9", []byte("v"), func(o Outcome) {
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
			})
			if err != nil {
				t.Fatal(err)
			}
			continue
		}
		f, err := p.Put(ctx, fmt.Sprintf("k%d", i%3), []byte("v"))
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	if _, err := p.Put(short, "k", []byte("v")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put with the buffer full: %v", err)
	}
	cancel()
	closing, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err = p.Close(closing)
	if !errors.Is(err, ErrClosed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v", err)
	}
	var fe *FlushError
	if !errors.As(err, &fe) || fe.Failed != 10 {
		t.Fatalf("Close: %v, want 10 records failed", err)
	}
	for i, f := range fs {
		o, ok := f.Outcome()
		if !ok || !errors.Is(o.Err, ErrClosed) {
			t.Fatalf("record %d: %+v %v", i, o, ok)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(outcomes) != 1 || !errors.Is(outcomes[0].Err, ErrClosed) {
		t.Fatalf("callback outcomes %+v", outcomes)
	}
	if s := p.Stats(); s.Failed != 10 || s.Appended != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestProducerReshard: after a split the producer learns the new shards from answers that
// land elsewhere than it expected, and keeps appending.
func TestProducerReshard(t *testing.T) {
	ts := startServer(t, stream.Options{Limits: stream.Limits{Off: true}})
	ts.createStream(t, "s", 1)
	c := ts.client(t, Config{})
	ctx := testCtx(t, 60*time.Second)
	p := newProducer(t, c, "s", ProducerConfig{Unordered: true})
	put := func(n int) []SeqNum {
		var fs []*Future
		for i := range n {
			f, err := p.Put(ctx, fmt.Sprintf("k%d", i), []byte("v"))
			if err != nil {
				t.Fatal(err)
			}
			fs = append(fs, f)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		return waitAll(t, ctx, fs)
	}
	put(50)
	if err := ts.eng.SplitShard("s", 0, mustKey(t, "170141183460469231731687303715884105728")); err != nil {
		t.Fatal(err)
	}
	shards := map[uint32]int{}
	for _, s := range put(200) {
		shards[s.Shard]++
	}
	if shards[1] == 0 || shards[2] == 0 || len(shards) != 2 {
		t.Fatalf("records after the split went to %v", shards)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		p.mu.Lock()
		ids := fmt.Sprint(p.routes.ids)
		p.mu.Unlock()
		if ids == "[1 2]" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the producer's routes are %s after the split", ids)
		}
		put(1)
	}
	if p.Stats().Refreshes == 0 {
		t.Fatal("no refresh")
	}
}
