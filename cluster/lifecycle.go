package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"go.etcd.io/raft/v3/tracker"

	"github.com/sluice-streams/sluice/multiraft"
	"github.com/sluice-streams/sluice/segment"
)

// The replica lifecycle on each node (see docs/CLUSTER.md, "Moving replicas").
//
// A node whose id is in a shard's placement `replicas` holds a replica of the shard, or
// builds one: the engine opens every shard, and OpenShardLog gives a node that is not one
// of the group's voters an empty replica waiting to be added (the group's leader adds it as
// a learner, catches it up and promotes it; reconcileGroup). A node whose id is not in
// `replicas` and whose replica was removed from the group's configuration — the removal
// applied here, or listed in the placement's `removed` by the leader that applied it (a
// removed member may miss the entry that removed it: the leader sends it nothing after) — so
// that the replica is no longer a voter or a learner, stops driving the group,
// deletes the replica's files and goes on with an empty replica waiting to be added (retire):
// what a node not in `replicas` holds when it opens the shard. A replica that is still a
// member is never deleted, whatever the placement says: the group's leader removes it first.
//
// The deletion is crash-safe: the shard's directory is renamed to a tombstone name in the
// same directory, the rename made durable, and the tombstone removed; OpenShardLog removes
// a tombstone a crash left behind. A crash before the rename leaves the whole replica, which
// is removed again when the node finds it removed from the group after the restart.

// tombPrefix names the tombstone of a shard's directory being deleted: ".removed-shard-<id>".
const tombPrefix = ".removed-"

// tombstone returns the tombstone name of a shard's directory.
func tombstone(dir string) string {
	return filepath.Join(filepath.Dir(dir), tombPrefix+filepath.Base(dir))
}

// removeTombstone removes what is left of an earlier deletion of the replica in dir.
func removeTombstone(dir string) error { return os.RemoveAll(tombstone(dir)) }

// removeDir deletes a directory crash-safely: renamed to its tombstone (durable), then
// removed.
func removeDir(dir string) error {
	tomb := tombstone(dir)
	if err := os.RemoveAll(tomb); err != nil {
		return err
	}
	if err := os.Rename(dir, tomb); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	d, err := os.Open(filepath.Dir(dir))
	if err != nil {
		return err
	}
	err = d.Sync()
	d.Close()
	if err != nil {
		return err
	}
	return os.RemoveAll(tomb)
}

// isMember reports whether id is a voter (of either half of a joint configuration) or a
// learner in cfg.
func isMember(cfg tracker.Config, id uint64) bool {
	for _, set := range []map[uint64]struct{}{cfg.Voters[0], cfg.Voters[1], cfg.Learners, cfg.LearnersNext} {
		if _, ok := set[id]; ok {
			return true
		}
	}
	return false
}

// hasConfig reports whether cfg has any member: a replica that never joined the group (an
// empty replica waiting to be added) has none.
func hasConfig(cfg tracker.Config) bool {
	return len(cfg.Voters[0]) > 0 || len(cfg.Voters[1]) > 0 || len(cfg.Learners) > 0
}

// settle applies the lifecycle to this node's replica of s, whose placement is p: a replica
// this node is not to hold, found removed from the group's configuration, is retired. It
// reports whether a removal is awaited (the node is not in p.Replicas and still a member).
func (r *Replication) settle(s *shardLog, p ShardPlacement) (awaiting bool, err error) {
	if slices.Contains(p.Replicas, r.cfg.NodeID) {
		return false, nil
	}
	st, err := r.host.Status(s.gid)
	if errors.Is(err, multiraft.ErrUnknownGroup) {
		return false, nil // not driven: a retire failed (it logged why), or the log is closing
	}
	if err != nil {
		return false, err
	}
	switch {
	case !hasConfig(st.Config):
		return false, nil // holds nothing: an empty replica waiting to be added
	case isMember(st.Config, r.cfg.RaftID) && !slices.Contains(p.Removed, r.cfg.RaftID):
		return true, nil // the leader removes it first
	}
	return false, r.retire(s)
}

// retire stops driving s's group, deletes the replica's files and starts an empty replica in
// their place, waiting to be added. On an error the old replica stays closed: the shard's
// calls fail with segment.ErrClosed on this node until it restarts.
func (r *Replication) retire(s *shardLog) error {
	s.swap.Lock()
	defer s.swap.Unlock()
	if err := r.host.RemoveGroup(s.gid); err != nil {
		return err // closed meanwhile (the shard's log, or the Host)
	}
	old := s.cur.Load()
	if err := old.Close(); err != nil && !errors.Is(err, segment.ErrClosed) {
		return err
	}
	if err := removeDir(s.cfg.Dir); err != nil {
		return fmt.Errorf("cluster: deleting the replica of %s/%s: %w", s.stream, s.shard, err)
	}
	l, err := r.startReplica(s, nil)
	if err != nil {
		return err
	}
	s.cur.Store(l)
	r.log.Info("shard replica removed: its files are deleted", "stream", s.stream, "shard", s.shard.String())
	return nil
}

// quorumOf returns how many voters of a configuration of n voters make a majority.
func quorumOf(n int) int { return n/2 + 1 }

// The ShardLog methods of shardLog (but Append, Close and Remove, replication.go) are the
// current replica's.

func (s *shardLog) Read(from uint64, maxRecords, maxBytes int) (segment.View, error) {
	return s.cur.Load().Read(from, maxRecords, maxBytes)
}
func (s *shardLog) Changed() <-chan struct{}                { return s.cur.Load().Changed() }
func (s *shardLog) Tip() uint64                             { return s.cur.Load().Tip() }
func (s *shardLog) TipTime() int64                          { return s.cur.Load().TipTime() }
func (s *shardLog) SeqAtTime(t int64) (uint64, bool, error) { return s.cur.Load().SeqAtTime(t) }
func (s *shardLog) Oldest() (uint64, bool, error)           { return s.cur.Load().Oldest() }
func (s *shardLog) Trim(cutoff int64) (int, error)          { return s.cur.Load().Trim(cutoff) }
func (s *shardLog) Hide(cutoff int64)                       { s.cur.Load().Hide(cutoff) }
func (s *shardLog) UnmapIdle() int                          { return s.cur.Load().UnmapIdle() }
