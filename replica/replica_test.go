package replica

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/sluice-streams/sluice/segment"
)

// The test driver: three replicas, each with its own directory, their RawNodes driven by one
// goroutine (loop), messages passed in memory. Everything that touches a RawNode runs in the
// loop, submitted with do.
type node struct {
	id       uint64
	dir      string
	log      *Log
	rn       *raft.RawNode
	down     bool // not driven at all (a stopped process)
	isolated bool // driven, but its messages in and out are dropped (a partition)
	inbox    []*pb.Message
}

type cluster struct {
	t     *testing.T
	nodes map[uint64]*node
	ops   chan func()
	stop  chan struct{}
	done  chan struct{}
}

func newCluster(t *testing.T) *cluster {
	c := &cluster{t: t, nodes: map[uint64]*node{}, ops: make(chan func()), stop: make(chan struct{}), done: make(chan struct{})}
	for id := uint64(1); id <= 3; id++ {
		n := &node{id: id, dir: t.TempDir()}
		c.start(n)
		c.nodes[id] = n
	}
	go c.loop()
	t.Cleanup(func() {
		close(c.stop)
		<-c.done
		for _, n := range c.nodes {
			n.log.Close()
		}
	})
	return c
}

// start opens a replica from its directory and makes its RawNode.
func (c *cluster) start(n *node) {
	l, err := Open(n.dir, Options{NodeID: n.id, Timeout: 3 * time.Second, Segment: segment.Options{SegmentSize: segment.MinSegmentSize}})
	if err != nil {
		c.t.Fatal(err)
	}
	l.RaftStorage().SetConfState(&pb.ConfState{Voters: []uint64{1, 2, 3}})
	rn, err := raft.NewRawNode(&raft.Config{ID: n.id, ElectionTick: 10, HeartbeatTick: 1, Storage: l.Storage(),
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 64, CheckQuorum: true, PreVote: true})
	if err != nil {
		c.t.Fatal(err)
	}
	n.log, n.rn, n.inbox = l, rn, nil
	l.SetProposer(proposerFunc(func(data [][]byte) error {
		var err error
		c.do(func() {
			if st := n.rn.BasicStatus(); n.down || st.RaftState != raft.StateLeader {
				err = &NotLeaderError{Leader: st.Lead}
				return
			}
			for _, d := range data {
				if err = n.rn.Propose(d); err != nil {
					return
				}
			}
		})
		return err
	}))
}

type proposerFunc func([][]byte) error

func (f proposerFunc) Propose(data [][]byte) error { return f(data) }

// do runs f in the loop and waits for it.
func (c *cluster) do(f func()) {
	ran := make(chan struct{})
	select {
	case c.ops <- func() { f(); close(ran) }:
		<-ran
	case <-c.done:
	}
}

func (c *cluster) loop() {
	defer close(c.done)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case op := <-c.ops:
			op()
		case <-tick.C:
			for _, n := range c.nodes {
				if !n.down {
					n.rn.Tick()
				}
			}
		}
		c.process()
	}
}

// process handles every Ready in raftexample's order and delivers messages until quiet.
func (c *cluster) process() {
	for busy := true; busy; {
		busy = false
		for _, n := range c.nodes {
			if n.down {
				continue
			}
			for _, m := range n.inbox {
				n.rn.Step(m)
			}
			n.inbox = nil
			if !n.rn.HasReady() {
				continue
			}
			busy = true
			rd := n.rn.Ready()
			if err := n.log.Persist(&rd); err != nil {
				c.t.Errorf("node %d: Persist: %v", n.id, err)
				n.down = true
				continue
			}
			for _, m := range rd.Messages {
				to := c.nodes[m.GetTo()]
				if to != nil && !to.down && !to.isolated && !n.isolated {
					to.inbox = append(to.inbox, m)
				}
			}
			if err := n.log.Apply(rd.CommittedEntries); err != nil {
				c.t.Errorf("node %d: Apply: %v", n.id, err)
			}
			n.rn.Advance(rd)
		}
	}
}

// leader waits for a leader among the nodes that are up and connected.
func (c *cluster) leader() *node {
	c.t.Helper()
	for range 5000 {
		var lead *node
		c.do(func() {
			for _, n := range c.nodes {
				if !n.down && !n.isolated && n.rn.BasicStatus().RaftState == raft.StateLeader {
					lead = n
				}
			}
		})
		if lead != nil {
			return lead
		}
		<-time.After(time.Millisecond)
	}
	c.t.Fatal("no leader elected")
	return nil
}

// acked is what the invariant checker needs: every acknowledged record and its position.
type acked struct {
	mu   sync.Mutex
	recs map[string]uint64 // key → position
	max  uint64
}

// appendOK appends n one-record-per-key batches through node n and checks each ack: the
// position above every earlier one, and the record on a majority when it is acknowledged.
func (c *cluster) appendOK(n *node, a *acked, prefix string, batches, per int) {
	c.t.Helper()
	for b := range batches {
		batch := make([]segment.Record, per)
		for i := range batch {
			key := fmt.Sprintf("%s-%d-%d", prefix, b, i)
			batch[i] = segment.Record{Key: []byte(key), Data: bytes.Repeat([]byte(key), 1+i%7)}
		}
		if err := n.log.Append(batch); err != nil {
			c.t.Fatalf("Append through node %d: %v", n.id, err)
		}
		last := batch[per-1].Seq
		holders := 0
		for _, o := range c.nodes {
			if o.log.Segment().LastPos() >= last {
				holders++
			}
		}
		if holders < 2 {
			c.t.Fatalf("position %d acknowledged with %d replica(s) holding it", last, holders)
		}
		a.mu.Lock()
		for i, r := range batch {
			if r.Seq <= a.max || (i > 0 && r.Seq != batch[i-1].Seq+1) {
				a.mu.Unlock()
				c.t.Fatalf("position %d after %d: not strictly increasing and consecutive", r.Seq, a.max)
			}
			a.recs[string(r.Key)] = r.Seq
			a.max = r.Seq
		}
		a.mu.Unlock()
	}
}

