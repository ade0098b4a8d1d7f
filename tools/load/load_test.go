package load

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/server"
	"github.com/sluice-streams/sluice/stream"
)

// startServer runs a real sluice server (engine and HTTP front) on a loopback port for the
// test, with limits as given, and returns its endpoint.
func startServer(t testing.TB, limits stream.Limits) string {
	t.Helper()
	eng, err := stream.Open(stream.Options{Dir: t.TempDir(), Durability: segment.Durability{Mode: segment.None}, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		eng.Close()
		t.Fatal(err)
	}
	srv := server.New(eng, server.Options{})
	served := make(chan struct{})
	go func() {
		srv.Serve(ln)
		close(served)
	}()
	t.Cleanup(func() {
		srv.Shutdown()
		<-served
		eng.Close()
	})
	return "http://" + ln.Addr().String()
}

var noLimits = stream.Limits{Off: true, Factor: 1}

// testConfig is a small bounded run against endpoint, quick to drain.
func testConfig(endpoint string, p Protocol, f FanOut) Config {
	return Config{
		Endpoint: endpoint, Stream: "load", Shards: 4, Protocol: p, FanOut: f,
		Producers: 2, Consumers: 2, Records: 2000, Keys: 100,
		Size:           Size{Kind: Uniform, Min: 16, Max: 2048},
		Seed:           42,
		DrainTimeout:   20 * time.Second,
		ReadsPerSecond: 100, PollInterval: 10 * time.Millisecond,
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// checkReport checks the invariants of a clean run of n records: everything acknowledged,
// read exactly once by every group, every histogram holding one value per record.
func checkReport(t *testing.T, rep *Report, n uint64, groups int) {
	t.Helper()
	p := rep.Put
	if p.Attempted != n || p.Acknowledged != n || p.Failed != 0 || len(p.Errors) != 0 {
		t.Errorf("put: attempted %d acknowledged %d failed %d (%v), want %d, %d, 0", p.Attempted, p.Acknowledged, p.Failed, p.Errors, n, n)
	}
	if p.Latency.Count != int64(p.Acknowledged) {
		t.Errorf("put latency histogram holds %d values for %d acknowledged records", p.Latency.Count, p.Acknowledged)
	}
	if p.Bytes == 0 || p.Requests == 0 || p.Seconds <= 0 || p.RecordsPerSec <= 0 {
		t.Errorf("put figures missing: %+v", p)
	}
	if !(p.Latency.P50 <= p.Latency.P99 && p.Latency.P99 <= p.Latency.P999 && p.Latency.P999 <= p.Latency.Max) {
		t.Errorf("put percentiles out of order: %+v", p.Latency)
	}
	if len(rep.Groups) != groups {
		t.Fatalf("%d groups reported, want %d", len(rep.Groups), groups)
	}
	for _, g := range rep.Groups {
		if g.Missing != 0 || g.Duplicated != 0 || g.Unexpected != 0 || !g.Complete || g.Error != "" {
			t.Errorf("group %s: %+v", g.Name, g)
		}
		if g.Consumed != n || g.Bytes != p.Bytes {
			t.Errorf("group %s consumed %d records, %d bytes; want %d, %d", g.Name, g.Consumed, g.Bytes, n, p.Bytes)
		}
		if uint64(g.Latency.Count)+g.Unmeasured != g.Consumed {
			t.Errorf("group %s: %d timed + %d unmeasured != %d consumed", g.Name, g.Latency.Count, g.Unmeasured, g.Consumed)
		}
	}
	if !rep.Passed() {
		t.Errorf("problems: %q", rep.Problems)
	}
}

// TestRun puts 2,000 records with 2 producers and reads them with 2 groups, in both
// protocols and both fan-out modes, against a real server.
func TestRun(t *testing.T) {
	endpoint := startServer(t, noLimits)
	for _, p := range []Protocol{Native, Kinesis} {
		for _, f := range []FanOut{Shared, Enhanced} {
			t.Run(string(p)+"-"+string(f), func(t *testing.T) {
				cfg := testConfig(endpoint, p, f)
				cfg.Stream = "load-" + string(p) + "-" + string(f)
				rep, err := Run(testCtx(t), cfg)
				if err != nil {
					t.Fatal(err)
				}
				checkReport(t, rep, cfg.Records, cfg.Consumers)
				if !rep.Created || rep.Shards != 4 {
					t.Errorf("created %v with %d shards, want a new stream of 4", rep.Created, rep.Shards)
				}
				for _, g := range rep.Groups {
					if g.Unmeasured != 0 {
						t.Errorf("group %s: %d records unmeasured; all have a header", g.Name, g.Unmeasured)
					}
				}

				// The JSON form carries the same figures.
				b, err := json.Marshal(rep)
				if err != nil {
					t.Fatal(err)
				}
				var back Report
				if err := json.Unmarshal(b, &back); err != nil {
					t.Fatalf("%v\n%s", err, b)
				}
				if !reflect.DeepEqual(&back, rep) {
					t.Errorf("JSON round trip differs:\n got %+v\nwant %+v", back, *rep)
				}
				for _, field := range []string{`"acknowledged":2000`, `"p99Ms":`, `"missing":0`, `"duplicated":0`, `"size":"uniform:16B-2KiB"`} {
					if !strings.Contains(string(b), field) {
						t.Errorf("JSON lacks %s:\n%s", field, b)
					}
				}
			})
		}
	}
}

// TestRunSecondRun runs twice on one stream: the second run's groups start reading a few
// seconds before it, so they read records of the first run too, which count as unexpected
// and are not timed; nothing of the second run is missing.
func TestRunSecondRun(t *testing.T) {
	endpoint := startServer(t, noLimits)
	cfg := testConfig(endpoint, Native, Shared)
	cfg.Records, cfg.Consumers = 300, 1
	if _, err := Run(testCtx(t), cfg); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Created {
		t.Error("the second run created the stream again")
	}
	g := rep.Groups[0]
	// The first run's records are unexpected: all 300 of them unless the first run took
	// more than the few seconds the groups start early by.
	if g.Missing != 0 || g.Duplicated != 0 || g.Unexpected > 300 || g.Consumed != 300+g.Unexpected || g.Latency.Count != 300 {
		t.Errorf("second run: %+v", g)
	}
	if !rep.Passed() {
		t.Errorf("problems: %q", rep.Problems)
	}
}

// TestRunSmallRecords puts records from 0 to 20 bytes: those under 16 bytes have no header
// and are verified but not timed.
func TestRunSmallRecords(t *testing.T) {
	endpoint := startServer(t, noLimits)
	for _, p := range []Protocol{Native, Kinesis} {
		t.Run(string(p), func(t *testing.T) {
			cfg := testConfig(endpoint, p, Shared)
			cfg.Stream, cfg.Records, cfg.Consumers = "small-"+string(p), 500, 1
			cfg.Size = Size{Kind: Uniform, Min: 0, Max: 20}
			rep, err := Run(testCtx(t), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, rep, cfg.Records, 1)
			g := rep.Groups[0]
			if g.Unmeasured == 0 || g.Latency.Count == 0 {
				t.Errorf("want both timed and unmeasured records: %d timed, %d unmeasured", g.Latency.Count, g.Unmeasured)
			}
		})
	}
}

// TestRunThrottled loads one shard of a server at a twentieth of Kinesis's capacity (50
// records a second): producers are refused, retry, and end with every record
// acknowledged; the throttled attempts are counted.
func TestRunThrottled(t *testing.T) {
	endpoint := startServer(t, stream.Limits{Factor: 0.05})
	for _, p := range []Protocol{Native, Kinesis} {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel() // each waits on its own stream's limits
			cfg := testConfig(endpoint, p, Shared)
			cfg.Stream, cfg.Shards, cfg.Producers, cfg.Consumers, cfg.Records = "throttled-"+string(p), 1, 1, 0, 80
			cfg.Size = Size{Kind: Fixed, Min: 100, Max: 100}
			rep, err := Run(testCtx(t), cfg)
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, rep, cfg.Records, 0)
			if rep.Put.Throttled == 0 || rep.Put.Retried < rep.Put.Throttled {
				t.Errorf("throttled %d, retried %d: want refusals counted", rep.Put.Throttled, rep.Put.Retried)
			}
		})
	}
}

