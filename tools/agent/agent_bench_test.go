//go:build linux

package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkAgent measures a flow end to end with the Kinesis Agent's default buffer
// settings: a file of 100,000 lines of 100 bytes, read from its start, put into a stream of
// 2 shards of an in-process server (no fsync on the server; the agent's checkpoint is
// synced before every batch, of up to 32 calls) until every record is acknowledged.
// lines/s is the figure.
func BenchmarkAgent(b *testing.B) {
	const lineCount = 100_000
	ts := startServer(b)
	dir, _ := logDir(b)
	var text strings.Builder
	for i := range lineCount {
		fmt.Fprintf(&text, "%08d %s\n", i, strings.Repeat("x", 90))
	}
	path := filepath.Join(dir, "app.log")
	if err := os.WriteFile(path, []byte(text.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(text.Len()))
	b.ReportAllocs()
	var busy time.Duration
	for i := range b.N {
		b.StopTimer()
		stream := fmt.Sprintf("s%d", i)
		ts.createStream(b, stream, 2)
		fl := flowOf(stream, path)
		fl.MaxBufferAge, fl.PollInterval = defaultBufferAge, defaultPollInterval
		ckpt := filepath.Join(b.TempDir(), "agent.checkpoint")
		b.StartTimer()
		start := time.Now()
		a := startAgent(b, ts, ckpt, fl)
		for a.Stats()[0].RecordsSent < lineCount {
			time.Sleep(time.Millisecond) // polling the agent's progress
		}
		busy += time.Since(start)
		b.StopTimer()
		a.stop(b)
		b.StartTimer()
	}
	b.ReportMetric(float64(lineCount*b.N)/busy.Seconds(), "lines/s")
}
