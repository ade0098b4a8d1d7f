package multiraft

import (
	"context"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/tracker"
)

// Leadership transfer: the leader of a group hands its leadership to a voter of its
// choice (raft's MsgTimeoutNow: the transferee campaigns at once, without pre-vote and
// past the other voters' leases). Raft first catches the transferee's log up, refuses
// proposals while the transfer is under way (raft.ErrProposalDropped, which callers retry),
// and abandons it after an election timeout if the transferee did not win.

// TransferLeader asks raft, through the loop, to hand the leadership of group id, which
// this node leads, to voter to (RawNode.TransferLeader); a quiesced group wakes, since the
// transfer runs on ticks. It returns a *NotLeaderError when this node does not lead the
// group; otherwise the transfer is under way, and Leader shows its outcome.
func (h *Host) TransferLeader(id GroupID, to uint64) error {
	return h.withGroup(context.Background(), id, func(g *group) error {
		if st := g.rn.BasicStatus(); st.RaftState != raft.StateLeader {
			return &NotLeaderError{Leader: st.Lead}
		}
		h.wakeGroup(g)
		g.rn.TransferLeader(to)
		return nil
	})
}

// CaughtUpVoters returns the voters of group id, other than this node, whose log reaches
// the leader's commit index (Match ≥ commit) as this node, its leader, tracks them: those a
// leadership transfer reaches at once. Learners are not listed. It returns a
// *NotLeaderError when this node does not lead the group. It reads the progress in the
// loop, without copying it (Status copies it).
func (h *Host) CaughtUpVoters(id GroupID) ([]uint64, error) {
	var out []uint64
	err := h.withGroup(context.Background(), id, func(g *group) error {
		st := g.rn.BasicStatus()
		if st.RaftState != raft.StateLeader {
			return &NotLeaderError{Leader: st.Lead}
		}
		commit, self := st.GetCommit(), h.cfg.NodeID
		g.rn.WithProgress(func(id uint64, typ raft.ProgressType, pr tracker.Progress) {
			if id != self && typ == raft.ProgressTypePeer && !pr.IsLearner && pr.Match >= commit {
				out = append(out, id)
			}
		})
		return nil
	})
	return out, err
}

// ActiveVoters returns the voters of group id, other than this node, that this node, its
// leader, heard from within the last election timeout (raft's RecentActive), whatever
// their log's lag: a leadership transfer to one of them completes once raft has caught it
// up, which under load a transfer to a CaughtUpVoter would need as well, since a follower
// trails the newest commit by the entries in flight. Learners are not listed. It returns a
// *NotLeaderError when this node does not lead the group.
func (h *Host) ActiveVoters(id GroupID) ([]uint64, error) {
	var out []uint64
	err := h.withGroup(context.Background(), id, func(g *group) error {
		st := g.rn.BasicStatus()
		if st.RaftState != raft.StateLeader {
			return &NotLeaderError{Leader: st.Lead}
		}
		self := h.cfg.NodeID
		g.rn.WithProgress(func(id uint64, typ raft.ProgressType, pr tracker.Progress) {
			if id != self && typ == raft.ProgressTypePeer && !pr.IsLearner && pr.RecentActive {
				out = append(out, id)
			}
		})
		return nil
	})
	return out, err
}
