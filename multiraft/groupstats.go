package multiraft

import (
	"context"
	"io"
	"sync/atomic"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/tracker"
)

// GroupStats is one group's figures as this node sees them (Host.GroupStats): what a
// scrape of /metrics shows per shard.
type GroupStats struct {
	ID       GroupID
	Term     uint64 // the current term
	Lead     uint64 // the leader this node knows, 0 for none
	Leader   bool   // this node leads the group
	Quiesced bool   // not ticked (quiesce.go)
	Failed   bool   // stopped by a Persist or Apply error
	Commit   uint64 // the highest index known committed
	Applied  uint64 // the highest index applied here
	// On the leader only: LastIndex is the leader's last index, and Lag holds, for every
	// other member (voters and learners), how many entries its log is behind LastIndex.
	// Nil elsewhere.
	LastIndex uint64
	Lag       map[uint64]uint64
	// Counted since the group was added to this Host: bytes of snapshot files other nodes
	// fetched from this node, bytes this node fetched, and proposals raft refused
	// (raft.ErrProposalDropped: no leader known, a leadership transfer, or the uncommitted
	// size limit).
	SnapshotBytesSent, SnapshotBytesReceived, ProposalsDropped uint64
}

// groupCounters are a group's counts kept outside raft; atomics, since snapshot files are
// read by the senders' and fetchers' goroutines.
type groupCounters struct {
	snapSent, snapReceived, dropped atomic.Uint64
}

// countDropped counts a proposal raft refused and returns err unchanged.
func (c *groupCounters) countDropped(err error) error {
	if err == raft.ErrProposalDropped {
		c.dropped.Add(1)
	}
	return err
}

// countingReader adds the bytes read through it to n.
type countingReader struct {
	io.ReadCloser
	n *atomic.Uint64
}

func (r countingReader) Read(p []byte) (int, error) {
	k, err := r.ReadCloser.Read(p)
	r.n.Add(uint64(k))
	return k, err
}

// GroupStats returns the figures of every group this Host drives, read in one turn of the
// loop (the progress of followers is copied for groups this node leads only).
func (h *Host) GroupStats() ([]GroupStats, error) {
	var out []GroupStats
	err := h.call(context.Background(), func() error {
		out = make([]GroupStats, 0, len(h.groups))
		for id, g := range h.groups {
			st := g.rn.BasicStatus()
			gs := GroupStats{ID: id, Term: st.GetTerm(), Lead: st.Lead, Leader: st.RaftState == raft.StateLeader,
				Quiesced: g.quiesced, Failed: g.err != nil, Commit: st.GetCommit(), Applied: st.Applied,
				SnapshotBytesSent: g.ctr.snapSent.Load(), SnapshotBytesReceived: g.ctr.snapReceived.Load(),
				ProposalsDropped: g.ctr.dropped.Load()}
			if gs.Leader {
				self := h.cfg.NodeID
				gs.Lag = map[uint64]uint64{}
				g.rn.WithProgress(func(pid uint64, _ raft.ProgressType, pr tracker.Progress) {
					if pid == self {
						gs.LastIndex = pr.Match
					}
				})
				g.rn.WithProgress(func(pid uint64, _ raft.ProgressType, pr tracker.Progress) {
					if pid != self {
						gs.Lag[pid] = gs.LastIndex - min(pr.Match, gs.LastIndex)
					}
				})
			}
			out = append(out, gs)
		}
		return nil
	})
	return out, err
}
