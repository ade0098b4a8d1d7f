// Command bench measures sluice beside the limits of the machine it runs on, in the same run,
// and prints every figure with its limit and the ratio between them (the targets are in
// PERFORMANCE.md). The machine is shared and noisy: compare ratios, not absolute figures.
//
//	go run ./bench -suite storage [-json] [-dir D] [-duration 2s]
//
// Suites:
//
//	storage  the machine limits (write(2) bandwidth, memmove bandwidth, write + fdatasync
//	         throughput, the cost of touching new pages) and the segment package's append
//	         and read paths.
//
// Each figure is the median of three runs of duration/3. The runs are interleaved: round one
// measures every limit and every path once, then round two, then round three, so that a
// noisy moment hits limits and paths alike.
//
// Files are written to a temporary directory under -dir (default bench/results/tmp under the
// current directory), on the file system under test, and removed at exit.
//
// CPU and memory profiles (--profile) are not offered: github.com/pkg/profile is not a
// dependency of the module. Profile the benchmarks instead:
// go test -run='^$' -bench=Append -cpuprofile cpu.out ./segment.
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
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	suite := fs.String("suite", "storage", "what to measure: storage")
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
	dir := fs.String("dir", "", "where to write files (a temporary directory is made inside it); default bench/results/tmp")
	duration := fs.Duration("duration", 2*time.Second, "time per figure, split over three runs")
	if err := fs.Parse(args); err != nil {
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
	var suiteFn func(context.Context, config) ([]result, error)
	switch *suite {
	case "storage":
		suiteFn = storageSuite
	default:
		fmt.Fprintf(stderr, "bench: unknown suite %q (want storage)\n", *suite)
		return exitUsage
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
	cfg := config{dir: work, run: *duration / rounds}
	if isTerminal(stderr) {
		cfg.progress = stderr
	}
	results, err := suiteFn(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return exitError
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(results); err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return exitError
		}
		return exitOK
	}
	printTable(stdout, results)
	return exitOK
}

// config is what a suite needs to know.
type config struct {
	dir      string        // a private directory, removed after the suite
	run      time.Duration // length of one run of one measurement
	progress io.Writer     // where to show which run is going on; nil for none
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
			if r.Ratio < *r.Target {
				status = "BELOW"
			}
		}
		rows = append(rows, []string{r.Name, human(r.Value, r.Unit), limit, ratio, target, status, spread(r.Samples)})
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
