package multiraft

import (
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// Quiescence: an idle group stops ticking on every replica, so a node with thousands of
// idle groups sends no heartbeats and spends no CPU on them.
//
// The leader decides, at a tick, before ticking the group: it is leader, no leadership
// transfer is under way, it has nothing unpersisted (no Ready pending), its last index is
// committed and applied, and every follower not reported down (NodeDown) is in
// StateReplicate with Match equal to that index. That tick's heartbeats carry commit =
// that index (raft sends min(Match, committed)); after them, in the same batch, the
// leader sends each follower a quiesce record (from, to, term, commit) and stops ticking
// the group.
//
// A follower quiesces on a quiesce record only when it agrees: it is a follower of that
// leader in that term, and its commit index and last index both equal the record's commit.
// Otherwise it keeps ticking.
//
// A group wakes (ticks again) on: a proposal, conf change, campaign or transfer submitted
// to it; any message stepped or sent other than a heartbeat or heartbeat response; a
// change of leader; NodeDown of its leader, or its leader found silent (liveness.go);
// NodeUp of any node, or a silent node heard again, for the groups this node leads.
//
// Safety does not depend on quiescence, which only withholds ticks: raft's state and
// messages are untouched. Liveness rests on the wake rules:
//   - a follower that missed its quiesce record keeps ticking and, hearing no heartbeat,
//     sends MsgPreVote; the leader and the other followers wake on it (not a heartbeat),
//     reject it while their lease holds (CheckQuorum), and the leader's heartbeats settle
//     the follower; the group quiesces again at a later tick;
//   - a quiesced follower whose leader died learns it from the leader's silence
//     (liveness.go: after PeerTimeoutTick ticks, with its election clock fast-forwarded)
//     or from NodeDown (the caller's membership, e.g. etcd leases), and elects;
//   - a follower that restarts is not quiesced and, through the same pre-vote, wakes its
//     leader, which then catches it up;
//   - a leader whose node stops driving the group (RemoveGroup: its replica closed or
//     deleted while the node lives on and pings) would leave its quiesced followers waiting
//     for a wake nothing sends: its liveness is fine. So RemoveGroup first hands a group it
//     leads to a caught-up voter (handOff: MsgTimeoutNow, which is not a heartbeat, so it
//     wakes the voter, which campaigns at once and wakes the others with its votes);
//   - a follower that applies a configuration without its leader as a voter (the leader
//     removed or demoted: it steps down, StepDownOnRemoval) wakes, with its election clock
//     fast-forwarded as for a silent leader (leaderRemoved): no leader is left whose lease
//     to wait out.
// None of this costs an idle group anything per tick: each is done once, on the event.
// A quiesced leader's CheckQuorum is not evaluated (it does not tick), which is the point:
// while quiesced, nothing happens that needs a leader to step down for.

// wakes reports whether stepping or sending a message of type t wakes a quiesced group.
// Heartbeats and their responses are what a quiesced group may still exchange (the
// leader's last heartbeats and the followers' answers cross the quiesce).
func wakes(t raftpb.MessageType) bool {
	return t != raftpb.MsgHeartbeat && t != raftpb.MsgHeartbeatResp
}

// wakeGroup makes g tick again (a group RemoveGroup took out stays out of Host.awake).
func (h *Host) wakeGroup(g *group) {
	g.quiescing = false
	if g.quiesced {
		g.quiesced = false
		if h.groups[g.id] == g {
			h.addAwake(g)
		}
	}
}

// quiesceGroup stops ticking g.
func (h *Host) quiesceGroup(g *group) {
	if !g.quiesced {
		g.quiesced = true
		h.removeAwake(g)
	}
}

// addAwake puts g, not quiesced, in Host.awake. Loop only.
func (h *Host) addAwake(g *group) {
	g.awakeAt = len(h.awake)
	h.awake = append(h.awake, g)
}

// removeAwake takes g out of Host.awake (when it is there: not quiesced) by moving the last
// group into its place. Loop only.
func (h *Host) removeAwake(g *group) {
	i := g.awakeAt
	if i < 0 || i >= len(h.awake) || h.awake[i] != g {
		return
	}
	last := len(h.awake) - 1
	h.awake[i] = h.awake[last]
	h.awake[i].awakeAt = i
	h.awake[last] = nil
	h.awake = h.awake[:last]
	g.awakeAt = -1
}

// canQuiesce reports whether g's leader may quiesce it now (see above).
func (h *Host) canQuiesce(g *group) bool {
	if g.rn.HasReady() {
		return false
	}
	st := g.rn.BasicStatus()
	if st.RaftState != raft.StateLeader || st.LeadTransferee != 0 {
		return false
	}
	commit := st.GetCommit()
	if st.Applied != commit {
		return false
	}
	last, err := g.sm.Storage().LastIndex()
	if err != nil || last != commit {
		return false
	}
	ok := true
	self := h.cfg.NodeID
	g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if id == self || h.isDown(id) {
			return
		}
		if pr.State != tracker.StateReplicate || pr.Match != last {
			ok = false
		}
	})
	return ok
}

