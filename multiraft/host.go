package multiraft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Config configures a Host. The zero value of every field but NodeID is a usable default.
type Config struct {
	// NodeID is this node's Raft id in every group (non-zero, never reused).
	NodeID uint64

	// TickInterval is the period of the loop's ticker. Default 100 ms.
	TickInterval time.Duration
	// Ticks, when set, replaces the ticker: the loop ticks its groups once per value
	// received. Tests drive time with it.
	Ticks <-chan time.Time
	// ElectionTick and HeartbeatTick are raft.Config's, in ticks. Defaults 10 and 1.
	ElectionTick, HeartbeatTick int
	// MaxSizePerMsg and MaxInflightMsgs are raft.Config's. Defaults 1 MiB and 256.
	MaxSizePerMsg   uint64
	MaxInflightMsgs int

	// DisableQuiesce keeps every group ticking (to measure what quiescence saves).
	DisableQuiesce bool
	// PeerTimeoutTick is how many ticks in a row a peer may go without sending this node
	// anything before the Host treats it as down, until it is heard again (liveness.go).
	// Default ElectionTick; negative: never (only NodeDown). Pings are sent either way.
	PeerTimeoutTick int

	// Client sends batches to peers. Default: an http.Client with keep-alive and Timeout
	// SendTimeout.
	Client *http.Client
	// TLS makes the peers' URLs https (PeerURL): Client's transport then carries the TLS
	// configuration that checks the peers' certificates. Default: plaintext http.
	TLS bool
	// SendTimeout bounds one POST to a peer. Default 5 s.
	SendTimeout time.Duration
	// MaxBatchBytes bounds the bytes queued for one peer and so the body of one POST;
	// messages that would pass it are dropped (raft retransmits). Receive's Handler
	// refuses larger bodies. Default 64 MiB.
	MaxBatchBytes int
	// MaxInbox bounds the received messages waiting for the loop; more are dropped.
	// Default 1<<16.
	MaxInbox int

	// Logger receives the Host's own events and raft's (raft's Info and Debug at Debug).
	// Default: discard.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.TickInterval <= 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.ElectionTick <= 0 {
		c.ElectionTick = 10
	}
	if c.PeerTimeoutTick == 0 {
		c.PeerTimeoutTick = c.ElectionTick
	}
	if c.HeartbeatTick <= 0 {
		c.HeartbeatTick = 1
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = 1 << 20
	}
	if c.MaxInflightMsgs <= 0 {
		c.MaxInflightMsgs = 256
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 5 * time.Second
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = 64 << 20
	}
	if c.MaxInbox <= 0 {
		c.MaxInbox = 1 << 16
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Client == nil {
		c.Client = &http.Client{
			Timeout: c.SendTimeout,
			Transport: &http.Transport{
				MaxIdleConnsPerHost: 4,
				IdleConnTimeout:     90 * time.Second,
			},
		}
	}
}

// Host drives every Raft group of one node from one loop goroutine: it ticks them, steps
// the messages peers send, handles each group's Ready (persist, send, apply, advance),
// batches outgoing messages per peer, and quiesces idle groups. See doc.go.
type Host struct {
	cfg Config
	log *slog.Logger
	tr  *transport

	// mu guards inbox, requests and closed. Writers: Receive, the API methods and the
	// senders (through enqueue); reader: the loop, which swaps the slices out.
	mu       sync.Mutex
	inbox    []inbound
	requests []func()
	closed   bool

	wake chan struct{} // capacity 1: something is in inbox or requests
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the loop has returned

	// Owned by the loop goroutine.
	groups map[GroupID]*group
	// awake holds the groups not quiesced, the only ones tick visits, so that a tick costs
	// what the awake groups cost, not what every group does (quiesce.go: BenchmarkTick).
	awake   []*group
	dirty   []*group
	down    map[uint64]bool
	spare   []inbound
	pending []func()
	readies []pendingReady // handleReadies' batch, kept for its capacity

	live    liveness    // peers' liveness (liveness.go)
	leaders leaderTable // published leaders, read by Leader (leader.go)

	stats counters

	// fetches counts the snapshot fetches running (snapshot.go); Close waits for them.
	fetches sync.WaitGroup
}

