package multiraft

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"
)

// TestSilentLeaderReplaced: the groups a node leads are quiesced everywhere; the node then
// falls silent (closed, paused as by SIGSTOP, or with every send failing), and nobody calls
// NodeDown. The other two find it silent by themselves, elect leaders among them within a
// bounded number of ticks, take writes, and quiesce again without waiting for it. A paused
// node that resumes, and a mute one whose sends work again, learn the new leaders (Leader)
// and are heard again.
func TestSilentLeaderReplaced(t *testing.T) {
	tests := []struct {
		name string
		// silence makes node 1 silent and says whether it keeps ticking.
		silence func(c *testCluster, n1 *node) (ticking bool)
		// after runs once the others elected, with them still ticking.
		after func(t *testing.T, c *testCluster, n1 *node, ids []GroupID)
	}{
		{
			name: "closed",
			silence: func(c *testCluster, n1 *node) bool {
				c.stop(n1)
				return false
			},
		},
		{
			name: "paused",
			silence: func(c *testCluster, n1 *node) bool {
				n1.pause()
				return false
			},
			after: func(t *testing.T, c *testCluster, n1 *node, ids []GroupID) {
				n1.resume()
				stop := c.tickNodes(10*time.Millisecond, []*node{n1})
				defer stop()
				learnLeaders(t, c, n1, ids)
			},
		},
		{
			name: "mute",
			silence: func(c *testCluster, n1 *node) bool {
				// Addresses nothing listens on: every POST of node 1 fails.
				for _, id := range []uint64{2, 3} {
					n1.host.SetPeer(id, closedAddr(t))
				}
				return true
			},
			after: func(t *testing.T, c *testCluster, n1 *node, ids []GroupID) {
				// Node 1 may be campaigning where the new leader quiesced before it
				// caught up; once its messages arrive, its pre-votes wake the leader.
				c.connect(n1)
				learnLeaders(t, c, n1, ids)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCluster(t, 3, nil)
			stop := c.tickEvery(10 * time.Millisecond)
			ids := c.addGroups(6, func(GroupID) uint64 { return 1 })
			c.leadAll(ids, 1)
			waitFor(t, "every group to quiesce everywhere", func() bool { return allQuiesced(t, ids, c.nodes...) })
			stop()
			n1 := c.node(1)
			survivors := []*node{c.node(2), c.node(3)}
			ticking := survivors
			if tt.silence(c, n1) {
				ticking = c.live()
			}
			ticks, stop := c.electAmong(ticking, survivors, ids, 1)
			defer stop()
			for _, id := range ids {
				if l := c.agreedLeader(id, survivors...); l == 0 || l == 1 {
					t.Fatalf("group %d: the survivors agree on leader %d", id, l)
				}
			}
			t.Logf("without NodeDown, new leaders after %d ticks of node 2", ticks)
			if ticks > electionBound {
				t.Errorf("new leaders after %d ticks, want at most %d", ticks, electionBound)
			}
			for _, nd := range survivors {
				if s := nd.host.Stats(); s.PeersSilent == 0 {
					t.Errorf("node %d never found node 1 silent: %+v", nd.id, s)
				}
			}
			for _, id := range ids {
				d := fmt.Appendf(nil, "after-%d", id)
				lead := c.node(c.agreedLeader(id, survivors...))
				waitFor(t, "a write on the new leader", func() bool {
					return lead.host.Propose(t.Context(), id, [][]byte{d}) == nil
				})
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
			// Node 1 is silent, so the new leaders do not wait for it.
			waitFor(t, "the groups to quiesce again on the survivors", func() bool { return allQuiesced(t, ids, survivors...) })
			if tt.after != nil {
				tt.after(t, c, n1, ids)
			}
		})
	}
}

// TestMuteHigherPeerFoundSilent: node 3, the highest id, leads every group, quiesced
// everywhere; nodes 1 and 2 hear it from its answers to their pings (liveness.go, pairs).
// Then every POST of node 3 fails while its answers still arrive, and nobody calls
// NodeDown: its round of pings that it sends anyway fails, its answers stop vouching, and
// nodes 1 and 2 find it silent and elect leaders among them.
func TestMuteHigherPeerFoundSilent(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	stop := c.tickEvery(10 * time.Millisecond)
	ids := c.addGroups(6, func(GroupID) uint64 { return 3 })
	c.leadAll(ids, 3)
	waitFor(t, "every group to quiesce everywhere", func() bool { return allQuiesced(t, ids, c.nodes...) })
	stop()
	for _, id := range []uint64{1, 2} {
		c.node(3).host.SetPeer(id, closedAddr(t)) // node 3's POSTs fail; theirs to it arrive
	}
	survivors := []*node{c.node(1), c.node(2)}
	ticks, stop := c.electAmong(c.nodes, survivors, ids, 3)
	defer stop()
	t.Logf("node 3 mute: new leaders after %d ticks of node 1", ticks)
	// Node 3 pings its lower peers at least every (maxSkips+1)-th round: its answers stop
	// vouching at most that many ticks later than a silent node's pings stop.
	if bound := uint64(electionBound + (maxSkips+1)*pingEvery); ticks > bound {
		t.Errorf("new leaders after %d ticks, want at most %d", ticks, bound)
	}
	for _, nd := range survivors {
		if s := nd.host.Stats(); s.PeersSilent == 0 {
			t.Errorf("node %d never found node 3 silent: %+v", nd.id, s)
		}
	}
}

// learnLeaders waits until nd's Leader names, for every group of ids, the leader the
// other nodes agree on, which is not nd, and until the others have heard nd again.
func learnLeaders(t *testing.T, c *testCluster, nd *node, ids []GroupID) {
	t.Helper()
	others := slices.DeleteFunc(slices.Clone(c.nodes), func(o *node) bool { return o == nd })
	for _, id := range ids {
		waitFor(t, fmt.Sprintf("node %d to learn group %d's new leader", nd.id, id), func() bool {
			l := c.agreedLeader(id, others...)
			return l != 0 && l != nd.id && nd.host.Leader(id) == l
		})
	}
	waitFor(t, fmt.Sprintf("node %d to be heard again", nd.id), func() bool {
		for _, o := range others {
			if o.host.Stats().PeersHeardAgain == 0 {
				return false
			}
		}
		return true
	})
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestLeaderLookup: Leader, which reads without the loop, says what raft's status says on
// every node after elections and after a leadership transfer, and 0 for a group removed,
// a group failed, and on a closed Host.
func TestLeaderLookup(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	stop := c.tickEvery(10 * time.Millisecond)
	defer stop()
	ids := c.addGroups(6, leaderByMod)
	agree := func(id GroupID) bool {
		for _, nd := range c.nodes {
			st, err := nd.host.Status(id)
			if err != nil {
				t.Fatal(err)
			}
			if st.Lead == 0 || nd.host.Leader(id) != st.Lead {
				return false
			}
		}
		return c.agreedLeader(id, c.nodes...) != 0
	}
	for _, id := range ids {
		waitFor(t, fmt.Sprintf("group %d: Leader to match raft's status", id), func() bool { return agree(id) })
	}
	id := ids[0]
	from := c.agreedLeader(id, c.nodes...)
	to := from%3 + 1
	c.leadAll([]GroupID{id}, to)
	waitFor(t, "Leader to follow the transfer", func() bool { return agree(id) && c.agreedLeader(id, c.nodes...) == to })

	h := c.node(2).host
	if err := h.RemoveGroup(ids[1]); err != nil {
		t.Fatal(err)
	}
	if l := h.Leader(ids[1]); l != 0 {
		t.Errorf("Leader of a removed group: %d, want 0", l)
	}
	sm := c.node(2).sms[ids[2]]
	sm.mu.Lock()
	sm.persistErr = errors.New("disk on fire")
	sm.mu.Unlock()
	lead := c.node(c.agreedLeader(ids[2], c.nodes...))
	waitFor(t, "the group to fail on node 2", func() bool {
		_ = lead.host.Propose(t.Context(), ids[2], [][]byte{[]byte("x")})
		return errors.Is(h.Propose(t.Context(), ids[2], [][]byte{[]byte("y")}), ErrGroupFailed)
	})
	if l := h.Leader(ids[2]); l != 0 {
		t.Errorf("Leader of a failed group: %d, want 0", l)
	}
	if h.Leader(ids[3]) == 0 {
		t.Fatal("no leader known for a healthy group")
	}
	c.stop(c.node(2))
	if l := h.Leader(ids[3]); l != 0 {
		t.Errorf("Leader on a closed Host: %d, want 0", l)
	}
}

// TestPingRounds: whom node 2's ping rounds ping, between a lower peer 1 and a higher peer
// 3 (liveness.go, pairs). The higher peer at every round. The lower one at every round
// until it pinged node 2 since the last round, counts 202 answers, and node 2's last POST
// to it succeeded; then at every fourth round only, and again at every round as soon as
// one of those stops holding.
func TestPingRounds(t *testing.T) {
	h, err := NewHost(Config{NodeID: 2, Ticks: make(chan time.Time)}) // never ticked
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.SetPeer(1, closedAddr(t))
	h.SetPeer(3, closedAddr(t))
	lower := h.live.get(1)
	// round runs one ping round on the loop and returns the peers it pinged; the pings are
	// taken out again, never sent.
	round := func() (pinged []uint64) {
		err := h.call(t.Context(), func() error {
			h.tr.queuePings()
			for id, o := range h.tr.out {
				if len(o.recs) > 0 {
					pinged = append(pinged, id)
				}
				o.reset()
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(pinged)
		return pinged
	}
	both, higher := []uint64{1, 3}, []uint64{3}
	check := func(what string, want []uint64) {
		t.Helper()
		if got := round(); !slices.Equal(got, want) {
			t.Errorf("%s: pinged %v, want %v", what, got, want)
		}
	}
	check("nothing sent yet", both)
	lower.sendOK.Store(true)
	lower.counts.Store(true)
	check("peer 1 sent nothing since the last round", both)
	for r := range 2 * (maxSkips + 1) {
		lower.recent.Store(true)
		want := higher
		if r%(maxSkips+1) == maxSkips {
			want = both
		}
		check(fmt.Sprintf("answers vouch, round %d", r), want)
	}
	for _, tt := range []struct {
		what  string
		unset func()
	}{
		{"the last POST to peer 1 failed", func() { lower.sendOK.Store(false) }},
		{"peer 1 does not count answers", func() { lower.counts.Store(false) }},
	} {
		lower.sendOK.Store(true)
		lower.counts.Store(true)
		lower.recent.Store(true)
		check(tt.what+": before", higher)
		lower.recent.Store(true)
		tt.unset()
		check(tt.what, both)
	}
}

// TestAnswerVouches: a batch from peer 1 is answered 204 until this node's last POST to it
// succeeded, then 202 (vouched); Answer records from LivenessHeader's value whether peer 1
// counts answers; a batch from a node SetPeer never named is answered 204.
func TestAnswerVouches(t *testing.T) {
	h, err := NewHost(Config{NodeID: 2, Ticks: make(chan time.Time)})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.SetPeer(1, closedAddr(t))
	p := h.live.get(1)
	answer := func(from uint64, liveness string, want int) {
		t.Helper()
		status, err := h.Answer(appendPing([]byte{batchVersion}, from), liveness)
		if err != nil || status != want {
			t.Errorf("a ping from %d (%q): %d, %v; want %d", from, liveness, status, err, want)
		}
	}
	answer(1, livenessAnswers, http.StatusNoContent)
	if !p.counts.Load() || !p.heard.Load() {
		t.Error("peer 1's ping with the header: not recorded as counting answers and heard")
	}
	p.sendOK.Store(true)
	answer(1, "", http.StatusAccepted)
	if p.counts.Load() {
		t.Error("peer 1's ping without the header: still recorded as counting answers")
	}
	answer(5, livenessAnswers, http.StatusNoContent)
}
