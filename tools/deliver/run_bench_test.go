//go:build linux

package deliver

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
)

// BenchmarkDeliver measures delivery end to end: a stream of 2 shards on an in-process
// server without limits, on loopback, holding SLUICE_DELIVER_RECORDS records (100,000 by
// default) of 1 KiB of JSON-like text, is delivered from TRIM_HORIZON by a new Delivery to
// a directory and to an in-process S3 (gofakes3, in memory), UNCOMPRESSED and GZIP, with
// BufferingHints of 5 MiB and 0 s (an object is stored when it reaches 5 MiB and at the
// end of each read, so the last record is stored once it is read). An op is one delivery
// of the whole stream, from Run to the last record stored; bytes are record bytes.
func BenchmarkDeliver(b *testing.B) {
	const size = 1024
	n := 100_000
	if s := os.Getenv("SLUICE_DELIVER_RECORDS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	_, c := startServer(b)
	ctx := context.Background()
	arn := createStream(b, c, "s", 2)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < n; i += 500 {
		entries := make([]client.PutEntry, min(500, n-i))
		for j := range entries {
			entries[j] = client.PutEntry{Key: strconv.Itoa(i + j), Data: benchRecord(rng, i+j, size)}
		}
		res, err := c.PutRecords(ctx, "s", entries)
		for _, r := range res {
			err = cmp.Or(err, r.Err)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, dest := range []string{"dir", "s3"} {
		for _, format := range []string{"UNCOMPRESSED", "GZIP"} {
			b.Run(dest+"/"+format, func(b *testing.B) {
				b.SetBytes(int64(n * size))
				b.ReportAllocs()
				var st Stats
				b.StopTimer() // each op times itself from Run to the last record stored
				for range b.N {
					dst := newDestination(b, dest, "bench", arn,
						fmt.Sprintf(`"CompressionFormat": %q, "BufferingHints": {"SizeInMBs": 5, "IntervalInSeconds": 0},`, format))
					d, err := New(c, Options{Config: dst.cfg, Store: dst.store, CheckpointFile: filepath.Join(dst.dir, "checkpoint"), Start: client.TrimHorizon})
					if err != nil {
						b.Fatal(err)
					}
					rctx, cancel := context.WithCancel(ctx)
					done := make(chan error, 1)
					b.StartTimer()
					go func() { done <- d.Run(rctx) }()
					for d.Stats().Records < uint64(n) {
						time.Sleep(time.Millisecond)
					}
					b.StopTimer()
					cancel()
					if err := <-done; err != context.Canceled {
						b.Fatalf("Run: %v", err)
					}
					if st = d.Stats(); st.Records != uint64(n) {
						b.Fatalf("%d records stored, want %d", st.Records, n)
					}
				}
				b.ReportMetric(float64(st.Objects), "objects")
				b.ReportMetric(float64(st.StoredBytes)/float64(st.Bytes), "ratio")
			})
		}
	}
}
