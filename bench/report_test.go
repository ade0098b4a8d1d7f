package main

import (
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func ptr(v float64) *float64 { return &v }

// fixedStorage, fixedE2E and fixedSweep are results shaped as the suites make them, with
// made-up figures: some meet their target, some miss it, some have none.
func fixedStorage() []result {
	return []result{
		{Name: "limit_write_1MiB", Value: 2.8e9, Unit: "B/s", Limit: 2.8e9, Ratio: 1, Samples: []float64{2.7e9, 2.8e9, 2.9e9}},
		{Name: "limit_memmove_64MiB", Value: 10e9, Unit: "B/s", Limit: 10e9, Ratio: 1, Samples: []float64{10e9, 10e9, 11e9}},
		{Name: "append_1KiB_none", Value: 2.2e9, Unit: "B/s", Limit: 2.8e9, Ratio: 0.79, Target: ptr(0.7), LimitOf: "limit_write_1MiB", Samples: []float64{2.1e9, 2.2e9, 2.3e9}, Note: "one appender"},
		{Name: "append_100B_none", Value: 3.1e6, Unit: "records/s", Limit: 5e6, Ratio: 0.62, Target: ptr(1), LimitOf: "5,000,000 records/s", Samples: []float64{3e6, 3.1e6, 3.2e6}},
		{Name: "read_zero_copy", Value: 8e9, Unit: "B/s", Limit: 10e9, Ratio: 0.8, Target: ptr(0.7), LimitOf: "limit_memmove_64MiB", Samples: []float64{8e9, 8e9, 8e9}},
	}
}

func fixedE2E() []result {
	lower := func(r result) result { r.LowerIsBetter = true; return r }
	return []result{
		{Name: "limit_loopback_tcp", Value: 3.8e9, Unit: "B/s", Limit: 3.8e9, Ratio: 1, Samples: []float64{3.7e9, 3.8e9, 3.9e9}},
		{Name: "limit_fasthttp_100B_p50", Value: 40, Unit: "µs", Limit: 40, Ratio: 1, Samples: []float64{39, 40, 41}},
		{Name: "native_put_1KiB", Value: 1.1e9, Unit: "B/s", Limit: 3.8e9, Ratio: 0.29, LimitOf: "limit_loopback_tcp", Samples: []float64{1e9, 1.1e9, 1.2e9}},
		{Name: "native_get", Value: 3.5e9, Unit: "B/s", Limit: 3.8e9, Ratio: 0.92, Target: ptr(0.85), LimitOf: "limit_loopback_tcp", Samples: []float64{3.5e9, 3.5e9, 3.6e9}},
		lower(result{Name: "put_latency_p50", Value: 48, Unit: "µs", Limit: 40, Ratio: 1.2, Target: ptr(1.3), LimitOf: "limit_fasthttp_100B_p50", Samples: []float64{47, 48, 50}}),
		lower(result{Name: "efo_latency_p99", Value: 9000, Unit: "µs", Limit: 5000, Ratio: 1.8, Target: ptr(1), LimitOf: "5 ms (PERFORMANCE.md)", Samples: []float64{8000, 9000, 9500}}),
	}
}

func fixedSweep() []result {
	out := []result{{Name: "limit_loopback_tcp", Value: 3.8e9, Unit: "B/s", Limit: 3.8e9, Ratio: 1, Samples: []float64{3.8e9, 3.8e9, 3.8e9}}}
	for i, size := range sweepSizes {
		native := 1e8 * float64(i*i+1)
		kinesis := native / 4
		out = append(out,
			result{Name: sweepNativeName(size), Value: native, Unit: "B/s", Limit: 3.8e9, Ratio: native / 3.8e9, LimitOf: "limit_loopback_tcp", Samples: []float64{native, native, native}},
			result{Name: sweepKinesisName(size), Value: kinesis, Unit: "B/s", Limit: 3.8e9, Ratio: kinesis / 3.8e9, LimitOf: "limit_loopback_tcp", Samples: []float64{kinesis, kinesis, kinesis}})
	}
	for j, pc := range percentiles {
		ref := 30 * float64(j*j+1)
		for i, p := range latencyPaths {
			v := ref * float64(i+1)
			r := result{Name: p.prefix + "_" + pc.suffix, Value: v, Unit: "µs", Limit: v, Ratio: 1, Samples: []float64{v, v, v}}
			if i > 0 {
				r.Limit, r.Ratio, r.LimitOf, r.LowerIsBetter = ref, v/ref, latencyPaths[0].prefix+"_"+pc.suffix, true
			}
			out = append(out, r)
		}
	}
	return out
}

// countLimited is the number of rows of a ratio chart of rs.
func countLimited(rs []result) int {
	n := 0
	for _, r := range rs {
		if r.LimitOf != "" {
			n++
		}
	}
	return n
}

func TestWriteReport(t *testing.T) {
	date := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	mach := machine{CPUs: 2, OS: "linux", Arch: "amd64", Go: "go1.26.8", Kernel: "Linux 6.1.0"}
	type wantPNG struct {
		file          string
		width, height int
	}
	tests := []struct {
		name    string
		suites  []suiteResults
		pngs    []wantPNG
		titles  []string // figure titles report.md must contain
		absent  []string // figures that must not be written
		mention []string // other text report.md must contain
	}{
		{
			name: "all suites",
			suites: []suiteResults{
				{Name: "storage", Results: fixedStorage()},
				{Name: "e2e", Results: fixedE2E()},
				{Name: "sweep", Results: fixedSweep()},
			},
			pngs: []wantPNG{
				{"throughput.png", throughputWidth, throughputHeight},
				{"latency.png", latencyWidth, latencyHeight},
				{"ratios-storage.png", ratioWidth, ratioHeight(countLimited(fixedStorage()))},
				{"ratios-e2e.png", ratioWidth, ratioHeight(countLimited(fixedE2E()))},
			},
			titles:  []string{"Put throughput by record size", "Latency percentiles", "Ratio to limit: the storage suite", "Ratio to limit: the e2e suite"},
			absent:  []string{"ratios-sweep.png"}, // the sweep has no targets
			mention: []string{"append_1KiB_none", "**BELOW**", "**ABOVE**", "sweep_native_put_100KiB", "lat_efo_p99.9", "How to read the ratios"},
		},
		{
			name: "storage only, e2e failed",
			suites: []suiteResults{
				{Name: "storage", Results: fixedStorage()},
				{Name: "e2e", Error: "native_put_1KiB: /native/put: status 404"},
			},
			pngs:    []wantPNG{{"ratios-storage.png", ratioWidth, ratioHeight(countLimited(fixedStorage()))}},
			titles:  []string{"Ratio to limit: the storage suite"},
			absent:  []string{"throughput.png", "latency.png", "ratios-e2e.png"},
			mention: []string{"The e2e suite failed:", "status 404"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "report")
			// A figure left over from an earlier report must not stay beside this one.
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, file := range tt.absent {
				if err := os.WriteFile(filepath.Join(dir, file), []byte("stale"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			rep := &report{Date: date, Machine: mach, Command: "bench -suite all", Suites: tt.suites}
			if err := writeReport(dir, rep); err != nil {
				t.Fatal(err)
			}
			md, err := os.ReadFile(filepath.Join(dir, "report.md"))
			if err != nil {
				t.Fatal(err)
			}
			text := string(md)
			for _, p := range tt.pngs {
				f, err := os.Open(filepath.Join(dir, p.file))
				if err != nil {
					t.Fatal(err)
				}
				img, err := png.Decode(f)
				f.Close()
				if err != nil {
					t.Fatalf("%s: %v", p.file, err)
				}
				if b := img.Bounds(); b.Dx() != p.width || b.Dy() != p.height {
					t.Errorf("%s is %d × %d pixels, want %d × %d", p.file, b.Dx(), b.Dy(), p.width, p.height)
				}
				if !strings.Contains(text, "]("+p.file+")") {
					t.Errorf("report.md does not link %s", p.file)
				}
			}
			for _, file := range tt.absent {
				if _, err := os.Stat(filepath.Join(dir, file)); !os.IsNotExist(err) {
					t.Errorf("%s: want no such file, got %v", file, err)
				}
				if strings.Contains(text, file) {
					t.Errorf("report.md mentions %s, which was not written", file)
				}
			}
			for _, s := range append(append(tt.titles, tt.mention...), "2025-03-04 05:06:07 UTC", "2 CPUs", "linux/amd64", "Linux 6.1.0", "go1.26.8") {
				if !strings.Contains(text, s) {
					t.Errorf("report.md does not contain %q", s)
				}
			}
			for _, s := range tt.suites {
				if !strings.Contains(text, "## The "+s.Name+" suite") {
					t.Errorf("report.md has no section for the %s suite", s.Name)
				}
				for _, r := range s.Results {
					if !strings.Contains(text, "| "+r.Name+" |") {
						t.Errorf("report.md has no table row for %s", r.Name)
					}
				}
			}

			raw, err := os.ReadFile(filepath.Join(dir, "results.json"))
			if err != nil {
				t.Fatal(err)
			}
			var back report
			if err := json.Unmarshal(raw, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.Suites, rep.Suites) || !back.Date.Equal(rep.Date) || back.Machine != rep.Machine {
				t.Errorf("results.json does not hold the report:\n%s", raw)
			}
		})
	}
}

func TestLogTicks(t *testing.T) {
	tests := []struct {
		lo, hi float64
		want   []string // the labelled ticks
	}{
		{15, 900, []string{"20", "50", "100", "200", "500"}},
		{0.03, 4, []string{"0.05", "0.1", "0.2", "0.5", "1", "2"}},
		{50, 2e6, []string{"100", "1e+03", "1e+04", "1e+05", "1e+06"}}, // beyond three decades: powers of ten only
	}
	for _, tt := range tests {
		var got []string
		for _, tk := range (logTicks{format: formatG}).Ticks(tt.lo, tt.hi) {
			if tk.Value < tt.lo || tk.Value > tt.hi {
				t.Errorf("[%g, %g]: tick %g out of range", tt.lo, tt.hi, tk.Value)
			}
			if tk.Label != "" {
				got = append(got, tk.Label)
			}
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("[%g, %g]: labels %q, want %q", tt.lo, tt.hi, got, tt.want)
		}
	}
}

func TestHuman(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		unit string
		want string
	}{
		{1820, "ms", "1.82 s"},
		{640, "ms", "640 ms"},
		{14.7, "%", "14.70 %"},
		{0.25, "%", "0.25 %"},
		{1070, "µs", "1.07 ms"},
		{12600, "records/s", "12.6 k records/s"},
	} {
		if got := human(tt.v, tt.unit); got != tt.want {
			t.Errorf("human(%v, %q) = %q, want %q", tt.v, tt.unit, got, tt.want)
		}
	}
}
