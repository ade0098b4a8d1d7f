//go:build linux

// Linux only: these tests run the in-process server of server_test.go.

package client

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/server"
	"github.com/sluice-streams/sluice/stream"
)

// fakeLeaders is a server Peer that answers the leaders request from a table set by the test,
// so that two single-node servers stand for a cluster's nodes. It forwards nothing: a
// single-node engine never refuses a record for leadership.
type fakeLeaders struct {
	mu sync.Mutex
	m  map[stream.ShardID]string
}

var _ server.LeaderLocator = (*fakeLeaders)(nil)

func (f *fakeLeaders) HandlePeer(string, func(string) []byte, []byte) (int, []byte) { return 404, nil }

func (f *fakeLeaders) Forward(string, stream.ShardID, uint64, []stream.PutEntry) ([]stream.PutResult, error) {
	return nil, errors.New("fakeLeaders forwards nothing")
}

func (f *fakeLeaders) Leaders(string) map[stream.ShardID]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[stream.ShardID]string, len(f.m))
	for k, v := range f.m {
		out[k] = v
	}
	return out
}

// countRecords reads a shard from its trim horizon to its tip and returns how many records
// it holds.
func countRecords(t *testing.T, c *Client, name string, shard uint32) int {
	t.Helper()
	ctx := testCtx(t, 30*time.Second)
	n, in := 0, GetInput{Shard: shard, Start: TrimHorizon}
	for {
		out, err := c.GetRecords(ctx, name, in)
		if err != nil {
			t.Fatal(err)
		}
		got := len(out.Records)
		n += got
		in = GetInput{Shard: shard, Start: AtSequenceNumber, Value: out.Next}
		out.Release()
		if got == 0 {
			return n
		}
	}
}

// TestShardLeaders: a single node answers no leaders; a node that knows them answers them,
// without the addresses a client cannot dial; an unknown stream is ResourceNotFound and a
// bad name is refused before it is sent.
func TestShardLeaders(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	single := startServer(t, stream.Options{})
	single.createStream(t, "s", 2)
	c := single.client(t, Config{})
	got, err := c.ShardLeaders(ctx, "s")
	if err != nil || len(got) != 0 {
		t.Fatalf("single node: %v, %v; want no leaders", got, err)
	}
	if _, err := c.ShardLeaders(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown stream: %v, want ErrNotFound", err)
	}
	if _, err := c.ShardLeaders(ctx, ""); !errors.Is(err, ErrValidation) {
		t.Fatalf("empty name: %v, want ErrValidation", err)
	}

	fake := &fakeLeaders{m: map[stream.ShardID]string{0: "127.0.0.1:1234", 1: "[::]:4567", 2: "0.0.0.0:9", 3: "node-b.example:4567"}}
	node := startServerWith(t, stream.Options{}, server.Options{Peer: fake})
	node.createStream(t, "s", 4)
	got, err = node.client(t, Config{}).ShardLeaders(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "127.0.0.1:1234" || got[3] != "node-b.example:4567" {
		t.Fatalf("leaders %v, want shards 0 and 3 only (1 and 2 name unspecified hosts)", got)
	}
}

// TestProducerSendsToLeaders: two servers stand for two nodes, the client's endpoint A saying
// that B leads shard 0 and A shard 1. A Producer through A sends shard 0's records to B and
// shard 1's to A, each lands where it was sent; once B is down, its records go through A
// (the leader is forgotten after the failed request) and every record still succeeds.
func TestProducerSendsToLeaders(t *testing.T) {
	b := startServer(t, stream.Options{Limits: stream.Limits{Off: true}})
	b.createStream(t, "s", 2)
	fake := &fakeLeaders{}
	a := startServerWith(t, stream.Options{Limits: stream.Limits{Off: true}}, server.Options{Peer: fake})
	a.createStream(t, "s", 2)
	fake.mu.Lock()
	fake.m = map[stream.ShardID]string{0: b.addr, 1: a.addr}
	fake.mu.Unlock()
	ca, cb := a.client(t, Config{}), b.client(t, Config{})
	p := newProducer(t, ca, "s", ProducerConfig{})
	ctx := testCtx(t, 60*time.Second)

	round := func(tag string) (perShard [2]int) {
		var fs []*Future
		for i := range 200 {
			f, err := p.Put(ctx, fmt.Sprintf("%s-%d", tag, i), []byte("data"))
			if err != nil {
				t.Fatal(err)
			}
			fs = append(fs, f)
		}
		for _, seq := range waitAll(t, ctx, fs) {
			perShard[seq.Shard]++
		}
		if perShard[0] == 0 || perShard[1] == 0 {
			t.Fatalf("%s: records per shard %v: the keys should reach both shards", tag, perShard)
		}
		return perShard
	}
	first := round("first")
	if got := [2]int{countRecords(t, cb, "s", 0), countRecords(t, cb, "s", 1)}; got != [2]int{first[0], 0} {
		t.Fatalf("B holds %v records in shards 0 and 1, want %v", got, [2]int{first[0], 0})
	}
	if got := [2]int{countRecords(t, ca, "s", 0), countRecords(t, ca, "s", 1)}; got != [2]int{0, first[1]} {
		t.Fatalf("A holds %v records in shards 0 and 1, want %v", got, [2]int{0, first[1]})
	}
	if st := p.Stats(); st.LeaderFailures != 0 {
		t.Fatalf("%d leader failures with both servers up", st.LeaderFailures)
	}

	b.stop()
	second := round("second")
	if st := p.Stats(); st.LeaderFailures == 0 {
		t.Fatal("no request to B failed after it stopped")
	}
	if got := countRecords(t, ca, "s", 0); got != second[0] {
		t.Fatalf("A holds %d records in shard 0 after B stopped, want the second round's %d", got, second[0])
	}
	b.restart(t)
	if got := countRecords(t, b.client(t, Config{}), "s", 0); got != first[0] {
		t.Fatalf("B holds %d records in shard 0, want the first round's %d", got, first[0])
	}
}

// TestNodeClient: the client of another node shares the client's credentials and signs for
// its own host (a verifying server takes its requests), is made once per address, is the
// client itself for its own host, and is closed with the client.
func TestNodeClient(t *testing.T) {
	a, b := verifyingServer(t), verifyingServer(t)
	ctx := testCtx(t, 30*time.Second)
	c, err := New(Config{Endpoint: a, Region: "us-east-1", Credentials: &Credentials{AccessKeyID: "AKIDCLIENT", SecretAccessKey: "client-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.node(strings.TrimPrefix(a, "http://")) != c || c.node("") != c {
		t.Fatal("the client of the endpoint's own address is not the client itself")
	}
	hostB := strings.TrimPrefix(b, "http://")
	n := c.node(hostB)
	if n == c || n.host != hostB || c.node(hostB) != n {
		t.Fatalf("node client of %s: host %q, made again: %v", hostB, n.host, c.node(hostB) != n)
	}
	if err := n.CreateStream(ctx, "s", 1); err != nil {
		t.Fatal(err)
	}
	if res, err := n.PutRecords(ctx, "s", []PutEntry{{Key: "k", Data: []byte("to b")}}); err != nil || res[0].Err != nil {
		t.Fatalf("put through the node client: %v %+v", err, res)
	}
	if _, err := c.DescribeStreamSummary(ctx, "s"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the stream made through the node client is on the endpoint too: %v", err)
	}
	c.Close()
	if _, err := n.PutRecords(ctx, "s", []PutEntry{{Key: "k", Data: []byte("late")}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("put through the node client of a closed client: %v, want ErrClosed", err)
	}
}
