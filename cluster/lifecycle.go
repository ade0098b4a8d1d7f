package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.etcd.io/raft/v3/tracker"

	"github.com/sluice-streams/sluice/multiraft"
	"github.com/sluice-streams/sluice/replica"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/stream"
)

// The replica lifecycle on each node (see docs/CLUSTER.md, "Moving replicas").
//
// The engine opens every shard on every node, and keeps the shard's log (shardLog) while
// what is under it changes (backing):
//
//   - a replica: the node is in the placement's `replicas` and a voter of the group;
//   - a remote log (remote.go): the node is not in `replicas` and holds no replica;
//   - a replica being built, behind the remote log: the node is in `replicas` and not yet a
//     caught-up voter (the group's leader adds it as a learner, catches it up and promotes it;
//     reconcileGroup), or it is no longer in `replicas` and its replica is still a member
//     (the leader removes it first). Raft drives the replica; reads, Tip, Changed and
//     appends go to the remote log, so that a replica that holds only part of the log never
//     answers.
//
// Switches (under shardLog.swap, each reconcile pass; reconcile):
//
//   - remote → being built (build): the node is now in `replicas`. An empty replica is
//     created, starting from the vote a removed replica of the group kept here, and waits to
//     be added.
//   - being built → replica (finishBuilding): the node is in `replicas`, its replica a
//     voter that applied what it knows to be committed. The remote log is closed.
//   - replica or being built → remote (retire): the node is not in `replicas` and its replica
//     was removed from the group's configuration (the removal applied here, or listed in the
//     placement's `removed` by the leader that applied it: a removed member may miss the
//     entry that removed it, the leader sends it nothing after), or never joined. The node
//     stops driving the group, keeps the replica's term and vote (replica.KeepVote, in
//     ".vote-shard-<id>" beside the shard's directory, synced), deletes the replica's files
//     and goes on with the remote log. A replica that is still a member is never deleted,
//     whatever the placement says.
//
// A call under way across a switch ends with segment.ErrClosed from the log it loaded (the
// engine answers a retryable InternalFailure), or with the answer of that log, which held
// the shard then; the channel Changed gave is closed by the switch, so a subscriber waits
// again on the new log.
//
// The deletion is crash-safe: the shard's directory is renamed to a tombstone name in the
// same directory, the rename made durable, and the tombstone removed; OpenShardLog removes
// a tombstone a crash left behind. A crash before the rename leaves the whole replica, which
// is removed again when the node finds it removed from the group after the restart. The kept
// vote is written before the rename, and removed once an empty replica of the group here
// starts from it (openReplica): a replica of the group created on this node later never
// starts below the term and vote its removed predecessor reached.

// backing is what a shardLog's calls go to (see above): rep alone, rem alone, or both while
// rep is built or waits to be removed (the calls then go to rem).
type backing struct {
	rep *replica.Log
	rem *remoteLog
}

// log returns the log the calls go to.
func (b *backing) log() stream.ShardLog {
	if b.rem != nil {
		return b.rem
	}
	return b.rep
}

// serving reports whether s answers from this node's replica (peer reads come here).
func (s *shardLog) serving() bool {
	b := s.cur.Load()
	return b.rep != nil && b.rem == nil
}

// tombPrefix names the tombstone of a shard's directory being deleted: ".removed-shard-<id>".
const tombPrefix = ".removed-"

// tombstone returns the tombstone name of a shard's directory.
func tombstone(dir string) string {
	return filepath.Join(filepath.Dir(dir), tombPrefix+filepath.Base(dir))
}

// voteFile names the file a removed replica's term and vote are kept in: ".vote-shard-<id>".
func voteFile(dir string) string {
	return filepath.Join(filepath.Dir(dir), votePrefix+filepath.Base(dir))
}

// votePrefix names the kept vote of a shard's removed replica (voteFile).
const votePrefix = ".vote-"

// removeTombstone removes what is left of an earlier deletion of the replica in dir.
func removeTombstone(dir string) error { return os.RemoveAll(tombstone(dir)) }

