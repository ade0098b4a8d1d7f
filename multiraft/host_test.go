package multiraft

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
)

// ledByNode1 is a three-node cluster, ticking until the test ends, with groups 1..n all
// led by node 1.
func ledByNode1(t *testing.T, n int) (*testCluster, []GroupID) {
	c := newTestCluster(t, 3, nil)
	t.Cleanup(c.tickEvery(10 * time.Millisecond)) // runs before the nodes stop
	ids := c.addGroups(n, func(GroupID) uint64 { return 1 })
	c.leadAll(ids, 1)
	return c, ids
}

// leaderByMod spreads leadership: group g is campaigned on node g mod 3 + 1.
func leaderByMod(id GroupID) uint64 { return uint64(id)%3 + 1 }

// TestElectAndReplicate: three hosts elect the campaigning node in every group, and
// entries proposed on each leader are applied, in order, by all three state machines.
func TestElectAndReplicate(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	stop := c.tickEvery(10 * time.Millisecond)
	defer stop()
	ids := c.addGroups(12, leaderByMod)
	for _, id := range ids {
		waitFor(t, fmt.Sprintf("group %d to elect", id), func() bool { return c.agreedLeader(id, c.nodes...) != 0 })
	}
	for _, id := range ids {
		if got := c.agreedLeader(id, c.nodes...); got != leaderByMod(id) {
			// Another node may win a pre-vote race; that is raft's right, not an error,
			// but every node must still agree.
			t.Logf("group %d: leader %d (campaigned on %d)", id, got, leaderByMod(id))
		}
	}
	want := map[GroupID][][]byte{}
	for _, id := range ids {
		for i := range 5 {
			d := fmt.Appendf(nil, "g%d-e%d", id, i)
			want[id] = append(want[id], d)
			c.proposeOnLeader(id, d)
		}
	}
	for _, id := range ids {
		waitFor(t, fmt.Sprintf("group %d to apply on all three", id), func() bool { return hasApplied(id, want[id], c.nodes...) })
	}
	for _, nd := range c.nodes {
		if s := nd.host.Stats(); s.UnknownGroup != 0 || s.Misrouted != 0 {
			t.Errorf("node %d: stats %+v", nd.id, s)
		}
	}
}

// TestProposeConcurrently: many goroutines propose through one Host at once (run with
// -race); every entry is applied exactly once, in the same order, on every replica.
func TestProposeConcurrently(t *testing.T) {
	c, ids := ledByNode1(t, 4)
	const writers, each = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := ids[(w+i)%len(ids)]
				if err := c.node(1).host.Propose(context.Background(), id, [][]byte{fmt.Appendf(nil, "w%d-%d", w, i)}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := func() int {
		n := 0
		for _, id := range ids {
			n += len(c.node(1).sms[id].appliedData())
		}
		return n
	}
	waitFor(t, "every proposal to apply on the leader", func() bool { return total() == writers*each })
	seen := map[string]bool{}
	for _, id := range ids {
		want := c.node(1).sms[id].appliedData()
		for _, d := range want {
			if seen[string(d)] {
				t.Fatalf("group %d: %q applied twice", id, d)
			}
			seen[string(d)] = true
		}
		waitFor(t, "followers to apply the same sequence", func() bool { return hasApplied(id, want, c.nodes...) })
	}
	if len(seen) != writers*each {
		t.Fatalf("applied %d distinct entries, want %d", len(seen), writers*each)
	}
}

// TestLeaderStopsOthersElect: stopping one of three hosts (listener and loop) makes the
// groups it led elect a leader among the other two within a bounded number of ticks, and
// they accept writes.
func TestLeaderStopsOthersElect(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.DisableQuiesce = true })
	stop := c.tickEvery(10 * time.Millisecond)
	ids := c.addGroups(9, leaderByMod)
	for _, id := range ids {
		waitFor(t, "election", func() bool { return c.agreedLeader(id, c.nodes...) != 0 })
	}
	var led []GroupID
	for _, id := range ids {
		if c.agreedLeader(id, c.nodes...) == 1 {
			led = append(led, id)
		}
	}
	if len(led) == 0 {
		t.Fatal("node 1 leads no group")
	}
	stop()
	c.stop(c.node(1))
	survivors := c.live()
	ticks, stop := c.electWithout(led, 1)
	defer stop()
	t.Logf("groups led by the stopped node elected again after %d ticks of node 2", ticks)
	if ticks > electionBound {
		t.Errorf("new leaders after %d ticks, want at most %d", ticks, electionBound)
	}
	for _, id := range led {
		d := fmt.Appendf(nil, "after-%d", id)
		c.proposeOnLeader(id, d)
		waitFor(t, "the write to apply on both survivors", func() bool {
			for _, nd := range survivors {
				a := nd.sms[id].appliedData()
				if len(a) == 0 || string(a[len(a)-1]) != string(d) {
					return false
				}
			}
			return true
		})
	}
}