// group is one RawNode and its state machine; owned by the loop goroutine.
type group struct {
	id  GroupID
	rn  *raft.RawNode
	sm  StateMachine
	err error // sticky Persist or Apply error: the group is no longer driven

	lead     uint64
	dirty    bool // in Host.dirty
	quiesced bool // not ticked (see quiesce.go)
	// awakeAt is g's index in Host.awake while it is there (not quiesced, not removed).
	awakeAt int
	// quiescing is set by the tick that found the leader's group idle; the Ready of that
	// tick sends the quiesce records and sets quiesced.
	quiescing bool
	// fetching: a snapshot's files are being fetched (snapshot.go); other MsgSnaps are
	// dropped until it ends.
	fetching bool
	// leaderGone: a configuration without the leader applied; its election clock is
	// fast-forwarded after the Ready is advanced (quiesce.go, leaderRemoved).
	leaderGone bool

	// leader is lead as published in Host.leaders (leader.go); stored by the loop.
	leader *atomic.Uint64
	// ctr counts what GroupStats reports beside raft's state (groupstats.go).
	ctr groupCounters
}

// NewHost starts a Host's loop. Close stops it.
func NewHost(cfg Config) (*Host, error) {
	if cfg.NodeID == 0 {
		return nil, errors.New("multiraft: Config.NodeID must be non-zero")
	}
	cfg.setDefaults()
	h := &Host{
		cfg:    cfg,
		log:    cfg.Logger,
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		groups: make(map[GroupID]*group),
		down:   make(map[uint64]bool),
	}
	h.tr = newTransport(h)
	go h.run()
	return h, nil
}

// NodeID is the node id the Host was configured with.
func (h *Host) NodeID() uint64 { return h.cfg.NodeID }

// Close stops the loop and the senders (cancelling the POSTs in flight) and waits for
// them. Groups are not closed: their state machines are the caller's. Messages not yet
// sent are dropped.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		<-h.done
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	close(h.stop)
	<-h.done
	h.leaders.reset()
	h.tr.close()
	h.fetches.Wait()
	return nil
}

// enqueue hands f to the loop. It fails only after Close.
func (h *Host) enqueue(f func()) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrClosed
	}
	h.requests = append(h.requests, f)
	h.mu.Unlock()
	h.signal()
	return nil
}

func (h *Host) signal() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// call runs f on the loop and returns its error.
func (h *Host) call(ctx context.Context, f func() error) error {
	res := make(chan error, 1)
	if err := h.enqueue(func() { res <- f() }); err != nil {
		return err
	}
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-h.done:
		// The loop may have run f just before it returned.
		select {
		case err := <-res:
			return err
		default:
			return ErrClosed
		}
	}
}

// withGroup runs f on the loop with group id, or returns ErrUnknownGroup or the group's
// sticky error.
func (h *Host) withGroup(ctx context.Context, id GroupID, f func(g *group) error) error {
	return h.call(ctx, func() error {
		g := h.groups[id]
		if g == nil {
			return fmt.Errorf("%w: %d", ErrUnknownGroup, id)
		}
		if g.err != nil {
			return fmt.Errorf("%w: group %d: %w", ErrGroupFailed, id, g.err)
		}
		// Whatever f did to the RawNode may have produced a Ready.
		h.markDirty(g)
		return f(g)
	})
}

