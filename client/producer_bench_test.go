//go:build linux

// Linux only: these tests run the in-process server of server_test.go.

package client

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/stream"
)

// BenchmarkProducer puts 100-byte records through a Producer to a real server in the same
// process (limits off), both sharing the machine, and reports records a second. Keys cycle
// over 10,000 values, so the per-key gate of the ordered mode rarely holds a record back.
// The aggregated modes pack them into KPL aggregated records (ProducerConfig.Aggregate).
func BenchmarkProducer(b *testing.B) {
	for _, mode := range []struct {
		name      string
		unordered bool
		callback  bool
		aggregate bool
	}{{"ordered/future", false, false, false}, {"ordered/callback", false, true, false}, {"unordered/callback", true, true, false},
		{"aggregated/ordered/callback", false, true, true}, {"aggregated/unordered/callback", true, true, true}} {
		b.Run(mode.name, func(b *testing.B) {
			ts := startServer(b, stream.Options{Limits: stream.Limits{Off: true}})
			ts.createStream(b, "s", 4)
			c := ts.client(b, Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			p, err := c.NewProducer(ctx, "s", ProducerConfig{Unordered: mode.unordered, Aggregate: mode.aggregate})
			if err != nil {
				b.Fatal(err)
			}
			keys := make([]string, 10000)
			for i := range keys {
				keys[i] = "key-" + strconv.Itoa(i)
			}
			data := make([]byte, 100)
			ignore := func(Outcome) {}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				if mode.callback {
					err = p.PutFunc(ctx, keys[i%len(keys)], data, ignore)
				} else {
					_, err = p.Put(ctx, keys[i%len(keys)], data)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			if err := p.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
		})
	}
}