// allQuiesced reports whether every group is quiesced on every given node.
func allQuiesced(t testing.TB, ids []GroupID, on ...*node) bool {
	for _, nd := range on {
		for _, id := range ids {
			q, err := nd.host.Quiesced(id)
			if err != nil {
				t.Fatal(err)
			}
			if !q {
				return false
			}
		}
	}
	return true
}

// receivedTotal is the raft messages and quiesce records the nodes received (not pings).
func receivedTotal(on ...*node) uint64 {
	var n uint64
	for _, nd := range on {
		s := nd.host.Stats()
		n += s.MessagesReceived - s.PingsReceived
	}
	return n
}

// sentTotal is the raft messages and quiesce records the nodes sent (not pings).
func sentTotal(on ...*node) uint64 {
	var n uint64
	for _, nd := range on {
		s := nd.host.Stats()
		n += s.MessagesSent - s.PingsSent
	}
	return n
}

func pingsSent(on ...*node) uint64 {
	var n uint64
	for _, nd := range on {
		n += nd.host.Stats().PingsSent
	}
	return n
}

// TestQuiesceAndWake: idle groups quiesce on every replica and then exchange no message
// however many ticks pass, only pings every second tick, one per pair of nodes (from the
// lower id, the answers going back) save a few; a proposal wakes its group, is
// applied everywhere, and the group quiesces again.
func TestQuiesceAndWake(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	stop := c.tickEvery(10 * time.Millisecond)
	ids := c.addGroups(6, leaderByMod)
	waitFor(t, "every group to quiesce everywhere", func() bool { return allQuiesced(t, ids, c.nodes...) })
	stop()
	// The followers' answers to the last heartbeats may still be on their way; every tick
	// round after that sends nothing.
	var sent uint64
	waitFor(t, "the last answers to be sent and received", func() bool {
		sent = sentTotal(c.nodes...)
		c.tickAll()
		return sentTotal(c.nodes...) == sent && receivedTotal(c.nodes...) == sent
	})
	c.flushed()
	var pings [3]uint64
	for i, nd := range c.nodes {
		pings[i] = pingsSent(nd)
	}
	for range 5 * 10 {
		c.tickAll()
	}
	c.flushed()
	// The ticks were taken by the loops (tickAll waits for each); any heartbeat they
	// caused would have been queued in the same iteration. A node pings every higher peer at
	// each of the 25 rounds; a lower peer every fourth round, or when the lower one's ping
	// did not reach it since its previous round (the lower one hears it from its answers:
	// liveness.go, pairs), and no node finds a peer silent meanwhile.
	const rounds = 5 * 10 / pingEvery
	var got [3]uint64
	for i, nd := range c.nodes {
		got[i] = pingsSent(nd) - pings[i]
	}
	t.Logf("pings over 50 ticks, by node: %v", got)
	if got[0] != 2*rounds || got[1] < rounds {
		t.Errorf("50 ticks: node 1 sent %d pings, node 2 %d; want %d and at least %d (each higher peer every %d ticks)", got[0], got[1], 2*rounds, rounds, pingEvery)
	}
	if down, unpaired := got[1]-rounds+got[2], uint64(3*rounds); down > unpaired/2 {
		t.Errorf("50 ticks: nodes 2 and 3 sent %d pings to lower peers (%d without pairs), want at most half", down, unpaired)
	}
	for _, nd := range c.nodes {
		if s := nd.host.Stats(); s.PeersSilent != 0 {
			t.Errorf("node %d found a peer silent %d times", nd.id, s.PeersSilent)
		}
	}
	if got := sentTotal(c.nodes...); got != sent {
		for _, nd := range c.nodes {
			t.Logf("node %d: %+v", nd.id, nd.host.Stats())
			for _, id := range ids {
				if q, _ := nd.host.Quiesced(id); !q {
					st, _ := nd.host.Status(id)
					t.Logf("node %d: group %d awake: %s", nd.id, id, st.String())
				}
			}
		}
		t.Fatalf("quiesced groups sent %d messages over 50 ticks", got-sent)
	}
	for _, id := range ids {
		if l := c.agreedLeader(id, c.nodes...); l == 0 {
			t.Fatalf("group %d lost its leader while quiesced", id)
		}
	}

	id := ids[0]
	lead := c.agreedLeader(id, c.nodes...)
	if err := c.node(lead).host.Propose(context.Background(), id, [][]byte{[]byte("wake")}); err != nil {
		t.Fatal(err)
	}
	if q, _ := c.node(lead).host.Quiesced(id); q {
		t.Fatal("a proposal did not wake the leader's group")
	}
	waitFor(t, "the proposal to apply on all three", func() bool { return hasApplied(id, [][]byte{[]byte("wake")}, c.nodes...) })
	stop = c.tickEvery(10 * time.Millisecond)
	defer stop()
	waitFor(t, "the group to quiesce again", func() bool { return allQuiesced(t, ids, c.nodes...) })
}

