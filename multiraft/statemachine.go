package multiraft

import (
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// GroupID names one Raft group on every node that holds a replica of it. The caller picks
// it (a shard's identity, say); it is never reused for another group.
type GroupID uint64

// StateMachine is one Raft group's storage and application, driven by the Host. The Host
// calls its methods from its loop goroutine only, one group at a time, never concurrently
// for the same group.
type StateMachine interface {
	// Storage is what the group's RawNode reads its log from. Entries, HardState and
	// Snapshot given to Persist must be visible through it once Persist returns.
	Storage() raft.Storage

	// Persist makes rd's Snapshot, Entries and HardState durable before the Host sends
	// rd.Messages. Raft's rules (etcd-io/raft README, "Usage", step 1): an entry written
	// at index i discards every previously persisted entry at index >= i; the HardState
	// must be durable before any message of rd leaves the node (it carries the vote and
	// the term the messages are sent under). An error is sticky: the Host stops driving
	// the group and sends none of rd's messages.
	Persist(rd *raft.Ready) error

	// Apply is given rd.CommittedEntries after Persist, in log order, each exactly once
	// (across restarts: from the Applied index given to AddGroup). Configuration change
	// entries are included; the Host calls RawNode.ApplyConfChange for them after Apply
	// returns and reports the new configuration through ConfStateSaver when the state
	// machine implements it. An error is sticky, as for Persist.
	Apply(committed []*raftpb.Entry) error
}

// ConfStateSaver is implemented by a StateMachine that keeps the group's configuration
// (to answer raft.Storage.InitialState and Snapshot after a restart). The Host calls
// SaveConfState from its loop after applying the configuration change entry at index.
type ConfStateSaver interface {
	SaveConfState(index uint64, cs *raftpb.ConfState) error
}

// GroupOptions are the per-group settings of AddGroup.
type GroupOptions struct {
	// Applied is the index of the last entry the state machine had applied before a
	// restart; Apply is given the committed entries above it. Zero for a new group.
	Applied uint64
}

// AsyncPersister is implemented by a StateMachine that can persist a Ready in two steps, so
// that the Host makes the Readies of all its groups durable together (group commit, see
// groupcommit.go). When PersistAsync returns nil, rd's Snapshot and HardState are durable and
// its Entries are written and visible through Storage; wait (nil when there is nothing to
// wait for) returns once the Entries are durable. The Host calls the waits of one iteration
// concurrently, each once, from goroutines other than the loop, and sends none of rd's
// messages but MsgApps before rd's wait returned nil (see groupcommit.go). Errors of either
// step are sticky, as Persist's.
type AsyncPersister interface {
	PersistAsync(rd *raft.Ready) (wait func() error, err error)
}
