package multiraft

import (
	"sync"
	"sync/atomic"
)

// Node liveness: coalesced per node, not per group. A quiesced group does not tick, so a
// follower whose leader dies would never notice by itself; instead the Host watches each
// peer as a whole, whatever the number of groups.
//
// Sending. At every pingEvery-th tick, every peer SetPeer named whose batch of that loop
// iteration is empty gets a ping record (format.go, kindPing: 13 + 8 bytes); a peer that is
// sent raft messages or quiesce records in that iteration gets no ping, since any record
// says as much. So each peer hears from this node at least once per pingEvery ticks, in at
// most one POST. Every second tick rather than every tick halves what an idle node costs
// (pings are most of it: BenchmarkIdleGroups, quiesced/groups=0) and changes no detection
// time: a peer is found silent PeerTimeoutTick ticks after the last record heard from it,
// whenever that was; it only lets a dead peer's last ping be up to one tick older.
//
// Pairs. The answer to a POST carries the answering node's liveness too, so of two nodes
// only the lower id needs to ping: one POST per pair per round instead of two. A node
// answers a batch 202 (vouched) when its own last POST to the batch's sender succeeded (it
// is alive and what it sends reaches the sender), else 204; the sender counts a 202 as
// hearing from it. The higher node of a pair skips its ping to the lower one at a round
// when, since the previous round, the lower one POSTed to it (its answers then reach the
// lower one), saying with LivenessHeader that it counts 202s (a node that does not, an
// older version, is pinged as before), and the higher node's last POST to it succeeded.
// Otherwise it pings as before: its first ping, after a failed POST (it pings, and answers
// 204, until one succeeds), a lower peer that stopped pinging; and at every
// (maxSkips+1)-th round whatever else holds, so that a node whose sends stopped reaching a
// peer stops vouching within maxSkips+1 rounds (8 ticks) and is found silent
// PeerTimeoutTick ticks after its last vouched answer. An idle cluster of n nodes sends
// n(n−1)/2 × 5/4 pings a round instead of n(n−1).
//
// Hearing. Receive marks the sender of every record of a batch as heard (pings are then
// dropped: they never reach the loop), and so does a 202 answer. At each tick the loop
// looks at every peer: heard since the last tick resets its count of silent ticks;
// otherwise the count grows, and at Config.PeerTimeoutTick (default ElectionTick: the
// election timeout) the peer is treated as down until it is heard again. A peer stopped
// with SIGSTOP, killed, cut off, or whose sends all fail, is silent alike.
//
// Treated as down, a silent peer has the effects of NodeDown: every quiesced group it
// leads here wakes, leaders here stop waiting for it before they quiesce (canQuiesce), and
// in addition the woken groups are ticked PeerTimeoutTick times at once. That is the
// election clock the group would have had: it quiesced on a record from that leader, so
// it missed at least those ticks, and no heartbeat of the leader can have arrived in them
// (nothing at all did). So the follower's CheckQuorum lease has run out like the other
// followers', and it (pre-)campaigns after the rest of its randomized election timeout,
// instead of a whole timeout after the peer timeout. Heard again, the peer has the effects
// of NodeUp: every quiesced group this node leads wakes, to catch it up.
//
// Two sources. NodeDown and NodeUp (the caller's membership, e.g. etcd leases) and silence
// are kept apart: a peer is treated as down while either says so (h.down, l.silent), and
// each source's change to down wakes the groups the peer leads, each change to up the
// groups this node leads (a group with nothing to catch up quiesces again at its next
// tick). So membership can only hasten the verdict, never veto silence, and a node
// membership still lists is treated as down while it is silent. Only silence fast-forwards
// election clocks: a membership lease can expire on a node that still talks.
//
// Safety does not depend on any of this (ticks and wakes only drive raft's timers); PreVote
// and CheckQuorum keep a wrongly suspected leader in place: its followers' pre-votes are
// refused by every follower still in its lease, and they wake the leader, whose next
// heartbeats settle them.

// peerLiveness is what a Host knows of whether one peer is alive. Its atomics need no
// ordering between them.
type peerLiveness struct {
	id uint64
	// heard is set by Receive when a batch holds any record from the peer, and by the
	// peer's sender when the peer answers a POST 202 (vouched); cleared by the loop at each
	// tick.
	heard atomic.Bool
	// recent is set with heard by Receive (not by answers) and cleared by queuePings at
	// each ping round: the peer POSTed to this node since the last round.
	recent atomic.Bool
	// sendOK says the last POST to the peer succeeded (2xx); false until one has. Written
	// by the peer's sender; read by Answer, to vouch, and by queuePings.
	sendOK atomic.Bool
	// counts says the peer's last POST carried LivenessHeader: it counts a 202 answer as
	// hearing from this node. Written by Answer, read by queuePings.
	counts atomic.Bool
	// silent counts the ticks in a row at which heard was clear. Loop only.
	silent int
	// skipped counts the ping rounds in a row at which queuePings left the peer out. Loop
	// only.
	skipped int
}

