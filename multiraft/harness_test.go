package multiraft

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// memSM is a StateMachine over raft.MemoryStorage that records the data of the normal
// entries it applies.
type memSM struct {
	st *raft.MemoryStorage

	mu           sync.Mutex
	applied      [][]byte
	appliedIndex uint64
	persistErr   error // returned by every Persist once set
}

func newMemSM() *memSM { return &memSM{st: raft.NewMemoryStorage()} }

func (s *memSM) Storage() raft.Storage { return s.st }

func (s *memSM) Persist(rd *raft.Ready) error {
	s.mu.Lock()
	err := s.persistErr
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := s.st.ApplySnapshot(rd.Snapshot); err != nil {
			return err
		}
	}
	if err := s.st.Append(rd.Entries); err != nil {
		return err
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		return s.st.SetHardState(rd.HardState)
	}
	return nil
}

func (s *memSM) Apply(committed []*raftpb.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range committed {
		s.appliedIndex = e.GetIndex()
		if e.GetType() == raftpb.EntryNormal && len(e.GetData()) > 0 {
			s.applied = append(s.applied, e.GetData())
		}
	}
	return nil
}

func (s *memSM) appliedData() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.applied)
}

// node is one Host of a testCluster, its HTTP server and its tick channel.
type node struct {
	id    uint64
	host  *Host
	srv   *httptest.Server
	ticks chan time.Time
	posts atomic.Uint64 // POSTs its server received
	sms   map[GroupID]*memSM
	down  bool
	// gate holds every request to the node's server while pause has it locked, as a
	// stopped (SIGSTOP) process would.
	gate sync.RWMutex
}

// pause makes nd's server hold every request until resume; the test stops ticking nd
// (tickNodes without it), so that nothing leaves it either.
func (nd *node) pause()  { nd.gate.Lock() }
func (nd *node) resume() { nd.gate.Unlock() }

// testCluster is n Hosts in this process, each behind its own loopback HTTP server, ticked
// by the test (manual ticks: see tickAll and tickEvery).
type testCluster struct {
	t     testing.TB
	nodes []*node
	tweak func(*Config)
}

func newTestCluster(t testing.TB, n int, tweak func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t}
	c.tweak = tweak
	for i := range n {
		nd := &node{id: uint64(i + 1), sms: make(map[GroupID]*memSM)}
		c.start(nd)
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		c.connect(nd)
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			c.stop(nd)
		}
	})
	return c
}

// start gives nd a new Host, tick channel and HTTP server.
func (c *testCluster) start(nd *node) {
	nd.ticks = make(chan time.Time)
	cfg := Config{NodeID: nd.id, Ticks: nd.ticks, SendTimeout: 2 * time.Second}
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	h, err := NewHost(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	nd.host = h
	nd.down = false
	handler := h.Handler()
	nd.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nd.gate.RLock()
		defer nd.gate.RUnlock()
		nd.posts.Add(1)
		handler.ServeHTTP(w, r)
	}))
}

// connect tells nd and every other live node each other's address.
func (c *testCluster) connect(nd *node) {
	for _, o := range c.nodes {
		if o != nd && !o.down {
			nd.host.SetPeer(o.id, o.srv.Listener.Addr().String())
			o.host.SetPeer(nd.id, nd.srv.Listener.Addr().String())
		}
	}
}

func (c *testCluster) node(id uint64) *node { return c.nodes[id-1] }

// stop closes nd's listener and loop, as a crash would (its state machines are dropped).
func (c *testCluster) stop(nd *node) {
	if nd.down {
		return
	}
	nd.down = true
	nd.srv.CloseClientConnections()
	nd.srv.Close()
	if err := nd.host.Close(); err != nil {
		c.t.Error(err)
	}
}

func (c *testCluster) peers() []uint64 {
	var ids []uint64
	for _, nd := range c.nodes {
		ids = append(ids, nd.id)
	}
	return ids
}

// addGroups creates groups 1..n on every node with every node as a voter, and campaigns
// group g on node leaderOf(g).
func (c *testCluster) addGroups(n int, leaderOf func(GroupID) uint64) []GroupID {
	c.t.Helper()
	var ids []GroupID
	for i := 1; i <= n; i++ {
		id := GroupID(i)
		ids = append(ids, id)
		for _, nd := range c.nodes {
			sm := newMemSM()
			nd.sms[id] = sm
			if err := nd.host.AddGroup(id, c.peers(), sm, GroupOptions{}); err != nil {
				c.t.Fatal(err)
			}
		}
	}
	for _, id := range ids {
		if err := c.node(leaderOf(id)).host.Campaign(id); err != nil {
			c.t.Fatal(err)
		}
	}
	return ids
}

// tickAll sends one tick to every live node (each send waits for that loop to take it),
// once the messages in flight between them have landed (see tickEvery).
func (c *testCluster) tickAll() {
	settle(c.live())
	for _, nd := range c.nodes {
		if !nd.down {
			nd.ticks <- time.Now()
		}
	}
}