// TestQuiescedFollowerWakesOnProposal: a proposal submitted on a quiesced follower is
// forwarded, wakes the leader, and commits.
func TestQuiescedFollowerWakesOnProposal(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	stop := c.tickEvery(10 * time.Millisecond)
	defer stop()
	ids := c.addGroups(3, func(GroupID) uint64 { return 1 })
	waitFor(t, "every group to quiesce everywhere", func() bool { return allQuiesced(t, ids, c.nodes...) })
	if err := c.node(2).host.Propose(context.Background(), ids[1], [][]byte{[]byte("via follower")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the forwarded proposal to apply", func() bool {
		return hasApplied(ids[1], [][]byte{[]byte("via follower")}, c.nodes...)
	})
}

// TestNodeDownWakesQuiesced: when the leader of quiesced groups stops, its followers do
// not notice (they do not tick), with silence detection off, until NodeDown names it; then
// they elect a new leader.
func TestNodeDownWakesQuiesced(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.PeerTimeoutTick = -1 })
	stop := c.tickEvery(10 * time.Millisecond)
	ids := c.addGroups(6, func(GroupID) uint64 { return 1 })
	c.leadAll(ids, 1)
	waitFor(t, "every group to quiesce everywhere", func() bool { return allQuiesced(t, ids, c.nodes...) })
	stop()
	c.stop(c.node(1))
	survivors := c.live()
	for range 5 * 10 {
		c.tickAll()
	}
	for _, id := range ids {
		if l := c.agreedLeader(id, survivors...); l != 1 {
			t.Fatalf("group %d: leader %d after 50 quiesced ticks, want still 1", id, l)
		}
	}
	if !allQuiesced(t, ids, survivors...) {
		t.Fatal("a group woke without NodeDown")
	}
	for _, nd := range survivors {
		nd.host.NodeDown(1)
	}
	ticks, stop := c.electWithout(ids, 1)
	defer stop()
	t.Logf("elected after NodeDown in %d ticks of node 2", ticks)
	if ticks > electionBound {
		t.Errorf("new leaders after %d ticks, want at most %d", ticks, electionBound)
	}
	// With node 1 down, the new leaders quiesce without waiting for it.
	waitFor(t, "the groups to quiesce again on the survivors", func() bool { return allQuiesced(t, ids, survivors...) })
}

