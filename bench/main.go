// Command bench measures sluice beside the limits of the machine it runs on, in the same run,
// and prints every figure with its limit and the ratio between them (the targets are in
// PERFORMANCE.md). The machine is shared and noisy: compare ratios, not absolute figures.
//
//	go run ./bench -suite storage|e2e|sweep|startup|cluster|cluster-scale|all [-json] [-report DIR] [-dir D] [-duration 2s] [-profile cpu|mem]
//
// Suites:
//
//	storage  the machine limits (write(2) bandwidth, memmove bandwidth, write + fdatasync
//	         throughput, the cost of touching new pages) and the segment package's append
//	         and read paths.
//	e2e      a server in this process on a loopback port, beside the limits of the network
//	         path (loopback TCP, fasthttp serving a mapped body, fasthttp small requests,
//	         fdatasync): the native protocol's put, get and subscribe, the Kinesis API's
//	         PutRecords, GetRecords and PutRecord latency (see e2e.go for each figure).
//	sweep    the e2e server's put paths over record sizes from 100 B to 100 KiB, and its
//	         latency paths at p50, p90, p99 and p99.9 (sweep.go), for the report's figures.
//	cluster  three `sluice serve` nodes replicating every shard by Raft, over an etcd embedded
//	         in this process, beside a single `sluice serve`, all with durability sync, in
//	         child processes: put records/s and records per CPU-second against the single
//	         node's, put latency against the single node's plus two loopback round trips and
//	         one fdatasync, failover after kill -9 of a shard's leader, and the CPU of three
//	         idle nodes holding 1,000 shards (cluster.go). It takes minutes.
//	cluster-scale
//	         five nodes (--replicas 3) holding 50 streams of 40 shards: the time to create
//	         and elect them, idle CPU and Raft messages, resident memory per node and per
//	         replica, put throughput of the Go client's Producer beside the cluster suite's
//	         three nodes, and the time to restore three replicas of every shard after kill -9
//	         of a node (clusterscale.go). It takes minutes.
//	startup  the time to open a data directory of 1,000 and 10,000 sealed segments after a
//	         clean stop and after a crash, and resident anonymous memory with 100 GiB of
//	         retained (sparse) data (startup.go).
//	all      storage, e2e, sweep and startup, one after the other; not the cluster suites, which
//	         kill and start processes for minutes: run them by name.
//
// -report DIR writes DIR/report.md (tables, figures, how to read them), the figures as PNGs
// and DIR/results.json (every sample): see report.go. A suite that fails does not stop the
// others; the report says which failed, and the exit status is 1.
//
// Each figure is the median of three runs of duration/3. The runs are interleaved: round one
// measures every limit and every path once, then round two, then round three, so that a
// noisy moment hits limits and paths alike.
//
// Files are written to a temporary directory under -dir (default bench/results/tmp under the
// current directory), on the file system under test, and removed at exit.
//
// -profile cpu or mem writes a profile of the whole run (github.com/pkg/profile) into the
// current directory; the cluster suite's nodes then write theirs there too, as
// cluster-NAME-node-N.cpu.pprof (or .mem.pprof) and single-node.cpu.pprof.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/pkg/profile"
)

