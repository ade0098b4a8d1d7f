package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sluice-streams/sluice/tools/estimate"
)

// runEstimate sizes a Kinesis stream for a workload and prices it a month on AWS, in
// provisioned and on-demand mode; the arithmetic is package estimate's.
func runEstimate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("estimate", "--records-per-sec N --record-kib K [flags]", stderr)
	recordsPerSec := fs.Float64("records-per-sec", 0, "average write `rate` in records per second (required)")
	recordKiB := fs.Float64("record-kib", 0, "average record size in `KiB`, partition key included (required)")
	consumers := fs.Int("consumers", 1, "`number` of consumer applications, each reading the whole stream")
	fanOut := fs.String("fan-out", "shared", "how consumers read (`mode`): shared (GetRecords polling) or enhanced (enhanced fan-out)")
	retention := fs.Int("retention-hours", estimate.MinRetentionHours, "retention period in `hours`, 24 to 8760")
	hours := fs.Float64("hours-per-month", estimate.HoursPerMonth, "`hours` in the month billed (AWS prices a month as 730 hours)")
	pricesFile := fs.String("prices", "", "price table `file`, JSON as --print-prices writes it (default: us-east-1 prices)")
	printPrices := fs.Bool("print-prices", false, "print the price table (the default, or the --prices file) as JSON, to edit, and exit")
	asJSON := fs.Bool("json", false, "print the estimate as JSON")
	if status, stop := parseFlags(fs, args); stop {
		return status
	}

	prices := estimate.DefaultPrices()
	if *pricesFile != "" {
		data, err := os.ReadFile(*pricesFile)
		if err == nil {
			prices, err = estimate.ParsePrices(data)
		}
		if err != nil {
			fmt.Fprintf(stderr, "sluice estimate: %s: %v\n", *pricesFile, err)
			return exitError
		}
	}
	if *printPrices {
		stdout.Write(estimate.AppendPrices(nil, prices))
		return exitOK
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["records-per-sec"] || !set["record-kib"] {
		fmt.Fprintln(stderr, "sluice estimate: --records-per-sec and --record-kib are required")
		fs.Usage()
		return exitUsage
	}
	fo, err := estimate.ParseFanOut(*fanOut)
	if err != nil {
		fmt.Fprintf(stderr, "sluice estimate: --fan-out: %v\n", err)
		return exitUsage
	}
	w := estimate.Workload{RecordsPerSec: *recordsPerSec, RecordKiB: *recordKiB, Consumers: *consumers,
		FanOut: fo, RetentionHours: *retention, HoursPerMonth: *hours}
	est, err := estimate.Compute(w, prices)
	if err != nil {
		fmt.Fprintf(stderr, "sluice estimate: %v\n", err)
		if errors.Is(err, estimate.ErrWorkload) {
			return exitUsage
		}
		return exitError
	}
	if *asJSON {
		b, err := json.MarshalIndent(est, "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "sluice estimate: %v\n", err)
			return exitError
		}
		stdout.Write(append(b, '\n'))
		return exitOK
	}
	writeEstimate(stdout, est)
	return exitOK
}

