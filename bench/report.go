package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// The report (-report DIR): the results of the suites that ran, as
//
//	DIR/report.md     date, machine, the figures, one table per suite, how to read a ratio
//	DIR/*.png         the figures: throughput by record size and latency percentiles (from
//	                  the sweep suite), ratio to limit (one per suite with targets)
//	DIR/results.json  the report struct below, every sample included
//
// A figure whose results are missing (its suite did not run or failed) is left out, and its
// file from an earlier report in DIR removed, so that no stale figure is committed beside the
// new report; the tables show whatever ran. Other files in DIR are left alone.

// report is what -report writes, and what -json prints when more than one suite ran.
type report struct {
	Date    time.Time      `json:"date"`
	Machine machine        `json:"machine"`
	Command string         `json:"command"`
	Suites  []suiteResults `json:"suites"`
}

// suiteResults are one suite's results, or the error that stopped it.
type suiteResults struct {
	Name    string   `json:"name"`
	Results []result `json:"results"`
	Error   string   `json:"error,omitempty"`
}

// machine is what the report says about where it ran.
type machine struct {
	CPUs   int    `json:"cpus"`
	OS     string `json:"os"`
	Arch   string `json:"arch"`
	Go     string `json:"go"`
	Kernel string `json:"kernel"` // uname: system name and release; empty where uname fails
}

func thisMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	return m
}

// figure is one PNG of the report.
type figure struct {
	file   string // name inside the report directory
	title  string // the heading above it in report.md, and the title drawn in it
	about  string // one sentence under the heading
	width  int    // pixels
	height int
}

// Figure sizes, in pixels at reportDPI.
const (
	reportDPI        = 96
	throughputWidth  = 1300
	throughputHeight = 480
	latencyWidth     = 1100
	latencyHeight    = 520
	ratioWidth       = 1100
	ratioBase        = 110 // title, x axis and margins of a ratio chart
	ratioRow         = 30  // per figure in a ratio chart
	figureMargin     = 8
)

// ratioHeight is the height of a ratio chart of rows figures: at least four rows, the
// height of its legend.
func ratioHeight(rows int) int { return ratioBase + ratioRow*max(rows, 4) }

