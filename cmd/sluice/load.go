package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/sluice-streams/sluice/tools/load"
)

// runLoad puts records into a stream, reads them back, and reports throughput, errors,
// latency percentiles and whether every acknowledged record was read exactly once; the run
// itself is package load's.
func runLoad(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("load", "[flags]", stderr)
	endpoint := fs.String("endpoint", "http://127.0.0.1:4567", "server `URL`")
	streamName := fs.String("stream", "sluice-load", "stream `name`; created if missing")
	shards := fs.Int("shards", 4, "shard `count` of a stream the run creates")
	protocol := fs.String("protocol", "native", "`protocol`: native (sluice's client) or kinesis (the Kinesis JSON API)")
	producers := fs.Int("producers", 4, "`number` of concurrent producers")
	consumers := fs.Int("consumers", 1, "`number` of consumer groups, each reading and verifying the whole stream; 0 only produces")
	fanOut := fs.String("fan-out", "shared", "how consumer groups read (`mode`): shared (polling) or enhanced (enhanced fan-out)")
	size := fs.String("size", "1KiB", "record data `size`: fixed (1KiB), uniform:MIN-MAX (uniform:100B-10KiB) or normal:MEAN,STDDEV (normal:1KiB,256B)")
	rate := fs.Float64("rate", 0, "total put `rate` in records/s; 0 puts as fast as records are acknowledged")
	duration := fs.Duration("duration", 10*time.Second, "how long to put records (`time`); with --records alone, no time limit")
	records := fs.Uint64("records", 0, "stop after `N` records (with --duration too: whichever comes first)")
	keys := fs.Int("keys", 1000, "`number` of distinct partition keys")
	drain := fs.Duration("drain-timeout", 30*time.Second, "once putting stops, how long (`time`) to wait for the last acknowledgements, then for the groups to read everything")
	readsPerSec := fs.Float64("reads-per-sec", 5, "`N` shared reads of each shard per group per second (Kinesis allows 5, shared by all groups)")
	seed := fs.Uint64("seed", 0, "`seed` of sizes, keys and data; 0 picks one (the report tells it)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if status, stop := parseFlags(fs, args); stop {
		return status
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "sluice load: "+format+"\n", a...)
		return exitUsage
	}
	cfg := load.Config{Endpoint: *endpoint, Stream: *streamName, Shards: *shards, Producers: *producers,
		Consumers: *consumers, Rate: *rate, Duration: *duration, Records: *records, Keys: *keys,
		DrainTimeout: *drain, ReadsPerSecond: *readsPerSec, Seed: *seed}
	if set["records"] && !set["duration"] {
		cfg.Duration = 0
	}
	var err error
	if cfg.Protocol, err = load.ParseProtocol(*protocol); err != nil {
		return usageErr("--protocol: %v", err)
	}
	if cfg.FanOut, err = load.ParseFanOut(*fanOut); err != nil {
		return usageErr("--fan-out: %v", err)
	}
	if cfg.Size, err = load.ParseSize(*size); err != nil {
		return usageErr("--size: %v", err)
	}
	switch {
	case *shards < 1, *producers < 1, *consumers < 0, *keys < 1:
		return usageErr("--shards, --producers and --keys must be at least 1, --consumers at least 0")
	case *duration < 0:
		return usageErr("--duration must not be negative")
	case *drain <= 0:
		return usageErr("--drain-timeout must be positive")
	case !(*readsPerSec > 0):
		return usageErr("--reads-per-sec must be positive")
	}
	var line *progressLine
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		line = &progressLine{w: stderr}
		cfg.Progress = line.update
	}

	// A first SIGINT or SIGTERM stops putting; the run still drains and reports. A second
	// one kills the process as usual.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	rep, err := load.Run(ctx, cfg)
	if line != nil {
		line.clear()
	}
	if err != nil {
		fmt.Fprintf(stderr, "sluice load: %v\n", err)
		if errors.Is(err, load.ErrConfig) {
			return exitUsage
		}
		return exitError
	}
	if *asJSON {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "sluice load: %v\n", err)
			return exitError
		}
		stdout.Write(append(b, '\n'))
	} else {
		writeLoadReport(stdout, rep)
	}
	if !rep.Passed() {
		for _, p := range rep.Problems {
			fmt.Fprintf(stderr, "sluice load: %s\n", p)
		}
		return exitError
	}
	return exitOK
}

// isTerminal reports whether f is a character device: a terminal (or /dev/null, which
// takes a progress line harmlessly).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressLine rewrites one line of a terminal with a run's progress.
type progressLine struct {
	w     io.Writer
	last  load.Progress
	drawn bool
}

func (l *progressLine) update(p load.Progress) {
	io.WriteString(l.w, "\r"+formatProgress(p, l.last)+"\x1b[K")
	l.last, l.drawn = p, true
}

func (l *progressLine) clear() {
	if l.drawn {
		io.WriteString(l.w, "\r\x1b[K")
	}
}

