//go:build linux

// Linux only: these tests run the in-process server of server_test.go.

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/shardmap"
)

// tailResult is what a Tail running in the background returned.
type tailResult struct {
	n   int
	err error
}

func startTail(ctx context.Context, c *client.Client, in TailInput, out Output) <-chan tailResult {
	done := make(chan tailResult, 1)
	go func() {
		n, err := Tail(ctx, c, in, out)
		done <- tailResult{n, err}
	}()
	return done
}

func waitTail(t *testing.T, ctx context.Context, done <-chan tailResult) tailResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-ctx.Done():
		t.Fatal("tail did not stop")
		return tailResult{}
	}
}

// TestTailAcrossSplit follows a stream while its only shard is split: every record prints
// once, the parent's before its children's, each key's in put order.
func TestTailAcrossSplit(t *testing.T) {
	ts := startServer(t)
	ts.createStream(t, "s", 1)
	c, ctx := ts.client(t), testCtx(t)
	keys := []string{"a", "b", "c", "d", "e"}
	put := func(from, to int) {
		t.Helper()
		var entries []client.PutEntry
		for i := from; i < to; i++ {
			for _, k := range keys {
				entries = append(entries, client.PutEntry{Key: k, Data: fmt.Appendf(nil, "%s %02d", k, i)})
			}
		}
		res, err := c.PutRecords(ctx, "s", entries)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}

	total := len(keys)*20 + 1
	before := len(keys)*10 + 1
	out := &lineWatch{want: before, seen: make(chan struct{})}
	done := startTail(ctx, c, TailInput{Stream: "s", MaxRecords: total}, Output{W: out})
	put(0, 10)
	if _, err := c.PutRecords(ctx, "s", []client.PutEntry{{Key: "bin", Data: []byte{0xff, 0}}}); err != nil {
		t.Fatal(err)
	}
	// Split only once the tail has printed what came before: it follows the split live.
	select {
	case <-out.seen:
	case <-ctx.Done():
		t.Fatalf("tail printed only %q", out.String())
	}
	splitShard(ctx, t, c, "s", "shardId-000000000000", half)
	put(10, 20)
	if r := waitTail(t, ctx, done); r.err != nil || r.n != total {
		t.Fatalf("tail: %d records, %v", r.n, r.err)
	}

	recs, notes := parseRecordLines(t, out.String())
	if len(recs) != total || len(notes) != 0 {
		t.Fatalf("%d records, notes %q:\n%s", len(recs), notes, out.String())
	}
	next := map[string]int{}
	children := false
	for _, r := range recs {
		if r.key == "bin" {
			if r.data != "base64:/wA=" || r.shard != "shardId-000000000000" {
				t.Errorf("binary record %+v", r)
			}
			continue
		}
		want := fmt.Sprintf("%s %02d", r.key, next[r.key])
		if r.data != want {
			t.Fatalf("key %s: %q, want %q", r.key, r.data, want)
		}
		next[r.key]++
		shard := "shardId-000000000000"
		if next[r.key] > 10 {
			shard = "shardId-000000000001"
			if !shardmap.KeyOfString(r.key).Less(shardmap.Key{Hi: 1 << 63}) {
				shard = "shardId-000000000002"
			}
		}
		if r.shard != shard {
			t.Errorf("%q on %s, want %s", r.data, r.shard, shard)
		}
		if r.shard == "shardId-000000000000" && children {
			t.Errorf("%q of the parent after a child's record", r.data)
		}
		children = children || r.shard != "shardId-000000000000"
	}
}

// lineWatch is a syncBuffer that closes seen once it holds want lines.
type lineWatch struct {
	syncBuffer
	want int
	seen chan struct{}
}

func (w *lineWatch) Write(p []byte) (int, error) {
	n, err := w.syncBuffer.Write(p)
	if w.want > 0 && strings.Count(w.String(), "\n") >= w.want {
		close(w.seen)
		w.want = 0
	}
	return n, err
}

