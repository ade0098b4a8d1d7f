//go:build linux

// Linux only: the in-process server links stream and segment, whose storage builds on Linux
// only (fallocate, fdatasync); the package under test builds everywhere (make cross).

package cli

import (
	"bytes"
	"net"
	"sync"
	"testing"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/server"
	"github.com/sluice-streams/sluice/stream"
)

// testServer is a real sluice server (engine and HTTP front) on a loopback port.
type testServer struct {
	eng      *stream.Engine
	endpoint string
}

// startServer serves a new engine in a temporary directory on 127.0.0.1 until the test
// ends.
func startServer(t testing.TB) *testServer {
	t.Helper()
	eng, err := stream.Open(stream.Options{Dir: t.TempDir(), Durability: segment.Durability{Mode: segment.None}})
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
	return &testServer{eng: eng, endpoint: "http://" + ln.Addr().String()}
}

// client returns a Client of the server, closed when the test ends.
func (ts *testServer) client(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoint: ts.endpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// createStream creates a stream of n shards through the engine.
func (ts *testServer) createStream(t testing.TB, name string, n int) {
	t.Helper()
	if err := ts.eng.CreateStream(stream.CreateStreamInput{Name: name, ShardCount: n}); err != nil {
		t.Fatal(err)
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
