package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
)

// startServe runs `sluice serve` (its serve function) on a loopback port with a temporary
// data directory until the test ends, and returns its endpoint.
func startServe(t *testing.T) string {
	t.Helper()
	return startServeLimits(t, "kinesis")
}

// startServeLimits is startServe with the --limits profile given.
func startServeLimits(t *testing.T, limits string) string {
	t.Helper()
	cfg, err := newServeConfig("127.0.0.1:0", t.TempDir(), "none", limits)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, &stdout, &stderr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	for range 500 {
		if _, after, ok := strings.Cut(stdout.String(), "on http://"); ok {
			return "http://" + strings.Fields(after)[0]
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("the server never said where it listens")
	return ""
}

// sluice runs the command line args with stdin as standard input.
func sluice(t *testing.T, in string, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	old := stdin
	stdin = strings.NewReader(in)
	defer func() { stdin = old }()
	var o, e bytes.Buffer
	status = run(args, &o, &e)
	return status, o.String(), e.String()
}

// mustSluice runs args and fails the test unless they succeed.
func mustSluice(t *testing.T, in string, args ...string) string {
	t.Helper()
	status, stdout, stderr := sluice(t, in, args...)
	if status != exitOK {
		t.Fatalf("sluice %s: status %d\n%s", strings.Join(args, " "), status, stderr)
	}
	return stdout
}

// TestStreamVerbs is the README's session: put, describe, get, tail, against a real server.
func TestStreamVerbs(t *testing.T) {
	ep := startServe(t)
	t.Setenv(endpointEnv, ep)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.New(client.Config{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.CreateStream(ctx, "demo", 2); err != nil {
		t.Fatal(err)
	}

	// put: one record, then lines of stdin, then binary data.
	var seqs []string // of key user1, in put order
	var shard string
	for _, out := range []string{
		mustSluice(t, "", "put", "--stream", "demo", "--partition-key", "user1", "hello"),
		mustSluice(t, "a\nb\n", "put", "--stream", "demo", "--partition-key", "user1"),
		mustSluice(t, "", "put", "--stream", "demo", "--partition-key", "user1", "--base64", "AAEC"),
	} {
		for l := range strings.Lines(out) {
			f := strings.Fields(l)
			if len(f) != 2 || len(f[1]) != 56 || shard != "" && f[0] != shard {
				t.Fatalf("put printed %q", out)
			}
			shard = f[0]
			seqs = append(seqs, f[1])
		}
	}
	if len(seqs) != 4 {
		t.Fatalf("%d records put", len(seqs))
	}

	// describe: both shards, open.
	out := mustSluice(t, "", "describe", "--stream", "demo")
	for _, want := range []string{"  shards           2 open, 2 in all\n", "  shardId-000000000000  open", "  shardId-000000000001  open"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe: no %q in\n%s", want, out)
		}
	}

	// get: the same sequence numbers, binary data in base64, then the next position.
	out = mustSluice(t, "", "get", "--stream", "demo", "--shard-id", shard)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("get printed\n%s", out)
	}
	for i, data := range []string{"hello", "a", "b", "base64:AAEC"} {
		if want := fmt.Sprintf("%s %s ", shard, seqs[i]); !strings.HasPrefix(lines[i], want) || !strings.HasSuffix(lines[i], " user1 "+data) {
			t.Errorf("get line %d: %q, want %q… user1 %s", i, lines[i], want, data)
		}
	}
	next, ok := strings.CutPrefix(lines[5], "# next: AT_SEQUENCE_NUMBER ")
	if !ok {
		t.Fatalf("get: no next position in\n%s", out)
	}
	if out := mustSluice(t, "", "get", "--stream", "demo", "--sequence-number", next); !strings.HasPrefix(out, "# 0 records") {
		t.Errorf("get at the next position:\n%s", out)
	}
	out = mustSluice(t, "", "get", "--stream", "demo", "--shard-id", shard, "--json", "--limit", "1")
	var j struct {
		Records []struct{ SequenceNumber, Data string }
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil || len(j.Records) != 1 || j.Records[0].SequenceNumber != seqs[0] || j.Records[0].Data != "aGVsbG8=" {
		t.Errorf("get --json: %v\n%s", err, out)
	}

	// tail: across a split of user1's shard, user1's records in order.
	in := struct{ StreamName, ShardToSplit, NewStartingHashKey string }{"demo", shard, "85070591730234615865843651857942052864"}
	if shard == "shardId-000000000001" {
		in.NewStartingHashKey = "255211775190703847597530955573826158592"
	}
	if err := c.CallKinesis(ctx, "SplitShard", in, nil); err != nil {
		t.Fatal(err)
	}
	mustSluice(t, "c\nd\n", "put", "--stream", "demo", "--partition-key", "user1")
	mustSluice(t, "x\ny\nz\n", "put", "--stream", "demo") // random keys
	out = mustSluice(t, "", "tail", "--stream", "demo", "--max-records", "9")
	var user1 []string
	n := 0
	for l := range strings.Lines(out) {
		f := strings.SplitN(strings.TrimSuffix(l, "\n"), " ", 5)
		if len(f) != 5 {
			t.Fatalf("tail printed %q", l)
		}
		n++
		if f[3] == "user1" {
			user1 = append(user1, f[4])
		}
	}
	if want := []string{"hello", "a", "b", "base64:AAEC", "c", "d"}; n != 9 || !slices.Equal(user1, want) {
		t.Errorf("tail: %d records, user1's %q, want 9 and %q\n%s", n, user1, want, out)
	}
	out = mustSluice(t, "", "tail", "--stream", "demo", "--max-records", "2", "--json", "--fan-out", "enhanced", "--consumer-name", "cli")
	if strings.Count(out, "\n") != 2 || !strings.HasPrefix(out, `{"ShardId":"shardId-`) {
		t.Errorf("tail --json:\n%s", out)
	}
	out = mustSluice(t, "", "describe", "--stream", "demo", "--json")
	var d struct {
		StreamDescription struct {
			Shards []struct{ ShardId, ParentShardId string }
		}
		Consumers []struct{ ConsumerName string }
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil || len(d.StreamDescription.Shards) != 4 ||
		d.StreamDescription.Shards[3].ParentShardId != shard || len(d.Consumers) != 1 {
		t.Errorf("describe --json: %v\n%s", err, out)
	}
}

// TestStreamVerbErrors checks the messages and statuses of failures: 1 for a refusal of the
// server or no server, 2 for input refused before asking.
func TestStreamVerbErrors(t *testing.T) {
	ep := startServe(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	tests := []struct {
		args   []string
		stdin  string
		status int
		stderr string
	}{
		{[]string{"describe", "--stream", "nope"}, "", exitError, "sluice describe: ResourceNotFoundException: Stream nope under account 000000000000 not found"},
		{[]string{"get", "--stream", "nope", "--shard-id", "0"}, "", exitError, "sluice get: ResourceNotFoundException: "},
		{[]string{"put", "--stream", "nope", "--partition-key", "k", "x"}, "", exitError, "sluice put: ResourceNotFoundException: "},
		{[]string{"put", "--stream", "nope"}, "x\n", exitError, "sluice put: ResourceNotFoundException: "},
		{[]string{"tail", "--stream", "nope"}, "", exitError, "sluice tail: ResourceNotFoundException: "},
		{[]string{"describe", "--stream", "s", "--endpoint", closed}, "", exitError, "sluice describe: cannot reach " + closed + ": "},
		{[]string{"get", "--stream", "s", "--shard-id", "0", "--endpoint", closed}, "", exitError, "cannot reach"},
		{[]string{"get", "--stream", "s", "--sequence-number", "12"}, "", exitUsage, `sluice get: sequence number "12"`},
		{[]string{"get", "--stream", "s", "--shard-id", "0", "--type", "AT_TIMESTAMP", "--timestamp", "later"}, "", exitUsage, `time "later"`},
		{[]string{"put", "--stream", "s", "--partition-key", "k", "--explicit-hash-key", "x", "d"}, "", exitUsage, "explicit hash key"},
		{[]string{"put", "--stream", "s", "--explicit-hash-key", "1"}, "x\n", exitUsage, "explicit hash key routes one record"},
		{[]string{"tail", "--stream", "s", "--from", "yesterday"}, "", exitUsage, `from "yesterday"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			args := tt.args
			if !slices.Contains(args, "--endpoint") {
				args = append(args, "--endpoint", ep)
			}
			status, stdout, stderr := sluice(t, tt.stdin, args...)
			if status != tt.status || !strings.Contains(stderr, tt.stderr) || stdout != "" {
				t.Errorf("status %d, want %d\nstdout %q\nstderr %q, want %q", status, tt.status, stdout, stderr, tt.stderr)
			}
		})
	}
}
