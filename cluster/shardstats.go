package cluster

import "github.com/sluice-streams/sluice/stream"

// ShardStats is the Raft figures of one shard replica this node holds (the /metrics
// figures per shard of a cluster node): multiraft.GroupStats with the shard named and Raft
// ids turned into node ids.
type ShardStats struct {
	Stream string
	Shard  stream.ShardID
	Term   uint64
	// LeaderNode is the node id (--node-id) of the leader this node knows; 0 when it knows
	// none or the leader's Raft id is not registered (its lease expired).
	LeaderNode uint64
	Leader     bool // this node leads the shard's group
	Quiesced   bool
	Failed     bool
	Commit     uint64
	Applied    uint64
	// On the leader only: entries proposed and not yet committed (its last index minus the
	// commit index), and per other member's node id, how many entries its log is behind
	// the leader's last index (a member whose Raft id is not registered is under node 0).
	CommitLag  uint64
	ReplicaLag map[uint64]uint64
	// Since the replica was opened here.
	SnapshotBytesSent, SnapshotBytesReceived, ProposalsDropped uint64
}

// ShardStats returns the figures of every shard replica the node holds, read in one turn
// of the Host's loop.
func (r *Replication) ShardStats() ([]ShardStats, error) {
	groups, err := r.host.GroupStats()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	node := func(raftID uint64) uint64 { return r.byRaft[raftID].ID }
	out := make([]ShardStats, 0, len(groups))
	for _, g := range groups {
		s, ok := r.groups[g.ID]
		if !ok {
			continue // added or dropped by a shard log at this moment
		}
		st := ShardStats{Stream: s.stream, Shard: s.shard, Term: g.Term, LeaderNode: node(g.Lead),
			Leader: g.Leader, Quiesced: g.Quiesced, Failed: g.Failed, Commit: g.Commit, Applied: g.Applied,
			SnapshotBytesSent: g.SnapshotBytesSent, SnapshotBytesReceived: g.SnapshotBytesReceived,
			ProposalsDropped: g.ProposalsDropped}
		if g.Leader {
			st.CommitLag = g.LastIndex - min(g.Commit, g.LastIndex)
			st.ReplicaLag = make(map[uint64]uint64, len(g.Lag))
			for id, lag := range g.Lag {
				n := node(id)
				st.ReplicaLag[n] = max(st.ReplicaLag[n], lag)
			}
		}
		out = append(out, st)
	}
	return out, nil
}
