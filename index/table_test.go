package index

import (
	"fmt"
	"math"
	"sync"
	"testing"
)

// encodeEntries returns the table of es, which the caller keeps sorted.
func encodeEntries(es []Entry) Table {
	var b []byte
	for _, e := range es {
		b = AppendEntry(b, e)
	}
	return TableOf(b)
}

// The reference answers: plain scans over the entries.

func linearSeekSeq(es []Entry, seq uint64) (Entry, bool) {
	found, best := false, Entry{}
	for _, e := range es {
		if e.Seq <= seq {
			found, best = true, e
		}
	}
	return best, found
}

func linearSeekTime(es []Entry, ts int64) (Entry, bool) {
	found, best := false, Entry{}
	for _, e := range es {
		if e.Time < ts {
			found, best = true, e
		}
	}
	return best, found
}

func linearPrefix(es []Entry, off int64) []Entry {
	var out []Entry
	for _, e := range es {
		if e.Off < off {
			out = append(out, e)
		}
	}
	return out
}

func tableEntries(t Table) []Entry {
	out := make([]Entry, t.Len())
	for i := range out {
		out[i] = t.At(i)
	}
	return out
}

func sameEntries(a, b []Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// probes returns the values around every entry's fields, and the extremes.
func probes(es []Entry) (seqs []uint64, times, offs []int64) {
	seqs = []uint64{0, 1, math.MaxUint64}
	times = []int64{math.MinInt64, -1, 0, 1, math.MaxInt64}
	offs = []int64{math.MinInt64, -1, 0, 1, math.MaxInt64}
	for _, e := range es {
		for _, d := range []int64{-1, 0, 1} {
			seqs = append(seqs, e.Seq+uint64(d)) // wraps at the extremes, which are probes too
			if !(d < 0 && e.Time == math.MinInt64) && !(d > 0 && e.Time == math.MaxInt64) {
				times = append(times, e.Time+d)
			}
			if !(d < 0 && e.Off == math.MinInt64) && !(d > 0 && e.Off == math.MaxInt64) {
				offs = append(offs, e.Off+d)
			}
		}
	}
	return seqs, times, offs
}

// checkLookups compares SeekSeq, SeekTime and Prefix with the linear scans for every probe.
func checkLookups(t testing.TB, tab Table, es []Entry) {
	t.Helper()
	if got := tableEntries(tab); !sameEntries(got, es) {
		t.Fatalf("table holds %v, want %v", got, es)
	}
	seqs, times, offs := probes(es)
	for _, q := range seqs {
		got, gok := tab.SeekSeq(q)
		want, wok := linearSeekSeq(es, q)
		if got != want || gok != wok {
			t.Fatalf("SeekSeq(%d) = %+v, %v; linear scan %+v, %v (table %v)", q, got, gok, want, wok, es)
		}
	}
	for _, q := range times {
		got, gok := tab.SeekTime(q)
		want, wok := linearSeekTime(es, q)
		if got != want || gok != wok {
			t.Fatalf("SeekTime(%d) = %+v, %v; linear scan %+v, %v (table %v)", q, got, gok, want, wok, es)
		}
	}
	for i, q := range offs {
		p := tab.Prefix(q)
		k := 0
		for _, e := range es {
			if e.Off < q {
				k++
			}
		}
		if p.Len() != k || len(p.Bytes()) != k*EntrySize || (k > 0 && &p.Bytes()[0] != &tab.Bytes()[0]) {
			t.Fatalf("Prefix(%d) has %d entries, linear scan %d (or is not a prefix of the table)", q, p.Len(), k)
		}
		// The reader's pattern: seek inside a prefix (a sample, to stay fast under fuzzing).
		if i%3 != 0 {
			continue
		}
		for j := 0; j < len(seqs); j += max(1, len(seqs)/8) {
			s := seqs[j]
			got, gok := p.SeekSeq(s)
			want, wok := linearSeekSeq(es[:k], s)
			if got != want || gok != wok {
				t.Fatalf("Prefix(%d).SeekSeq(%d) = %+v, %v; linear scan %+v, %v", q, s, got, gok, want, wok)
			}
		}
	}
}

func TestTableLookups(t *testing.T) {
	cases := map[string][]Entry{
		"empty":          nil,
		"single":         {{Seq: 100, Time: 5000, Off: 4096}},
		"single at zero": {{Seq: 0, Time: 0, Off: 0}},
		"several": {
			{Seq: 10, Time: 100, Off: 4096}, {Seq: 20, Time: 200, Off: 8192},
			{Seq: 35, Time: 300, Off: 12288}, {Seq: 36, Time: 301, Off: 16384},
		},
		"duplicate times": {
			{Seq: 1, Time: 7, Off: 4096}, {Seq: 2, Time: 7, Off: 4104}, {Seq: 3, Time: 7, Off: 4112},
			{Seq: 9, Time: 8, Off: 9000}, {Seq: 10, Time: 8, Off: 9100}, {Seq: 11, Time: 12, Off: 9200},
		},
		"all times equal": {
			{Seq: 5, Time: 1_700_000_000_000_000_000, Off: 4096}, {Seq: 6, Time: 1_700_000_000_000_000_000, Off: 8192},
			{Seq: 7, Time: 1_700_000_000_000_000_000, Off: 12288},
		},
		"negative times": {{Seq: 1, Time: -300, Off: 10}, {Seq: 2, Time: -1, Off: 20}, {Seq: 3, Time: 0, Off: 30}, {Seq: 4, Time: 5, Off: 40}},
		"extremes": {
			{Seq: 0, Time: math.MinInt64, Off: 0}, {Seq: 1 << 63, Time: 0, Off: 1 << 40},
			{Seq: math.MaxUint64 - 1, Time: math.MaxInt64, Off: math.MaxInt64 - 1}, {Seq: math.MaxUint64, Time: math.MaxInt64, Off: math.MaxInt64},
		},
	}
	var many []Entry
	for i := range 1000 {
		many = append(many, Entry{Seq: uint64(1000 + 3*i), Time: int64(5000 + i/7), Off: int64(4096 + 4096*i + i%5)})
	}
	cases["1000 entries, runs of equal times"] = many
	for name, es := range cases {
		t.Run(name, func(t *testing.T) { checkLookups(t, encodeEntries(es), es) })
	}
}

func TestTableOf(t *testing.T) {
	es := []Entry{{Seq: 1, Time: 2, Off: 3}, {Seq: 4, Time: 5, Off: 6}}
	b := encodeEntries(es).Bytes()
	if len(b) != 2*EntrySize {
		t.Fatalf("two entries take %d bytes, want %d", len(b), 2*EntrySize)
	}
	for cut := range len(b) + 1 {
		tab := TableOf(b[:cut])
		if tab.Len() != cut/EntrySize || len(tab.Bytes()) != cut/EntrySize*EntrySize {
			t.Fatalf("TableOf(%d bytes): %d entries, %d bytes", cut, tab.Len(), len(tab.Bytes()))
		}
		if !sameEntries(tableEntries(tab), es[:cut/EntrySize]) {
			t.Fatalf("TableOf(%d bytes) = %v", cut, tableEntries(tab))
		}
	}
}

// modelObserve is the reference Builder: the first frame always gets an entry, and a later
// frame gets one when it starts at least interval bytes after the frame of the previous entry.
func modelObserve(interval int64, frames []Entry) []Entry {
	var out []Entry
	for _, e := range frames {
		if len(out) == 0 || e.Off >= out[len(out)-1].Off+interval {
			out = append(out, e)
		}
	}
	return out
}

// framesAt returns frames at the given offsets, numbered from seq 1 with times rising every
// third frame.
func framesAt(offs ...int64) []Entry {
	out := make([]Entry, len(offs))
	for i, off := range offs {
		out[i] = Entry{Seq: uint64(i + 1), Time: int64(1000 + i/3), Off: off}
	}
	return out
}

// framesEvery returns n frames of size bytes each from off.
func framesEvery(off, size int64, n int) []Entry {
	offs := make([]int64, n)
	for i := range offs {
		offs[i] = off + int64(i)*size
	}
	return framesAt(offs...)
}

func TestBuilderObserveSpacing(t *testing.T) {
	cases := []struct {
		name     string
		interval int64
		span     int64
		frames   []Entry
		want     []int64 // offsets of the entries
	}{
		{name: "no frames", interval: 4096, span: 65536},
		{name: "first frame always", interval: 4096, span: 65536, frames: framesAt(4096), want: []int64{4096}},
		{name: "first frame past the start", interval: 4096, span: 65536, frames: framesAt(9000, 9040), want: []int64{9000}},
		{name: "small frames: one entry per interval", interval: 4096, span: 65536, frames: framesEvery(4096, 1024, 20),
			want: []int64{4096, 8192, 12288, 16384, 20480}},
		{name: "frames not dividing the interval", interval: 4096, span: 65536, frames: framesEvery(4096, 1000, 30),
			want: []int64{4096, 9096, 14096, 19096, 24096, 29096}},
		{name: "an entry one byte short of the interval is skipped", interval: 100, span: 1000, frames: framesAt(0, 99, 100, 199, 200),
			want: []int64{0, 100, 200}},
		{name: "large frames: every frame", interval: 4096, span: 1 << 20, frames: framesEvery(4096, 5000, 10),
			want: []int64{4096, 9096, 14096, 19096, 24096, 29096, 34096, 39096, 44096, 49096}},
		{name: "a frame spanning intervals", interval: 100, span: 10000, frames: framesAt(0, 8, 16, 1000, 1008, 1100),
			want: []int64{0, 1000, 1100}},
		{name: "interval 1", interval: 1, span: 100, frames: framesEvery(0, 8, 10),
			want: []int64{0, 8, 16, 24, 32, 40, 48, 56, 64, 72}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBuilder(tc.interval, tc.span)
			if b.Interval() != tc.interval {
				t.Fatalf("Interval() = %d, want %d", b.Interval(), tc.interval)
			}
			for _, e := range tc.frames {
				b.Observe(e)
			}
			got := tableEntries(b.Table())
			var offs []int64
			for _, e := range got {
				offs = append(offs, e.Off)
			}
			if fmt.Sprint(offs) != fmt.Sprint(tc.want) {
				t.Fatalf("entries at %v, want %v", offs, tc.want)
			}
			if want := modelObserve(tc.interval, tc.frames); !sameEntries(got, want) {
				t.Fatalf("entries %v, model %v", got, want)
			}
			checkLookups(t, b.Table(), got)
		})
	}
}