// AddGroup starts driving group id with sm. When sm's storage is empty and peers is not,
// the group is bootstrapped with peers as its voters (every initial member must be given
// the same peers); when the storage has state, the group restarts from it and peers is
// ignored; an empty storage and no peers is a node joining an existing group, which learns
// its configuration from the leader.
func (h *Host) AddGroup(id GroupID, peers []uint64, sm StateMachine, opts GroupOptions) error {
	return h.call(context.Background(), func() error {
		if h.groups[id] != nil {
			return fmt.Errorf("%w: %d", ErrGroupExists, id)
		}
		st := sm.Storage()
		rn, err := raft.NewRawNode(&raft.Config{
			ID:              h.cfg.NodeID,
			ElectionTick:    h.cfg.ElectionTick,
			HeartbeatTick:   h.cfg.HeartbeatTick,
			Storage:         st,
			Applied:         opts.Applied,
			MaxSizePerMsg:   h.cfg.MaxSizePerMsg,
			MaxInflightMsgs: h.cfg.MaxInflightMsgs,
			// At most half the bytes a peer's send queue holds in unacknowledged MsgApps (the
			// rest is room for the encoding and other groups' messages): past the queue's
			// bound the messages are dropped and raft resends them after a probe, reading
			// the entries again. BenchmarkRestoreReplica (cluster), a learner catching up
			// on 64 MiB: 190 MB sent, 765 messages dropped without it; 64 MB, none with it.
			MaxInflightBytes: max(uint64(h.cfg.MaxBatchBytes)/2, h.cfg.MaxSizePerMsg), // raft: at least one message
			CheckQuorum:      true,
			PreVote:          true,
			// A leader removed from the group (or demoted to a learner) steps down, so the
			// voters elect one of them: left in place it would drop every proposal (it is
			// no member) and, hearing from its followers, never lose its leadership.
			StepDownOnRemoval: true,
			Logger:            raftLogger{h.log.With("group", uint64(id))},
		})
		if err != nil {
			return fmt.Errorf("multiraft: group %d: %w", id, err)
		}
		if len(peers) > 0 {
			hs, _, err := st.InitialState()
			if err != nil {
				return fmt.Errorf("multiraft: group %d: %w", id, err)
			}
			last, err := st.LastIndex()
			if err != nil {
				return fmt.Errorf("multiraft: group %d: %w", id, err)
			}
			if last == 0 && raft.IsEmptyHardState(hs) {
				ps := make([]raft.Peer, len(peers))
				for i, p := range peers {
					ps[i] = raft.Peer{ID: p}
				}
				if err := rn.Bootstrap(ps); err != nil {
					return fmt.Errorf("multiraft: group %d: bootstrap: %w", id, err)
				}
			}
		}
		g := &group{id: id, rn: rn, sm: sm, lead: rn.BasicStatus().Lead}
		g.leader = h.leaders.add(id, g.lead)
		h.groups[id] = g
		h.addAwake(g)
		h.markDirty(g)
		return nil
	})
}

// RemoveGroup stops driving group id. Messages for it are dropped from then on. A group this
// node leads is first handed to a caught-up voter (quiesce.go, handOff), so that its
// followers, quiesced ones included, elect at once.
func (h *Host) RemoveGroup(id GroupID) error {
	return h.call(context.Background(), func() error {
		g := h.groups[id]
		if g == nil {
			return fmt.Errorf("%w: %d", ErrUnknownGroup, id)
		}
		h.handOff(g)
		h.removeAwake(g)
		delete(h.groups, id)
		h.leaders.remove(id)
		return nil
	})
}

// Propose submits data as one entry each, in order, to group id through the loop, as one
// proposal: raft takes all of them or none. It returns once raft has taken them (on a
// leader: appended to its unstable log; on a follower: forwarded to the leader) or refused
// them (raft.ErrProposalDropped: no leader, a leadership transfer, or the uncommitted size
// limit). Taking is not committing: the entries reach StateMachine.Apply once committed, and
// may be lost if the leader changes first; the caller matches them there.
func (h *Host) Propose(ctx context.Context, id GroupID, data [][]byte) error {
	return h.withGroup(ctx, id, func(g *group) error {
		h.wakeGroup(g)
		return g.ctr.countDropped(g.rn.Step(h.proposal(data)))
	})
}

// ProposeLeader is Propose on the group's leader only. On a node that does not lead the
// group it takes nothing and returns a *NotLeaderError naming the leader this node knows,
// decided in the same turn of the loop as the proposal, so that an error always means that
// nothing was taken.
func (h *Host) ProposeLeader(ctx context.Context, id GroupID, data [][]byte) error {
	return h.withGroup(ctx, id, func(g *group) error {
		if st := g.rn.BasicStatus(); st.RaftState != raft.StateLeader {
			return &NotLeaderError{Leader: st.Lead}
		}
		h.wakeGroup(g)
		return g.ctr.countDropped(g.rn.Step(h.proposal(data)))
	})
}

// proposal is the MsgProp of data, one entry each.
func (h *Host) proposal(data [][]byte) *raftpb.Message {
	ents := make([]*raftpb.Entry, len(data))
	for i, d := range data {
		ents[i] = &raftpb.Entry{Data: d}
	}
	return &raftpb.Message{Type: raftpb.MsgProp.Enum(), From: new(h.cfg.NodeID), Entries: ents}
}

// ProposeConfChange submits a configuration change to group id through the loop, with
// Propose's meaning of success.
func (h *Host) ProposeConfChange(ctx context.Context, id GroupID, cc raftpb.ConfChangeI) error {
	return h.withGroup(ctx, id, func(g *group) error {
		h.wakeGroup(g)
		return g.rn.ProposeConfChange(cc)
	})
}

