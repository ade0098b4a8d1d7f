package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
)

// TestLambdaSurvivesKill runs `sluice lambda` as a child process with a function built
// with aws-lambda-go, kills it with SIGKILL while an invocation of each shard is in
// flight, and starts it again: the records of the batches in flight are delivered again,
// every other record exactly once (no batch that succeeded comes again, none is skipped),
// and each shard's records in order.
func TestLambdaSurvivesKill(t *testing.T) {
	ep := startServe(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := client.New(client.Config{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.CreateStream(ctx, "orders", 2); err != nil {
		t.Fatal(err)
	}
	sum, err := c.DescribeStreamSummary(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	handler := filepath.Join(dir, "bootstrap")
	if out, err := exec.Command("go", "build", "-o", handler, "../../tools/lambda/testdata/handler").CombinedOutput(); err != nil {
		t.Fatalf("building the handler: %v\n%s", err, out)
	}
	mapping := filepath.Join(dir, "mapping.json")
	if err := os.WriteFile(mapping, fmt.Appendf(nil, `{"EventSourceArn": %q, "StartingPosition": "TRIM_HORIZON", "BatchSize": 4}`, sum.ARN), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath, release := filepath.Join(dir, "handler.log"), filepath.Join(dir, "release")

	var sent []string            // sequence numbers put
	keyOf := map[uint32]string{} // a key of each shard
	put := func(key, data string) {
		res, err := c.PutRecords(ctx, "orders", []client.PutEntry{{Key: key, Data: []byte(data)}})
		if err == nil {
			err = res[0].Err
		}
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, res[0].SeqNum.String())
		keyOf[res[0].Shard] = key
	}
	for i := range 30 {
		put(fmt.Sprintf("k%d", i), fmt.Sprintf("r%d", i))
	}
	if len(keyOf) != 2 {
		t.Fatalf("30 keys went to %d shards", len(keyOf))
	}
	for _, k := range keyOf {
		put(k, "block")
	}
	for i := range 10 {
		put(fmt.Sprintf("k%d", i), fmt.Sprintf("s%d", i))
	}

	start := func() (*exec.Cmd, *bytes.Buffer) {
		cmd := sluiceCmd("lambda", "--endpoint", ep, "--handler", handler, "--event-source-mapping", mapping)
		cmd.Env = append(cmd.Env, "HANDLER_LOG="+logPath, "RELEASE="+release)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out
	}
	type delivery struct {
		seqs    []string
		blocked bool
	}
	readLog := func() []delivery {
		b, err := os.ReadFile(logPath)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		var out []delivery
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			var l struct {
				Records []struct {
					Kinesis struct {
						SequenceNumber string
						Data           []byte
					} `json:"kinesis"`
				}
			}
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Fatal(err)
			}
			var d delivery
			for _, r := range l.Records {
				d.seqs = append(d.seqs, r.Kinesis.SequenceNumber)
				d.blocked = d.blocked || string(r.Kinesis.Data) == "block"
			}
			out = append(out, d)
		}
		return out
	}
	wait := func(what string, cond func([]delivery) bool) {
		for deadline := time.Now().Add(time.Minute); !cond(readLog()); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	first, firstOut := start()
	wait("an invocation blocked in each shard", func(ds []delivery) bool {
		n := 0
		for _, d := range ds {
			if d.blocked {
				n++
			}
		}
		return n == 2
	})
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	inFlight := map[string]bool{}
	for _, d := range readLog() {
		if d.blocked {
			for _, s := range d.seqs {
				inFlight[s] = true
			}
		}
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	second, secondOut := start()
	defer second.Process.Kill()
	wait("every record", func(ds []delivery) bool {
		got := map[string]bool{}
		for _, d := range ds {
			for _, s := range d.seqs {
				got[s] = true
			}
		}
		return len(got) == len(sent)
	})
	second.Process.Signal(syscall.SIGTERM)
	if err := second.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v\n%s", err, secondOut)
	}
	if !strings.Contains(secondOut.String(), "records succeeded") {
		t.Errorf("no summary:\n%s", secondOut)
	}

	count := map[string]int{}
	for _, d := range readLog() {
		for _, s := range d.seqs {
			count[s]++
		}
	}
	for _, s := range sent {
		want := 1
		if inFlight[s] {
			want = 2
		}
		if count[s] != want {
			t.Errorf("record %s delivered %d times, want %d", s, count[s], want)
		}
	}
	// Order: without the invocation in flight at the kill, each shard's records come in
	// ascending order.
	last := map[uint32]client.SeqNum{}
	skipped := map[uint32]bool{}
	for _, d := range readLog() {
		first, err := client.ParseSeqNum(d.seqs[0])
		if err != nil {
			t.Fatal(err)
		}
		if d.blocked && !skipped[first.Shard] {
			skipped[first.Shard] = true
			continue
		}
		for _, s := range d.seqs {
			seq, err := client.ParseSeqNum(s)
			if err != nil {
				t.Fatal(err)
			}
			if l, ok := last[seq.Shard]; ok && !l.Less(seq) {
				t.Errorf("record %s delivered after %s", seq, l)
			}
			last[seq.Shard] = seq
		}
	}
	if t.Failed() {
		t.Logf("first run:\n%s\nsecond run:\n%s", firstOut, secondOut)
	}
}

// TestLambdaRefusesBadInput checks the command's usage errors: they name the problem and
// exit with status 2 before any process starts.
func TestLambdaRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{"EventSourceArn":"arn:aws:kinesis:us-east-1:000000000000:stream/s","StartingPosition":"LATEST"}`)
	handler := write("handler", "#!/bin/sh\n")
	if err := os.Chmod(handler, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--handler", handler}, "--handler and --event-source-mapping are required"},
		{[]string{"--event-source-mapping", good}, "--handler and --event-source-mapping are required"},
		{[]string{"--handler", handler, "--event-source-mapping", write("typo.json", `{"EventSourceArn":"arn:aws:kinesis:us-east-1:0:stream/s","StartingPosition":"LATEST","BatchSise":5}`)}, "unknown keys BatchSise"},
		{[]string{"--handler", handler, "--event-source-mapping", write("window.json", `{"EventSourceArn":"arn:aws:kinesis:us-east-1:0:stream/s","StartingPosition":"LATEST","TumblingWindowInSeconds":901}`)}, "TumblingWindowInSeconds 901"},
		{[]string{"--handler", handler, "--event-source-mapping", filepath.Join(dir, "missing.json")}, "no such file"},
		{[]string{"--handler", handler, "--event-source-mapping", good, "--timeout", "0s"}, "must be positive"},
	} {
		status, _, stderr := sluice(t, "", append([]string{"lambda"}, tc.args...)...)
		if status != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("lambda %q: status %d, %s; want %d and %q", tc.args, status, stderr, exitUsage, tc.want)
		}
	}
	// A handler that is not executable is refused before any read of the stream.
	status, _, stderr := sluice(t, "", "lambda", "--handler", good, "--event-source-mapping", good, "--checkpoint", filepath.Join(dir, "cp"))
	if status != exitError || !strings.Contains(stderr, "not an executable file") {
		t.Errorf("a JSON file as the handler: status %d, %s", status, stderr)
	}
}
