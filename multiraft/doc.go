// Package multiraft drives many Raft groups (go.etcd.io/raft/v3 RawNodes) on one node
// from one event loop, carries their messages to peers in one batched HTTP POST per peer,
// and quiesces idle groups so that thousands of them cost almost nothing.
//
// # What it owns
//
//   - The loop (Host): one goroutine ticks every group that is not quiesced, steps the
//     messages peers send, runs proposals, configuration changes, campaigns and transfers
//     submitted through the API, and handles each group's Ready in raft's order: Persist
//     (StateMachine), queue Messages, Apply committed entries (and ApplyConfChange),
//     Advance. Queued messages leave when every group of the iteration has persisted.
//   - The transport: per peer, one bounded queue and one sender goroutine POSTing batches
//     (format.go; docs/PROTOCOL.md, "Raft transport") to http://ADDR/sluice/v1/raft;
//     Answer (or Receive, or Handler) decodes a batch and hands it to the loop; its status
//     202 also vouches for this node's liveness (liveness.go).
//   - Quiescence (quiesce.go): idle groups stop ticking on every replica; NodeDown and
//     NodeUp wake the ones that must elect or catch up.
//   - Snapshot files (snapshot.go): for a state machine implementing SnapshotFiles, a
//     received MsgSnap is stepped only after FetchSnapshot, on a goroutine of its own, has
//     fetched the files the snapshot names from the sender (GET SnapshotPath), so the loop
//     never waits for a transfer.
//   - Node liveness (liveness.go): one ping per peer every second tick (none when a batch
//     already goes there), whatever the number of groups; a peer not heard from for
//     Config.PeerTimeoutTick ticks is treated as down until heard again, with NodeDown's
//     effects, so failover does not wait for the caller's membership.
//   - The published leader of each group (leader.go), read by Leader without the loop.
//
// # What it does not own
//
//   - Storage and application: a StateMachine per group (raft.Storage, Persist, Apply),
//     supplied by the caller (package replica for shards). The Host never closes one.
//   - Membership: which nodes exist (SetPeer) and which groups this node holds (AddGroup,
//     RemoveGroup) are the caller's decisions (package cluster, from etcd), and so is
//     NodeDown/NodeUp; the Host adds its own verdict on silent peers (liveness.go).
//   - Matching proposals to their outcome: Propose returns when raft took the entries; the
//     state machine sees them committed in Apply.
//
// # Concurrency
//
// Every exported method of Host is safe for concurrent use. RawNode is not, so every
// operation on a group runs on the loop goroutine: the API methods enqueue a function and
// (except NodeDown, NodeUp, SetPeer, Receive and Answer) wait for its result. Leader does not: it
// reads the leader the loop last published (leader.go). StateMachine methods
// are called from the loop only, one group at a time; a slow Persist delays every group
// of the node (the price of one loop; see below). Receive returns once the batch is
// decoded and queued, before its messages are stepped.
//
// # Raft invariants each piece relies on
//
//   - Persist before send: a message may leave only after the HardState and entries it
//     depends on are durable (raft's Ready contract, step 2). The loop queues a group's
//     messages only after its Persist returned, and hands queues to the senders only after
//     every group of the iteration was handled. A Persist or Apply error stops the group
//     (sticky, ErrGroupFailed) and its Ready's messages are never sent.
//   - Ready in order: one Ready per group at a time, Advance after Apply; RawNode is used
//     from the loop goroutine only.
//   - Lossy transport: raft tolerates lost, duplicated and reordered messages, so a full
//     peer queue or a failed POST drops messages (and reports the peer unreachable to
//     raft, MsgSnap failures with ReportSnapshot) instead of blocking the loop.
//   - Quiescence withholds ticks only: it never changes raft's state or messages, so it
//     cannot break safety; liveness rests on the wake rules (quiesce.go) and, for a
//     leader that died while its followers were quiesced, on its silence (liveness.go)
//     or the caller's NodeDown, whichever comes first; for a leader whose node stops
//     driving the group while it lives on, on RemoveGroup handing the group to a caught-up
//     voter first.
//   - CheckQuorum and PreVote are on, so a partitioned or woken follower cannot disrupt a
//     leader that still holds its lease.
//
// # Durability
//
// The package keeps nothing on disk. Durability is the StateMachine's Persist; the Host
// sends nothing that Persist has not made durable.
package multiraft
