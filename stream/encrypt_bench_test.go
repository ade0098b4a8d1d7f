package stream

import (
	"fmt"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/segment"
)

// BenchmarkEncryption puts batches of 500 records and gets them back 500 at a time, of
// 100 B and 1 KiB, into a one-shard stream with encryption off (plain) and on (kms):
// what sealing and opening cost beside the zero-copy plaintext path, in one run. Limits
// off, durability none; bytes are the records' data.
func BenchmarkEncryption(b *testing.B) {
	for _, size := range []int{100, 1024} {
		for _, enc := range []string{"plain", "kms"} {
			setup := func(b *testing.B) (*Engine, []PutEntry) {
				c := &clock{t: time.Unix(1_700_000_000, 0)}
				e, err := Open(Options{Dir: b.TempDir(), Now: c.Now, Limits: Limits{Off: true, Factor: 1},
					Durability: segment.Durability{Mode: segment.None}})
				if err != nil {
					b.Fatal(err)
				}
				if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
					b.Fatal(err)
				}
				if enc == "kms" {
					if err := e.SetEncryption("s", "KMS", "alias/aws/kinesis"); err != nil {
						b.Fatal(err)
					}
				}
				batch := make([]PutEntry, 500)
				for i := range batch {
					batch[i] = PutEntry{PartitionKey: fmt.Sprintf("key-%08d", i), Data: make([]byte, size)}
				}
				return e, batch
			}
			b.Run(fmt.Sprintf("put/size=%d/%s", size, enc), func(b *testing.B) {
				e, batch := setup(b)
				defer e.Close()
				b.ReportAllocs()
				b.SetBytes(int64(len(batch) * size))
				for b.Loop() {
					res, err := e.PutRecords("s", batch)
					if err != nil || res[0].Err != nil {
						b.Fatal(err, res[0].Err)
					}
				}
			})
			b.Run(fmt.Sprintf("get/size=%d/%s", size, enc), func(b *testing.B) {
				e, batch := setup(b)
				defer e.Close()
				for range 100 { // 50,000 records
					if _, err := e.PutRecords("s", batch); err != nil {
						b.Fatal(err)
					}
				}
				start, err := e.GetShardIterator(IteratorInput{Stream: "s", Shard: 0, Type: TrimHorizon})
				if err != nil {
					b.Fatal(err)
				}
				it := start
				b.ReportAllocs()
				b.SetBytes(int64(len(batch) * size))
				for b.Loop() {
					r, err := e.GetRecords(it, len(batch))
					if err != nil {
						b.Fatal(err)
					}
					if r.Records.Count == 0 {
						it = start
					} else {
						it = r.NextIterator
					}
					r.Release()
				}
			})
		}
	}
}
