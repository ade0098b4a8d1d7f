package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serveProc is a `sluice serve` child process for the tests that load a real server: the
// overload, many-clients and soak tests.
type serveProc struct {
	cmd    *exec.Cmd
	base   string // http://host:port
	addr   string // host:port
	stderr *syncBuffer
	done   chan struct{} // closed once the process exited and was waited for
}

// startServeProc starts `sluice serve --data-dir dir args...` in a child process on a
// loopback port and waits until it listens. The process is killed at the end of the test if
// it still runs.
func startServeProc(t testing.TB, dir string, args ...string) *serveProc {
	t.Helper()
	return startServeProcAt(t, dir, "127.0.0.1:0", args...)
}

// startServeProcAt is startServeProc on the address addr.
func startServeProcAt(t testing.TB, dir, addr string, args ...string) *serveProc {
	t.Helper()
	p := &serveProc{stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = sluiceCmd(append([]string{"serve", "--addr", addr, "--data-dir", dir}, args...)...)
	p.cmd.Stderr = p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if _, after, ok := strings.Cut(lines.Text(), "on http://"); ok {
			p.addr = strings.Fields(after)[0]
			p.base = "http://" + p.addr
			break
		}
	}
	if p.base == "" {
		t.Fatalf("sluice serve never said where it listens:\n%s", p.stderr.String())
	}
	go io.Copy(io.Discard, out) // keep its stdout drained
	return p
}

// kill stops the process with SIGKILL and waits for it.
func (p *serveProc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// stop stops the process with SIGTERM (a graceful shutdown) and waits for it; false if it
// had not exited within a minute, when it is killed.
func (p *serveProc) stop() bool {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.cmd.ProcessState.Success()
	case <-time.After(time.Minute):
		p.kill()
		return false
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// procStatus returns a field of /proc/PID/status in bytes (for kB fields) or as a count;
// -1 if it cannot be read.
func procStatus(pid int, field string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			rest = strings.TrimSpace(rest)
			kb := strings.HasSuffix(rest, " kB")
			v, err := strconv.ParseInt(strings.TrimSuffix(rest, " kB"), 10, 64)
			if err != nil {
				return -1
			}
			if kb {
				v <<= 10
			}
			return v
		}
	}
	return -1
}

// rss returns the process's resident set in bytes; -1 if it cannot be read.
func (p *serveProc) rss() int64 { return procStatus(p.cmd.Process.Pid, "VmRSS") }

// anonRSS returns the anonymous part of the process's resident set (its heap and stacks, not
// the pages of the segment files it maps, which the kernel may drop) in bytes; -1 if it
// cannot be read.
func (p *serveProc) anonRSS() int64 { return procStatus(p.cmd.Process.Pid, "RssAnon") }

// kinesisClient calls the Kinesis JSON API of a server over HTTP/1.1.
type kinesisClient struct {
	base string
	http *http.Client
}

// newKinesisClient returns a client of base keeping up to conns connections open; from is
// the local address it connects from ("" for any).
func newKinesisClient(base string, conns int, from string) *kinesisClient {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	var p http.Protocols
	p.SetHTTP1(true)
	tr := &http.Transport{Protocols: &p, DialContext: d.DialContext, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		ResponseHeaderTimeout: time.Minute}
	return &kinesisClient{base: base, http: &http.Client{Transport: tr}}
}

// newKinesisH2Client returns a client of base speaking HTTP/2 without TLS (prior knowledge),
// which multiplexes its calls over few connections.
func newKinesisH2Client(base string) *kinesisClient {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &kinesisClient{base: base, http: &http.Client{Transport: &http.Transport{Protocols: &p}}}
}

// apiAnswer is a Kinesis API call's outcome: its HTTP status, error type (empty on success)
// and body.
type apiAnswer struct {
	status  int
	errType string
	body    []byte
}

// call sends op with the JSON body; err is a transport error only.
func (c *kinesisClient) call(ctx context.Context, op string, body []byte) (apiAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+"/", bytes.NewReader(body))
	if err != nil {
		return apiAnswer{}, err
	}
	req.Header.Set("X-Amz-Target", "Kinesis_20131202."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := c.http.Do(req)
	if err != nil {
		return apiAnswer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return apiAnswer{}, err
	}
	a := apiAnswer{status: resp.StatusCode, body: b}
	if resp.StatusCode != 200 {
		a.errType = resp.Header.Get("X-Amzn-ErrorType")
		if i := strings.IndexByte(a.errType, ':'); i >= 0 {
			a.errType = a.errType[:i]
		}
	}
	return a, nil
}

// must calls op with in (marshalled as JSON) and decodes the answer into out (if not nil),
// failing the test on any error but a LimitExceededException, which it retries: the
// control-plane quotas are Kinesis's.
func (c *kinesisClient) must(t testing.TB, op string, in, out any) {
	t.Helper()
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for {
		a, err := c.call(context.Background(), op, body)
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		if a.errType == "LimitExceededException" {
			time.Sleep(200 * time.Millisecond) // a quota of a few calls per second
			continue
		}
		if a.status != 200 {
			t.Fatalf("%s: %d %s %s", op, a.status, a.errType, a.body)
		}
		if out != nil {
			if err := json.Unmarshal(a.body, out); err != nil {
				t.Fatalf("%s: %v: %s", op, err, a.body)
			}
		}
		return
	}
}

// createStream creates a stream of shards shards and waits until it is active.
func (c *kinesisClient) createStream(t testing.TB, name string, shards int) {
	t.Helper()
	c.must(t, "CreateStream", map[string]any{"StreamName": name, "ShardCount": shards}, nil)
	for {
		var d struct{ StreamDescriptionSummary struct{ StreamStatus string } }
		c.must(t, "DescribeStreamSummary", map[string]any{"StreamName": name}, &d)
		if d.StreamDescriptionSummary.StreamStatus == "ACTIVE" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// putRecordBody returns a PutRecord body for one record.
func putRecordBody(stream, key string, data []byte) []byte {
	b, _ := json.Marshal(map[string]any{"StreamName": stream, "PartitionKey": key, "Data": base64.StdEncoding.EncodeToString(data)})
	return b
}

// putRecordsBody returns a PutRecords body of one record per key.
func putRecordsBody(stream string, keys []string, data []byte) []byte {
	type entry struct{ PartitionKey, Data string }
	recs := make([]entry, len(keys))
	for i, k := range keys {
		recs[i] = entry{k, base64.StdEncoding.EncodeToString(data)}
	}
	b, _ := json.Marshal(map[string]any{"StreamName": stream, "Records": recs})
	return b
}

// putRecordsAnswer is what a PutRecords answer says of each record.
type putRecordsAnswer struct {
	FailedRecordCount int
	Records           []struct{ SequenceNumber, ShardId, ErrorCode string }
}

// envDuration returns the duration in the environment variable name, or def when it is unset;
// it fails the test on a value that does not parse.
func envDuration(t testing.TB, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 30s", name, v)
	}
	return d
}
