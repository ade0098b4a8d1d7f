package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/tools/estimate"
)

// TestEstimateTable checks the table of a workload whose figures are worked out by hand in
// tools/estimate's tests: 3,000 records/s × 1 KiB, 3 shared consumers.
func TestEstimateTable(t *testing.T) {
	var stdout, stderr bytes.Buffer
	status := run([]string{"estimate", "--records-per-sec", "3000", "--record-kib", "1", "--consumers", "3"}, &stdout, &stderr)
	if status != exitOK || stderr.Len() > 0 {
		t.Fatalf("status %d\n%s", status, &stderr)
	}
	out := stdout.String()
	for _, want := range []string{
		"3,000 records/s × 1 KiB = 3,000 KiB/s (2.93 MiB/s)",
		"3 shared consumers = 9,000 KiB/s (8.79 MiB/s)",
		"Shards (provisioned): 5",
		"ceil(9,000 KiB/s / 2048)      5  <- sets the count",
		// 5 shards × 730 h × $0.015; 3,000 × 2,628,000 s = 7,884 million records × 1 unit × $0.014.
		"shard hours                          3,650  shard-hour         $0.015   $54.75",
		"PUT payload units (1 per record)     7,884  million units      $0.014  $110.38",
		"$165.13",
		"stream hours                                  730  stream-hour       $0.04     $29.20",
		"$1,532.95",
		"us-east-1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Warnings") {
		t.Errorf("unexpected warnings:\n%s", out)
	}

	stdout.Reset()
	status = run([]string{"estimate", "--records-per-sec", "100", "--record-kib", "1", "--consumers", "6"}, &stdout, &stderr)
	if status != exitOK || !strings.Contains(stdout.String(), "6 GetRecords calls/s per shard") {
		t.Errorf("status %d, no warning about 6 shared consumers:\n%s", status, &stdout)
	}
}

// TestEstimatePrices prints the price table, edits it as a user would, and estimates with it
// as JSON.
func TestEstimatePrices(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if status := run([]string{"estimate", "--print-prices"}, &stdout, &stderr); status != exitOK {
		t.Fatalf("--print-prices: status %d\n%s", status, &stderr)
	}
	edited := strings.Replace(stdout.String(), `"shardHour": 0.015`, `"shardHour": 0.03`, 1)
	file := filepath.Join(t.TempDir(), "prices.json")
	if err := os.WriteFile(file, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	args := []string{"estimate", "--prices", file, "--json", "--records-per-sec", "1000", "--record-kib", "30",
		"--consumers", "3", "--fan-out", "enhanced", "--retention-hours", "720"}
	if status := run(args, &stdout, &stderr); status != exitOK {
		t.Fatalf("status %d\n%s", status, &stderr)
	}
	var e estimate.Estimate
	if err := json.Unmarshal(stdout.Bytes(), &e); err != nil {
		t.Fatalf("%v\n%s", err, &stdout)
	}
	// 30 shards × 730 h × $0.03 = $657.
	if e.Sizing.Shards != 30 || e.Provisioned.Lines[0].Cost != 657 {
		t.Errorf("shards %d, shard hours %+v; want 30 shards costing $657", e.Sizing.Shards, e.Provisioned.Lines[0])
	}
	if e.Workload.FanOut != estimate.Enhanced || e.Workload.RetentionHours != 720 || len(e.OnDemand.Lines) != 5 {
		t.Errorf("unexpected estimate %+v", e)
	}

	// --print-prices with --prices prints the file's table, normalised.
	stdout.Reset()
	if status := run([]string{"estimate", "--prices", file, "--print-prices"}, &stdout, &stderr); status != exitOK ||
		!strings.Contains(stdout.String(), `"shardHour": 0.03,`) {
		t.Errorf("status %d, printed table:\n%s", status, &stdout)
	}

	// A damaged table is an error naming the file and what is wrong.
	if err := os.WriteFile(file, []byte(strings.Replace(edited, `"shardHour": 0.03,`, "", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	stderr.Reset()
	status := run([]string{"estimate", "--prices", file, "--records-per-sec", "1", "--record-kib", "1"}, &stdout, &stderr)
	if status != exitError || !strings.Contains(stderr.String(), file) || !strings.Contains(stderr.String(), `"provisioned.shardHour" is missing`) || stdout.Len() > 0 {
		t.Errorf("status %d, stderr %q, stdout %q", status, &stderr, &stdout)
	}
}

func TestEstimateNumberFormats(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{num(0), "0"},
		{num(730), "730"},
		{num(1234567.5), "1,234,567.5"},
		{num(22556.30493164), "22,556.305"},
		{num(0.000123), "0.000123"},
		{num(-1500), "-1,500"},
		{num2(2.9296875), "2.93"},
		{money(1532.954), "$1,532.95"},
		{money(0.004), "$0.00"},
		{price(0.015), "$0.015"},
		{price(0.1), "$0.10"},
		{price(2), "$2.00"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
