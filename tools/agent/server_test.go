//go:build linux

// Linux only: the in-process server links stream and segment, whose storage builds on Linux
// only (fallocate, fdatasync).

package agent

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

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
// ends, and returns it with a client. Its shards have no Kinesis limits.
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

func (ts *testServer) createStream(t testing.TB, name string, shards int) {
	t.Helper()
	if err := ts.c.CreateStream(context.Background(), name, shards); err != nil {
		t.Fatal(err)
	}
}

// records returns the data of every record of every shard of stream, shard after shard
// (by id), each shard in order.
func (ts *testServer) records(t testing.TB, name string) []string {
	t.Helper()
	ctx := context.Background()
	shards, err := ts.c.ListShards(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range shards {
		in := client.GetInput{Shard: uint32(s.ID), Start: client.TrimHorizon}
		for {
			o, err := ts.c.GetRecords(ctx, name, in)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range o.Records {
				out = append(out, string(r.Data))
			}
			n := len(o.Records)
			in.Start, in.Value = client.AtSequenceNumber, o.Next
			o.Release()
			if n == 0 {
				break
			}
		}
	}
	return out
}

// running is an Agent whose Run goroutine a test started.
type running struct {
	*Agent
	cancel context.CancelFunc
	done   chan error
}

// startAgent runs an agent of the flows over ts with the checkpoint file ckpt until stop or
// the end of the test.
func startAgent(t testing.TB, ts *testServer, ckpt string, flows ...Flow) *running {
	t.Helper()
	a, err := New(ts.c, Options{Config: Config{Flows: flows}, CheckpointFile: ckpt})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Agent: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop ends Run and checks that it ended without error; a second call does nothing.
func (r *running) stop(t testing.TB) {
	t.Helper()
	if r.done == nil {
		return
	}
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("Run: %v", err)
	}
	r.done = nil
}

// flowOf is a flow of the files matching pattern to stream with quick polls and batches.
func flowOf(stream, pattern string) Flow {
	return Flow{FilePattern: pattern, Stream: stream, InitialPosition: StartOfFile, PollInterval: 5 * time.Millisecond,
		MaxBufferAge: 20 * time.Millisecond, MaxBufferRecords: defaultBufferRecords, MaxBufferBytes: defaultBufferBytes,
		TruncatedRecordTerminator: "\n"}
}

// waitUntil polls cond until it holds, failing the test after a minute.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not a synchronisation
	}
}

// waitRecords waits until stream holds n records and returns them.
func (ts *testServer) waitRecords(t testing.TB, name string, n int) []string {
	t.Helper()
	var got []string
	waitUntil(t, "the stream holds the lines", func() bool {
		got = ts.records(t, name)
		return len(got) >= n
	})
	return got
}

// appendTo appends s to the file at path, creating it.
func appendTo(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// logDir makes a directory for logs and returns it with a checkpoint path beside it.
func logDir(t testing.TB) (dir, ckpt string) {
	root := t.TempDir()
	dir = filepath.Join(root, "logs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, filepath.Join(root, "agent.checkpoint")
}