// frames returns the frames a node's segment log holds up to last, read back byte for byte.
func frames(t *testing.T, l *Log, last uint64) map[uint64][]byte {
	out := map[uint64][]byte{}
	for from := uint64(1); from <= last; {
		v, err := l.Segment().ReadWritten(from, 1000, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if v.Count == 0 {
			break
		}
		b := v.Bytes()
		it := v.Records()
		off := 0
		for it.Next() {
			r := it.Record()
			n := 32 + len(r.Key) + len(r.Data)
			if r.Seq <= last {
				out[r.Seq] = bytes.Clone(b[off : off+n])
			}
			off += (n + 7) &^ 7
		}
		from = v.Next
		v.Release()
	}
	return out
}

// converge waits until every node that is up has published the same tip as the others and
// at least want.
func (c *cluster) converge(want uint64) uint64 {
	c.t.Helper()
	for range 10000 {
		tips := map[uint64]bool{}
		var tip uint64
		for _, n := range c.nodes {
			if !n.down {
				tip = n.log.Tip()
				tips[tip] = true
			}
		}
		if len(tips) == 1 && tip >= want {
			return tip
		}
		<-time.After(time.Millisecond)
	}
	c.t.Fatalf("replicas did not converge on a tip ≥ %d", want)
	return 0
}

// check is the invariant checker: the committed prefixes of the replicas are byte-identical
// frames, and every acknowledged record is there exactly once, at its position.
func (c *cluster) check(a *acked, tip uint64) {
	c.t.Helper()
	var ref map[uint64][]byte
	for _, n := range c.nodes {
		if n.down {
			continue
		}
		got := frames(c.t, n.log, tip)
		if ref == nil {
			ref = got
			continue
		}
		if len(got) != len(ref) {
			c.t.Fatalf("node %d holds %d frames up to %d, another %d", n.id, len(got), tip, len(ref))
		}
		for pos, b := range ref {
			if !bytes.Equal(got[pos], b) {
				c.t.Fatalf("node %d: frame at %d differs", n.id, pos)
			}
		}
	}
	seen := map[string]uint64{}
	for pos, b := range ref {
		klen := int(b[24]) | int(b[25])<<8
		key := string(b[32 : 32+klen])
		if prev, dup := seen[key]; dup && a.recs[key] != 0 {
			c.t.Fatalf("acknowledged record %q at %d and %d", key, prev, pos)
		}
		seen[key] = pos
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for key, pos := range a.recs {
		if seen[key] != pos {
			c.t.Fatalf("acknowledged record %q at %d: found at %d", key, pos, seen[key])
		}
	}
}

// TestThreeReplicas drives three replicas through an election, acknowledged appends, a
// leader that stops, a partitioned leader whose uncommitted suffix is cut, and a restart
// from disk, checking after each step that the committed logs are byte-identical and that
// every acknowledged record is there exactly once.
func TestThreeReplicas(t *testing.T) {
	c := newCluster(t)
	a := &acked{recs: map[string]uint64{}}

	// Election, then appends acknowledged only once a majority holds them.
	lead := c.leader()
	c.appendOK(lead, a, "first", 30, 5)
	c.check(a, c.converge(a.max))

	// A follower refuses appends and names the leader.
	for _, n := range c.nodes {
		if n != lead {
			var nl *NotLeaderError
			if err := n.log.Append([]segment.Record{{Key: []byte("x")}}); !errors.As(err, &nl) || !errors.Is(err, ErrNotLeader) || nl.Leader != lead.id {
				t.Fatalf("Append on follower %d: %v, want NotLeaderError naming %d", n.id, err, lead.id)
			}
			break
		}
	}

	// The leader stops; another wins; positions keep increasing.
	c.do(func() { lead.down = true })
	lead2 := c.leader()
	c.appendOK(lead2, a, "second", 20, 3)
	c.do(func() { lead.down = false })
	c.check(a, c.converge(a.max))

	// A partitioned leader takes a proposal it cannot commit: not acknowledged; once healed
	// it follows the new leader and its uncommitted suffix is cut.
	lead2.log.opts.Timeout = 200 * time.Millisecond
	c.do(func() { lead2.isolated = true })
	err := lead2.log.Append([]segment.Record{{Key: []byte("lost"), Data: []byte("never acknowledged")}})
	if !errors.Is(err, ErrNotCommitted) && !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Append on a partitioned leader: %v, want ErrNotCommitted", err)
	}
	stale := lead2.log.Segment().LastPos()
	lead3 := c.leader()
	c.appendOK(lead3, a, "third", 10, 4)
	c.do(func() { lead2.isolated = false })
	tip := c.converge(a.max)
	c.check(a, tip)
	if stale > 0 {
		if f := frames(t, lead2.log, tip); f[stale] != nil && bytes.Contains(f[stale], []byte("lost")) {
			t.Fatalf("the partitioned leader's uncommitted record at %d survived", stale)
		}
	}

	// A replica restarts from its directory and catches up.
	var victim *node
	for _, n := range c.nodes {
		if n != lead3 {
			victim = n
			break
		}
	}
	c.do(func() {
		victim.down = true
		if err := victim.log.Close(); err != nil {
			t.Error(err)
		}
		c.start(victim)
	})
	c.appendOK(lead3, a, "fourth", 10, 2)
	c.do(func() { victim.down = false })
	c.check(a, c.converge(a.max))
}
