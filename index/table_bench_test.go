package index

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Benchmarks of the sparse index: lookups in a table of a full 128 MiB segment at the default
// 4 KiB interval (32k entries), and the writer's per-frame Observe call.
//
//	go test -run='^$' -bench=. -benchtime=200ms ./index
//
// SetBytes is not meaningful here: the figures are ns/op and allocs/op (which must be 0).

const (
	benchEntries  = 32 << 10
	benchInterval = 4 << 10
	benchBaseTime = 1_700_000_000_000_000_000
	benchQueries  = 1 << 12 // a power of two
)

// benchTable returns a table of benchEntries entries: sequence numbers 1, 5, 9 … (four
// records per entry), times 1 µs apart, offsets benchInterval apart.
func benchTable(b *testing.B) Table {
	bld := NewBuilder(benchInterval, benchEntries*benchInterval)
	for i := range benchEntries {
		bld.Observe(Entry{Seq: 1 + 4*uint64(i), Time: benchBaseTime + int64(i)*1000, Off: 4096 + int64(i)*benchInterval})
	}
	t := bld.Table()
	if t.Len() != benchEntries {
		b.Fatalf("table has %d entries, want %d", t.Len(), benchEntries)
	}
	return t
}

// benchSeed is the fixed seed of the query mixes, so that every run asks the same questions.
const benchSeed = 20240601

// BenchmarkSeekSeq looks up sequence numbers: uniformly random over the table (a consumer
// starting anywhere) and at the tip (a consumer keeping up).
func BenchmarkSeekSeq(b *testing.B) {
	t := benchTable(b)
	last := t.At(t.Len() - 1).Seq
	r := rand.New(rand.NewPCG(benchSeed, 1))
	random := make([]uint64, benchQueries)
	for i := range random {
		random[i] = 1 + r.Uint64N(last+3)
	}
	tip := make([]uint64, benchQueries)
	for i := range tip {
		tip[i] = last + uint64(i%4)
	}
	for _, c := range []struct {
		name string
		q    []uint64
	}{{"random", random}, {"tip", tip}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var sink int64
			i := 0
			for b.Loop() {
				e, ok := t.SeekSeq(c.q[i&(benchQueries-1)])
				if !ok {
					b.Fatal("no entry")
				}
				sink += e.Off
				i++
			}
			_ = sink
		})
	}
}

// BenchmarkSeekTime looks up uniformly random times over the table.
func BenchmarkSeekTime(b *testing.B) {
	t := benchTable(b)
	r := rand.New(rand.NewPCG(benchSeed, 2))
	q := make([]int64, benchQueries)
	for i := range q {
		q[i] = benchBaseTime + 1 + r.Int64N(int64(benchEntries)*1000)
	}
	b.ReportAllocs()
	var sink int64
	i := 0
	for b.Loop() {
		e, ok := t.SeekTime(q[i&(benchQueries-1)])
		if !ok {
			b.Fatal("no entry")
		}
		sink += e.Off
		i++
	}
	_ = sink
}

// BenchmarkPrefix measures Table.Prefix, which every read of a segment calls (a second
// binary search) before SeekSeq.
func BenchmarkPrefix(b *testing.B) {
	t := benchTable(b)
	r := rand.New(rand.NewPCG(benchSeed, 3))
	q := make([]int64, benchQueries)
	for i := range q {
		q[i] = 4096 + r.Int64N(benchEntries*benchInterval)
	}
	b.ReportAllocs()
	var sink int
	i := 0
	for b.Loop() {
		sink += t.Prefix(q[i&(benchQueries-1)]).Len()
		i++
	}
	_ = sink
}

// BenchmarkObserve measures Builder.Observe as the writer calls it: once per frame, frames of
// 100 B, 1 KiB and 64 KiB records (8-byte keys), so that an entry is recorded every 29th, 4th
// and every frame. An op is one Observe. A fresh builder replaces a full one with the timer
// stopped.
func BenchmarkObserve(b *testing.B) {
	const span = 128 << 20
	for _, frame := range []int64{144, 1064, 65568} {
		b.Run(fmt.Sprintf("frame=%dB", frame), func(b *testing.B) {
			b.ReportAllocs()
			bld := NewBuilder(benchInterval, span)
			off, seq := int64(4096), uint64(1)
			for b.Loop() {
				if off+frame > span {
					b.StopTimer()
					bld = NewBuilder(benchInterval, span)
					off = 4096
					b.StartTimer()
				}
				bld.Observe(Entry{Seq: seq, Time: benchBaseTime + int64(seq), Off: off})
				off += frame
				seq++
			}
		})
	}
}
