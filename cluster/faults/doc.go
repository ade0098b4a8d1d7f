// Package faults holds the cluster's fault tests (its _test.go files only): a real etcd and
// three `sluice serve` processes on loopback, each node's peer address behind a
// fault-injecting TCP proxy (toxiproxy, as a library), producers acknowledged through the
// AWS SDK for Go v2, and after every scenario the invariant checker of package
// cluster/invariant over the stopped nodes' data directories.
//
// The scenarios: kill -9 of the node leading most shards, under load, over several rounds;
// a node whose data directory was wiped while it was down; a leader stopped (SIGSTOP) for
// longer than the election timeout and resumed; etcd stopped and started again; a node cut
// from its peers by its proxy and healed; the leader of a resharding's parent killed, stopped
// or wiped, or etcd stopped, while the resharding is in flight (it commits, or is refused
// and changes nothing); and TestChaos, many rounds of them mixed under load
// from the SDK and the Go client on four nodes in three zones, with node additions, drains
// and reshards between them, as long as SLUICE_CHAOS_DURATION says (make cluster-chaos).
//
// The proxy sits in front of a node's advertised peer address (--peer-addr), so a partition
// cuts what the other nodes send to it while clients still reach it on --addr. What the cut
// node sends still arrives (every node dials the others' proxies, which stay up): its Raft
// messages reach the majority, no answer reaches it. It is deaf, which is the harder case for
// the majority (a deposed leader still sending).
package faults
