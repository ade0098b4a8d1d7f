package cluster

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/stream"
)

// readView appends n records to a fresh segment log and returns a view of them all from
// position from (the log closes when the test ends).
func readView(t *testing.T, n int, from uint64) segment.View {
	t.Helper()
	l, err := segment.Open(t.TempDir(), segment.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	batch := make([]segment.Record, n)
	for i := range batch {
		batch[i] = segment.Record{Key: fmt.Appendf(nil, "key-%d", i), Data: bytes.Repeat([]byte{byte(i)}, 10+i)}
	}
	if err := l.Append(batch); err != nil {
		t.Fatal(err)
	}
	v, err := l.Read(from, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Release)
	return v
}

// TestReadWireRoundTrip encodes a request of each op and an answer holding a real segment
// view, decodes them, and gets the same fields and frames back.
func TestReadWireRoundTrip(t *testing.T) {
	for _, q := range []readRequest{
		{op: opRead, stream: "s", gen: 1<<60 + 3, shard: 7, from: 2, records: 500, bytes: 1 << 20, wait: 1500 * time.Millisecond, after: 41},
		{op: opSeqAtTime, stream: "orders", gen: 9, shard: 1<<32 - 1, at: -5},
		{op: opOldest, stream: "x", gen: 1},
	} {
		got, err := decodeReadRequest(appendReadRequest(nil, &q))
		if err != nil || got != q {
			t.Errorf("request %+v came back %+v, %v", q, got, err)
		}
	}
	v := readView(t, 5, 2)
	q := readRequest{op: opRead, from: 2, records: 100, bytes: 1 << 20}
	a := readAnswer{leader: 99, tip: 5, tipTime: 1234}
	got, err := decodeReadAnswer(appendReadAnswer(nil, opRead, &a, &v), &q)
	if err != nil {
		t.Fatal(err)
	}
	if got.leader != 99 || got.tip != 5 || got.tipTime != 1234 || got.count != v.Count || got.first != v.First || got.last != v.Last ||
		got.next != v.Next || got.lastTime != v.LastTime || got.payload != v.Payload || !bytes.Equal(got.frames, v.Bytes()) {
		t.Errorf("answer %+v, from view %+v", got, v)
	}
	if got.count != 4 || got.first != 2 || got.last != 5 || got.next != 6 {
		t.Errorf("records %d, %d … %d, next %d: want 4 records 2 … 5, next 6", got.count, got.first, got.last, got.next)
	}
	empty, err := decodeReadAnswer(appendReadAnswer(nil, opRead, &readAnswer{next: 9}, nil), &readRequest{op: opRead, from: 9})
	if err != nil || empty.count != 0 || empty.next != 9 || len(empty.frames) != 0 {
		t.Errorf("empty answer %+v, %v", empty, err)
	}
	q = readRequest{op: opSeqAtTime, at: 5}
	found, err := decodeReadAnswer(appendReadAnswer(nil, opSeqAtTime, &readAnswer{found: true, seq: 17, tip: 20}, nil), &q)
	if err != nil || !found.found || found.seq != 17 || found.tip != 20 {
		t.Errorf("seq-at-time answer %+v, %v", found, err)
	}
}

// TestReadWireRefusesMalformed: a request out of its bounds and an answer whose frames or
// fields do not agree are refused, so that a View is never built from them.
func TestReadWireRefusesMalformed(t *testing.T) {
	good := readRequest{op: opRead, stream: "s", gen: 1, shard: 1, records: 10, bytes: 100}
	requests := map[string]func(q *readRequest) []byte{
		"too many records": func(q *readRequest) []byte {
			q.records = stream.MaxGetRecordsLimit + 1
			return appendReadRequest(nil, q)
		},
		"too many bytes":  func(q *readRequest) []byte { q.bytes = stream.MaxGetRecordsBytes + 1; return appendReadRequest(nil, q) },
		"too long a wait": func(q *readRequest) []byte { q.wait = maxReadWait + time.Millisecond; return appendReadRequest(nil, q) },
		"no stream name":  func(q *readRequest) []byte { q.stream = ""; return appendReadRequest(nil, q) },
		"unknown op":      func(q *readRequest) []byte { q.op = 9; return appendReadRequest(nil, q) },
		"other version":   func(q *readRequest) []byte { b := appendReadRequest(nil, q); b[0] = 2; return b },
		"trailing bytes":  func(q *readRequest) []byte { return append(appendReadRequest(nil, q), 0) },
		"truncated":       func(q *readRequest) []byte { b := appendReadRequest(nil, q); return b[:len(b)-1] },
		"shard too big": func(q *readRequest) []byte {
			q.shard = 0
			b := appendReadRequest(nil, q)
			b2 := append([]byte(nil), b[:4]...)
			b2 = append(b2, 1, 0x80, 0x80, 0x80, 0x80, 0x10) // gen 1, shard 2^32
			return append(b2, b[6:]...)
		},
	}
	for name, mk := range requests {
		q := good
		if _, err := decodeReadRequest(mk(&q)); err == nil {
			t.Errorf("request %s: taken", name)
		}
	}

	v := readView(t, 3, 1)
	q := readRequest{op: opRead, from: 1, records: 10, bytes: 1 << 20}
	answer := func(edit func(a *segment.View, frames []byte) []byte) []byte {
		// a view of a copy: Replace on a copy of v would release v's mapping
		w := segment.View{Count: v.Count, First: v.First, Last: v.Last, LastTime: v.LastTime, Next: v.Next, Payload: v.Payload}
		frames := edit(&w, append([]byte(nil), v.Bytes()...))
		w.Replace(frames, w.Payload)
		return appendReadAnswer(nil, opRead, &readAnswer{}, &w)
	}
	answers := map[string][]byte{
		"a flipped bit":    answer(func(_ *segment.View, f []byte) []byte { f[40] ^= 1; return f }),
		"a frame cut":      answer(func(_ *segment.View, f []byte) []byte { return f[:len(f)-9] }),
		"a count too high": answer(func(w *segment.View, f []byte) []byte { w.Count++; return f }),
		"another first":    answer(func(w *segment.View, f []byte) []byte { w.First++; return f }),
		"another last":     answer(func(w *segment.View, f []byte) []byte { w.Last++; return f }),
		"next not past":    answer(func(w *segment.View, f []byte) []byte { w.Next = w.Last; return f }),
		"other payload":    answer(func(w *segment.View, f []byte) []byte { w.Payload--; return f }),
	}
	for name, b := range answers {
		if _, err := decodeReadAnswer(b, &q); err == nil {
			t.Errorf("answer with %s: taken", name)
		}
	}
	if _, err := decodeReadAnswer(answer(func(_ *segment.View, f []byte) []byte { return f }), &readRequest{op: opRead, from: 1, records: 2}); err == nil {
		t.Error("an answer of 3 records to a read of 2: taken")
	}
	if _, err := decodeReadAnswer(answer(func(_ *segment.View, f []byte) []byte { return f }), &readRequest{op: opRead, from: 2, records: 10}); err == nil {
		t.Error("an answer from position 1 to a read from 2: taken")
	}
	if _, err := decodeReadAnswer(appendReadAnswer(nil, opRead, &readAnswer{next: 3}, nil), &readRequest{op: opRead, from: 4}); err == nil {
		t.Error("an empty answer going on below the position asked: taken")
	}
}