// TestOnePostPerPeerPerIteration: one tick of a node leading many groups sends each peer
// all the groups' heartbeats in one POST.
func TestOnePostPerPeerPerIteration(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.DisableQuiesce = true })
	const groups = 50
	ids := c.addGroups(groups, func(GroupID) uint64 { return 1 })
	// Node 1 leads every group, followers have caught up, ticks have stopped and every
	// message sent has landed; on a loaded machine a group may have changed leader before
	// the ticks stopped, then try again.
	settled := func() bool {
		stop := c.tickEvery(10 * time.Millisecond)
		c.leadAll(ids, 1)
		stop()
		waitFor(t, "traffic to settle", func() bool {
			var sent, recv uint64
			for _, nd := range c.nodes {
				s := nd.host.Stats()
				sent, recv = sent+s.MessagesSent, recv+s.MessagesReceived
			}
			return sent == recv
		})
		for _, id := range ids {
			st, err := c.node(1).host.Status(id)
			if err != nil {
				t.Fatal(err)
			}
			if st.Lead != 1 || c.agreedLeader(id, c.nodes...) != 1 {
				return false
			}
			for _, pr := range st.Progress {
				if pr.Match != st.GetCommit() {
					return false
				}
			}
		}
		return true
	}
	// One tick of node 1 must reach node 2 as one POST carrying a heartbeat of every group
	// (and the tick's liveness ping).
	// A message still in flight from before the tick (a late response the settling missed)
	// can land in the same window on a loaded machine: the measurement is then taken again,
	// up to three times. An implementation that does not batch never sees 1 POST.
	var gotPosts, gotMsgs uint64
	for attempt := 1; attempt <= 3; attempt++ {
		waitFor(t, "a settled cluster led by node 1", settled)
		// Messages received count node 1's liveness ping too (one per tick, in the same
		// POST): the Raft messages are the rest.
		raftMsgs := func() uint64 { s := c.node(2).host.Stats(); return s.MessagesReceived - s.PingsReceived }
		posts, recv := c.node(2).posts.Load(), raftMsgs()
		iters := c.node(1).host.Stats().Iterations
		c.node(1).ticks <- time.Now()
		waitFor(t, "node 2 to receive the heartbeats", func() bool { return raftMsgs() >= recv+groups })
		gotPosts = c.node(2).posts.Load() - posts
		gotMsgs = raftMsgs() - recv
		t.Logf("attempt %d: one tick of node 1 (%d loop iterations): %d POSTs carrying %d messages to node 2",
			attempt, c.node(1).host.Stats().Iterations-iters, gotPosts, gotMsgs)
		if gotPosts == 1 && gotMsgs == groups {
			return
		}
	}
	t.Fatalf("one tick sent node 2 %d POSTs with %d messages, want 1 POST with %d", gotPosts, gotMsgs, groups)
}

