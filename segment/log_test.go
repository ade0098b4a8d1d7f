package segment

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// fakeClock is an injected clock that tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testOpts(c *fakeClock, mode Mode) Options {
	return Options{Now: c.Now, Durability: Durability{Mode: mode, Interval: time.Millisecond}, SegmentSize: MinSegmentSize}
}

func mustOpen(t testing.TB, dir string, o Options) *Log {
	t.Helper()
	l, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func rec(key string, data []byte) Record { return Record{Key: []byte(key), Data: data} }

// payload returns deterministic data for record i.
func payload(i, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(i), 7))
	for j := range b {
		b[j] = byte(r.UintN(256))
	}
	return b
}

// appendN appends n records of size bytes in batches and returns them with their numbers.
func appendN(t testing.TB, l *Log, start, n, size, batch int) []Record {
	t.Helper()
	var out []Record
	for i := 0; i < n; i += batch {
		var b []Record
		for j := i; j < min(n, i+batch); j++ {
			b = append(b, rec(fmt.Sprintf("key-%d", start+j), payload(start+j, size)))
		}
		if err := l.Append(b); err != nil {
			t.Fatalf("Append: %v", err)
		}
		out = append(out, b...)
	}
	return out
}

// readAll reads every readable record from from, copying them out. It returns the error that
// stopped it, if any.
func readAll(t testing.TB, l *Log, from uint64) ([]Record, error) {
	t.Helper()
	var out []Record
	for range 1_000_000 {
		v, err := l.Read(from, 100, 64<<10)
		if err != nil {
			return out, err
		}
		if v.Count == 0 {
			return out, nil
		}
		it := v.Records()
		payload := 0
		for it.Next() {
			r := it.Record()
			out = append(out, Record{Seq: r.Seq, Time: r.Time, Flags: r.Flags, Key: bytes.Clone(r.Key), Data: bytes.Clone(r.Data)})
			payload += len(r.Key) + len(r.Data)
		}
		if it.Err() != nil {
			t.Fatalf("iterating a checked view: %v", it.Err())
		}
		if v.Payload != payload {
			t.Fatalf("view from %d: Payload %d, its records hold %d bytes", from, v.Payload, payload)
		}
		from = v.Next
		v.Release()
	}
	t.Fatal("readAll did not finish")
	return nil, nil
}

func sameRecords(t testing.TB, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Seq != w.Seq || g.Time != w.Time || !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("record %d: got seq %d time %d key %q (%d bytes), want seq %d time %d key %q (%d bytes)",
				i, g.Seq, g.Time, g.Key, len(g.Data), w.Seq, w.Time, w.Key, len(w.Data))
		}
	}
}

func TestAppendReadReopen(t *testing.T) {
	for _, mode := range []Mode{Sync, Interval, None} {
		t.Run(Durability{Mode: mode, Interval: time.Millisecond}.String(), func(t *testing.T) {
			dir := t.TempDir()
			c := newClock()
			l := mustOpen(t, dir, testOpts(c, mode))
			want := appendN(t, l, 0, 300, 700, 7) // several 64 KiB segments
			for i := 1; i < len(want); i++ {
				if want[i].Seq <= want[i-1].Seq {
					t.Fatalf("sequence numbers not increasing: %d then %d", want[i-1].Seq, want[i].Seq)
				}
			}
			if got := len(*l.segs.Load()); got < 3 {
				t.Fatalf("%d segments, want several", got)
			}
			got, err := readAll(t, l, 0)
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, want)
			if l.Tip() != want[len(want)-1].Seq {
				t.Fatalf("tip %d, want %d", l.Tip(), want[len(want)-1].Seq)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, dir, testOpts(c, mode))
			defer l.Close()
			got, err = readAll(t, l, 0)
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, want)
			more := appendN(t, l, 300, 10, 100, 3)
			if more[0].Seq <= want[len(want)-1].Seq {
				t.Fatalf("after reopen seq %d does not exceed %d", more[0].Seq, want[len(want)-1].Seq)
			}
			// Read from the middle.
			mid := want[150].Seq
			got, err = readAll(t, l, mid)
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, append(append([]Record(nil), want[150:]...), more...))
		})
	}
}
