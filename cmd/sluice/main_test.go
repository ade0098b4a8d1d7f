package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	tests := []struct {
		args     []string
		status   int
		stdout   string // substring expected on stdout
		stderr   string // substring expected on stderr
		noStdout bool
	}{
		{args: nil, status: exitUsage, stderr: "Usage: sluice <command>"},
		{args: []string{"help"}, status: exitOK, stdout: "serve"},
		{args: []string{"--help"}, status: exitOK, stdout: "version"},
		{args: []string{"help", "serve"}, status: exitOK, stdout: "-durability"},
		{args: []string{"help", "nope"}, status: exitUsage, stderr: `unknown command "nope"`},
		{args: []string{"nope"}, status: exitUsage, stderr: `unknown command "nope"`},
		{args: []string{"inspect"}, status: exitUsage, stderr: "usage: sluice inspect"},
		{args: []string{"frobnicate"}, status: exitUsage, stderr: `unknown command "frobnicate"`},
		{args: []string{"serve", "--durability", "sometimes"}, status: exitUsage, stderr: "--durability"},
		{args: []string{"serve", "--durability", "interval=-1s"}, status: exitUsage, stderr: "positive duration"},
		{args: []string{"serve", "--addr", "4567"}, status: exitUsage, stderr: "--addr"},
		{args: []string{"serve", "--data-dir", ""}, status: exitUsage, stderr: "--data-dir"},
		{args: []string{"serve", "--bogus"}, status: exitUsage, stderr: "flag provided but not defined"},
		{args: []string{"serve", "--limits", "fast"}, status: exitUsage, stderr: "--limits"},
		{args: []string{"serve", "--profile", "heap"}, status: exitUsage, stderr: `--profile "heap": want cpu, mem or trace`},
		{args: []string{"deliver", "--profile", "heap", "--config", "x.json"}, status: exitUsage, stderr: `sluice deliver: --profile "heap": want cpu, mem or trace`},
		{args: []string{"serve", "extra"}, status: exitUsage, stderr: "unexpected arguments"},
		{args: []string{"serve", "-h"}, status: exitOK, stderr: "Usage: sluice serve"},
		{args: []string{"help", "estimate"}, status: exitOK, stdout: "-records-per-sec"},
		{args: []string{"estimate", "--records-per-sec", "3000", "--record-kib", "1", "--consumers", "3"}, status: exitOK, stdout: "Shards (provisioned): 5"},
		{args: []string{"estimate"}, status: exitUsage, stderr: "--records-per-sec and --record-kib are required", noStdout: true},
		{args: []string{"estimate", "--records-per-sec", "0", "--record-kib", "1"}, status: exitUsage, stderr: "records per second 0", noStdout: true},
		{args: []string{"estimate", "--records-per-sec", "10", "--record-kib", "1", "--fan-out", "both"}, status: exitUsage, stderr: "--fan-out", noStdout: true},
		{args: []string{"estimate", "--records-per-sec", "10", "--record-kib", "1", "--retention-hours", "9000"}, status: exitUsage, stderr: "retention 9000 hours", noStdout: true},
		{args: []string{"estimate", "--prices", "/nonexistent/prices.json"}, status: exitError, stderr: "/nonexistent/prices.json", noStdout: true},
		{args: []string{"estimate", "--print-prices"}, status: exitOK, stdout: `"shardHour": 0.015`},
		{args: []string{"version"}, status: exitOK, stdout: "go"},
		{args: []string{"version", "extra"}, status: exitUsage, stderr: "unexpected arguments"},
		{args: []string{"help", "put"}, status: exitOK, stdout: "-partition-key"},
		{args: []string{"help", "tail"}, status: exitOK, stdout: "-max-records"},
		{args: []string{"put"}, status: exitUsage, stderr: "--stream is required", noStdout: true},
		{args: []string{"put", "--stream", "s", "hello"}, status: exitUsage, stderr: "--partition-key is required with DATA", noStdout: true},
		{args: []string{"put", "--stream", "s", "--partition-key", "k", "a", "b"}, status: exitUsage, stderr: `unexpected arguments ["b"]`, noStdout: true},
		{args: []string{"put", "--stream", "s", "--partition-key", "k", "--endpoint", "ftp://h", "a"}, status: exitUsage, stderr: "--endpoint", noStdout: true},
		{args: []string{"get", "--stream", "s"}, status: exitUsage, stderr: "which shard", noStdout: true},
		{args: []string{"get", "--stream", "s", "--shard-id", "0", "--type", "OLDEST"}, status: exitUsage, stderr: `iterator type "OLDEST"`, noStdout: true},
		{args: []string{"get", "--stream", "s", "--shard-id", "0", "--limit", "0"}, status: exitUsage, stderr: "--limit 0: want 1 to 10000", noStdout: true},
		{args: []string{"tail", "--stream", "s", "--fan-out", "enhanced"}, status: exitUsage, stderr: "needs a consumer name", noStdout: true},
		{args: []string{"tail", "--stream", "s", "--limit", "5"}, status: exitUsage, stderr: "flag provided but not defined", noStdout: true},
		{args: []string{"describe", "--stream", "s", "extra"}, status: exitUsage, stderr: "unexpected arguments", noStdout: true},
		{args: []string{"describe", "--json"}, status: exitUsage, stderr: "--stream is required", noStdout: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			status := run(tt.args, &stdout, &stderr)
			if status != tt.status {
				t.Errorf("status %d, want %d\nstdout: %s\nstderr: %s", status, tt.status, &stdout, &stderr)
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout %q does not contain %q", &stdout, tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q does not contain %q", &stderr, tt.stderr)
			}
			if tt.noStdout && stdout.Len() > 0 {
				t.Errorf("unexpected stdout %q", &stdout)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader in different goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestServe starts the server on a loopback port, checks /healthz and one Kinesis call, and
// stops it as a signal would.
func TestServe(t *testing.T) {
	cfg, err := newServeConfig("127.0.0.1:0", t.TempDir(), "sync", "kinesis")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, &stdout, &stderr) }()
	var base string
	for i := 0; i < 500 && base == ""; i++ {
		if _, after, ok := strings.Cut(stdout.String(), "on http://"); ok {
			base = "http://" + strings.Fields(after)[0]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if base == "" {
		t.Fatal("the server never said where it listens")
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("POST", base+"/", strings.NewReader(`{"StreamName":"s","ShardCount":1}`))
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.CreateStream")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CreateStream: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
