package multiraft

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/tracker"
)

// asyncSM is a memSM persisting in two steps (AsyncPersister): PersistAsync stores the Ready
// in memory, and its wait blocks while the node's gate holds it. Each wait records how many
// Raft messages its Host handed to the senders between PersistAsync and the wait (those that
// left before the Ready was durable).
type asyncSM struct {
	*memSM
	n *gcNode
}

// gcNode is one node's gate and what its waits saw.
type gcNode struct {
	host    *Host
	gate    chan struct{} // a wait takes a token, or passes once gate is closed
	waiting atomic.Int32  // waits blocked now
	early   atomic.Uint64 // messages sent between a PersistAsync and its wait, summed
	waits   atomic.Uint64 // waits run
	opened  sync.Once     // closes gate
}

// open closes the gate: every wait passes from now on.
func (n *gcNode) open() { n.opened.Do(func() { close(n.gate) }) }

func (s *asyncSM) PersistAsync(rd *raft.Ready) (func() error, error) {
	if err := s.Persist(rd); err != nil {
		return nil, err
	}
	if len(rd.Entries) == 0 {
		return nil, nil
	}
	sent := raftSent(s.n.host)
	return func() error {
		s.n.early.Add(uint64(max(0, raftSent(s.n.host)-sent)))
		s.n.waits.Add(1)
		s.n.waiting.Add(1)
		<-s.n.gate
		s.n.waiting.Add(-1)
		return nil
	}, nil
}

// raftSent is how many Raft messages h has sent: its messages without the liveness pings,
// which its ticks send whatever the groups do. (A ping queued and then dropped counts in
// PingsSent only, so differences are clamped at 0 by the caller.)
func raftSent(h *Host) int64 {
	st := h.Stats()
	return int64(st.MessagesSent) - int64(st.PingsSent)
}

// newGroupCommitCluster starts three nodes with groups groups (ids 1 to groups) of asyncSMs,
// all led by node 1, whose waits pass only when the test sends on gc[0].gate (the followers'
// pass at once). Ticks are stopped when it returns.
func newGroupCommitCluster(t *testing.T, groups int) (*testCluster, []*gcNode, []GroupID) {
	t.Helper()
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.DisableQuiesce = true })
	gc := make([]*gcNode, len(c.nodes))
	for i, nd := range c.nodes {
		gc[i] = &gcNode{host: nd.host, gate: make(chan struct{})}
		if i > 0 {
			gc[i].open() // followers: durable at once
		}
	}
	// A test that fails with node 1's loop blocked in a wait must not leave Close waiting
	// for it (cleanups run last in, first out: this one before the cluster's).
	t.Cleanup(gc[0].open)
	// Until the groups have elected node 1, let its waits pass (bootstrap and elections write entries).
	open, opened := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(opened)
		for {
			select {
			case gc[0].gate <- struct{}{}:
			case <-open:
				return
			}
		}
	}()
	var ids []GroupID
	for i := 1; i <= groups; i++ {
		id := GroupID(i)
		ids = append(ids, id)
		for k, nd := range c.nodes {
			sm := newMemSM()
			nd.sms[id] = sm
			if err := nd.host.AddGroup(id, c.peers(), &asyncSM{memSM: sm, n: gc[k]}, GroupOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	stop := c.tickEvery(10 * time.Millisecond)
	for _, id := range ids {
		if err := c.node(1).host.Campaign(id); err != nil {
			t.Fatal(err)
		}
	}
	c.leadAll(ids, 1)
	// A follower still probed (its answer to the election's entry not yet in) gets no MsgApp
	// until that answer is handled: the tests' next entries would wait behind node 1's
	// blocked wait, and never reach it. So wait for every follower to be replicated to, with
	// the leader's entries all matched.
	for _, id := range ids {
		waitFor(t, fmt.Sprintf("node 1 to replicate group %d to its followers", id), func() bool {
			st, err := c.node(1).host.Status(id)
			if err != nil || len(st.Progress) != len(c.nodes) {
				return false
			}
			for peer, pr := range st.Progress {
				if peer != st.ID && (pr.State != tracker.StateReplicate || pr.Match < st.GetCommit()) {
					return false
				}
			}
			return true
		})
	}
	stop()
	close(open)
	<-opened // no send on node 1's gate is left running: the test sends on it alone from here
	return c, gc, ids
}

// TestGroupCommit: the entries of the groups a loop iteration handles are made durable
// together (their waits run at once); a leader's MsgApps leave before its own wait returns
// (its followers store the entries meanwhile) and nothing else does (a follower sends
// nothing between persisting and its wait); every entry is applied on every node.
func TestGroupCommit(t *testing.T) {
	const groups = 8
	c, gc, ids := newGroupCommitCluster(t, groups)
	last := func(nd *node, id GroupID) uint64 {
		i, _ := nd.sms[id].st.LastIndex()
		return i
	}
	h := c.node(1).host
	var wg sync.WaitGroup
	propose := func(id GroupID) {
		defer wg.Done()
		if err := h.Propose(context.Background(), id, [][]byte{fmt.Appendf(nil, "g%d", id)}); err != nil {
			t.Error(err)
		}
	}
	// Group 1's entry: node 1's loop blocks in its wait.
	before := gc[0].waits.Load()
	wg.Add(1)
	go propose(ids[0])
	waitFor(t, "node 1 to wait for group 1's entry", func() bool { return gc[0].waiting.Load() == 1 })
	// The other groups' proposals queue up behind it and are handled in one iteration.
	for _, id := range ids[1:] {
		wg.Add(1)
		go propose(id)
	}
	waitFor(t, "the other proposals to queue", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.requests) == groups-1
	})
	gc[0].gate <- struct{}{}
	waitFor(t, "node 1 to wait for the other groups' entries at once", func() bool { return gc[0].waiting.Load() == groups-1 })
	// Meanwhile the MsgApps have left: the followers store every group's entry. Group 1's
	// entry, durable on node 1 before this iteration, may be applied (its answers may have
	// come in with the other proposals: TestApplyBeforeLaterEntriesDurable); the others not.
	for k, id := range ids {
		want := last(c.node(1), id)
		waitFor(t, fmt.Sprintf("the followers to store group %d's entry", id), func() bool {
			return last(c.node(2), id) == want && last(c.node(3), id) == want
		})
		if k > 0 && len(c.node(1).sms[id].appliedData()) != 0 {
			t.Fatalf("group %d applied an entry before the leader's wait returned", id)
		}
	}
	gc[0].open()
	wg.Wait()
	stop := c.tickEvery(10 * time.Millisecond)
	defer stop()
	for _, id := range ids {
		want := [][]byte{fmt.Appendf(nil, "g%d", id)}
		waitFor(t, fmt.Sprintf("group %d to apply on all three", id), func() bool { return hasApplied(id, want, c.nodes...) })
	}
	if n := gc[0].waits.Load() - before; n != groups {
		t.Fatalf("node 1 ran %d waits for %d groups' entries", n, groups)
	}
	if gc[0].early.Load() == 0 {
		t.Fatal("no MsgApp left node 1 before its waits returned")
	}
	for i, g := range gc[1:] {
		if n := g.early.Load(); n != 0 || g.waits.Load() == 0 {
			t.Fatalf("follower %d: %d messages sent before the entries were durable (%d waits)", i+2, n, g.waits.Load())
		}
	}
}

