//go:build linux

// Linux only: the in-process server links stream and segment, whose storage builds on Linux
// only (fallocate, fdatasync).

package lambda

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/server"
	"github.com/sluice-streams/sluice/stream"
)

// testServer is a real sluice server (engine and HTTP front) on a loopback port.
type testServer struct {
	eng *stream.Engine
	c   *client.Client
}

// startServer serves a new engine in a temporary directory on 127.0.0.1 until the test
// ends, and returns it with a client. Its shards have no Kinesis limits: a benchmark puts
// faster than 1,000 records/s per shard; the trigger's reads stay paced by the client.
func startServer(t testing.TB) *testServer {
	t.Helper()
	eng, err := stream.Open(stream.Options{Dir: t.TempDir(), Durability: segment.Durability{Mode: segment.None}, Limits: stream.Limits{Off: true}})
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
	c, err := client.New(client.Config{Endpoint: "http://" + ln.Addr().String(), Unsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.Shutdown()
		<-served
		eng.Close()
	})
	return &testServer{eng: eng, c: c}
}

// createStream creates a stream of n shards and returns its ARN.
func (ts *testServer) createStream(t testing.TB, name string, n int) string {
	t.Helper()
	if err := ts.c.CreateStream(context.Background(), name, n); err != nil {
		t.Fatal(err)
	}
	sum, err := ts.c.DescribeStreamSummary(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return sum.ARN
}

// put appends records of the given keys and data, in order, one request each.
func (ts *testServer) put(t testing.TB, stream string, keys, data []string) {
	t.Helper()
	for i := range keys {
		res, err := ts.c.PutRecords(context.Background(), stream, []client.PutEntry{{Key: keys[i], Data: []byte(data[i])}})
		if err == nil {
			err = res[0].Err
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

var (
	handlerOnce sync.Once
	handlerPath string
	handlerErr  error
	handlerDir  string
)

// TestMain removes the test handler's build directory.
func TestMain(m *testing.M) {
	code := m.Run()
	if handlerDir != "" {
		os.RemoveAll(handlerDir)
	}
	os.Exit(code)
}

// buildHandler builds testdata/handler, a function using github.com/aws/aws-lambda-go,
// once per test binary, and returns its path.
func buildHandler(t testing.TB) string {
	t.Helper()
	handlerOnce.Do(func() {
		if handlerDir, handlerErr = os.MkdirTemp("", "lambda-handler"); handlerErr != nil {
			return
		}
		handlerPath = filepath.Join(handlerDir, "bootstrap")
		out, err := exec.Command("go", "build", "-o", handlerPath, "./testdata/handler").CombinedOutput()
		if err != nil {
			handlerErr = fmt.Errorf("building the handler: %v\n%s", err, out)
		}
	})
	if handlerErr != nil {
		t.Fatal(handlerErr)
	}
	return handlerPath
}

// logLine is one line of the handler's log.
type logLine struct {
	RequestID string                      `json:"requestId"`
	Function  string                      `json:"function"`
	Deadline  bool                        `json:"deadline"`
	Records   []events.KinesisEventRecord `json:"records"`
	Window    *events.Window              `json:"window"`
	State     map[string]string           `json:"state"`
	Final     bool                        `json:"final"`
}

// readLog returns the invocations logged so far.
func readLog(t testing.TB, path string) []logLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	// A line without its newline is still being written by a handler: it is read next time.
	b = b[:bytes.LastIndexByte(b, '\n')+1]
	var out []logLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var inv logLine
		if err := json.Unmarshal(sc.Bytes(), &inv); err != nil {
			t.Fatalf("handler log: %v: %s", err, sc.Text())
		}
		out = append(out, inv)
	}
	return out
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
