package index

import (
	"encoding/binary"
	"math"
	"testing"
)

// FuzzTableLookup builds a sorted table from fuzz bytes, either by construction (entries
// whose sequence numbers rise, times never fall and offsets rise, each step taken from the
// bytes) or through a Builder fed with frames whose sizes come from the bytes, and checks
// SeekSeq, SeekTime and Prefix against linear scans for the fuzzed queries and for values
// around every entry.
func FuzzTableLookup(f *testing.F) {
	f.Add([]byte{}, false, uint16(0), uint64(0), int64(0), int64(0))
	f.Add([]byte{0, 0, 0}, false, uint16(0), uint64(5), int64(5), int64(5))
	f.Add([]byte{1, 0, 0, 1, 0, 0, 1, 0, 0}, false, uint16(0), uint64(1), int64(0), int64(8)) // equal times
	f.Add([]byte{9, 3, 40, 0, 0, 1, 200, 255, 255, 7, 0, 8}, false, uint16(7), uint64(1<<40), int64(-1), int64(4200))
	f.Add([]byte{1, 2, 3}, false, uint16(0), uint64(math.MaxUint64), int64(math.MaxInt64), int64(math.MaxInt64))
	f.Add([]byte{1, 2, 3}, false, uint16(0), uint64(math.MaxUint64-5), int64(math.MinInt64), int64(math.MinInt64))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0}, true, uint16(4096), uint64(1), int64(0), int64(4096))
	f.Add([]byte{127, 127, 127, 127, 127, 127, 127, 127, 127, 127}, true, uint16(100), uint64(3), int64(1000), int64(5000))
	f.Add([]byte{255, 0, 1, 0, 255, 3, 2, 1, 0, 0, 0, 9}, true, uint16(1), uint64(7), int64(1002), int64(4104))
	f.Add([]byte{5, 6, 7, 8, 9, 10, 11, 12}, true, uint16(0), uint64(0), int64(0), int64(0))

	f.Fuzz(func(t *testing.T, data []byte, builder bool, interval uint16, qseq uint64, qtime int64, qoff int64) {
		// checkLookups is quadratic in the entries: keep executions fast enough for the
		// fuzzer to minimise what it finds.
		if len(data) > 3*128 {
			data = data[:3*128]
		}
		var es []Entry
		var tab Table
		if builder {
			// Frames: each byte pair is a size (8 to 2048 bytes, 8-aligned) and a time step
			// with a sequence step in its top bits. The interval is at least 8 bytes so that
			// the builder (sized for the span) stays small.
			iv := int64(interval) + 8
			data = data[:min(len(data), 2*128)]
			var frames []Entry
			off, seq, ts := int64(4096), min(qseq, math.MaxUint64-1<<20), int64(1_700_000_000_000_000_000)
			for i := 0; i+1 < len(data); i += 2 {
				frames = append(frames, Entry{Seq: seq, Time: ts, Off: off})
				off += 8 * (1 + int64(data[i]))
				seq += 1 + uint64(data[i+1]>>6)
				ts += int64(data[i+1] & 0x3f)
			}
			b := NewBuilder(iv, off)
			for _, e := range frames {
				b.Observe(e)
			}
			es = modelObserve(iv, frames)
			tab = b.Table()
		} else {
			// Entries: each byte triple is a sequence step (>= 1), a time step (0: an
			// equal time) and an offset step (>= 8).
			seq := min(qseq, math.MaxUint64-1<<20)
			ts := max(min(qtime, math.MaxInt64-1<<20), math.MinInt64+1<<20)
			off := max(min(qoff, math.MaxInt64-1<<20), math.MinInt64+1<<20)
			for i := 0; i+2 < len(data); i += 3 {
				es = append(es, Entry{Seq: seq, Time: ts, Off: off})
				seq += 1 + uint64(data[i])
				ts += int64(data[i+1]) - 1
				if data[i+1] == 0 {
					ts++ // never fall
				}
				off += 8 * (1 + int64(data[i+2]))
			}
			var b []byte
			for _, e := range es {
				b = AppendEntry(b, e)
			}
			tab = TableOf(b)
		}
		checkLookups(t, tab, es)
		// The fuzzed queries themselves.
		if got, ok := tab.SeekSeq(qseq); func() bool { w, wok := linearSeekSeq(es, qseq); return w != got || wok != ok }() {
			t.Fatalf("SeekSeq(%d) = %+v, %v", qseq, got, ok)
		}
		if got, ok := tab.SeekTime(qtime); func() bool { w, wok := linearSeekTime(es, qtime); return w != got || wok != ok }() {
			t.Fatalf("SeekTime(%d) = %+v, %v", qtime, got, ok)
		}
		if got, want := tableEntries(tab.Prefix(qoff)), linearPrefix(es, qoff); !sameEntries(got, want) {
			t.Fatalf("Prefix(%d) = %v, want %v", qoff, got, want)
		}
		// The encoding round-trips.
		for i, e := range es {
			if binary.LittleEndian.Uint64(tab.Bytes()[i*EntrySize:]) != e.Seq {
				t.Fatalf("entry %d: encoded seq is not at offset 0", i)
			}
		}
	})
}