// TestApplyBeforeLaterEntriesDurable: when the iteration that commits an entry on the leader
// also persists a newer one, the committed entry is applied (its proposal acknowledged)
// while the loop still waits for the newer entry's fdatasync, not after it; the newer entry
// is applied once it is durable and committed.
func TestApplyBeforeLaterEntriesDurable(t *testing.T) {
	c, gc, ids := newGroupCommitCluster(t, 1)
	id, h := ids[0], c.node(1).host
	inbox := func() int {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.inbox)
	}
	propose := func(data string, done chan<- error) {
		done <- h.Propose(context.Background(), id, [][]byte{[]byte(data)})
	}
	doneA, doneB := make(chan error, 1), make(chan error, 1)
	go propose("a", doneA)
	waitFor(t, "node 1 to wait for a's fdatasync", func() bool { return gc[0].waiting.Load() == 1 })
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	// The followers store a (its MsgApp left before the wait) and answer; their answers and
	// b's proposal queue behind the wait.
	want, _ := c.node(1).sms[id].st.LastIndex()
	for _, nd := range c.nodes[1:] {
		waitFor(t, fmt.Sprintf("node %d to store a", nd.id), func() bool { i, _ := nd.sms[id].st.LastIndex(); return i == want })
	}
	waitFor(t, "both answers to reach node 1", func() bool { return inbox() >= 2 })
	go propose("b", doneB)
	waitFor(t, "b's proposal to queue", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.requests) == 1
	})
	gc[0].gate <- struct{}{} // a is durable; the next iteration commits a and persists b
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node 1 to wait for b's fdatasync", func() bool { return gc[0].waiting.Load() == 1 })
	if got := c.node(1).sms[id].appliedData(); !hasApplied(id, [][]byte{[]byte("a")}, c.node(1)) {
		t.Fatalf("node 1 applied %q while waiting for b's fdatasync, want a applied", got)
	}
	gc[0].open()
	stop := c.tickEvery(10 * time.Millisecond)
	defer stop()
	waitFor(t, "a and b to apply on all three", func() bool {
		return hasApplied(id, [][]byte{[]byte("a"), []byte("b")}, c.nodes...)
	})
}