// Campaign makes this node a (pre-)candidate in group id.
func (h *Host) Campaign(id GroupID) error {
	return h.withGroup(context.Background(), id, func(g *group) error {
		h.wakeGroup(g)
		return g.rn.Campaign()
	})
}

// TransferLeadership asks the leader of group id (this node) to hand leadership to node
// to. Raft drops the request on a follower; poll Leader to see it done.
func (h *Host) TransferLeadership(id GroupID, to uint64) error {
	return h.withGroup(context.Background(), id, func(g *group) error {
		h.wakeGroup(g)
		g.rn.TransferLeader(to)
		return nil
	})
}

// Status is raft's status of group id (it copies the progress map: not for hot paths).
func (h *Host) Status(id GroupID) (raft.Status, error) {
	var st raft.Status
	err := h.withGroup(context.Background(), id, func(g *group) error {
		st = g.rn.Status()
		return nil
	})
	return st, err
}

// Leader is the node this node believes leads group id, or 0 when it knows none, does
// not drive the group, the group failed, or the Host is closed. It reads the value the
// loop last published (leader.go), without waiting for the loop.
func (h *Host) Leader(id GroupID) uint64 { return h.leaders.get(id) }

// Quiesced reports whether group id is quiesced on this node.
func (h *Host) Quiesced(id GroupID) (bool, error) {
	var q bool
	err := h.withGroup(context.Background(), id, func(g *group) error {
		q = g.quiesced
		return nil
	})
	return q, err
}

// NodeDown tells the Host that node id is down (its membership lease expired): every
// quiesced group it leads wakes, so that its followers elect a new leader, and leaders
// here stop waiting for it before they quiesce. The Host also finds a silent peer down by
// itself; liveness.go says how the two combine.
func (h *Host) NodeDown(id uint64) {
	_ = h.enqueue(func() {
		h.down[id] = true
		h.wakeLedBy(id, 0)
	})
}

// NodeUp tells the Host that node id is up again: every quiesced group this node leads
// wakes, so that a leader that quiesced without id catches it up (a group with nothing to
// catch up quiesces again at its next tick). A peer that is silent stays treated as down
// until it is heard (liveness.go).
func (h *Host) NodeUp(id uint64) {
	_ = h.enqueue(func() {
		delete(h.down, id)
		h.wakeLedBy(h.cfg.NodeID, 0)
	})
}

// SetPeer sets the address (host:port) node id is reached at; it replaces an earlier one.
// From then on the Host pings it and watches its liveness (liveness.go).
func (h *Host) SetPeer(id uint64, addr string) {
	h.live.add(id)
	h.tr.setPeer(id, addr)
}

// Receive decodes a batch a peer POSTed and hands its messages to the loop; it returns
// before they are stepped. A malformed batch is refused whole (ErrBadBatch); a message for
// a group this node does not drive, or for another node, is dropped and counted.
func (h *Host) Receive(body []byte) error {
	_, err := h.Answer(body, "")
	return err
}

// Answer is Receive for a POST whose LivenessHeader had the value liveness ("" when it
// had none), and, when it took the batch, the status to answer the POST with:
// http.StatusAccepted (202) when this node's last POST to the batch's sender succeeded,
// which vouches that this node is alive and reaches the sender (liveness.go), else
// http.StatusNoContent (204).
func (h *Host) Answer(body []byte, liveness string) (int, error) {
	msgs, err := decodeBatch(nil, body)
	if err != nil {
		return 0, err
	}
	h.stats.received.Add(uint64(len(msgs)))
	msgs, sender := h.heardFrom(msgs)
	status := http.StatusNoContent
	if sender != nil {
		sender.counts.Store(liveness == livenessAnswers)
		if sender.sendOK.Load() {
			status = http.StatusAccepted
		}
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return 0, ErrClosed
	}
	if room := h.cfg.MaxInbox - len(h.inbox); len(msgs) > room {
		h.stats.inboxDropped.Add(uint64(len(msgs) - max(room, 0)))
		msgs = msgs[:max(room, 0)]
	}
	h.inbox = append(h.inbox, msgs...)
	h.mu.Unlock()
	h.signal()
	return status, nil
}

// run is the loop.
func (h *Host) run() {
	defer close(h.done)
	ticks := h.cfg.Ticks
	if ticks == nil {
		t := time.NewTicker(h.cfg.TickInterval)
		defer t.Stop()
		ticks = t.C
	}
	for {
		select {
		case <-h.stop:
			return
		case <-ticks:
			h.tick()
		case <-h.wake:
		}
		h.stats.iterations.Add(1)
		h.drain()
		h.handleReadies()
		h.tr.flush(true)
	}
}