// TestDeadPeerDoesNotBlock: a peer that accepts connections and never answers holds a
// POST open; the loop goes on ticking, electing and committing with the other peer.
func TestDeadPeerDoesNotBlock(t *testing.T) {
	release := make(chan struct{})
	var hung sync.WaitGroup
	var started = make(chan struct{}, 1)
	blackhole := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hung.Add(1)
		defer hung.Done()
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
	}))
	defer func() { close(release); blackhole.Close() }()

	// A small queue bound, so that the messages for the silent peer overflow it.
	c := newTestCluster(t, 2, func(cfg *Config) { cfg.SendTimeout = time.Hour; cfg.MaxBatchBytes = 2048 })
	for _, nd := range c.nodes {
		nd.host.SetPeer(3, blackhole.Listener.Addr().String())
	}
	stop := c.tickEvery(10 * time.Millisecond)
	defer stop()
	// Groups of three voters, the third being the black hole: nodes 1 and 2 are a quorum.
	var ids []GroupID
	for i := 1; i <= 4; i++ {
		id := GroupID(i)
		ids = append(ids, id)
		for _, nd := range c.nodes {
			sm := newMemSM()
			nd.sms[id] = sm
			if err := nd.host.AddGroup(id, []uint64{1, 2, 3}, sm, GroupOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.node(1).host.Campaign(id); err != nil {
			t.Fatal(err)
		}
	}
	<-started // a POST to node 3 is now held open
	for _, id := range ids {
		var want [][]byte
		for i := range 20 {
			d := fmt.Appendf(nil, "g%d-%d", id, i)
			want = append(want, d)
			c.proposeOnLeader(id, d)
		}
		waitFor(t, "writes to commit without node 3", func() bool { return hasApplied(id, want, c.nodes...) })
	}
	// The loops keep taking ticks (tickEvery's sends would block otherwise) while a POST
	// to node 3 is still held open, and what they queue for node 3 overflows and is
	// dropped instead of waiting.
	before := c.node(1).host.Stats()
	waitFor(t, "30 more ticks and dropped messages", func() bool {
		s := c.node(1).host.Stats()
		return s.Ticks >= before.Ticks+30 && s.MessagesDropped > 0
	})
	t.Logf("node 1: %+v", c.node(1).host.Stats())
}

// TestPersistErrorStopsGroup: a Persist error is sticky: the group is no longer driven and
// Propose reports ErrGroupFailed.
func TestPersistErrorStopsGroup(t *testing.T) {
	c, ids := ledByNode1(t, 2)
	boom := errors.New("disk on fire")
	sm := c.node(1).sms[ids[0]]
	sm.mu.Lock()
	sm.persistErr = boom
	sm.mu.Unlock()
	h := c.node(1).host
	_ = h.Propose(context.Background(), ids[0], [][]byte{[]byte("lost")})
	waitFor(t, "the group to fail", func() bool {
		err := h.Propose(context.Background(), ids[0], [][]byte{[]byte("x")})
		return errors.Is(err, ErrGroupFailed) && errors.Is(err, boom)
	})
	if hasApplied(ids[0], [][]byte{[]byte("lost")}, c.node(2)) {
		t.Fatal("an entry whose Persist failed on the leader was sent and applied")
	}
	// The other group goes on.
	c.proposeOnLeader(ids[1], []byte("fine"))
	waitFor(t, "the healthy group to apply", func() bool { return hasApplied(ids[1], [][]byte{[]byte("fine")}, c.nodes...) })
}

// TestGroupAPIErrors: unknown, duplicate and closed.
func TestGroupAPIErrors(t *testing.T) {
	h, err := NewHost(Config{NodeID: 1, Ticks: make(chan time.Time)})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Propose(context.Background(), 9, [][]byte{{1}}); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("Propose on an unknown group: %v", err)
	}
	if err := h.AddGroup(1, []uint64{1}, newMemSM(), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := h.AddGroup(1, []uint64{1}, newMemSM(), GroupOptions{}); !errors.Is(err, ErrGroupExists) {
		t.Fatalf("AddGroup twice: %v", err)
	}
	if err := h.RemoveGroup(1); err != nil {
		t.Fatal(err)
	}
	if err := h.RemoveGroup(1); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("RemoveGroup twice: %v", err)
	}
	if _, err := NewHost(Config{}); err == nil {
		t.Fatal("NodeID 0 accepted")
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Campaign(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Campaign after Close: %v", err)
	}
	if err := h.Receive([]byte{batchVersion}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Receive after Close: %v", err)
	}
}

// TestRestartFromStorage: a host that stops and starts again over the same storage
// restarts its groups from their state (peers ignored, Applied honoured), catches up with
// what it missed, and applies every entry once.
func TestRestartFromStorage(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.DisableQuiesce = true })
	stop := c.tickEvery(10 * time.Millisecond)
	ids := c.addGroups(3, func(GroupID) uint64 { return 1 })
	c.leadAll(ids, 1)
	want := map[GroupID][][]byte{}
	write := func(tag string) {
		for _, id := range ids {
			d := fmt.Appendf(nil, "g%d-%s", id, tag)
			want[id] = append(want[id], d)
			c.proposeOnLeader(id, d)
		}
	}
	write("before")
	for _, id := range ids {
		waitFor(t, "apply everywhere", func() bool { return hasApplied(id, want[id], c.nodes...) })
	}
	stop()
	n3 := c.node(3)
	c.stop(n3)
	stop = c.tickEvery(10 * time.Millisecond)
	write("while down")
	for _, id := range ids {
		waitFor(t, "apply on the two others", func() bool { return hasApplied(id, want[id], c.node(1), c.node(2)) })
	}
	stop()

	c.start(n3)
	c.connect(n3)
	for _, id := range ids {
		sm := n3.sms[id]
		sm.mu.Lock()
		applied := sm.appliedIndex
		sm.mu.Unlock()
		if err := n3.host.AddGroup(id, []uint64{7, 8, 9}, sm, GroupOptions{Applied: applied}); err != nil {
			t.Fatal(err)
		}
	}
	stop = c.tickEvery(10 * time.Millisecond)
	defer stop()
	write("after")
	for _, id := range ids {
		waitFor(t, "the restarted node to catch up", func() bool { return hasApplied(id, want[id], c.nodes...) })
		st, err := n3.host.Status(id)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := st.Config.Voters.IDs()[7]; ok {
			t.Fatalf("group %d: the restart took the peers argument: %v", id, st.Config)
		}
	}
}

