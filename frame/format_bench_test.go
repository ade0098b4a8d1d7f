package frame

import (
	"fmt"
	"testing"
)

// BenchmarkAppend and BenchmarkDecode measure the codec alone, per frame, over record sizes;
// b.SetBytes counts the frame's bytes. Both must report 0 allocs/op.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{100, 1 << 10, 64 << 10} {
		r := Record{Seq: 1, Time: 2, Key: []byte("partition-key-0001"), Data: payload(size, size)}
		buf := make([]byte, 0, Size(len(r.Key), len(r.Data)))
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			b.SetBytes(int64(cap(buf)))
			b.ReportAllocs()
			for b.Loop() {
				buf = Append(buf[:0], &r)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, size := range []int{100, 1 << 10, 64 << 10} {
		f := Append(nil, &Record{Seq: 1, Time: 2, Key: []byte("partition-key-0001"), Data: payload(size, size)})
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			b.SetBytes(int64(len(f)))
			b.ReportAllocs()
			var sink int
			for b.Loop() {
				r, n, err := Decode(f)
				if err != nil || n != len(f) {
					b.Fatalf("Decode: n %d, %v", n, err)
				}
				sink += len(r.Data)
			}
			if sink == 0 {
				b.Fatal("decoded no data")
			}
		})
	}
}