// A builder sized for a span has room for every entry the spacing can produce inside it.
func TestBuilderCapacity(t *testing.T) {
	for _, span := range []int64{8, 4096, 65536, 65536 + 100, 1 << 20} {
		for _, interval := range []int64{1, 8, 100, 4096, 1 << 20} {
			if span/interval > 1<<17 {
				continue
			}
			b := NewBuilder(interval, span)
			// The densest frames: 8 bytes apart from offset 0 to the end of the span.
			frames := framesEvery(0, 8, int(span/8))
			for _, e := range frames {
				b.Observe(e)
			}
			if got, want := tableEntries(b.Table()), modelObserve(interval, frames); !sameEntries(got, want) {
				t.Fatalf("span %d interval %d: %d entries, want %d", span, interval, len(got), len(want))
			}
		}
	}
}

func TestNewBuilderRejectsBadInterval(t *testing.T) {
	for _, interval := range []int64{0, -1, math.MinInt64} {
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Fatalf("NewBuilder(%d, …) did not panic", interval)
				}
			}()
			NewBuilder(interval, 1<<20)
		}()
	}
}

// Readers may take the table while the writer observes: every table they see is a sorted
// prefix of the final one. Run with -race.
func TestBuilderConcurrentReaders(t *testing.T) {
	const n = 5000
	b := NewBuilder(64, n*40+64)
	frames := framesEvery(0, 40, n)
	want := modelObserve(64, frames)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				tab := b.Table()
				if tab.Len() > len(want) {
					errs <- fmt.Errorf("reader saw %d entries, at most %d expected", tab.Len(), len(want))
					return
				}
				for i := range tab.Len() {
					if e := tab.At(i); e != want[i] {
						errs <- fmt.Errorf("reader saw entry %d = %+v, want %+v", i, e, want[i])
						return
					}
				}
				if tab.Len() > 0 {
					last := want[tab.Len()-1]
					if e, ok := tab.SeekSeq(last.Seq); !ok || e != last {
						errs <- fmt.Errorf("SeekSeq(%d) on a published table = %+v, %v", last.Seq, e, ok)
						return
					}
				}
			}
		})
	}
	for _, e := range frames {
		b.Observe(e)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := tableEntries(b.Table()); !sameEntries(got, want) {
		t.Fatalf("final table has %d entries, want %d", len(got), len(want))
	}
}