// TestRunProduceOnly bounds a run by duration and rate, with no consumer groups.
func TestRunProduceOnly(t *testing.T) {
	endpoint := startServer(t, noLimits)
	cfg := testConfig(endpoint, Kinesis, Shared)
	cfg.Records, cfg.Consumers, cfg.Duration, cfg.Rate = 0, 0, 300*time.Millisecond, 500
	var calls int
	cfg.Progress, cfg.ProgressInterval = func(Progress) { calls++ }, 50*time.Millisecond
	rep, err := Run(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// 2 producers at 250 records/s each for 0.3 s: records 0 to 74 of each are due before
	// the end, never more (fewer on a slow machine).
	if p := rep.Put; p.Acknowledged == 0 || p.Acknowledged > 150 || p.Attempted != p.Acknowledged {
		t.Errorf("attempted %d, acknowledged %d: want 1 to 150, all acknowledged", p.Attempted, p.Acknowledged)
	}
	if len(rep.Groups) != 0 || !rep.Passed() {
		t.Errorf("groups %v, problems %q", rep.Groups, rep.Problems)
	}
	if calls == 0 {
		t.Error("Progress was never called")
	}
}

// TestRunErrors checks what stops a run before it starts.
func TestRunErrors(t *testing.T) {
	endpoint := startServer(t, noLimits)
	tests := []struct {
		name string
		edit func(*Config)
		want error
	}{
		{"no bound", func(c *Config) { c.Records = 0 }, ErrConfig},
		{"bad stream name", func(c *Config) { c.Stream = "a/b" }, ErrConfig},
		{"bad protocol", func(c *Config) { c.Protocol = "grpc" }, ErrConfig},
		{"bad fan-out", func(c *Config) { c.FanOut = "both" }, ErrConfig},
		{"negative rate", func(c *Config) { c.Rate = -1 }, ErrConfig},
		{"too many producers", func(c *Config) { c.Producers = maxProducers + 1 }, ErrConfig},
		{"record over the stream's maximum", func(c *Config) { c.Size = Size{Kind: Fixed, Min: 2 << 20, Max: 2 << 20} }, ErrConfig},
		{"bad endpoint", func(c *Config) { c.Endpoint = "ftp://x" }, ErrConfig},
		{"no server", func(c *Config) { c.Endpoint = "http://127.0.0.1:1" }, ErrSetup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(endpoint, Native, Shared)
			tt.edit(&cfg)
			// Bounded: the client retries a refused connection for several seconds.
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			rep, err := Run(ctx, cfg)
			if !errors.Is(err, tt.want) || rep != nil {
				t.Errorf("Run: %v, %v; want %v", rep, err, tt.want)
			}
		})
	}
}