// formatProgress is the progress line for p, with rates measured since prev.
func formatProgress(p, prev load.Progress) string {
	dt := (p.Elapsed - prev.Elapsed).Seconds()
	var rps, mbps float64
	if dt > 0 {
		rps = float64(p.Acknowledged-prev.Acknowledged) / dt
		mbps = float64(p.Bytes-prev.Bytes) / dt / 1e6
	}
	phase := ""
	if p.Draining {
		phase = "  draining"
	}
	return fmt.Sprintf("%6.1fs  acked %s  %s records/s  %s MB/s  put p99 %s  e2e p99 %s  consumed %s  failed %s  throttled %s%s",
		p.Elapsed.Seconds(), num(float64(p.Acknowledged)), num(float64(int64(rps))), num2(mbps),
		ms(p.PutP99), ms(p.EndToEndP99), num(float64(p.Consumed)), num(float64(p.Failed)), num(float64(p.Throttled)), phase)
}

// ms formats a duration in milliseconds with 2 decimals.
func ms(d time.Duration) string { return num2(float64(d)/float64(time.Millisecond)) + " ms" }

// writeLoadReport prints a run's report as tables.
func writeLoadReport(w io.Writer, r *load.Report) {
	groups := fmt.Sprintf("%d %s consumer group", r.Consumers, r.FanOut)
	if r.Consumers != 1 {
		groups += "s"
	}
	created := ""
	if r.Created {
		created = ", created"
	}
	rate := "unlimited rate"
	if r.Rate > 0 {
		rate = num(r.Rate) + " records/s"
	}
	fmt.Fprintf(w, "sluice load: %s protocol, %d producers, %s\n", r.Protocol, r.Producers, groups)
	fmt.Fprintf(w, "stream %s (%d shards%s) at %s; records %s, %s keys, %s; seed %d, run %s\n",
		r.Stream, r.Shards, created, r.Endpoint, r.Size, num(float64(r.Keys)), rate, r.Seed, r.Run)

	p := r.Put
	fmt.Fprintln(w, "\nPut")
	writeTable(w, "ll", [][]string{
		{"records", fmt.Sprintf("%s attempted, %s acknowledged, %s failed", num(float64(p.Attempted)), num(float64(p.Acknowledged)), num(float64(p.Failed)))},
		{"data", fmt.Sprintf("%s MB acknowledged (record data, keys not counted)", num2(float64(p.Bytes)/1e6))},
		{"time", fmt.Sprintf("%s s, first put to last acknowledgement", num2(p.Seconds))},
		{"throughput", fmt.Sprintf("%s records/s, %s MB/s", num2(p.RecordsPerSec), num2(p.MBPerSec))},
		{"requests", num(float64(p.Requests))},
		{"retried", fmt.Sprintf("%s record attempts, %s of them throttled", num(float64(p.Retried)), num(float64(p.Throttled)))},
	})

	var errRows [][]string
	addErrors := func(what string, m map[string]uint64) {
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			errRows = append(errRows, []string{what, k, num(float64(m[k]))})
		}
	}
	addErrors("records failed", p.Errors)
	addErrors("put requests retried", p.RequestErrors)
	for _, g := range r.Groups {
		addErrors("group "+g.Name+" reads retried", g.ReadErrors)
	}
	if len(errRows) > 0 {
		fmt.Fprintln(w, "\nErrors")
		writeTable(w, "llr", append([][]string{{"what", "error", "count"}}, errRows...))
	}

	fmt.Fprintln(w, "\nLatency (ms)")
	lat := func(name string, l load.Latency) []string {
		f := func(v float64) string { return num2(v) }
		return []string{name, num(float64(l.Count)), f(l.P50), f(l.P99), f(l.P999), f(l.Max)}
	}
	rows := [][]string{{"", "count", "p50", "p99", "p99.9", "max"}, lat("put → acknowledged", p.Latency)}
	for _, g := range r.Groups {
		rows = append(rows, lat("put → read by group "+g.Name, g.Latency))
	}
	writeTable(w, "lrrrrr", rows)
	for _, g := range r.Groups {
		if g.Unmeasured > 0 {
			fmt.Fprintf(w, "  group %s read %s records under 16 bytes: verified, not timed\n", g.Name, num(float64(g.Unmeasured)))
		}
	}

	if len(r.Groups) == 0 {
		fmt.Fprintln(w, "\nVerification: none (no consumer groups)")
	} else {
		fmt.Fprintln(w, "\nVerification")
		rows := [][]string{{"group", "consumed", "missing", "duplicated", "unexpected", "drained in"}}
		for _, g := range r.Groups {
			drained := "not complete"
			if g.Complete {
				drained = num2(g.DrainSeconds) + " s"
			}
			rows = append(rows, []string{g.Name, num(float64(g.Consumed)), num(float64(g.Missing)),
				num(float64(g.Duplicated)), num(float64(g.Unexpected)), drained})
		}
		writeTable(w, "lrrrrr", rows)
		fmt.Fprintln(w, "  (unexpected: read but not acknowledged by this run; earlier runs' records, or puts sent again after a lost answer)")
	}

	fmt.Fprintln(w)
	switch {
	case !r.Passed():
		fmt.Fprintln(w, "FAILED:")
		for _, s := range r.Problems {
			fmt.Fprintf(w, "  - %s\n", s)
		}
	case len(r.Groups) > 0:
		fmt.Fprintf(w, "OK: each of the %s acknowledged records was read exactly once by each of the %d groups.\n",
			num(float64(r.Put.Acknowledged)), len(r.Groups))
	default:
		fmt.Fprintf(w, "OK: %s records acknowledged (not read back: no consumer groups).\n", num(float64(r.Put.Acknowledged)))
	}
}
