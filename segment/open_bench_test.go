package segment

import (
	"testing"
)

// BenchmarkOpenSealed measures Open of a log with 1,000 sealed segments after a clean close
// and after a crash. Open reads the directory listing, log.meta and the newest segment only,
// so its cost must not grow with the number of sealed segments (PERFORMANCE.md: ≤ 1 s).
func BenchmarkOpenSealed(b *testing.B) {
	for _, clean := range []bool{true, false} {
		name := "crashed"
		if clean {
			name = "clean"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			c := newClock()
			o := Options{Now: c.Now, Durability: Durability{Mode: None}, SegmentSize: MinSegmentSize}
			l := mustOpen(b, dir, o)
			data := make([]byte, 60<<10) // one record fills a segment
			for range 1000 {
				if err := l.Append([]Record{{Key: []byte("k"), Data: data}}); err != nil {
					b.Fatal(err)
				}
			}
			if clean {
				if err := l.Close(); err != nil {
					b.Fatal(err)
				}
			} else {
				abandon(l)
			}
			if n := len(segFiles(b, dir)); n < 1000 {
				b.Fatalf("%d segments", n)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				l, err := Open(dir, o)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if clean {
					l.Close() // stays clean for the next round
				} else {
					abandon(l)
				}
				b.StartTimer()
			}
		})
	}
}