// drain steps the received messages and runs the submitted requests.
func (h *Host) drain() {
	h.mu.Lock()
	in, reqs := h.inbox, h.requests
	h.inbox, h.requests = h.spare[:0], h.pending[:0]
	h.mu.Unlock()
	for i := range in {
		h.step(&in[i])
		in[i] = inbound{}
	}
	for i, f := range reqs {
		f()
		reqs[i] = nil
	}
	h.spare, h.pending = in[:0], reqs[:0]
}

// step hands one received record to its group.
func (h *Host) step(in *inbound) {
	g := h.groups[in.group]
	if g == nil {
		h.stats.unknownGroup.Add(1)
		return
	}
	if g.err != nil {
		return
	}
	if in.msg == nil {
		h.receiveQuiesce(g, in.q)
		return
	}
	if in.msg.GetTo() != h.cfg.NodeID {
		h.stats.misrouted.Add(1)
		return
	}
	if wakes(in.msg.GetType()) {
		h.wakeGroup(g)
	}
	if in.msg.GetType() == raftpb.MsgSnap {
		if sf, ok := g.sm.(SnapshotFiles); ok {
			h.fetchSnapshot(g, sf, in.msg)
			return
		}
	}
	if err := g.rn.Step(in.msg); err != nil {
		h.stats.stepErrors.Add(1)
	}
	h.markDirty(g)
}

// tick ticks every group that is not quiesced.
func (h *Host) tick() {
	h.stats.ticks.Add(1)
	h.tickLiveness()
	for _, g := range h.awake {
		if g.err != nil {
			continue
		}
		if !h.cfg.DisableQuiesce && h.canQuiesce(g) {
			g.quiescing = true
		}
		g.rn.Tick()
		h.markDirty(g)
	}
}

func (h *Host) markDirty(g *group) {
	if !g.dirty {
		g.dirty = true
		h.dirty = append(h.dirty, g)
	}
}

// handleReadies handles one Ready of every group touched this iteration, in raft's order,
// each step for every group before the next (group commit, groupcommit.go): persist
// (written), send the leaders' MsgApps, make durable, then per group send (queued here,
// handed to the senders by flush), apply, advance.
func (h *Host) handleReadies() {
	work := h.dirty
	h.dirty = nil
	batch := h.readies[:0]
	for i, g := range work {
		work[i] = nil
		g.dirty = false
		if h.groups[g.id] != g || g.err != nil {
			continue
		}
		r := pendingReady{g: g}
		if g.rn.HasReady() {
			r.rd, r.has = g.rn.Ready(), true
			h.persistReady(&r)
			h.applyEarly(&r)
		}
		batch = append(batch, r)
	}
	h.makeDurable(batch)
	again := false
	for i := range batch {
		g := batch[i].g
		if batch[i].has && g.err == nil {
			h.handleReady(g, &batch[i].rd)
		}
		batch[i] = pendingReady{}
		if g.quiescing {
			g.quiescing = false
			h.sendQuiesce(g)
		}
		if g.err == nil && g.rn.HasReady() {
			h.markDirty(g)
			again = true
		}
	}
	h.readies = batch[:0]
	if again {
		h.signal()
	}
}

// handleReady sends, applies and advances g's Ready rd, durable by now (handleReadies).
func (h *Host) handleReady(g *group, rd *raft.Ready) {
	if rd.SoftState != nil && rd.SoftState.Lead != g.lead {
		g.lead = rd.SoftState.Lead
		g.leader.Store(g.lead)
		h.wakeGroup(g)
	}
	for _, m := range rd.Messages {
		if wakes(m.GetType()) {
			h.wakeGroup(g)
		}
		h.tr.queue(g, m)
	}
	if !h.apply(g, rd.CommittedEntries) {
		return
	}
	g.rn.Advance(*rd)
	if g.leaderGone { // set by apply (quiesce.go, leaderRemoved)
		g.leaderGone = false
		for range h.cfg.ElectionTick {
			g.rn.Tick()
		}
	}
}

// apply gives committed to g's state machine and applies the configuration changes among
// them; false when it failed the group.
func (h *Host) apply(g *group, committed []*raftpb.Entry) bool {
	if len(committed) == 0 {
		return true
	}
	if err := g.sm.Apply(committed); err != nil {
		h.fail(g, "apply", err)
		return false
	}
	if err := h.applyConfChanges(g, committed); err != nil {
		h.fail(g, "apply", err)
		return false
	}
	return true
}