// TestGroupStats: the leader of a settled group reports every follower 0 entries behind
// its last index and a commit equal to it; every node reports the same term and leader;
// a proposal raft refuses (no leader known) is counted as dropped on the node it was made.
func TestGroupStats(t *testing.T) {
	c, ids := ledByNode1(t, 2)
	byID := func(nd *node) map[GroupID]GroupStats {
		t.Helper()
		stats, err := nd.host.GroupStats()
		if err != nil {
			t.Fatal(err)
		}
		m := map[GroupID]GroupStats{}
		for _, gs := range stats {
			m[gs.ID] = gs
		}
		return m
	}
	for _, id := range ids {
		c.proposeOnLeader(id, []byte("x"))
		waitFor(t, "followers to match the leader", func() bool {
			gs := byID(c.node(1))[id]
			return gs.Leader && gs.Commit == gs.LastIndex && gs.Lag[2] == 0 && gs.Lag[3] == 0
		})
		lead := byID(c.node(1))[id]
		if len(lead.Lag) != 2 {
			t.Fatalf("group %d: leader's lag %v, want the two followers", id, lead.Lag)
		}
		for _, nd := range c.nodes[1:] {
			gs := byID(nd)[id]
			if gs.Leader || gs.Lead != 1 || gs.Term != lead.Term || gs.Lag != nil {
				t.Fatalf("group %d on a follower: %+v; leader's: %+v", id, gs, lead)
			}
		}
	}
	// A group with no leader anywhere: node 1 alone in a group of three that never elected.
	const lonely = GroupID(999)
	if err := c.node(1).host.AddGroup(lonely, []uint64{1, 2, 3}, newMemSM(), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.node(1).host.Propose(context.Background(), lonely, [][]byte{[]byte("nowhere")}); !errors.Is(err, raft.ErrProposalDropped) {
		t.Fatalf("propose without a leader: %v, want raft.ErrProposalDropped", err)
	}
	if gs := byID(c.node(1))[lonely]; gs.ProposalsDropped != 1 || gs.Leader || gs.Lead != 0 {
		t.Fatalf("group without a leader: %+v, want 1 proposal dropped and no leader", gs)
	}
}
