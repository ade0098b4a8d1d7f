package jsonscan

import (
	"encoding/base64"
	"fmt"
	"testing"
)

// BenchmarkBase64 decodes a JSON string of base64 (a record's Data in a PutRecords body)
// with Scanner.Base64 and, for comparison, with Str followed by the standard library's
// decoder, which is what Base64 does for a string it cannot take the fast way. Bytes are
// decoded bytes.
func BenchmarkBase64(b *testing.B) {
	for _, size := range []int{100, 1024} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i * 7)
		}
		doc := []byte(`"` + base64.StdEncoding.EncodeToString(data) + `"`)
		dst := make([]byte, 0, size+3)
		b.Run(fmt.Sprintf("Base64/%dB", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var s Scanner
			for b.Loop() {
				s.Reset(doc)
				if out, _, err := s.Base64(dst, nil); err != nil || len(out) != size {
					b.Fatal(err, s.Err())
				}
			}
		})
		b.Run(fmt.Sprintf("StrStdlib/%dB", size), func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var s Scanner
			for b.Loop() {
				s.Reset(doc)
				raw, _ := s.Str(nil)
				if n, err := base64.StdEncoding.Decode(dst[:cap(dst)], raw); err != nil || n != size {
					b.Fatal(err, s.Err())
				}
			}
		})
	}
}