// applyConfChanges applies the configuration changes among committed to the RawNode
// (raft's Ready contract, step 3) and reports each new configuration to the state machine.
func (h *Host) applyConfChanges(g *group, committed []*raftpb.Entry) error {
	for _, e := range committed {
		var cc raftpb.ConfChangeI
		switch e.GetType() {
		case raftpb.EntryConfChange:
			var c raftpb.ConfChange
			if err := proto.Unmarshal(e.GetData(), &c); err != nil {
				return fmt.Errorf("conf change at index %d: %w", e.GetIndex(), err)
			}
			cc = &c
		case raftpb.EntryConfChangeV2:
			var c raftpb.ConfChangeV2
			if err := proto.Unmarshal(e.GetData(), &c); err != nil {
				return fmt.Errorf("conf change at index %d: %w", e.GetIndex(), err)
			}
			cc = &c
		default:
			continue
		}
		cs := g.rn.ApplyConfChange(cc)
		h.leaderRemoved(g, cs)
		if s, ok := g.sm.(ConfStateSaver); ok {
			if err := s.SaveConfState(e.GetIndex(), cs); err != nil {
				return err
			}
		}
	}
	return nil
}

// fail makes err the group's sticky error: the loop stops driving it, and nothing of the
// Ready being handled is sent.
func (h *Host) fail(g *group, what string, err error) {
	g.err = fmt.Errorf("%s: %w", what, err)
	g.leader.Store(0)
	h.log.Error("multiraft: group stopped", "group", uint64(g.id), "err", g.err)
}

// Stats is a snapshot of a Host's counters.
type Stats struct {
	Iterations       uint64 // loop iterations
	Ticks            uint64 // ticks of the loop (each ticks every group not quiesced)
	Posts            uint64 // POSTs to peers that completed (any status)
	PostErrors       uint64 // POSTs that failed or were refused by the peer
	BytesSent        uint64 // bodies of the POSTs that completed
	MessagesSent     uint64 // messages (and quiesce and ping records) handed to a sender
	MessagesDropped  uint64 // messages dropped: no address, queue full, or a failed POST
	MessagesReceived uint64 // records decoded by Receive
	InboxDropped     uint64 // records Receive dropped because the loop was behind
	UnknownGroup     uint64 // records for a group this node does not drive
	Misrouted        uint64 // messages addressed to another node
	StepErrors       uint64 // messages raft refused to step
	SnapshotsDropped uint64 // MsgSnaps dropped: a fetch for the group running, or failed
	PingsSent        uint64 // ping records queued for peers (liveness.go)
	PingsReceived    uint64 // ping records decoded by Receive (also in MessagesReceived)
	PeersSilent      uint64 // times a peer was found silent for PeerTimeoutTick ticks
	PeersHeardAgain  uint64 // times a silent peer was heard again
}

// counters are the Host's statistics: written by the loop, Receive and the senders,
// read by Stats; atomics, no ordering between them.
type counters struct {
	iterations, ticks, posts, postErrors, bytesSent, sent, dropped, received, inboxDropped,
	unknownGroup, misrouted, stepErrors, snapDropped, pingsSent, pingsReceived, peersSilent,
	peersHeardAgain atomic.Uint64
}

// Stats returns the Host's counters.
func (h *Host) Stats() Stats {
	c := &h.stats
	return Stats{
		Iterations:       c.iterations.Load(),
		Ticks:            c.ticks.Load(),
		Posts:            c.posts.Load(),
		PostErrors:       c.postErrors.Load(),
		BytesSent:        c.bytesSent.Load(),
		MessagesSent:     c.sent.Load(),
		MessagesDropped:  c.dropped.Load(),
		MessagesReceived: c.received.Load(),
		InboxDropped:     c.inboxDropped.Load(),
		UnknownGroup:     c.unknownGroup.Load(),
		Misrouted:        c.misrouted.Load(),
		StepErrors:       c.stepErrors.Load(),
		SnapshotsDropped: c.snapDropped.Load(),
		PingsSent:        c.pingsSent.Load(),
		PingsReceived:    c.pingsReceived.Load(),
		PeersSilent:      c.peersSilent.Load(),
		PeersHeardAgain:  c.peersHeardAgain.Load(),
	}
}