// TestTailFanOut follows a stream with enhanced fan-out, printing JSON lines.
func TestTailFanOut(t *testing.T) {
	ts := startServer(t)
	ts.createStream(t, "s", 2)
	c, ctx := ts.client(t), testCtx(t)
	var puts strings.Builder
	if _, err := PutLines(ctx, c, PutInput{Stream: "s"}, strings.NewReader("r0\nr1\nr2\nr3\nr4\nr5\n"), Output{W: &puts}); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	r := waitTail(t, ctx, startTail(ctx, c, TailInput{Stream: "s", FanOut: "enhanced", ConsumerName: "cli", MaxRecords: 6}, Output{W: &out, JSON: true}))
	if r.err != nil || r.n != 6 {
		t.Fatalf("tail: %d records, %v", r.n, r.err)
	}
	seqs := map[string]bool{}
	for _, p := range parsePutLines(t, puts.String()) {
		seqs[p.seq] = true
	}
	for l := range strings.Lines(out.String()) {
		var j RecordJSON
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		if !seqs[j.SequenceNumber] || len(j.Data) != 2 || len(j.PartitionKey) != 16 || !strings.HasPrefix(j.ShardId, "shardId-") {
			t.Errorf("line %q", l)
		}
		delete(seqs, j.SequenceNumber)
	}
	if len(seqs) != 0 {
		t.Errorf("not printed: %v", seqs)
	}
	d, err := Describe(ctx, c, "s")
	if err != nil || len(d.Consumers) != 1 || d.Consumers[0].ConsumerName != "cli" {
		t.Errorf("consumers after tail: %+v %v", d, err)
	}
}

// TestTailLatest prints only records put after it started.
func TestTailLatest(t *testing.T) {
	ts := startServer(t)
	ts.createStream(t, "s", 1)
	c, ctx := ts.client(t), testCtx(t)
	var sink strings.Builder
	if _, err := PutRecord(ctx, c, PutInput{Stream: "s", Key: "k"}, []byte("old"), Output{W: &sink}); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	done := startTail(ctx, c, TailInput{Stream: "s", From: "latest", MaxRecords: 1}, Output{W: &out})
	var r tailResult
	// The tail starts at some point among these puts; it prints the first one after.
	for i := 0; ; i++ {
		if i == 1000 {
			t.Fatal("tail printed nothing")
		}
		if _, err := PutRecord(ctx, c, PutInput{Stream: "s", Key: "k"}, fmt.Appendf(nil, "new %d", i), Output{W: &sink}); err != nil {
			t.Fatal(err)
		}
		select {
		case r = <-done:
		case <-time.After(20 * time.Millisecond):
			continue
		}
		break
	}
	recs, _ := parseRecordLines(t, out.String())
	if r.err != nil || r.n != 1 || len(recs) != 1 || !strings.HasPrefix(recs[0].data, "new ") {
		t.Errorf("tail: %d, %v; printed %q", r.n, r.err, out.String())
	}
}

// cancelWriter cancels a context once something was written to it.
type cancelWriter struct {
	syncBuffer
	cancel context.CancelFunc
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	defer w.cancel()
	return w.syncBuffer.Write(p)
}

// TestTailStops returns nil when its context ends, as after Ctrl-C.
func TestTailStops(t *testing.T) {
	ts := startServer(t)
	ts.createStream(t, "s", 1)
	c, ctx := ts.client(t), testCtx(t)
	var sink strings.Builder
	if _, err := PutRecord(ctx, c, PutInput{Stream: "s", Key: "k"}, []byte("x"), Output{W: &sink}); err != nil {
		t.Fatal(err)
	}
	tailCtx, cancel := context.WithCancel(ctx)
	w := &cancelWriter{cancel: cancel}
	if n, err := Tail(tailCtx, c, TailInput{Stream: "s", From: "2000-01-01T00:00:00Z"}, Output{W: w}); err != nil || n != 1 {
		t.Errorf("tail: %d, %v", n, err)
	}
}

func TestTailErrors(t *testing.T) {
	ts := startServer(t)
	ts.createStream(t, "s", 1)
	c, ctx := ts.client(t), testCtx(t)
	tests := []struct {
		name  string
		in    TailInput
		input bool // ErrInput; else the server's ErrNotFound
	}{
		{name: "bad from", in: TailInput{Stream: "s", From: "start"}, input: true},
		{name: "from before 1970", in: TailInput{Stream: "s", From: "1969-12-31T00:00:00Z"}, input: true},
		{name: "bad fan-out", in: TailInput{Stream: "s", FanOut: "both"}, input: true},
		{name: "enhanced without name", in: TailInput{Stream: "s", FanOut: "enhanced"}, input: true},
		{name: "name without enhanced", in: TailInput{Stream: "s", ConsumerName: "x"}, input: true},
		{name: "negative max", in: TailInput{Stream: "s", MaxRecords: -1}, input: true},
		{name: "unknown stream", in: TailInput{Stream: "nope"}},
		{name: "unknown stream, enhanced", in: TailInput{Stream: "nope", FanOut: "enhanced", ConsumerName: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out syncBuffer
			_, err := Tail(ctx, c, tt.in, Output{W: &out})
			if tt.input != errors.Is(err, ErrInput) || !tt.input && !errors.Is(err, client.ErrNotFound) {
				t.Errorf("err %v", err)
			}
		})
	}
}