// writeEstimate prints est as tables a reader can check by hand.
func writeEstimate(w io.Writer, est estimate.Estimate) {
	wl, s := est.Workload, est.Sizing
	consumers := fmt.Sprintf("%d %s consumer", wl.Consumers, wl.FanOut)
	if wl.Consumers != 1 {
		consumers += "s"
	}
	fmt.Fprintln(w, "Workload")
	writeTable(w, "ll", [][]string{
		{"writes", fmt.Sprintf("%s records/s × %s KiB = %s KiB/s (%s MiB/s)",
			num(wl.RecordsPerSec), num(wl.RecordKiB), num(s.InKiBPerSec), num2(s.InKiBPerSec/1024))},
		{"reads", fmt.Sprintf("%s = %s KiB/s (%s MiB/s)", consumers, num(s.OutKiBPerSec), num2(s.OutKiBPerSec/1024))},
		{"retention", fmt.Sprintf("%d hours", wl.RetentionHours)},
		{"month", fmt.Sprintf("%s hours", num(wl.HoursPerMonth))},
	})

	fmt.Fprintf(w, "\nShards (provisioned): %s\n", num(float64(s.Shards)))
	bound := func(b estimate.Bound) string {
		for _, x := range s.BoundBy {
			if x == b {
				return "<- sets the count"
			}
		}
		return ""
	}
	read := []string{string(estimate.ReadBandwidth), "not a limit: each enhanced fan-out consumer has 2 MiB/s per shard", "-", ""}
	if wl.FanOut == estimate.Shared {
		read = []string{string(estimate.ReadBandwidth), fmt.Sprintf("ceil(%s KiB/s / %d)", num(s.OutKiBPerSec), estimate.ShardReadKiBPerSec),
			num(float64(s.ByReadBandwidth)), bound(estimate.ReadBandwidth)}
	}
	writeTable(w, "llrl", [][]string{
		{string(estimate.WriteBandwidth), fmt.Sprintf("ceil(%s KiB/s / %d)", num(s.InKiBPerSec), estimate.ShardWriteKiBPerSec),
			num(float64(s.ByWriteBandwidth)), bound(estimate.WriteBandwidth)},
		{string(estimate.WriteRecords), fmt.Sprintf("ceil(%s records/s / %d)", num(wl.RecordsPerSec), estimate.ShardWriteRecordsPerSec),
			num(float64(s.ByWriteRecords)), bound(estimate.WriteRecords)},
		read,
	})

	for _, b := range []estimate.Bill{est.Provisioned, est.OnDemand} {
		fmt.Fprintf(w, "\nMonthly cost, %s mode\n", b.Mode)
		rows := [][]string{{"item", "quantity", "unit", "unit price", "cost"}}
		for _, l := range b.Lines {
			rows = append(rows, []string{l.Item, num(l.Quantity), l.Unit, price(l.UnitPrice), money(l.Cost)})
		}
		rows = append(rows, []string{"total", "", "", "", money(b.Total)})
		writeTable(w, "lrlrr", rows)
	}
	fmt.Fprintf(w, "\nPrices: %s.\n", est.PriceSource)
	fmt.Fprintln(w, "Rates are averages: leave headroom for peaks and for partition keys that spread writes unevenly.")
	if len(est.Warnings) > 0 {
		fmt.Fprintln(w, "\nWarnings")
		for _, s := range est.Warnings {
			fmt.Fprintf(w, "  - %s\n", s)
		}
	}
}

// writeTable prints rows indented by two spaces, in columns two spaces apart; align holds one
// letter per column, l or r.
func writeTable(w io.Writer, align string, rows [][]string) {
	width := make([]int, len(align))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if align[i] == 'r' {
				cells[i] = pad + c
			} else {
				cells[i] = c + pad
			}
		}
		fmt.Fprintln(w, strings.TrimRight("  "+strings.Join(cells, "  "), " "))
	}
}

// num formats x with thousands separators and at most 3 decimals (6 below 1), without
// trailing zeros.
func num(x float64) string {
	decimals := 3
	if math.Abs(x) < 1 {
		decimals = 6
	}
	s := strconv.FormatFloat(x, 'f', decimals, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return group(s)
}

// num2 formats x with thousands separators and 2 decimals.
func num2(x float64) string { return group(strconv.FormatFloat(x, 'f', 2, 64)) }

// price formats a unit price with every decimal it has, and at least 2.
func price(x float64) string {
	s := strconv.FormatFloat(x, 'f', -1, 64)
	if _, frac, _ := strings.Cut(s, "."); len(frac) < 2 {
		s = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return "$" + group(s)
}

// money formats a dollar amount to the cent.
func money(x float64) string { return "$" + num2(x) }

// group puts thousands separators into the integer part of a formatted number.
func group(s string) string {
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	intPart, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	for i, c := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if hasFrac {
		return sign + b.String() + "." + frac
	}
	return sign + b.String()
}