// writeReport writes results.json, the figures and report.md into dir, making dir if needed.
func writeReport(dir string, rep *report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(raw, '\n'), 0o644); err != nil {
		return err
	}
	var figs []figure
	add := func(f figure, ok bool, err error) error {
		switch {
		case err != nil:
			return err
		case ok:
			figs = append(figs, f)
		default:
			if err := os.Remove(filepath.Join(dir, f.file)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		return nil
	}
	if err := add(throughputFigure(dir, rep)); err != nil {
		return fmt.Errorf("throughput figure: %w", err)
	}
	if err := add(latencyFigure(dir, rep)); err != nil {
		return fmt.Errorf("latency figure: %w", err)
	}
	for _, s := range rep.Suites {
		if err := add(ratioFigure(dir, s)); err != nil {
			return fmt.Errorf("ratio figure of %s: %w", s.Name, err)
		}
	}
	return os.WriteFile(filepath.Join(dir, "report.md"), reportMarkdown(rep, figs), 0o644)
}

// reportMarkdown is report.md.
func reportMarkdown(rep *report, figs []figure) []byte {
	var b bytes.Buffer
	m := rep.Machine
	fmt.Fprintf(&b, "# sluice benchmark report\n\n")
	fmt.Fprintf(&b, "- date: %s\n", rep.Date.UTC().Format("2006-01-02 15:04:05 UTC"))
	fmt.Fprintf(&b, "- machine: %d CPUs, %s/%s, kernel %s\n", m.CPUs, m.OS, m.Arch, orDash(m.Kernel))
	fmt.Fprintf(&b, "- Go: %s\n", m.Go)
	if rep.Command != "" {
		fmt.Fprintf(&b, "- command: `%s`\n", rep.Command)
	}
	names := make([]string, len(rep.Suites))
	for i, s := range rep.Suites {
		names[i] = s.Name
	}
	fmt.Fprintf(&b, "- suites: %s; raw results with every sample: [results.json](results.json)\n", strings.Join(names, ", "))
	for _, s := range rep.Suites {
		if s.Error != "" {
			fmt.Fprintf(&b, "\n**The %s suite failed:** %s\n", s.Name, mdEscape(s.Error))
		}
	}

	b.WriteString("\n## How to read the ratios\n\n")
	b.WriteString("Each figure is the median of three runs, interleaved with the other figures of its " +
		"suite so that a noisy moment hits limits and paths alike; spread is (max − min) / median / 2 " +
		"of those runs. A `limit_` row is a limit of this machine measured in the same run (ratio 1 by " +
		"definition); every other row is a sluice path, and its ratio is its value divided by the limit " +
		"named in its note: a machine limit of this run, or a fixed figure from PERFORMANCE.md. For " +
		"throughput a higher ratio is better and the target is the ratio to reach (`BELOW` when it is " +
		"missed); for latencies a lower ratio is better and the target is the ratio not to exceed " +
		"(`ABOVE` when it is passed). The machine is shared and noisy: the absolute figures move from run " +
		"to run much more than the ratios do, so compare ratios between runs and machines, not absolute " +
		"figures.\n")

	if len(figs) > 0 {
		b.WriteString("\n## Figures\n")
		for _, f := range figs {
			fmt.Fprintf(&b, "\n### %s\n\n%s\n\n![%s](%s)\n", f.title, f.about, f.title, f.file)
		}
	}

	for _, s := range rep.Suites {
		fmt.Fprintf(&b, "\n## The %s suite\n\n", s.Name)
		if len(s.Results) == 0 {
			b.WriteString("No results.\n")
			continue
		}
		b.WriteString("| name | value | limit | ratio | target | | spread |\n")
		b.WriteString("|:---|---:|---:|---:|---:|:---|---:|\n")
		for _, r := range s.Results {
			limit, ratio, target, status := "", "", "", ""
			if r.LimitOf != "" {
				limit = human(r.Limit, r.Unit)
				ratio = fmt.Sprintf("%.2f", r.Ratio)
			}
			if r.Target != nil {
				target = fmt.Sprintf("%.2f", *r.Target)
				status = "ok"
				if !meetsTarget(r) {
					status = "**BELOW**"
					if r.LowerIsBetter {
						status = "**ABOVE**"
					}
				}
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", mdEscape(r.Name), human(r.Value, r.Unit), limit, ratio, target, status, spread(r.Samples))
		}
		b.WriteString("\n")
		for _, r := range s.Results {
			var parts []string
			if r.LimitOf != "" {
				parts = append(parts, "against "+r.LimitOf)
			}
			if r.Note != "" {
				parts = append(parts, r.Note)
			}
			if len(parts) > 0 {
				fmt.Fprintf(&b, "- %s: %s\n", mdEscape(r.Name), mdEscape(strings.Join(parts, "; ")))
			}
		}
	}
	return b.Bytes()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// mdEscape keeps a cell of a Markdown table in its cell.
func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// meetsTarget reports whether r reaches its target; true when it has none.
func meetsTarget(r result) bool {
	switch {
	case r.Target == nil:
		return true
	case r.LowerIsBetter:
		return r.Ratio <= *r.Target
	default:
		return r.Ratio >= *r.Target
	}
}

// suiteNamed returns the results of the suite called name, or nil.
func (rep *report) suiteNamed(name string) []result {
	for _, s := range rep.Suites {
		if s.Name == name {
			return s.Results
		}
	}
	return nil
}

// lookup returns the value of the result called name if it is positive and finite, the only
// values a log axis can show.
func lookup(rs []result, name string) (float64, bool) {
	for _, r := range rs {
		if r.Name == name {
			return r.Value, r.Value > 0 && !math.IsInf(r.Value, 0) && !math.IsNaN(r.Value)
		}
	}
	return 0, false
}

// Colours of the figures.
var (
	colNative  = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colKinesis = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	colLimit   = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
	colOK      = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	colMiss    = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colNone    = color.RGBA{R: 0xa0, G: 0xa0, B: 0xa0, A: 0xff}
	latColours = []color.Color{colLimit, colNative, color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, colKinesis}
	dashes     = []vg.Length{vg.Points(6), vg.Points(4)}
)

// throughputFigure draws the sweep's put throughput against record size: data bytes/s with
// loopback TCP as a horizontal line, and records/s with loopback TCP's bytes/s divided by the
// record size (the most records/s the connection could carry).
func throughputFigure(dir string, rep *report) (figure, bool, error) {
	f := figure{
		file:  "throughput.png",
		title: "Put throughput by record size",
		about: fmt.Sprintf("Native put and the Kinesis API's PutRecords, durability none, %d connections, "+
			"up to %d records or %d MiB per request (sweep suite). Log scales; the dashed line is one loopback "+
			"TCP connection measured in the same run.", e2eConns, e2eBatch, sweepRequestBytes>>20),
		width:  throughputWidth,
		height: throughputHeight,
	}
	rs := rep.suiteNamed("sweep")
	type series struct {
		label string
		name  func(int) string
		col   color.Color
		bytes plotter.XYs
		recs  plotter.XYs
	}
	ss := []*series{
		{label: "native put", name: sweepNativeName, col: colNative},
		{label: "Kinesis API PutRecords", name: sweepKinesisName, col: colKinesis},
	}
	points := 0
	for _, s := range ss {
		for _, size := range sweepSizes {
			if v, ok := lookup(rs, s.name(size)); ok {
				s.bytes = append(s.bytes, plotter.XY{X: float64(size), Y: v})
				s.recs = append(s.recs, plotter.XY{X: float64(size), Y: v / float64(size)})
				points++
			}
		}
	}
	if points == 0 {
		return f, false, nil
	}
	tcp, haveTCP := lookup(rs, "limit_loopback_tcp")

	xMin, xMax := float64(sweepSizes[0])/1.5, float64(sweepSizes[len(sweepSizes)-1])*1.5
	sizeTicks := make(plot.ConstantTicks, len(sweepSizes))
	for i, size := range sweepSizes {
		sizeTicks[i] = plot.Tick{Value: float64(size), Label: humanSize(size)}
	}
	legend := plot.NewLegend() // filled by the first panel: both show the same series
	panels := 0
	panel := func(title, yLabel string, format func(float64) string, pts func(*series) plotter.XYs, limit func(x float64) float64) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = "record size"
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = sizeTicks
		p.X.Min, p.X.Max = xMin, xMax
		p.Y.Label.Text = yLabel
		p.Y.Scale = plot.LogScale{}
		p.Add(plotter.NewGrid())
		var ys []float64
		for _, s := range ss {
			xy := pts(s)
			if len(xy) == 0 {
				continue
			}
			l, sc, err := plotter.NewLinePoints(xy)
			if err != nil {
				return nil, err
			}
			l.Color, sc.Color = s.col, s.col
			l.Width = vg.Points(2)
			sc.Shape = draw.CircleGlyph{}
			sc.Radius = vg.Points(3)
			p.Add(l, sc)
			if panels == 0 {
				legend.Add(s.label, l, sc)
			}
			for _, q := range xy {
				ys = append(ys, q.Y)
			}
		}
		if haveTCP {
			line, err := plotter.NewLine(plotter.XYs{{X: xMin, Y: limit(xMin)}, {X: xMax, Y: limit(xMax)}})
			if err != nil {
				return nil, err
			}
			line.Color, line.Dashes, line.Width = colLimit, dashes, vg.Points(1.5)
			p.Add(line)
			if panels == 0 {
				legend.Add("loopback TCP, 1 connection", line)
			}
			ys = append(ys, limit(xMin), limit(xMax))
		}
		p.Y.Min, p.Y.Max = logRange(ys)
		p.Y.Tick.Marker = logTicks{format: format}
		panels++
		return p, nil
	}
	bytesPlot, err := panel("data bytes per second", "data", humanRate("B/s"), func(s *series) plotter.XYs { return s.bytes }, func(float64) float64 { return tcp })
	if err != nil {
		return f, false, err
	}
	recsPlot, err := panel("records per second", "records", humanRate("records/s"), func(s *series) plotter.XYs { return s.recs }, func(x float64) float64 { return tcp / x })
	if err != nil {
		return f, false, err
	}
	err = savePNG(filepath.Join(dir, f.file), f.width, f.height, f.title, func(c draw.Canvas) {
		besideLegend(c, legend, vg.Points(24), func(c draw.Canvas) { // 24 pt: the panels' titles
			tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Points(16)}
			cs := plot.Align([][]*plot.Plot{{bytesPlot, recsPlot}}, tiles, c)
			bytesPlot.Draw(cs[0][0])
			recsPlot.Draw(cs[0][1])
		})
	})
	return f, err == nil, err
}

// latencyFigure draws the sweep's latency percentiles, one line per path.
func latencyFigure(dir string, rep *report) (figure, bool, error) {
	f := figure{
		file:   "latency.png",
		title:  "Latency percentiles",
		about:  "One request at a time, 100-byte records (sweep suite): each point is the median over three runs of that run's percentile. Log scale; the grey line is a bare fasthttp round trip, the limit the others are compared with.",
		width:  latencyWidth,
		height: latencyHeight,
	}
	rs := rep.suiteNamed("sweep")
	p := plot.New()
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency"
	p.Y.Scale = plot.LogScale{}
	p.Add(plotter.NewGrid())
	ticks := make(plot.ConstantTicks, len(percentiles))
	for j, pc := range percentiles {
		ticks[j] = plot.Tick{Value: float64(j), Label: pc.suffix}
	}
	p.X.Tick.Marker = ticks
	p.X.Min, p.X.Max = -0.25, float64(len(percentiles)-1)+0.25
	var ys []float64
	legend := plot.NewLegend()
	for i, path := range latencyPaths {
		var xy plotter.XYs
		for j, pc := range percentiles {
			if v, ok := lookup(rs, path.prefix+"_"+pc.suffix); ok {
				xy = append(xy, plotter.XY{X: float64(j), Y: v})
				ys = append(ys, v)
			}
		}
		if len(xy) == 0 {
			continue
		}
		l, sc, err := plotter.NewLinePoints(xy)
		if err != nil {
			return f, false, err
		}
		col := latColours[i%len(latColours)]
		l.Color, sc.Color = col, col
		l.Width = vg.Points(2)
		if i == 0 {
			l.Dashes = dashes
		}
		sc.Shape = draw.CircleGlyph{}
		sc.Radius = vg.Points(3)
		p.Add(l, sc)
		legend.Add(path.label, l, sc)
	}
	if len(ys) == 0 {
		return f, false, nil
	}
	p.Y.Min, p.Y.Max = logRange(ys)
	p.Y.Tick.Marker = logTicks{format: humanMicros}
	err := savePNG(filepath.Join(dir, f.file), f.width, f.height, f.title, func(c draw.Canvas) {
		besideLegend(c, legend, 0, p.Draw)
	})
	return f, err == nil, err
}

// ratioFigure draws one suite's ratios to their limits as horizontal bars, the targets
// marked, for a suite with at least one target.
func ratioFigure(dir string, s suiteResults) (figure, bool, error) {
	f := figure{
		file:  "ratios-" + s.Name + ".png",
		title: "Ratio to limit: the " + s.Name + " suite",
		about: "Each path's value divided by its limit (log scale; the dashed line is 1, the limit itself). " +
			"The black tick is the target: a throughput bar should reach it, a latency bar (≤) should stay short of it. " +
			"Green meets its target, red misses it, grey has none.",
		width: ratioWidth,
	}
	type row struct {
		label string
		r     result
	}
	var rows []row
	targets := 0
	for _, r := range s.Results {
		if r.LimitOf == "" || !(r.Ratio > 0) || math.IsInf(r.Ratio, 0) {
			continue
		}
		label := fmt.Sprintf("%s  %.2f", r.Name, r.Ratio)
		if r.Target != nil {
			targets++
			op := "≥"
			if r.LowerIsBetter {
				op = "≤"
			}
			label += fmt.Sprintf(" (%s %.2f)", op, *r.Target)
		}
		rows = append(rows, row{label, r})
	}
	if targets == 0 {
		return f, false, nil
	}
	f.height = ratioHeight(len(rows))

	// The first result on top: row i is drawn at y = n-1-i.
	n := len(rows)
	bars := &ratioBars{rows: make([]result, n)}
	labels := make([]string, n)
	xs := []float64{1}
	for i, r := range rows {
		bars.rows[n-1-i] = r.r
		labels[n-1-i] = r.label
		xs = append(xs, r.r.Ratio)
		if r.r.Target != nil {
			xs = append(xs, *r.r.Target)
		}
	}
	p := plot.New()
	p.Title.Text = f.title
	p.X.Label.Text = "ratio to limit (log scale)"
	p.X.Scale = plot.LogScale{}
	p.X.Min, p.X.Max = logRange(xs)
	// Keep the right quarter free of bars for the legend.
	p.X.Max = p.X.Min * math.Pow(p.X.Max/p.X.Min, 1/0.75)
	p.X.Tick.Marker = logTicks{format: formatG}
	p.Y.Min, p.Y.Max = -0.6, float64(n)-0.4
	p.NominalY(labels...)
	grid := plotter.NewGrid()
	grid.Horizontal.Color = nil
	one, err := plotter.NewLine(plotter.XYs{{X: 1, Y: p.Y.Min}, {X: 1, Y: p.Y.Max}})
	if err != nil {
		return f, false, err
	}
	one.Color, one.Dashes = colLimit, dashes
	p.Add(grid, bars, one)
	p.Legend.Add("meets target", swatch{colOK})
	p.Legend.Add("misses target", swatch{colMiss})
	p.Legend.Add("no target", swatch{colNone})
	p.Legend.Add("target", targetMark{})
	p.Legend.Add("1 = the limit", one)
	p.Legend.Top = true
	err = savePNG(filepath.Join(dir, f.file), f.width, f.height, "", p.Draw)
	return f, err == nil, err
}

// ratioBars draws row i's ratio as a bar at y = i from the left edge of the axis, and its
// target as a tick across the bar.
type ratioBars struct{ rows []result }

var targetStyle = draw.LineStyle{Color: color.Black, Width: vg.Points(2.5)}

func barColour(r result) color.Color {
	switch {
	case r.Target == nil:
		return colNone
	case meetsTarget(r):
		return colOK
	default:
		return colMiss
	}
}

func (b *ratioBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	half := vg.Length(ratioRow) * vg.Inch / reportDPI * 0.3
	for i, r := range b.rows {
		y := trY(float64(i))
		x0, x1 := trX(p.X.Min), trX(r.Ratio)
		c.FillPolygon(barColour(r), c.ClipPolygonXY([]vg.Point{{X: x0, Y: y - half}, {X: x0, Y: y + half}, {X: x1, Y: y + half}, {X: x1, Y: y - half}}))
		if r.Target != nil {
			tx := trX(*r.Target)
			c.StrokeLine2(targetStyle, tx, y-1.6*half, tx, y+1.6*half)
		}
	}
}

// swatch is a legend entry: a filled square.
type swatch struct{ col color.Color }

func (s swatch) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(s.col, []vg.Point{c.Min, {X: c.Min.X, Y: c.Max.Y}, c.Max, {X: c.Max.X, Y: c.Min.Y}})
}

