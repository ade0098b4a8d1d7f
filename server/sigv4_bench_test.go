package server

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/internal/sigv4"
)

// BenchmarkSigV4Verify verifies signed Kinesis requests: a PutRecords body of 1 MiB (about
// 500 records of 1,560 bytes, 2,080 in base64) and a PutRecord of 100 bytes. Bytes are the
// body's. The body's SHA-256 is the one pass over it, so the 1 MiB case runs near
// crypto/sha256's speed, which BenchmarkSHA256 measures in the same run.
func BenchmarkSigV4Verify(b *testing.B) {
	data := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{'x'}, 1560))
	var big strings.Builder
	big.WriteString(`{"StreamName":"s","Records":[`)
	for i := 0; big.Len() < 1<<20-2200; i++ {
		if i > 0 {
			big.WriteByte(',')
		}
		big.WriteString(`{"PartitionKey":"k","Data":"` + data + `"}`)
	}
	big.WriteString(`]}`)
	for _, bc := range []struct {
		name, body string
	}{
		{"PutRecords_1MiB", big.String()},
		{"PutRecord_100B", `{"StreamName":"s","PartitionKey":"k","Data":"` + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{'x'}, 100)) + `"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := signed{body: bc.body}.request(b)
			v := testVerifier()
			if _, err := v.Authenticate(r); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := v.Authenticate(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSHA256 is the limit of BenchmarkSigV4Verify's large case: one SHA-256 pass over
// 1 MiB.
func BenchmarkSHA256(b *testing.B) {
	body := bytes.Repeat([]byte{'x'}, 1<<20)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		_ = sigv4.PayloadHash(body)
	}
}