// liveness is the Host's view of its peers' liveness.
type liveness struct {
	// mu guards peers: written by SetPeer, read by Receive and the loop.
	mu    sync.RWMutex
	peers map[uint64]*peerLiveness

	// silent holds the peers treated as down for their silence. Loop only.
	silent map[uint64]bool
	// ticks counts the loop's ticks, to ping at every pingEvery-th. Loop only.
	ticks uint64
	// heardAgain and wentSilent are the loop's scratch for one tick.
	heardAgain, wentSilent []uint64
}

// add starts watching node id (idempotent).
func (l *liveness) add(id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.peers == nil {
		l.peers = make(map[uint64]*peerLiveness)
	}
	if l.peers[id] == nil {
		l.peers[id] = &peerLiveness{id: id}
	}
}

// get returns what is known of node id, nil when SetPeer never named it.
func (l *liveness) get(id uint64) *peerLiveness {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.peers[id]
}

// heardFrom marks the sender of every record of recs as heard, and returns recs without
// the ping records, which are for liveness only, and the sender of the last record (nil
// when none, or not a peer SetPeer named). Called by Answer.
func (h *Host) heardFrom(recs []inbound) ([]inbound, *peerLiveness) {
	l := &h.live
	var last uint64
	var sender *peerLiveness
	n := 0
	l.mu.RLock()
	for i := range recs {
		if from := recs[i].from(); from != last {
			last = from
			if sender = l.peers[from]; sender != nil {
				sender.heard.Store(true)
				sender.recent.Store(true)
			}
		}
		if recs[i].ping {
			h.stats.pingsReceived.Add(1)
			continue
		}
		recs[n] = recs[i]
		n++
	}
	l.mu.RUnlock()
	clear(recs[n:])
	return recs[:n], sender
}

// maxSkips is how many ping rounds in a row the higher node of a pair may leave out its
// ping to the lower one (pairs, above): every (maxSkips+1)-th round it pings anyway, which
// tests that its sends still reach the lower one, so that its answers stop vouching within
// that many rounds after they stop. It costs a quarter more POSTs than pairs alone.
const maxSkips = 3

// pingEvery is how many ticks apart a node pings its peers. PeerTimeoutTick must be well
// above it (the default, 10, is), or a peer would be found silent between two pings.
const pingEvery = 2

// tickLiveness runs at the start of every tick: at every pingEvery-th it has pings queued
// at this iteration's flush; it moves each peer between heard and silent. Loop only.
func (h *Host) tickLiveness() {
	l := &h.live
	if l.ticks%pingEvery == 0 {
		h.tr.pingDue = true
	}
	l.ticks++
	timeout := h.cfg.PeerTimeoutTick
	if timeout < 0 {
		return
	}
	if l.silent == nil {
		l.silent = make(map[uint64]bool)
	}
	l.heardAgain, l.wentSilent = l.heardAgain[:0], l.wentSilent[:0]
	l.mu.RLock()
	for id, p := range l.peers {
		if p.heard.Swap(false) {
			p.silent = 0
			if l.silent[id] {
				l.heardAgain = append(l.heardAgain, id)
			}
			continue
		}
		p.silent++
		if p.silent >= timeout && !l.silent[id] {
			l.wentSilent = append(l.wentSilent, id)
		}
	}
	l.mu.RUnlock()
	for _, id := range l.heardAgain {
		delete(l.silent, id)
		h.stats.peersHeardAgain.Add(1)
		h.log.Info("multiraft: peer heard again", "peer", id)
		h.wakeLedBy(h.cfg.NodeID, 0)
	}
	for _, id := range l.wentSilent {
		l.silent[id] = true
		h.stats.peersSilent.Add(1)
		h.log.Info("multiraft: peer silent, treated as down", "peer", id, "ticks", timeout)
		h.wakeLedBy(id, timeout)
	}
}

// wakeLedBy wakes every quiesced group led by node lead, and ticks each of them ticks times
// (the fast-forward of a silent leader's followers; see above). Loop only.
func (h *Host) wakeLedBy(lead uint64, ticks int) {
	for _, g := range h.groups {
		if !g.quiesced || g.lead != lead || g.err != nil {
			continue
		}
		h.wakeGroup(g)
		for range ticks {
			g.rn.Tick()
		}
		h.markDirty(g)
	}
}

// isDown reports whether node id is treated as down: by NodeDown or for its silence.
// Loop only.
func (h *Host) isDown(id uint64) bool { return h.down[id] || h.live.silent[id] }

// queuePings adds a ping to this iteration's batch of every peer whose batch is empty,
// but for a lower peer that this node's answers tell it is alive (pairs, above). Loop only
// (flush, when a tick asked for it).
func (t *transport) queuePings() {
	self := t.h.cfg.NodeID
	l := &t.h.live
	t.mu.Lock()
	defer t.mu.Unlock()
	l.mu.RLock()
	defer l.mu.RUnlock()
	for id := range t.peers {
		o := t.outboxFor(id)
		pl := l.peers[id]
		recent := pl != nil && pl.recent.Swap(false)
		if len(o.recs) > 0 {
			continue
		}
		if id < self && recent && pl.sendOK.Load() && pl.counts.Load() && pl.skipped < maxSkips {
			pl.skipped++
			continue
		}
		if pl != nil {
			pl.skipped = 0
		}
		o.buf = appendPing(o.buf, self)
		o.recs = append(o.recs, record{end: len(o.buf)})
		t.h.stats.pingsSent.Add(1)
	}
}