// targetMark is the legend entry of a target tick.
type targetMark struct{}

func (targetMark) Thumbnail(c *draw.Canvas) {
	x := (c.Min.X + c.Max.X) / 2
	c.StrokeLine2(targetStyle, x, c.Min.Y, x, c.Max.Y)
}

// besideLegend draws legend at the top right of c, down by top, and the plots, by drawFn, in
// the rest of c, so that no line runs under the legend.
func besideLegend(c draw.Canvas, legend plot.Legend, top vg.Length, drawFn func(draw.Canvas)) {
	gap := vg.Points(12)
	w := legend.Rectangle(c).Size().X
	legend.Top, legend.Left = true, true
	legend.YOffs = -top
	legend.Draw(draw.Crop(c, c.Max.X-c.Min.X-w, 0, 0, 0))
	drawFn(draw.Crop(c, 0, -(w + gap), 0, 0))
}

// logRange is an axis range around vs for a log scale, with a little room at both ends.
func logRange(vs []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range vs {
		if v > 0 {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if math.IsInf(lo, 0) {
		return 1, 10
	}
	return lo / 1.6, hi * 1.6
}

// logTicks marks a log axis at 1, 2 and 5 times the powers of ten (only at the powers of ten
// when the axis spans more than three decades), labelled by format, with unlabelled ticks at
// the other multiples.
type logTicks struct{ format func(float64) string }

func (t logTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(lo > 0) || !(hi > lo) {
		return nil
	}
	wide := hi/lo > 1e3
	var ticks []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
		for m := 1; m <= 9; m++ {
			v := float64(m) * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			tk := plot.Tick{Value: v}
			if m == 1 || (!wide && (m == 2 || m == 5)) {
				tk.Label = t.format(v)
			}
			ticks = append(ticks, tk)
		}
	}
	return ticks
}

// humanRate labels a rate axis: 200 MB/s, 1 GB/s, 50 k records/s.
func humanRate(unit string) func(float64) string {
	return func(v float64) string {
		what := strings.TrimSuffix(unit, "/s")
		switch {
		case unit == "B/s" && v >= 1e9:
			return formatG(v/1e9) + " GB/s"
		case unit == "B/s" && v >= 1e6:
			return formatG(v/1e6) + " MB/s"
		case unit == "B/s" && v >= 1e3:
			return formatG(v/1e3) + " kB/s"
		case v >= 1e6:
			return formatG(v/1e6) + " M " + what + "/s"
		case v >= 1e3:
			return formatG(v/1e3) + " k " + what + "/s"
		}
		return formatG(v) + " " + unit
	}
}

// formatG is v with up to three significant digits.
func formatG(v float64) string { return strconv.FormatFloat(v, 'g', 3, 64) }

// humanMicros labels a latency axis in µs and ms.
func humanMicros(v float64) string {
	if v >= 1e6 {
		return formatG(v/1e6) + " s"
	}
	if v >= 1000 {
		return formatG(v/1000) + " ms"
	}
	return formatG(v) + " µs"
}

// humanSize is a record size as the report shows it: 100 B, 1 KiB.
func humanSize(size int) string {
	if size >= 1<<10 && size%(1<<10) == 0 {
		return strconv.Itoa(size>>10) + " KiB"
	}
	return strconv.Itoa(size) + " B"
}

// savePNG draws a width × height pixel image with draw, under title when it is not empty,
// and writes it to path as a PNG.
func savePNG(path string, width, height int, title string, drawFn func(draw.Canvas)) error {
	px := func(n int) vg.Length { return vg.Length(n) * vg.Inch / reportDPI }
	img := vgimg.NewWith(vgimg.UseWH(px(width), px(height)), vgimg.UseDPI(reportDPI))
	c := draw.Crop(draw.New(img), px(figureMargin), -px(figureMargin), px(figureMargin), -px(figureMargin))
	if title != "" {
		p := plot.New() // for its title style only
		sty := p.Title.TextStyle
		c.FillText(sty, vg.Point{X: c.Center().X, Y: c.Max.Y}, title)
		c.Max.Y -= sty.Rectangle(title).Size().Y + px(figureMargin)
	}
	drawFn(c)
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
