package kpl

import (
	"fmt"
	"testing"
)

// BenchmarkAggregate encodes and decodes aggregates of n user records of size bytes each,
// with 16 distinct partition keys; SetBytes counts the user data.
func BenchmarkAggregate(b *testing.B) {
	for _, c := range []struct{ n, size int }{{10, 100}, {100, 100}, {1000, 512}} {
		data := make([]byte, c.size)
		keys := make([]string, 16)
		for i := range keys {
			keys[i] = fmt.Sprintf("partition-key-%d", i)
		}
		var bl Builder
		fill := func() {
			bl.Reset()
			for i := range c.n {
				bl.Add(keys[i%len(keys)], "", data)
			}
		}
		fill()
		agg := bl.AppendTo(nil)
		name := fmt.Sprintf("records=%d/size=%d", c.n, c.size)
		b.Run("encode/"+name, func(b *testing.B) {
			b.SetBytes(int64(c.n * c.size))
			b.ReportAllocs()
			buf := make([]byte, 0, len(agg))
			for b.Loop() {
				fill()
				buf = bl.AppendTo(buf[:0])
			}
		})
		b.Run("decode/"+name, func(b *testing.B) {
			b.SetBytes(int64(c.n * c.size))
			b.ReportAllocs()
			var d Decoder
			for b.Loop() {
				recs, err := d.Decode(agg)
				if err != nil || len(recs) != c.n {
					b.Fatal(len(recs), err)
				}
			}
		})
	}
}
