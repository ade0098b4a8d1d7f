//go:build soak && !race

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// soakSample is what the soak reads of the server once a second.
type soakSample struct {
	at         time.Duration // since the start
	rss        int64         // VmRSS, bytes
	fds        int64         // open file descriptors
	goroutines int64         // go_goroutines of /metrics
	mapped     int64         // bytes of the segment files mapped (/proc/PID/maps)
}

// soakMetrics are the sampled series, as named in the plot and the growth check, with how
// much each may grow beyond half its second quarter's peak.
var soakMetrics = []soakMetric{
	{"resident set", "MiB", 1 << 20, func(s soakSample) int64 { return s.rss }, 64 << 20},
	{"open files", "", 1, func(s soakSample) int64 { return s.fds }, 64},
	{"goroutines", "", 1, func(s soakSample) int64 { return s.goroutines }, 200},
	{"mapped segment bytes", "MiB", 1 << 20, func(s soakSample) int64 { return s.mapped }, 32 << 20},
}

// sample reads the server's figures every second until ctx ends; a sample that cannot be
// taken (the server restarting) is left out.
func (s *soak) sample(ctx context.Context, start time.Time) []soakSample {
	var out []soakSample
	hc := &http.Client{Timeout: 5 * time.Second}
	for ctx.Err() == nil {
		sleepCtx(ctx, time.Second)
		p := s.server()
		pid := p.cmd.Process.Pid
		smp := soakSample{at: time.Since(start), rss: p.rss(), fds: countFDs(pid), mapped: mappedBytes(pid, s.dir)}
		resp, err := hc.Get(s.base + "/metrics")
		if err != nil {
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		g, ok := metricValue(string(body), "go_goroutines")
		if err != nil || !ok || smp.rss < 0 || smp.fds < 0 || smp.mapped < 0 {
			continue
		}
		smp.goroutines = int64(g)
		out = append(out, smp)
	}
	return out
}

// countFDs returns the open file descriptors of pid; -1 if they cannot be listed.
func countFDs(pid int) int64 {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return int64(len(ents))
}

// mappedBytes returns the bytes of pid's mappings of files under dir; -1 if unreadable.
func mappedBytes(pid int, dir string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		return -1
	}
	var n int64
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[5], dir+"/") {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		z, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 == nil && err2 == nil {
			n += int64(z - a)
		}
	}
	return n
}

// checkSoakGrowth fails the test if a series' peak in the last quarter of a run of d exceeds
// 1.5 times its peak in the second quarter plus the series' margin.
func checkSoakGrowth(t *testing.T, samples []soakSample, d time.Duration) {
	for _, m := range soakMetrics {
		var q2, q4 int64 = -1, -1
		for _, s := range samples {
			v := m.value(s)
			switch {
			case s.at >= d/4 && s.at < d/2:
				q2 = max(q2, v)
			case s.at >= 3*d/4:
				q4 = max(q4, v)
			}
		}
		if q2 < 0 || q4 < 0 {
			t.Errorf("%s: no samples in the second or the last quarter", m.name)
			continue
		}
		t.Logf("%s: peak %s in the second quarter, %s in the last", m.name, m.format(q2), m.format(q4))
		if q4 > q2+q2/2+m.margin {
			t.Errorf("%s grew from a peak of %s in the second quarter to %s in the last, more than half and %s",
				m.name, m.format(q2), m.format(q4), m.format(m.margin))
		}
	}
}

func (m soakMetric) format(v int64) string {
	if m.unit == "" {
		return strconv.FormatInt(v, 10)
	}
	return fmt.Sprintf("%.1f %s", float64(v)/m.scale, m.unit)
}

// soakMetric is a sampled series.
type soakMetric struct {
	name   string
	unit   string
	scale  float64
	value  func(soakSample) int64
	margin int64 // how much the series may grow beyond half its second quarter's peak
}

// writeSoakSamples writes the samples as tab-separated columns.
func writeSoakSamples(path string, samples []soakSample) error {
	var b strings.Builder
	b.WriteString("seconds\trss_bytes\topen_files\tgoroutines\tmapped_bytes\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "%.1f\t%d\t%d\t%d\t%d\n", s.at.Seconds(), s.rss, s.fds, s.goroutines, s.mapped)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// writeSoakPlot writes a PNG of the four series over time, one panel each.
func writeSoakPlot(path string, samples []soakSample) error {
	rows := make([][]*plot.Plot, len(soakMetrics))
	for i, m := range soakMetrics {
		p := plot.New()
		p.Title.Text = m.name
		p.X.Label.Text = "seconds"
		if m.unit != "" {
			p.Y.Label.Text = m.unit
		}
		p.Add(plotter.NewGrid())
		xy := make(plotter.XYs, len(samples))
		for j, s := range samples {
			xy[j] = plotter.XY{X: s.at.Seconds(), Y: float64(m.value(s)) / m.scale}
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return err
		}
		p.Add(l)
		p.Y.Min = 0
		rows[i] = []*plot.Plot{p}
	}
	img := vgimg.New(vg.Points(720), vg.Points(220*float64(len(rows))))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(rows), Cols: 1, PadY: vg.Points(12), PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(8)}
	canvases := plot.Align(rows, tiles, dc)
	for i := range rows {
		rows[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
