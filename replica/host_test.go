package replica_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/multiraft"
	"github.com/sluice-streams/sluice/replica"
	"github.com/sluice-streams/sluice/segment"
)

// hostProposer submits a replica's proposals through a multiraft.Host, on the node that
// leads the group only: elsewhere it answers NotLeaderError with the leader it knows.
type hostProposer struct {
	h  *multiraft.Host
	id multiraft.GroupID
}

func (p hostProposer) Propose(data [][]byte) error {
	if leader := p.h.Leader(p.id); leader != p.h.NodeID() {
		return &replica.NotLeaderError{Leader: leader}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.h.Propose(ctx, p.id, data)
}

// hostNode is one node of the test: a Host serving the Raft transport on loopback, and the
// replica of group 1 in its own directory.
type hostNode struct {
	id   uint64
	host *multiraft.Host
	srv  *http.Server
	log  *replica.Log
	addr string // the loopback address it serves on
}

func (n *hostNode) stop() {
	n.srv.Close()
	n.host.Close()
	n.log.Close()
}

const group multiraft.GroupID = 1

// A replica's Log is the state machine multiraft drives, snapshot files included.
var (
	_ multiraft.StateMachine  = (*replica.Log)(nil)
	_ multiraft.SnapshotFiles = (*replica.Log)(nil)
)

// TestReplicaThroughHost runs a shard's replicated log on three multiraft Hosts talking over
// loopback HTTP: what the replica package promises holds through the real event loop and
// transport. Appends on the leader are acknowledged once committed, with positions; the
// followers' committed frames are byte-identical to the leader's; a follower refuses with
// the leader's id; when the leader's node stops, another takes over and its positions are
// above every acknowledged one.
func TestReplicaThroughHost(t *testing.T) {
	nodes := startHostNodes(t, 3, segment.Options{Durability: segment.Durability{Mode: segment.Sync}}, 20*time.Millisecond)

	leader := waitLeader(t, nodes)
	first := appendRecords(t, leader.log, "a", 50)
	for i := 1; i < len(first); i++ {
		if first[i] <= first[i-1] {
			t.Fatalf("positions not increasing: %v", first)
		}
	}
	for _, n := range nodes {
		if n == leader {
			continue
		}
		var nl *replica.NotLeaderError
		if err := n.log.Append([]segment.Record{{Key: []byte("k"), Data: []byte("x")}}); !errors.As(err, &nl) || nl.Leader != leader.id {
			t.Fatalf("append on follower %d: %v, want NotLeaderError naming %d", n.id, err, leader.id)
		}
	}
	last := first[len(first)-1]
	want := committedFrames(t, leader.log, last)
	for _, n := range nodes {
		if got := committedFrames(t, n.log, last); !bytes.Equal(got, want) {
			t.Fatalf("node %d's committed frames differ from the leader's (%d vs %d bytes)", n.id, len(got), len(want))
		}
	}

	// The leader's node stops: the others elect, and the new positions are above every
	// acknowledged one.
	leader.stop()
	var live []*hostNode
	for _, n := range nodes {
		if n != leader {
			live = append(live, n)
			n.host.NodeDown(leader.id)
		}
	}
	next := waitLeader(t, live)
	var second []uint64
	deadline := time.Now().Add(30 * time.Second)
	for second == nil {
		batch := []segment.Record{{Key: []byte("b"), Data: []byte("after the leader stopped")}}
		err := next.log.Append(batch)
		switch {
		case err == nil:
			second = []uint64{batch[0].Seq}
		case time.Now().After(deadline):
			t.Fatalf("no append acknowledged after the leader stopped: %v", err)
		default: // an election may still be settling: NotLeader or not committed; retry
			next = waitLeader(t, live)
		}
	}
	if second[0] <= last {
		t.Fatalf("position %d after the failover is not above the last acknowledged %d", second[0], last)
	}
	want = committedFrames(t, next.log, second[0])
	for _, n := range live {
		if got := committedFrames(t, n.log, second[0]); !bytes.Equal(got, want) {
			t.Fatalf("after the failover, node %d's committed frames differ", n.id)
		}
	}
}

// newHostNode starts a Host serving the Raft transport and the snapshot files on loopback,
// and opens node id's replica in dir. The Host ticks every tick (an election takes 10).
func newHostNode(t testing.TB, id uint64, dir string, so segment.Options, tick time.Duration) *hostNode {
	t.Helper()
	h, err := multiraft.NewHost(multiraft.Config{NodeID: id, TickInterval: tick})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(multiraft.RaftPath, h.Handler())
	mux.Handle(multiraft.SnapshotPath, h.SnapshotHandler())
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	l, err := replica.Open(dir, replica.Options{NodeID: id, Timeout: 20 * time.Second, Segment: so})
	if err != nil {
		t.Fatal(err)
	}
	n := &hostNode{id: id, host: h, srv: srv, log: l, addr: ln.Addr().String()}
	t.Cleanup(n.stop)
	n.log.SetProposer(hostProposer{h: n.host, id: group})
	return n
}

// startHostNodes starts nodes 1 to count, each knowing the others' addresses, with group
// bootstrapped on all of them.
func startHostNodes(t testing.TB, count uint64, so segment.Options, tick time.Duration) []*hostNode {
	t.Helper()
	var nodes []*hostNode
	var peers []uint64
	for id := uint64(1); id <= count; id++ {
		nodes = append(nodes, newHostNode(t, id, t.TempDir(), so, tick))
		peers = append(peers, id)
	}
	for _, n := range nodes {
		for _, p := range nodes {
			if p != n {
				n.host.SetPeer(p.id, p.addr)
			}
		}
		if err := n.host.AddGroup(group, peers, n.log, multiraft.GroupOptions{Applied: n.log.Applied()}); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// waitLeader waits (a bounded loop) until the live nodes agree on a leader among them.
func waitLeader(t testing.TB, live []*hostNode) *hostNode {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		l := live[0].host.Leader(group)
		agree := l != 0
		for _, n := range live[1:] {
			agree = agree && n.host.Leader(group) == l
		}
		if agree {
			for _, n := range live {
				if n.id == l {
					return n
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader elected among the live nodes")
	return nil
}

// appendRecords appends n records on l and returns their positions.
func appendRecords(t *testing.T, l *replica.Log, tag string, n int) []uint64 {
	t.Helper()
	batch := make([]segment.Record, n)
	for i := range batch {
		batch[i] = segment.Record{Key: []byte(fmt.Sprintf("%s-%d", tag, i)), Data: []byte(fmt.Sprintf("data %s %d", tag, i))}
	}
	if err := l.Append(batch); err != nil {
		t.Fatalf("append %s: %v", tag, err)
	}
	pos := make([]uint64, n)
	for i := range batch {
		pos[i] = batch[i].Seq
	}
	return pos
}

// committedFrames reads every readable frame of l once its tip reaches last (a bounded wait).
func committedFrames(t *testing.T, l *replica.Log, last uint64) []byte {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for l.Tip() < last {
		if time.Now().After(deadline) {
			t.Fatalf("tip %d never reached %d", l.Tip(), last)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var out []byte
	for from := uint64(0); ; {
		v, err := l.Read(from, 1000, 0)
		if err != nil {
			t.Fatal(err)
		}
		if v.Count == 0 {
			v.Release()
			return out
		}
		out = append(out, v.Bytes()...)
		from = v.Next
		v.Release()
		if from > last {
			return out
		}
	}
}

// TestRestartedReplicaServesItsLog kills the leader's node as kill -9 would (its replica is
// abandoned, not closed) and starts it again on the same directory. Its raft.state holds the
// commit index of its last term or vote change, far behind its log, so it publishes none of
// its records until Raft tells it the commit; the engine sets the shard's retention cutoff
// when it opens it (Hide), and a client may read it before that. Every record it held must
// still be readable there once it is committed again, byte for byte as on the others.
func TestRestartedReplicaServesItsLog(t *testing.T) {
	const tick = 20 * time.Millisecond
	so := segment.Options{Durability: segment.Durability{Mode: segment.Sync}}
	nodes := startHostNodes(t, 3, so, tick)
	leader := waitLeader(t, nodes)
	before := appendRecords(t, leader.log, "before", 50)
	dir := leader.log.Segment().Dir()
	leader.srv.Close()
	leader.host.Close()
	var live []*hostNode
	for _, n := range nodes {
		if n != leader {
			live = append(live, n)
			n.host.NodeDown(leader.id)
		}
	}

	back := newHostNode(t, leader.id, dir, so, tick)
	back.log.Hide(time.Now().Add(-24 * time.Hour).UnixNano())
	v, err := back.log.Read(before[0], 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	v.Release()
	for _, n := range live {
		n.host.SetPeer(back.id, back.addr)
		back.host.SetPeer(n.id, n.addr)
	}
	if err := back.host.AddGroup(group, []uint64{1, 2, 3}, back.log, multiraft.GroupOptions{Applied: back.log.Applied()}); err != nil {
		t.Fatal(err)
	}
	for _, n := range live {
		n.host.NodeUp(back.id)
	}
	all := append(live, back)
	var last uint64
	deadline := time.Now().Add(30 * time.Second)
	for last == 0 {
		batch := []segment.Record{{Key: []byte("after"), Data: []byte("after the restart")}}
		switch err := waitLeader(t, all).log.Append(batch); {
		case err == nil:
			last = batch[0].Seq
		case time.Now().After(deadline):
			t.Fatalf("no append acknowledged after the restart: %v", err)
		}
	}
	want := committedFrames(t, live[0].log, last)
	if got := committedFrames(t, back.log, last); !bytes.Equal(got, want) {
		t.Fatalf("the restarted node's readable frames differ from a peer's (%d vs %d bytes)", len(got), len(want))
	}
	v, err = back.log.Read(before[0], 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Release()
	if v.Count != 1 || v.First != before[0] {
		t.Fatalf("read at %d on the restarted node: %d records from %d", before[0], v.Count, v.First)
	}
}
