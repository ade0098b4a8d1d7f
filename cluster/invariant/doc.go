// Package invariant is the cluster's invariant checker: after a fault scenario, with every
// node stopped, it reads each node's replicas of a stream (the segment logs through package
// segment's read-only Verify, the Raft side files through replica.ReadSide) and decides, from
// the files and the list of what clients were acknowledged, whether anything was lost:
//
//   - the committed prefix of each shard is identical byte for byte on every replica: the
//     same frames at the same positions, the same gaps, the same term at every position;
//   - every acknowledged record is in it exactly once, at the position its sequence number
//     names, with its partition key and data (a record its producer retried itself with the
//     same data may be stored once per attempt: Acked.Attempts);
//   - no sequence number was acknowledged twice;
//   - no acknowledged record of a closed shard lies above its ending (Input.Endings): the
//     children hold the rest; and a closed shard that took records was closed by a seal
//     entry: every member holds an entry without a record at the position after the ending;
//   - the open shards ListShards reported cover the hash key space once, without a gap or
//     an overlap.
//
// When the caller names each shard's current members (Input.Members: the replicas its
// placement lists, once they are voters), only they must hold the committed prefix; a replica
// on any other node (one the shard moved away from, or one opened and never added) must
// agree with them up to its own commit index. Otherwise every replica found is a member.
//
// The committed prefix of a shard is checked up to the largest of its highest acknowledged
// position, the lowest commit index its members' raft.state files record (a replica writes
// raft.state when its term or vote changes, so that commit index may be old) and, for a
// sealed shard, the position after its ending: all are committed, so every replica must
// hold them. The checker never changes a file; it reads stopped nodes only (a running node
// may be appending). It expects plaintext streams (an encrypted record's stored data is not
// the data the client sent).
//
// Concurrency: Check is a pure function of the files and its input.
package invariant
