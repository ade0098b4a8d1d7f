package main

import (
	"bytes"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/server"
	"github.com/sluice-streams/sluice/stream"
	"github.com/sluice-streams/sluice/tools/load"
)

// startLoadServer serves an engine without limits on a loopback port for the test and
// returns its endpoint.
func startLoadServer(t *testing.T) string {
	t.Helper()
	eng, err := stream.Open(stream.Options{Dir: t.TempDir(), Durability: segment.Durability{Mode: segment.None},
		Limits: stream.Limits{Off: true, Factor: 1}})
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

// TestLoadSmoke is the CI smoke run of `sluice load`: a few hundred records through a real
// server, read back by two groups, in each protocol.
func TestLoadSmoke(t *testing.T) {
	endpoint := startLoadServer(t)
	for _, protocol := range []string{"native", "kinesis"} {
		t.Run(protocol, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			status := run([]string{"load", "--endpoint", endpoint, "--stream", "smoke-" + protocol, "--protocol", protocol,
				"--shards", "2", "--producers", "2", "--consumers", "2", "--records", "300", "--size", "uniform:10B-2KiB",
				"--reads-per-sec", "50", "--seed", "9"}, &stdout, &stderr)
			out := stdout.String()
			if status != exitOK || stderr.Len() > 0 {
				t.Fatalf("status %d\nstdout:\n%s\nstderr:\n%s", status, out, &stderr)
			}
			for _, want := range []string{
				"sluice load: " + protocol + " protocol, 2 producers, 2 shared consumer groups",
				"stream smoke-" + protocol + " (2 shards, created)",
				"records uniform:10B-2KiB, 1,000 keys, unlimited rate; seed 9",
				"300 attempted, 300 acknowledged, 0 failed",
				"put → acknowledged",
				"put → read by group 2",
				"OK: each of the 300 acknowledged records was read exactly once by each of the 2 groups.",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestLoadJSON runs with enhanced fan-out and checks the JSON report.
func TestLoadJSON(t *testing.T) {
	endpoint := startLoadServer(t)
	var stdout, stderr bytes.Buffer
	status := run([]string{"load", "--endpoint", endpoint, "--stream", "smoke-json", "--protocol", "kinesis",
		"--fan-out", "enhanced", "--consumers", "1", "--records", "200", "--size", "100B", "--json"}, &stdout, &stderr)
	if status != exitOK || stderr.Len() > 0 {
		t.Fatalf("status %d\n%s\n%s", status, &stdout, &stderr)
	}
	var rep load.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, &stdout)
	}
	if rep.Put.Acknowledged != 200 || len(rep.Groups) != 1 || rep.Groups[0].Consumed != 200 || rep.Groups[0].Missing != 0 ||
		rep.Groups[0].Latency.Count != 200 || rep.FanOut != load.Enhanced || !rep.Passed() {
		t.Errorf("report %+v", rep)
	}
}

// TestLoadMissing gives the group no time to read: its first read comes as putting starts,
// the next one not for 10 s, and the drain gives up after a millisecond. The records it did
// not read are missing, and the run fails with their number.
func TestLoadMissing(t *testing.T) {
	endpoint := startLoadServer(t)
	var stdout, stderr bytes.Buffer
	status := run([]string{"load", "--endpoint", endpoint, "--stream", "missing", "--records", "300", "--rate", "500",
		"--reads-per-sec", "0.1", "--drain-timeout", "1ms"}, &stdout, &stderr)
	if status != exitError {
		t.Fatalf("status %d, want %d\n%s\n%s", status, exitError, &stdout, &stderr)
	}
	if !strings.Contains(stderr.String(), "acknowledged records missing") || !strings.Contains(stdout.String(), "FAILED:") ||
		!strings.Contains(stdout.String(), "not complete") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", &stdout, &stderr)
	}
}

func TestLoadUsage(t *testing.T) {
	tests := []struct {
		args   []string
		stderr string
	}{
		{[]string{"--size", "big"}, "--size"},
		{[]string{"--size", "uniform:2KiB-1KiB"}, "minimum is above the maximum"},
		{[]string{"--protocol", "grpc"}, "--protocol"},
		{[]string{"--fan-out", "both"}, "--fan-out"},
		{[]string{"--producers", "0"}, "at least 1"},
		{[]string{"--duration", "-1s"}, "--duration"},
		{[]string{"--duration", "0s"}, "neither a duration nor a record count"},
		{[]string{"--drain-timeout", "0s"}, "--drain-timeout"},
		{[]string{"--reads-per-sec", "0"}, "--reads-per-sec"},
		{[]string{"--stream", "no/slash"}, "stream name"},
		{[]string{"--endpoint", "ftp://x"}, "endpoint"},
		{[]string{"extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		status := run(append([]string{"load"}, tt.args...), &stdout, &stderr)
		if status != exitUsage || !strings.Contains(stderr.String(), tt.stderr) || stdout.Len() > 0 {
			t.Errorf("load %q: status %d, stderr %q; want %d and %q", tt.args, status, &stderr, exitUsage, tt.stderr)
		}
	}
	var stdout bytes.Buffer
	if status := run([]string{"help", "load"}, &stdout, &stdout); status != exitOK || !strings.Contains(stdout.String(), "-fan-out") {
		t.Errorf("help load: %d\n%s", status, &stdout)
	}
}

// TestLoadReportFailed prints a failed run: the numbers of missing and duplicated records.
func TestLoadReportFailed(t *testing.T) {
	rep := &load.Report{Protocol: load.Native, FanOut: load.Shared, Producers: 1, Consumers: 1, Stream: "s", Shards: 1,
		Put: load.PutReport{Attempted: 10, Acknowledged: 10, Errors: map[string]uint64{}},
		Groups: []load.GroupReport{{Name: "1", Consumed: 9, Verdict: load.Verdict{Missing: 2, Duplicated: 1},
			ReadErrors: map[string]uint64{"ProvisionedThroughputExceededException": 3}}},
		Problems: []string{"group 1: 2 of 10 acknowledged records missing", "group 1: 1 duplicate reads of acknowledged records"},
	}
	var b bytes.Buffer
	writeLoadReport(&b, rep)
	out := b.String()
	for _, want := range []string{
		"group 1 reads retried  ProvisionedThroughputExceededException      3",
		"1             9        2           1           0  not complete",
		"FAILED:\n  - group 1: 2 of 10 acknowledged records missing\n  - group 1: 1 duplicate reads",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestFormatProgress(t *testing.T) {
	prev := load.Progress{Elapsed: time.Second, Acknowledged: 1000, Bytes: 1e6}
	p := load.Progress{Elapsed: 1500 * time.Millisecond, Acknowledged: 3000, Bytes: 3e6, Consumed: 2500, Failed: 1,
		Throttled: 4, PutP99: 4200 * time.Microsecond, EndToEndP99: 8 * time.Millisecond, Draining: true}
	want := "   1.5s  acked 3,000  4,000 records/s  4.00 MB/s  put p99 4.20 ms  e2e p99 8.00 ms  consumed 2,500  failed 1  throttled 4  draining"
	if got := formatProgress(p, prev); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