// flushed returns once every live node's loop has finished the iteration it was in (and
// so handed to its senders what that iteration queued): a request submitted after an
// earlier one returned runs in a later iteration than that one's.
func (c *testCluster) flushed() {
	for _, nd := range c.live() {
		for range 2 {
			if err := nd.host.call(context.Background(), func() error { return nil }); err != nil {
				c.t.Fatal(err)
			}
		}
	}
}

// tickEvery ticks every live node once per period, until the returned function is
// called. Before each round it waits, up to a bound, for the messages in flight between
// the nodes to land (settle), so that a loaded machine (slow loops, slow loopback) does
// not make the network look slower than an election timeout: ticks, not wall time, are
// what the tests count. For the benchmark, which measures real time, Config.Ticks is left
// nil.
func (c *testCluster) tickEvery(period time.Duration) (stop func()) {
	return c.tickNodes(period, c.live())
}

// settle waits, up to 200 ms, until every message the nodes of live sent has been
// received or dropped by one of them.
func settle(live []*node) {
	inFlight := func() bool {
		var sent, landed uint64
		for _, nd := range live {
			s := nd.host.Stats()
			sent += s.MessagesSent
			landed += s.MessagesReceived + s.MessagesDropped
		}
		return sent > landed
	}
	for deadline := time.Now().Add(200 * time.Millisecond); inFlight() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
}

// tickNodes is tickEvery for the nodes of live only.
func (c *testCluster) tickNodes(period time.Duration, live []*node) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			settle(live)
			for _, nd := range live {
				select {
				case nd.ticks <- time.Now():
				case <-done:
					return
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// waitFor polls cond until it holds, failing the test after a generous deadline (a bound
// against hanging, not an assertion about timing).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// leaderOn is the leader node id of group id as every given live node sees it, or 0 when
// they disagree or know none.
func (c *testCluster) agreedLeader(id GroupID, on ...*node) uint64 {
	var lead uint64
	for i, nd := range on {
		l := nd.host.Leader(id)
		if l == 0 || (i > 0 && l != lead) {
			return 0
		}
		lead = l
	}
	return lead
}

func (c *testCluster) live() []*node {
	return slices.DeleteFunc(slices.Clone(c.nodes), func(nd *node) bool { return nd.down })
}

// proposeOnLeader proposes data to group id on whichever live node leads it, retrying
// while leadership moves.
func (c *testCluster) proposeOnLeader(id GroupID, data ...[]byte) {
	c.t.Helper()
	waitFor(c.t, "a proposal to be taken", func() bool {
		lead := c.agreedLeader(id, c.live()...)
		if lead == 0 || c.node(lead).down {
			return false
		}
		err := c.node(lead).host.Propose(context.Background(), id, data)
		if err != nil && !errors.Is(err, raft.ErrProposalDropped) {
			c.t.Fatal(err)
		}
		return err == nil
	})
}

// hasApplied reports whether every given node's state machine of group id applied want,
// in order, and nothing else.
func hasApplied(id GroupID, want [][]byte, on ...*node) bool {
	for _, nd := range on {
		got := nd.sms[id].appliedData()
		if !slices.EqualFunc(got, want, func(a, b []byte) bool { return string(a) == string(b) }) {
			return false
		}
	}
	return true
}

// leadAll waits until node lead leads every group of ids, moving leadership to it
// (TransferLeadership) where another node won an election.
func (c *testCluster) leadAll(ids []GroupID, lead uint64) {
	c.t.Helper()
	for _, id := range ids {
		waitFor(c.t, fmt.Sprintf("node %d to lead group %d", lead, id), func() bool {
			l := c.agreedLeader(id, c.live()...)
			if l != 0 && l != lead {
				_ = c.node(l).host.TransferLeadership(id, lead)
			}
			return l == lead
		})
	}
}

// electionBound is the most ticks a test lets the survivors take to replace a leader:
// election timeout is randomized in [ElectionTick, 2*ElectionTick) (10 by default); with
// pre-vote and the CheckQuorum lease a follower needs about two timeouts; the bound
// leaves room for a split vote or two.
const electionBound = 10 * 10

// electWithout ticks the live nodes until every group of ids has a leader other than
// gone that they all agree on. It returns how many ticks that took on the first live
// node and the function that stops the ticking.
func (c *testCluster) electWithout(ids []GroupID, gone uint64) (ticks uint64, stop func()) {
	c.t.Helper()
	return c.electAmong(c.live(), c.live(), ids, gone)
}

// electAmong is electWithout with the nodes of ticking ticking and those of live agreeing.
func (c *testCluster) electAmong(ticking, live []*node, ids []GroupID, gone uint64) (ticks uint64, stop func()) {
	c.t.Helper()
	before := live[0].host.Stats().Ticks
	stop = c.tickNodes(10*time.Millisecond, ticking)
	for _, id := range ids {
		waitFor(c.t, fmt.Sprintf("group %d to elect a leader other than %d", id, gone), func() bool {
			l := c.agreedLeader(id, live...)
			return l != 0 && l != gone
		})
	}
	return live[0].host.Stats().Ticks - before, stop
}
