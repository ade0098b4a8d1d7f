package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain lets a test run this binary as `sluice` in a child process: with SLUICE_TEST_MAIN
// set, it runs the command line after "--" instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv("SLUICE_TEST_MAIN") == "1" {
		for i, a := range os.Args {
			if a == "--" {
				os.Exit(run(os.Args[i+1:], os.Stdout, os.Stderr))
			}
		}
		os.Exit(exitUsage)
	}
	os.Exit(m.Run())
}

// sluiceCmd returns a command running this binary as `sluice args...`.
func sluiceCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "SLUICE_TEST_MAIN=1")
	return cmd
}

// TestOneServerPerDataDir starts two `sluice serve` processes on one data directory: the
// second is refused, naming the first one's pid, and never serves; `sluice inspect` is
// refused while the server runs and works once it is gone (killed with SIGKILL: the kernel
// drops its lock).
func TestOneServerPerDataDir(t *testing.T) {
	dir := t.TempDir()
	first := sluiceCmd("serve", "--addr", "127.0.0.1:0", "--data-dir", dir)
	out, err := first.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Process.Kill()
	// Wait until it listens: by then it holds the lock.
	lines := bufio.NewScanner(out)
	listening := false
	for lines.Scan() {
		if strings.Contains(lines.Text(), "on http://") {
			listening = true
			break
		}
	}
	if !listening {
		t.Fatal("the first server never said where it listens")
	}
	go func() {
		for lines.Scan() { // keep its stdout drained
		}
	}()

	second := sluiceCmd("serve", "--addr", "127.0.0.1:0", "--data-dir", dir)
	var stderr bytes.Buffer
	second.Stderr = &stderr
	done := make(chan error, 1)
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- second.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a second server on the same directory exited 0")
		}
	case <-time.After(60 * time.Second):
		second.Process.Kill()
		t.Fatal("a second server on the same directory kept running")
	}
	want := "pid " + strconv.Itoa(first.Process.Pid) + " (sluice serve)"
	if !strings.Contains(stderr.String(), want) || !strings.Contains(stderr.String(), "in use") {
		t.Fatalf("the second server's refusal does not name the holder (%s):\n%s", want, stderr.String())
	}

	// Offline inspection waits for the server to be gone.
	var insOut, insErr bytes.Buffer
	if code := run([]string{"inspect", filepath.Join(dir, "streams")}, &insOut, &insErr); code == 0 || !strings.Contains(insErr.String(), want) {
		t.Fatalf("inspect beside a running server: status %d, %s", code, insErr.String())
	}
	first.Process.Kill()
	first.Wait()
	insErr.Reset()
	if code := run([]string{"inspect", filepath.Join(dir, "streams")}, &insOut, &insErr); strings.Contains(insErr.String(), "in use") {
		t.Fatalf("inspect after the server died: status %d, %s", code, insErr.String())
	}
}
