package main

import (
	"bytes"
	"strings"
	"testing"
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
		{args: []string{"serve"}, status: exitUsage, stderr: "not built yet", noStdout: true},
		{args: []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", "d", "--durability", "interval=200ms"}, status: exitUsage, stderr: "nothing listens on 127.0.0.1:0"},
		{args: []string{"serve", "--durability", "none"}, status: exitUsage, stderr: "not built yet"},
		{args: []string{"serve", "--durability", "sometimes"}, status: exitUsage, stderr: "--durability"},
		{args: []string{"serve", "--durability", "interval=-1s"}, status: exitUsage, stderr: "positive duration"},
		{args: []string{"serve", "--addr", "4567"}, status: exitUsage, stderr: "--addr"},
		{args: []string{"serve", "--data-dir", ""}, status: exitUsage, stderr: "--data-dir"},
		{args: []string{"serve", "--bogus"}, status: exitUsage, stderr: "flag provided but not defined"},
		{args: []string{"serve", "extra"}, status: exitUsage, stderr: "unexpected arguments"},
		{args: []string{"serve", "-h"}, status: exitOK, stderr: "Usage: sluice serve"},
		{args: []string{"version"}, status: exitOK, stdout: "go"},
		{args: []string{"version", "extra"}, status: exitUsage, stderr: "unexpected arguments"},
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

func TestServePlaceholderIsOneLine(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if status := run([]string{"serve"}, &stdout, &stderr); status != exitUsage {
		t.Fatalf("status %d, want %d", status, exitUsage)
	}
	if got := strings.Count(stderr.String(), "\n"); got != 1 {
		t.Errorf("stderr has %d lines, want 1: %q", got, &stderr)
	}
}
