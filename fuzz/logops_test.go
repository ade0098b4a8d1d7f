package fuzz

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/internal/faultfs"
	"github.com/sluice-streams/sluice/segment"
)

// model is what the log must hold: every acknowledged record, in order.
type model struct {
	recs    []segment.Record
	maxSeq  uint64 // highest number ever handed out
	horizon int64  // retention cutoff applied
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// FuzzLogOps drives a shard log through a random sequence of appends, reads, retention
// passes, unmapping of idle segments, clean reopens and power cuts, in a durability mode the input picks, and checks it
// against a model after every step: reads return exactly the acknowledged, unexpired records
// at or after the starting number; a power cut loses nothing acknowledged in Sync mode and at
// most a suffix in the others; numbers strictly increase and are never reused.
func FuzzLogOps(f *testing.F) {
	f.Add([]byte{0, 5, 9, 1, 0, 0, 3, 2, 1, 0})
	f.Add([]byte{0, 200, 40, 0, 200, 40, 0, 200, 40, 4, 1, 1, 2, 3, 1, 0})
	f.Add([]byte{0, 1, 250, 0, 1, 250, 0, 1, 250, 0, 1, 250, 3, 4, 200, 1, 0})
	f.Add(bytes.Repeat([]byte{0, 3, 77, 1, 9}, 20))
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 300 {
			ops = ops[:300]
		}
		dir := t.TempDir()
		fs := faultfs.New()
		c := &clock{t: time.Unix(1_700_000_000, 0)}
		modes := []segment.Durability{{Mode: segment.Sync}, {Mode: segment.None}, {Mode: segment.Interval, Interval: time.Millisecond}}
		d := modes[0]
		if len(ops) > 0 {
			d = modes[int(ops[0])%len(modes)]
			ops = ops[1:]
		}
		opts := segment.Options{FS: fs, Now: c.now, SegmentSize: segment.MinSegmentSize, Durability: d}
		l, err := segment.Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { l.Close() }()
		var m model
		next := func() byte {
			if len(ops) == 0 {
				return 0
			}
			b := ops[0]
			ops = ops[1:]
			return b
		}
		for step := 0; len(ops) > 0; step++ {
			switch next() % 6 {
			case 0: // append a batch
				n := 1 + int(next()%8)
				size := int(next()) * 40
				b := make([]segment.Record, n)
				for i := range b {
					b[i] = segment.Record{Key: []byte(fmt.Sprintf("s%d-%d", step, i)), Data: bytes.Repeat([]byte{byte(step + i)}, size)}
				}
				if err := l.Append(b); err != nil {
					t.Fatalf("step %d: append: %v", step, err)
				}
				for _, r := range b {
					if r.Seq <= m.maxSeq {
						t.Fatalf("step %d: number %d not above %d", step, r.Seq, m.maxSeq)
					}
					m.maxSeq = r.Seq
				}
				m.recs = append(m.recs, b...)
				c.t = c.t.Add(time.Duration(next()) * time.Second)
			case 1: // read from a position
				var from uint64
				if len(m.recs) > 0 {
					from = m.recs[int(next())%len(m.recs)].Seq
				}
				check(t, l, &m, from)
			case 2: // clean reopen
				if err := l.Close(); err != nil {
					t.Fatalf("step %d: close: %v", step, err)
				}
				if l, err = segment.Open(dir, opts); err != nil {
					t.Fatalf("step %d: reopen: %v", step, err)
				}
				check(t, l, &m, 0)
			case 3: // power cut
				if err := fs.PowerCut(nil); err != nil {
					t.Fatal(err)
				}
				l.Close() // fails: the disk is gone; nothing is marked clean
				fs.Revive()
				if l, err = segment.Open(dir, opts); err != nil {
					t.Fatalf("step %d: open after power cut: %v", step, err)
				}
				if err := l.Err(); err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				if d.Mode != segment.Sync {
					m.keepReadable(t, l)
				}
				check(t, l, &m, 0)
			case 4: // retention pass
				cutoff := c.t.Add(-time.Duration(next()) * time.Second).UnixNano()
				if _, err := l.Trim(cutoff); err != nil {
					t.Fatalf("step %d: trim: %v", step, err)
				}
				m.horizon = max(m.horizon, cutoff)
				check(t, l, &m, 0)
			case 5: // unmap idle segments (twice: the first pass clears the marks)
				l.UnmapIdle()
				l.UnmapIdle()
				check(t, l, &m, 0)
			}
		}
	})
}

// check reads everything from from and compares it with the model.
func check(t *testing.T, l *segment.Log, m *model, from uint64) {
	t.Helper()
	var want []segment.Record
	for _, r := range m.recs {
		if r.Seq >= from && r.Time >= m.horizon {
			want = append(want, r)
		}
	}
	i := 0
	for range 100_000 {
		v, err := l.Read(from, 7, 16<<10)
		if err != nil {
			t.Fatalf("read from %d: %v", from, err)
		}
		if v.Count == 0 {
			break
		}
		it := v.Records()
		for it.Next() {
			r := it.Record()
			if i >= len(want) {
				t.Fatalf("read returned record %d beyond the %d expected", r.Seq, len(want))
			}
			w := want[i]
			if r.Seq != w.Seq || r.Time != w.Time || !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Data, w.Data) {
				t.Fatalf("record %d: got seq %d key %q, want seq %d key %q", i, r.Seq, r.Key, w.Seq, w.Key)
			}
			i++
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		from = v.Next
		v.Release()
	}
	if i != len(want) {
		t.Fatalf("read %d records, want %d", i, len(want))
	}
	if err := l.Err(); err != nil && !errors.Is(err, segment.ErrClosed) {
		t.Fatalf("log refuses appends: %v", err)
	}
}

// keepReadable shrinks the model to what survived a power cut in a mode that may lose a
// suffix: the readable records must be a prefix of the model's unexpired records.
func (m *model) keepReadable(t *testing.T, l *segment.Log) {
	t.Helper()
	var hidden, visible []segment.Record
	for _, r := range m.recs {
		if r.Time >= m.horizon {
			visible = append(visible, r)
		} else {
			hidden = append(hidden, r)
		}
	}
	n := 0
	var from uint64
	for range 100_000 {
		v, err := l.Read(from, 100, 1<<20)
		if err != nil {
			t.Fatalf("read after power cut: %v", err)
		}
		if v.Count == 0 {
			break
		}
		it := v.Records()
		for it.Next() {
			r := it.Record()
			if n >= len(visible) || r.Seq != visible[n].Seq {
				t.Fatalf("after a power cut record %d survived out of order: the loss is not a suffix", r.Seq)
			}
			n++
		}
		from = v.Next
		v.Release()
	}
	m.recs = append(hidden, visible[:n]...)
}
