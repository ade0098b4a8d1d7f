//go:build linux

// Linux only: the in-process server links stream and segment, whose storage builds on Linux
// only (fallocate, fdatasync); the package under test builds everywhere (make cross).

package client

import (
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/server"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// testServer is a real sluice server (engine and HTTP front) on a loopback port, with
// counters of the native requests it received.
type testServer struct {
	eng      *stream.Engine
	srv      *server.Server
	sopts    server.Options // what the server is made with
	addr     string
	puts     atomic.Int64 // POST /sluice/v1/put requests received
	gets     atomic.Int64 // POST /sluice/v1/get requests received
	subs     atomic.Int64 // POST /sluice/v1/subscribe requests received
	served   chan struct{}
	stopOnce sync.Once
}

// startServer opens an engine in a temporary directory with opts (durability none unless
// set) and serves it on 127.0.0.1.
func startServer(t testing.TB, opts stream.Options) *testServer {
	t.Helper()
	return startServerWith(t, opts, server.Options{})
}

// startServerWith is startServer with the server's options.
func startServerWith(t testing.TB, opts stream.Options, sopts server.Options) *testServer {
	t.Helper()
	opts.Dir = t.TempDir()
	if opts.Durability == (segment.Durability{}) {
		opts.Durability = segment.Durability{Mode: segment.None}
	}
	eng, err := stream.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		eng.Close()
		t.Fatal(err)
	}
	ts := &testServer{eng: eng, addr: ln.Addr().String(), sopts: sopts}
	ts.serve(ln)
	t.Cleanup(func() {
		ts.stop()
		eng.Close()
	})
	return ts
}

func (ts *testServer) serve(ln net.Listener) {
	ts.srv, ts.served, ts.stopOnce = server.New(ts.eng, ts.sopts), make(chan struct{}), sync.Once{}
	srv, served := ts.srv, ts.served
	go func() {
		srv.Serve(&countingListener{Listener: ln, ts: ts})
		close(served)
	}()
}

// stop shuts the server down (the engine stays open until the test ends).
func (ts *testServer) stop() {
	ts.stopOnce.Do(func() {
		ts.srv.Shutdown()
		<-ts.served
	})
}

// restart stops the server and serves the same engine again on the same address.
func (ts *testServer) restart(t testing.TB) {
	t.Helper()
	ts.stop()
	var ln net.Listener
	var err error
	for range 100 { // the port may take a moment to be free again
		if ln, err = net.Listen("tcp", ts.addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	ts.serve(ln)
}

// client returns a Client for the server, closed when the test ends.
func (ts *testServer) client(t testing.TB, cfg Config) *Client {
	t.Helper()
	cfg.Endpoint = "http://" + ts.addr
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// createStream creates a stream through the engine.
func (ts *testServer) createStream(t testing.TB, name string, shards int) {
	t.Helper()
	if err := ts.eng.CreateStream(stream.CreateStreamInput{Name: name, ShardCount: shards}); err != nil {
		t.Fatal(err)
	}
}

// countingListener counts the native requests arriving on its connections by their request
// lines.
type countingListener struct {
	net.Listener
	ts *testServer
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, ts: l.ts}, nil
}

var (
	putLine = []byte("POST /sluice/v1/put ")
	getLine = []byte("POST /sluice/v1/get ")
	subLine = []byte("POST /sluice/v1/subscribe ")
)

// countingConn scans what the server reads for request lines, keeping the tail of each read
// (one byte less than the longest line) so that a line split between reads is still seen. Record data never holds these bytes in
// the tests.
type countingConn struct {
	net.Conn
	ts   *testServer
	tail []byte
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		buf := append(c.tail, p[:n]...)
		// Matches wholly inside the tail were counted with the previous read.
		count := func(line []byte) int64 { return int64(bytes.Count(buf, line) - bytes.Count(c.tail, line)) }
		c.ts.puts.Add(count(putLine))
		c.ts.gets.Add(count(getLine))
		c.ts.subs.Add(count(subLine))
		keep := min(len(buf), len(subLine)-1)
		c.tail = append(c.tail[:0:0], buf[len(buf)-keep:]...)
	}
	return n, err
}

// testCtx returns a context that ends with the test or after d.
func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// mustKey parses a decimal hash key.
func mustKey(t testing.TB, s string) shardmap.Key {
	t.Helper()
	k, err := shardmap.ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
