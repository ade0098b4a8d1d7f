// Package replica is one shard's replica in a Raft group: raft.Storage over the shard's
// segment log (replicated mode) and side files, and Log, the stream.ShardLog that appends
// through Raft. The group's RawNode is driven by its owner's loop (multiraft.Host, or a
// test's driver) through Log's state-machine methods: Storage, Persist (before the Ready's
// messages are sent) and Apply (its committed entries).
//
// Positions. One Raft entry per record; the entry's index is the record's position. Raft
// assigns them (the leader), so they are strictly increasing and never reused across
// leaders. An entry's data is the record's frame as the proposer built it (its arrival time,
// seq a proposal token); every replica persists it with seq := index and the CRC recomputed
// (segment.Log.AppendAt), so every replica's segment files hold the same bytes. Entries
// without a record — a new leader's empty entry, conf changes — are gaps in the positions,
// recorded in raft.terms (and raft.conf for conf changes) and synthesized by Entries.
//
// Acknowledgement and visibility. Append returns nil only when every entry of the batch
// committed with the term it was proposed in; otherwise ErrNotCommitted (retryable, may
// duplicate) or a *NotLeaderError naming the leader. A record is readable here (Read, Tip,
// Changed) once committed and durable here: Apply publishes min(commit, local durable).
//
// Sealing (seal.go; stream.SealingLog). Seal(token), on the leader, proposes a seal entry (a
// gap, kept in raft.seal) and returns the last record before it once applied; no replica
// publishes above a seal in force, and an Append with an entry after it fails with
// stream.ErrLogSealed. Unseal(token) proposes an unseal entry, which ends that token's hold
// and cancels the token (a seal entry of it applied later holds nothing); the seal lasts
// while any token holds it. Snapshots carry the seal to the replicas that install them.
//
// Views pin a segment mapping until released, as with segment.Log; Entries copies the frames
// out of its views before returning them to Raft. The entries persisted and not yet applied
// it returns from memory instead, the very entries raft gave Persist (cache.go).
//
// Crash behaviour. raft.state (HardState) is replaced atomically when term or vote change,
// before messages go out; commit may lag. raft.terms and raft.conf are replaced atomically
// before the frames they describe; a conflicting suffix is cut from the segment log first
// (segment.Log.Truncate, durable before anything else). On open, entries past the log's last
// frame are kept only while they have no frame (gaps and conf changes recorded in the side
// files); the rest is dropped.
//
// Restarts. InitialState returns the configuration as of the stored commit index (raft.snap's
// with raft.conf's conf entries up to it applied); Applied is that index, for the group's
// RawNode (multiraft.GroupOptions.Applied), and the records up to it are readable from Open.
//
// Retention and snapshots (snapshot.go; docs/CLUSTER.md, "Snapshots"). Trim moves FirstIndex
// past the segments it removes, and raft.snap records the position before it. A snapshot is
// taken at the applied index: its Data names the sealed segment files up to it and the tail
// of frames after them, which the receiving node fetches out of band (Log implements
// multiraft.SnapshotFiles) into a staging directory before raft sees the snapshot; Persist
// installs it crash-safely (the old log or the new one after a crash, never a mix).
package replica
