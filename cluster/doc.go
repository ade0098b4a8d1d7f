// Package cluster is sluice's control plane in etcd: the catalog of streams every node
// shares (Catalog, the etcd implementation of stream.Catalog), membership (Join, Members,
// WatchMembers: each node's key under a lease it keeps alive), the replication factor fixed
// when the cluster is created (EnsureReplicas) and the placement of each shard's replicas
// (written in the catalog's transactions, then kept by the elected controller: controller.go,
// plan.go, the roster of nodes and their zones in roster.go), and the on-demand streams'
// scaling on the write demand every node publishes, decided by the controller (demand.go).
// It also starts an embedded etcd (StartEmbedded)
// for `sluice dev-cluster` and the tests. docs/CLUSTER.md has the key layout.
//
// It does not own records: no record passes through etcd. Replication (replication.go)
// wires the node's Raft replicas: one multiraft.Host per node, each shard's replica.Log
// opened through the engine's OpenShardLog seam in the group GroupOf names, membership to
// the Host's peers, the peer routes authenticated with the cluster's peer key
// (peerauth.go), forwarded writes (forward.go), and the wiped-disk rule (a data
// directory's Raft id, nodeid.go).
//
// Concurrency: a Client and everything it returns are safe for concurrent use. Errors: every
// etcd request is bounded by Config.RequestTimeout; one etcd did not answer is a
// *stream.Error of KindInternalFailure (which Kinesis clients retry) whose cause wraps
// ErrUnavailable. The engine calls the catalog only on control-plane operations, never on a
// data path, so an unreachable etcd stops stream changes, not PutRecords or GetRecords.
//
// Durability: what Save returns nil for is committed by etcd's quorum (etcd's own fsync);
// the catalog's consistency between nodes is the compare-and-swap on each stream key's
// ModRevision.
package cluster
