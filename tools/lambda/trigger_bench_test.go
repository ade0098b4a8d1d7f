//go:build linux

package lambda

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
)

// BenchmarkTrigger measures records delivered per second from a two-shard stream to a
// function built with aws-lambda-go that decodes each event and returns, over BatchSize:
// each iteration is one record, from the trigger's start to the last record's success
// (reads are paced at 5 per shard per second, the Kinesis limit).
func BenchmarkTrigger(b *testing.B) {
	for _, batch := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			const size = 100
			ts := startServer(b)
			arn := ts.createStream(b, "bench", 2)
			data := make([]byte, size)
			entries := make([]client.PutEntry, 0, 500)
			for i := 0; i < b.N; {
				entries = entries[:0]
				for ; i < b.N && len(entries) < 500; i++ {
					entries = append(entries, client.PutEntry{Key: fmt.Sprintf("k%d", i), Data: data})
				}
				res, err := ts.c.PutRecords(context.Background(), "bench", entries)
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range res {
					if r.Err != nil {
						b.Fatal(r.Err)
					}
				}
			}
			m, _, err := ParseMapping(fmt.Appendf(nil, `{"EventSourceArn":%q,"StartingPosition":"TRIM_HORIZON","BatchSize":%d}`, arn, batch))
			if err != nil {
				b.Fatal(err)
			}
			trig, err := New(ts.c, Options{Mapping: m, CheckpointFile: filepath.Join(b.TempDir(), "cp"),
				Function: FunctionConfig{Handler: buildHandler(b)}, PollInterval: 10 * time.Millisecond})
			if err != nil {
				b.Fatal(err)
			}
			defer trig.Close()
			ctx, cancel := context.WithCancel(context.Background())
			stopped := make(chan error, 1)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			go func() { stopped <- trig.Run(ctx) }()
			for trig.Stats().Records < uint64(b.N) {
				select {
				case err := <-stopped:
					b.Fatal(err)
				case <-time.After(time.Millisecond):
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
			st := trig.Stats()
			b.ReportMetric(float64(st.Records)/float64(st.Invocations), "records/invocation")
			cancel()
			if err := <-stopped; !errors.Is(err, context.Canceled) {
				b.Fatal(err)
			}
		})
	}
}