// sendQuiesce queues a quiesce record for every follower of g (after the heartbeats of
// the tick that set g.quiescing) and stops ticking g. Called from handleReadies, after g's
// Ready, only if nothing woke g since the tick.
func (h *Host) sendQuiesce(g *group) {
	st := g.rn.BasicStatus()
	if st.RaftState != raft.StateLeader {
		return
	}
	q := quiesce{from: h.cfg.NodeID, term: st.GetTerm(), commit: st.GetCommit()}
	g.rn.WithProgress(func(id uint64, _ raft.ProgressType, _ tracker.Progress) {
		if id == q.from {
			return
		}
		q.to = id
		h.tr.queueQuiesce(g.id, q)
	})
	h.quiesceGroup(g)
}

// receiveQuiesce quiesces g on a follower if it agrees with the leader's record q.
func (h *Host) receiveQuiesce(g *group, q quiesce) {
	if h.cfg.DisableQuiesce || q.to != h.cfg.NodeID {
		return
	}
	st := g.rn.BasicStatus()
	if st.RaftState != raft.StateFollower || st.Lead != q.from || st.GetTerm() != q.term || st.GetCommit() != q.commit {
		return
	}
	last, err := g.sm.Storage().LastIndex()
	if err != nil || last != q.commit {
		return
	}
	h.quiesceGroup(g)
}

// handOff hands the leadership of g, which this node leads and is about to stop driving, to
// a voter that has every entry and is not treated as down: raft sends it MsgTimeoutNow at
// once, queued here (the message needs nothing persisted: its term is durable, and g has no
// Ready pending). Nothing is done when g has a Ready pending, a transfer under way, or no
// such voter: its followers then elect when they find the leader gone by other means
// (a wake, NodeDown, silence). Loop only.
func (h *Host) handOff(g *group) {
	if g.err != nil || g.rn.HasReady() {
		return
	}
	st := g.rn.BasicStatus()
	if st.RaftState != raft.StateLeader || st.LeadTransferee != 0 {
		return
	}
	last, err := g.sm.Storage().LastIndex()
	if err != nil {
		return
	}
	var to uint64
	g.rn.WithProgress(func(id uint64, typ raft.ProgressType, pr tracker.Progress) {
		if to == 0 && id != h.cfg.NodeID && typ == raft.ProgressTypePeer && pr.Match == last && !h.isDown(id) {
			to = id
		}
	})
	if to == 0 {
		return
	}
	g.rn.TransferLeader(to)
	if !g.rn.HasReady() {
		return
	}
	for _, m := range g.rn.Ready().Messages {
		if m.GetType() == raftpb.MsgTimeoutNow {
			h.tr.queue(g, m)
			h.log.Info("multiraft: group handed to a voter as this node stops driving it", "group", uint64(g.id), "to", m.GetTo())
		}
	}
}

// leaderRemoved wakes g, a follower, when the configuration cs it just applied has g's
// leader as no voter, and has its election clock fast-forwarded once its Ready is advanced
// (handleReady; liveness.go says why a fast-forward is sound): the leader stepped down
// (StepDownOnRemoval), so none is left whose lease to wait out. Loop only.
func (h *Host) leaderRemoved(g *group, cs *raftpb.ConfState) {
	lead := g.rn.BasicStatus().Lead
	if lead == 0 || lead == h.cfg.NodeID || slices.Contains(cs.GetVoters(), lead) || slices.Contains(cs.GetVotersOutgoing(), lead) {
		return
	}
	h.wakeGroup(g)
	g.leaderGone = true
}