const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// result is one line of the report.
type result struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Limit is what Value is compared with: a machine limit measured in the same run, or a
	// fixed target figure. For the limits themselves it is their own value (ratio 1).
	Limit   float64   `json:"limit"`
	Ratio   float64   `json:"ratio"`
	Target  *float64  `json:"target,omitempty"` // the ratio to reach, where there is one
	LimitOf string    `json:"limit_of,omitempty"`
	Samples []float64 `json:"samples"` // the runs the median was taken from
	Note    string    `json:"note,omitempty"`
	// LowerIsBetter marks latencies: the target is a ratio not to exceed.
	LowerIsBetter bool `json:"lower_is_better,omitempty"`
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	suite := fs.String("suite", "storage", "what to measure: storage, e2e, sweep, startup, cluster, cluster-scale or all (all but the cluster suites)")
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table (with several suites, the report's JSON)")
	reportDir := fs.String("report", "", "also write report.md, PNG figures and results.json into `DIR`")
	dir := fs.String("dir", "", "where to write files (a temporary directory is made inside it); default bench/results/tmp")
	duration := fs.Duration("duration", 2*time.Second, "time per figure, split over three runs")
	prof := fs.String("profile", "", "write a `cpu` or `mem` profile of the run into the current directory")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	switch *prof {
	case "":
	case "cpu":
		defer profile.Start(profile.CPUProfile, profile.ProfilePath("."), profile.Quiet).Stop()
	case "mem":
		defer profile.Start(profile.MemProfile, profile.ProfilePath("."), profile.Quiet).Stop()
	default:
		fmt.Fprintf(stderr, "bench: -profile %q: want cpu or mem\n", *prof)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bench: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	if *duration < 30*time.Millisecond {
		fmt.Fprintln(stderr, "bench: -duration must be at least 30ms")
		return exitUsage
	}
	type suiteDef struct {
		name  string
		fn    func(context.Context, config) ([]result, error)
		inAll bool
	}
	suites := []suiteDef{{"storage", storageSuite, true}, {"e2e", e2eSuite, true}, {"sweep", sweepSuite, true}, {"startup", startupSuite, true}, {"cluster", clusterSuite, false}, {"cluster-scale", clusterScaleSuite, false}}
	if *suite == "all" {
		suites = slices.DeleteFunc(suites, func(s suiteDef) bool { return !s.inAll })
	} else {
		i := slices.IndexFunc(suites, func(s suiteDef) bool { return s.name == *suite })
		if i < 0 {
			fmt.Fprintf(stderr, "bench: unknown suite %q (want storage, e2e, sweep, startup, cluster, cluster-scale or all)\n", *suite)
			return exitUsage
		}
		suites = suites[i : i+1]
	}

	base := *dir
	if base == "" {
		base = filepath.Join("bench", "results", "tmp")
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitError
	}
	work, err := os.MkdirTemp(base, *suite+"-")
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitError
	}
	defer os.RemoveAll(work)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep := &report{Date: time.Now(), Machine: thisMachine(), Command: strings.Join(append([]string{"bench"}, args...), " ")}
	failed := false
	for _, s := range suites {
		if ctx.Err() != nil {
			break
		}
		cfg := config{dir: filepath.Join(work, s.name), run: *duration / rounds, profile: *prof}
		if isTerminal(stderr) {
			cfg.progress = stderr
		}
		sr := suiteResults{Name: s.name}
		err := os.MkdirAll(cfg.dir, 0o755)
		if err == nil {
			sr.Results, err = s.fn(ctx, cfg)
		}
		if err != nil {
			fmt.Fprintf(stderr, "bench: %s: %v\n", s.name, err)
			sr.Error, failed = err.Error(), true
		}
		rep.Suites = append(rep.Suites, sr)
	}
	if ctx.Err() != nil {
		failed = true // interrupted: some suites did not run
	}
	var out any = rep
	if len(suites) == 1 && len(rep.Suites) == 1 {
		out = rep.Suites[0].Results
	}
	switch {
	case *asJSON && (len(suites) > 1 || !failed):
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return exitError
		}
	case !*asJSON:
		for _, s := range rep.Suites {
			if s.Error != "" {
				continue
			}
			if len(suites) > 1 {
				fmt.Fprintf(stdout, "== %s ==\n", s.Name)
			}
			printTable(stdout, s.Results)
		}
	}
	if *reportDir != "" {
		if err := writeReport(*reportDir, rep); err != nil {
			fmt.Fprintf(stderr, "bench: report: %v\n", err)
			return exitError
		}
		fmt.Fprintf(stderr, "bench: report written to %s\n", filepath.Join(*reportDir, "report.md"))
	}
	if failed {
		return exitError
	}
	return exitOK
}

// config is what a suite needs to know.
type config struct {
	dir      string        // a private directory, removed after the suite
	run      time.Duration // length of one run of one measurement
	progress io.Writer     // where to show which run is going on; nil for none
	profile  string        // -profile: "cpu", "mem" or empty
}

// isTerminal reports whether w is a character device (a terminal), where a progress line
// that rewrites itself reads well.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// rounds is the number of interleaved runs each figure is the median of.
const rounds = 3

// measurement is one figure: run measures it once for about d.
type measurement struct {
	name string
	unit string
	run  func(ctx context.Context, d time.Duration) (value float64, note string, err error)
}

// sampled is a measurement's runs.
type sampled struct {
	values []float64
	note   string // of the median run
}

func (s sampled) median() (float64, string) {
	v := slices.Clone(s.values)
	slices.Sort(v)
	if len(v) == 0 {
		return math.NaN(), ""
	}
	return v[len(v)/2], s.note
}

// runRounds runs every measurement once per round, in order, and keeps the samples.
func runRounds(ctx context.Context, cfg config, ms []measurement) (map[string]*sampled, error) {
	out := make(map[string]*sampled, len(ms))
	notes := make(map[string][]string, len(ms))
	for r := range rounds {
		for _, m := range ms {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if cfg.progress != nil {
				fmt.Fprintf(cfg.progress, "\rround %d/%d: %-28s", r+1, rounds, m.name)
			}
			v, note, err := m.run(ctx, cfg.run)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", m.name, err)
			}
			s := out[m.name]
			if s == nil {
				s = &sampled{}
				out[m.name] = s
			}
			s.values = append(s.values, v)
			notes[m.name] = append(notes[m.name], note)
		}
	}
	if cfg.progress != nil {
		fmt.Fprintf(cfg.progress, "\r%-50s\r", "")
	}
	// Keep the note of the run whose value is the median.
	for name, s := range out {
		med, _ := s.median()
		for i, v := range s.values {
			if v == med {
				s.note = notes[name][i]
				break
			}
		}
	}
	return out, nil
}

