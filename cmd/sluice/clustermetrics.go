package main

import (
	"log/slog"
	"strconv"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/multiraft"
	"github.com/sluice-streams/sluice/server"
)

// clusterMetrics are a cluster node's figures for the server's /metrics: the controller's,
// the Raft transport's and the Raft figures of every shard replica the node holds.
func clusterMetrics(ct *cluster.Controller, repl *cluster.Replication, logger *slog.Logger) func() []server.Metric {
	ctl := controllerMetrics(ct)
	return func() []server.Metric {
		out := append(ctl(), raftHostMetrics(repl.Host().Stats())...)
		stats, err := repl.ShardStats()
		if err != nil {
			logger.Warn("metrics: the shards' Raft figures", "err", err)
			return out
		}
		return append(out, shardRaftMetrics(stats)...)
	}
}

// raftHostMetrics are the node's Raft transport counters, over every group: what an idle
// cluster's cost is counted in (docs/CLUSTER.md, "Scale").
func raftHostMetrics(st multiraft.Stats) []server.Metric {
	counter := func(name, help string, v uint64) server.Metric {
		return server.Metric{Name: name, Help: help, Counter: true, Value: float64(v)}
	}
	return []server.Metric{
		counter("raft_node_messages_sent_total", "Raft messages, quiesce and liveness ping records this node handed to its senders, over every group.", st.MessagesSent),
		counter("raft_node_pings_sent_total", "Liveness ping records this node sent its peers (one per peer per tick, unless Raft messages went there).", st.PingsSent),
		counter("raft_node_posts_total", "Raft transport POSTs this node completed to its peers.", st.Posts),
		counter("raft_node_sent_bytes_total", "Bytes of the Raft transport POSTs this node completed.", st.BytesSent),
		counter("raft_node_messages_received_total", "Raft messages, quiesce and ping records this node received.", st.MessagesReceived),
	}
}

// shardRaftMetrics turns the shards' Raft figures into metrics labelled stream and shard
// (and peer, the node id of a member, for the replica lag a leader reports).
func shardRaftMetrics(stats []cluster.ShardStats) []server.Metric {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	out := make([]server.Metric, 0, len(stats)*12)
	for _, st := range stats {
		labels := []string{"stream", st.Stream, "shard", st.Shard.String()}
		gauge := func(name, help string, v float64) {
			out = append(out, server.Metric{Name: name, Help: help, Value: v, Labels: labels})
		}
		counter := func(name, help string, v uint64) {
			out = append(out, server.Metric{Name: name, Help: help, Counter: true, Value: float64(v), Labels: labels})
		}
		gauge("raft_term", "The shard's current Raft term on this node.", float64(st.Term))
		gauge("raft_leader_node", "The node id of the shard's leader as this node knows it; 0 for none.", float64(st.LeaderNode))
		gauge("raft_is_leader", "1 while this node leads the shard's Raft group.", b(st.Leader))
		gauge("raft_quiesced", "1 while the shard's group is quiesced on this node (idle: not ticked).", b(st.Quiesced))
		gauge("raft_failed", "1 when the shard's replica on this node stopped on a storage error.", b(st.Failed))
		gauge("raft_commit_index", "The highest Raft index (record position) this node knows committed.", float64(st.Commit))
		gauge("raft_applied_index", "The highest Raft index this node applied (made readable).", float64(st.Applied))
		counter("raft_snapshot_sent_bytes_total", "Bytes of the shard's snapshot files other nodes fetched from this node.", st.SnapshotBytesSent)
		counter("raft_snapshot_received_bytes_total", "Bytes of snapshot files this node fetched for the shard.", st.SnapshotBytesReceived)
		counter("raft_proposals_dropped_total", "Proposals of the shard's records Raft refused on this node (no leader, or a leadership transfer).", st.ProposalsDropped)
		if !st.Leader {
			continue
		}
		gauge("raft_commit_lag_entries", "On the leader: entries appended and not yet committed.", float64(st.CommitLag))
		for node, lag := range st.ReplicaLag {
			out = append(out, server.Metric{Name: "raft_replica_lag_entries",
				Help:  "On the leader: how many entries a member's log is behind the leader's.",
				Value: float64(lag), Labels: append(labels[:4:4], "peer", strconv.FormatUint(node, 10))})
		}
	}
	return out
}