// removeKeptVote removes the kept vote of the replica in dir, if there is one.
func removeKeptVote(dir string) error {
	if err := os.Remove(voteFile(dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// sweepVotes removes the kept votes in streamDir (the directory of stream streamName's shard
// directories) whose shard has no placement record: the shard left the stream's map (closed,
// then pruned when retention expired it) while this node was not running to remove them with
// its log (shardLog.Remove), and a placement record, once written, goes only then or with the
// stream, so no replica of the group starts from them again. The tombstone a crash left of
// such a shard's deleted replica goes too (OpenShardLog removes those of the shards it
// opens; the engine sweeps the pruned shards' directories themselves). Each stream directory
// is looked at once per run, by the first OpenShardLog of one of its shards; the records are
// read only when it holds a kept vote or a tombstone. An error leaves them (looked at again
// at the next run).
func (r *Replication) sweepVotes(streamName, streamDir string) {
	r.mu.Lock()
	if r.swept == nil {
		r.swept = map[string]bool{}
	}
	seen := r.swept[streamDir]
	r.swept[streamDir] = true
	r.mu.Unlock()
	if seen {
		return
	}
	entries, err := os.ReadDir(streamDir)
	if err != nil {
		return // no directory yet: no vote
	}
	var left []string // kept votes and tombstones: ".vote-shard-<id>", ".removed-shard-<id>"
	for _, e := range entries {
		if _, ok := sweptShard(e.Name()); ok {
			left = append(left, e.Name())
		}
	}
	if len(left) == 0 {
		return
	}
	placed, err := r.c.placedShards(streamName)
	if err != nil {
		r.log.Warn("kept votes of removed replicas not swept", "stream", streamName, "err", err)
		return
	}
	for _, v := range left {
		if shard, _ := sweptShard(v); placed[shard] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(streamDir, v)); err != nil {
			r.log.Warn("removing what is left of a replica of a shard no longer placed", "stream", streamName, "file", v, "err", err)
			continue
		}
		r.log.Info("removed what is left of a replica of a shard no longer placed", "stream", streamName, "file", v)
	}
}

// sweptShard returns the shard id (decimal, as in its placement key) of a kept vote's or a
// tombstone's name in a stream directory; ok is false for any other name.
func sweptShard(name string) (shard string, ok bool) {
	for _, prefix := range []string{votePrefix, tombPrefix} {
		if id, found := strings.CutPrefix(name, prefix+shardDirPrefix); found {
			return id, true
		}
	}
	return "", false
}

// shardDirPrefix starts the name of a shard's directory as the engine names it,
// "shard-<id>", the id in decimal as in its placement key.
const shardDirPrefix = "shard-"

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

// settle applies the lifecycle to this node's replica of s, whose placement is p: a replica
// this node is not to hold, found removed from the group's configuration or never added, is
// retired. It reports whether a removal is awaited (the node is not in p.Replicas and still
// a member).
func (r *Replication) settle(s *shardLog, p ShardPlacement) (awaiting bool, err error) {
	if slices.Contains(p.Replicas, r.cfg.NodeID) || s.cur.Load().rep == nil {
		return false, nil
	}
	st, err := r.host.Status(s.gid)
	if errors.Is(err, multiraft.ErrUnknownGroup) {
		return false, nil // not driven: a retire failed (it logged why), or the log is closing
	}
	if err != nil {
		return false, err
	}
	if isMember(st.Config, r.cfg.RaftID) && !slices.Contains(p.Removed, r.cfg.RaftID) {
		return true, nil // the leader removes it first
	}
	return false, r.retire(s, p)
}

// retire stops driving s's group, keeps the replica's term and vote, deletes the replica's
// files and serves the shard through the remote log. On an error the old replica stays
// closed: the shard's calls fail with segment.ErrClosed on this node until it restarts.
func (r *Replication) retire(s *shardLog, p ShardPlacement) error {
	s.swap.Lock()
	defer s.swap.Unlock()
	old := s.cur.Load()
	if s.closed || old.rep == nil {
		return nil
	}
	if err := r.host.RemoveGroup(s.gid); err != nil {
		return err // closed meanwhile (the Host)
	}
	if err := old.rep.Close(); err != nil && !errors.Is(err, segment.ErrClosed) {
		return err
	}
	if err := replica.KeepVote(s.cfg.Dir, voteFile(s.cfg.Dir)); err != nil {
		return fmt.Errorf("cluster: keeping the vote of the replica of %s/%s: %w", s.stream, s.shard, err)
	}
	if err := removeDir(s.cfg.Dir); err != nil {
		return fmt.Errorf("cluster: deleting the replica of %s/%s: %w", s.stream, s.shard, err)
	}
	rem := old.rem
	if rem == nil {
		rem = r.openRemote(s.cfg, p)
	}
	s.cur.Store(&backing{rem: rem})
	r.log.Info("shard replica removed: its files are deleted, the shard is served from other nodes", "stream", s.stream, "shard", s.shard.String())
	return nil
}

// build starts an empty replica behind s's remote log when p names this node: it waits to be
// added to the group (see above).
func (r *Replication) build(s *shardLog, p ShardPlacement) error {
	if !slices.Contains(p.Replicas, r.cfg.NodeID) {
		return nil
	}
	s.swap.Lock()
	defer s.swap.Unlock()
	old := s.cur.Load()
	if s.closed || old.rep != nil {
		return nil
	}
	b, err := r.openReplica(s, p, old.rem)
	if err != nil {
		return err
	}
	s.cur.Store(b)
	r.log.Info("building a replica of the shard", "stream", s.stream, "shard", s.shard.String())
	return nil
}

// finishBuilding makes s's replica serve the shard once p names this node and the replica
// is a voter that applied what it knows to be committed; the remote log is closed. It
// reports whether s serves from its replica or from the remote log alone (nothing to wait
// for).
func (r *Replication) finishBuilding(s *shardLog, p ShardPlacement) (done bool, err error) {
	b := s.cur.Load()
	if b.rep == nil || b.rem == nil {
		return true, nil
	}
	if !slices.Contains(p.Replicas, r.cfg.NodeID) {
		return true, nil // waits for its removal: settle
	}
	st, err := r.host.Status(s.gid)
	if err != nil {
		return false, err
	}
	_, voter := st.Config.Voters[0][r.cfg.RaftID]
	if !voter || st.GetCommit() == 0 || st.Applied < st.GetCommit() {
		return false, nil
	}
	s.swap.Lock()
	defer s.swap.Unlock()
	if s.closed || s.cur.Load() != b {
		return false, nil
	}
	s.cur.Store(&backing{rep: b.rep})
	b.rem.Close()
	r.log.Info("shard served from this node's replica", "stream", s.stream, "shard", s.shard.String())
	return true, nil
}

// quorumOf returns how many voters of a configuration of n voters make a majority.
func quorumOf(n int) int { return n/2 + 1 }

// The ShardLog methods of shardLog (but Append, Close and Remove, replication.go) are those
// of the log the calls go to (backing.log).

func (s *shardLog) Read(from uint64, maxRecords, maxBytes int) (segment.View, error) {
	return s.cur.Load().log().Read(from, maxRecords, maxBytes)
}
func (s *shardLog) Changed() <-chan struct{}                { return s.cur.Load().log().Changed() }
func (s *shardLog) Tip() uint64                             { return s.cur.Load().log().Tip() }
func (s *shardLog) TipTime() int64                          { return s.cur.Load().log().TipTime() }
func (s *shardLog) SeqAtTime(t int64) (uint64, bool, error) { return s.cur.Load().log().SeqAtTime(t) }
func (s *shardLog) Oldest() (uint64, bool, error)           { return s.cur.Load().log().Oldest() }
func (s *shardLog) Trim(cutoff int64) (int, error)          { return s.cur.Load().log().Trim(cutoff) }
func (s *shardLog) Hide(cutoff int64)                       { s.cur.Load().log().Hide(cutoff) }
func (s *shardLog) UnmapIdle() int                          { return s.cur.Load().log().UnmapIdle() }