// pairedResult reports a path against another measured beside it: its ratio is the median
// of ratios, each taken between the two in the same round or slice (roundRatios, putPaired),
// and its limit the value that ratio puts it against.
func pairedResult(name, unit string, s *sampled, ratios []float64, limitOf string) result {
	v, note := s.median()
	r := slices.Clone(ratios)
	slices.Sort(r)
	res := result{Name: name, Value: v, Unit: unit, LimitOf: limitOf, Samples: s.values}
	if len(r) > 0 {
		res.Ratio, res.Limit = r[len(r)/2], v/r[len(r)/2]
		res.Note = fmt.Sprintf("%s; ratios %.2f–%.2f over %d pairs", note, r[0], r[len(r)-1], len(r))
	}
	return res
}

// roundRatios divides each round's sample of s by the same round's sample of base.
func roundRatios(s, base *sampled) []float64 {
	out := make([]float64, 0, len(s.values))
	for i, v := range s.values {
		if i < len(base.values) && base.values[i] > 0 {
			out = append(out, v/base.values[i])
		}
	}
	return out
}

// limitResult reports a machine limit.
func limitResult(name, unit string, s *sampled) result {
	v, note := s.median()
	return result{Name: name, Value: v, Unit: unit, Limit: v, Ratio: 1, Samples: s.values, Note: note}
}

// pathResult reports a path against a limit.
func pathResult(name, unit string, s *sampled, limit float64, limitOf string, target float64) result {
	v, note := s.median()
	r := result{Name: name, Value: v, Unit: unit, Limit: limit, LimitOf: limitOf, Samples: s.values, Note: note}
	if limit > 0 {
		r.Ratio = v / limit
	}
	if target > 0 {
		r.Target = &target
	}
	return r
}

func printTable(w io.Writer, results []result) {
	rows := [][]string{{"name", "value", "limit", "ratio", "target", "", "spread"}}
	for _, r := range results {
		limit, ratio, target, status := "", "", "", ""
		if r.LimitOf != "" {
			limit = human(r.Limit, r.Unit)
			ratio = fmt.Sprintf("%.2f", r.Ratio)
		}
		if r.Target != nil {
			target = fmt.Sprintf("%.2f", *r.Target)
			status = "ok"
			if !r.LowerIsBetter && r.Ratio < *r.Target {
				status = "BELOW"
			}
			if r.LowerIsBetter && r.Ratio > *r.Target {
				status = "ABOVE"
			}
		}
		value := human(r.Value, r.Unit)
		if strings.HasPrefix(r.Note, notApplicable) {
			value = "n/a"
		}
		rows = append(rows, []string{r.Name, value, limit, ratio, target, status, spread(r.Samples)})
	}
	width := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, c := range row {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, c := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			switch {
			case i == 0 || i == 5:
				b.WriteString(c + pad) // names and status read left-aligned
			default:
				b.WriteString(pad + c)
			}
			if i < len(row)-1 {
				b.WriteString("  ")
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	fmt.Fprintln(w)
	for _, r := range results {
		if r.Note != "" {
			fmt.Fprintf(w, "%s: %s\n", r.Name, r.Note)
		}
	}
}

// notApplicable begins the note of a result that could not be measured (its Value is 0 and
// means nothing): the table prints n/a for it.
const notApplicable = "n/a: "

// spread is (max - min) / median of the samples, in percent.
func spread(samples []float64) string {
	if len(samples) < 2 {
		return ""
	}
	v := slices.Clone(samples)
	slices.Sort(v)
	med := v[len(v)/2]
	if med == 0 {
		return ""
	}
	return fmt.Sprintf("±%.0f%%", (v[len(v)-1]-v[0])/med*50)
}

// human formats a value with its unit: bytes per second in MB/s or GB/s (powers of ten, as
// PERFORMANCE.md quotes them), counts per second in k or M.
func human(v float64, unit string) string {
	if math.IsNaN(v) {
		return "-"
	}
	switch unit {
	case "B/s":
		if v >= 1e9 {
			return fmt.Sprintf("%.2f GB/s", v/1e9)
		}
		return fmt.Sprintf("%.0f MB/s", v/1e6)
	case "B":
		if v < 1<<20 {
			return fmt.Sprintf("%.1f KiB", v/(1<<10))
		}
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case "s":
		return fmt.Sprintf("%.1f s", v)
	case "ms":
		if v >= 1000 {
			return fmt.Sprintf("%.2f s", v/1000)
		}
		return fmt.Sprintf("%.0f ms", v)
	case "%":
		return fmt.Sprintf("%.2f %%", v)
	case "µs":
		if v >= 1000 {
			return fmt.Sprintf("%.2f ms", v/1000)
		}
		return fmt.Sprintf("%.1f µs", v)
	default:
		what := strings.TrimSuffix(unit, "/s")
		switch {
		case v >= 1e6:
			return fmt.Sprintf("%.2f M %s/s", v/1e6, what)
		case v >= 1e3:
			return fmt.Sprintf("%.1f k %s/s", v/1e3, what)
		}
		return fmt.Sprintf("%.0f %s", v, unit)
	}
}
