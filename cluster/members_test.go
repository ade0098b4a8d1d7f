package cluster_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/cluster/etcdtest"
	"github.com/sluice-streams/sluice/stream"
)

// next returns the next membership event, failing the test if none comes in a generous
// deadline.
func next(t *testing.T, ch <-chan cluster.NodeEvent) cluster.NodeEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the membership watch ended")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no membership event in 30s")
	}
	panic("unreachable")
}

// TestMembership: a node that joins is reported up with its address and listed; one that
// leaves is reported down at once; one that stops keeping its lease alive (its connection
// to etcd closed, as when the process dies) is reported down when the lease expires.
func TestMembership(t *testing.T) {
	eachEtcd(t, func(t *testing.T, srv *etcdtest.Server) {
		ttl := func(c *cluster.Config) { c.LeaseTTL = 2 * time.Second }
		watcher := dial(t, srv, "members", ttl)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		nodes, events, err := watcher.WatchMembers(ctx)
		if err != nil || len(nodes) != 0 {
			t.Fatalf("members before any joined: %v, %v", nodes, err)
		}
		if _, err := watcher.Join(ctx, 0, "x"); err == nil {
			t.Fatal("node id 0 was accepted")
		}
		m1, err := dial(t, srv, "members", ttl).Join(ctx, 1, "127.0.0.1:4001")
		if err != nil {
			t.Fatal(err)
		}
		dying := dial(t, srv, "members", ttl)
		if _, err := dying.Join(ctx, 2, "127.0.0.1:4002"); err != nil {
			t.Fatal(err)
		}
		for _, want := range []cluster.NodeEvent{{Kind: cluster.NodeUp, Node: cluster.Node{ID: 1, Addr: "127.0.0.1:4001"}},
			{Kind: cluster.NodeUp, Node: cluster.Node{ID: 2, Addr: "127.0.0.1:4002"}}} {
			if ev := next(t, events); ev != want {
				t.Fatalf("event %+v, want %+v", ev, want)
			}
		}
		members, err := watcher.Members()
		if err != nil || !reflect.DeepEqual(members, []cluster.Node{{ID: 1, Addr: "127.0.0.1:4001"}, {ID: 2, Addr: "127.0.0.1:4002"}}) {
			t.Fatalf("members %v, %v", members, err)
		}
		dying.Close() // keep-alives stop: the lease expires
		if ev := next(t, events); ev.Kind != cluster.NodeDown || ev.Node.ID != 2 {
			t.Fatalf("event %+v, want node 2 down", ev)
		}
		if err := m1.Leave(); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, events); ev.Kind != cluster.NodeDown || ev.Node.ID != 1 {
			t.Fatalf("event %+v, want node 1 down", ev)
		}
		if members, err := watcher.Members(); err != nil || len(members) != 0 {
			t.Fatalf("members after both went: %v, %v", members, err)
		}
	})
}

// TestReplicasFixedAtCreation: the first node fixes the replication factor; the same value
// later is accepted, another is refused with ErrReplicasMismatch.
func TestReplicasFixedAtCreation(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Embedded)
	c := dial(t, srv, "factor", nil)
	if n, err := c.Replicas(); err != nil || n != cluster.DefaultReplicas {
		t.Fatalf("replicas before any: %d, %v", n, err)
	}
	if err := c.EnsureReplicas(3); err != nil {
		t.Fatal(err)
	}
	if err := dial(t, srv, "factor", nil).EnsureReplicas(3); err != nil {
		t.Fatal(err)
	}
	err := dial(t, srv, "factor", nil).EnsureReplicas(5)
	if !errors.Is(err, cluster.ErrReplicasMismatch) {
		t.Fatalf("another factor: %v", err)
	}
	t.Log(err)
	if err := dial(t, srv, "other", nil).EnsureReplicas(5); err != nil {
		t.Fatalf("another cluster's factor: %v", err)
	}
}

// TestPlacement: with three nodes up and three replicas, every shard a creation or a
// resharding makes is placed on all three; a pruned or deleted stream's placement goes.
// With five nodes and three replicas each shard gets three distinct nodes.
func TestPlacement(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Embedded)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := dial(t, srv, "place", nil)
	if err := c.EnsureReplicas(3); err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id <= 3; id++ {
		if _, err := dial(t, srv, "place", nil).Join(ctx, id, "127.0.0.1:1"); err != nil {
			t.Fatal(err)
		}
	}
	e := node(t, c, t.TempDir())
	if err := e.CreateStream(stream.CreateStreamInput{Name: "p", ShardCount: 2}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.UpdateShardCount("p", 3); err != nil {
		t.Fatal(err)
	}
	d, _ := e.Describe("p")
	pl, err := c.Placement("p")
	if err != nil {
		t.Fatal(err)
	}
	if len(pl) != len(d.Shards) {
		t.Fatalf("%d shards placed of %d", len(pl), len(d.Shards))
	}
	for _, sd := range d.Shards {
		if !reflect.DeepEqual(pl[sd.ID], []uint64{1, 2, 3}) {
			t.Fatalf("shard %v placed on %v", sd.ID, pl[sd.ID])
		}
	}
	if err := e.DeleteStream("p", false); err != nil {
		t.Fatal(err)
	}
	if pl, err := c.Placement("p"); err != nil || len(pl) != 0 {
		t.Fatalf("placement after deletion: %v, %v", pl, err)
	}
	for id := uint64(4); id <= 5; id++ {
		if _, err := dial(t, srv, "place", nil).Join(ctx, id, "127.0.0.1:1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.CreateStream(stream.CreateStreamInput{Name: "wide", ShardCount: 8}); err != nil {
		t.Fatal(err)
	}
	pl, err = c.Placement("wide")
	if err != nil || len(pl) != 8 {
		t.Fatalf("placement of 8 shards: %v, %v", pl, err)
	}
	used := map[uint64]bool{}
	for id, r := range pl {
		if len(r) != 3 || r[0] >= r[1] || r[1] >= r[2] || r[0] < 1 || r[2] > 5 {
			t.Fatalf("shard %v placed on %v: want 3 distinct nodes of 1..5", id, r)
		}
		for _, n := range r {
			used[n] = true
		}
	}
	if len(used) < 4 {
		t.Fatalf("8 shards placed on %d nodes only: %v", len(used), pl)
	}
	// AllPlacements reads every stream's records at once, each as PlacementOf reads it.
	if err := e.CreateStream(stream.CreateStreamInput{Name: "w", ShardCount: 2}); err != nil {
		t.Fatal(err)
	}
	all, err := c.AllPlacements()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 10 {
		t.Fatalf("AllPlacements: %d records, want 8 of wide and 2 of w: %v", len(all), all)
	}
	for k, p := range all {
		one, ok, err := c.PlacementOf(k.Stream, k.Shard)
		if err != nil || !ok || !reflect.DeepEqual(one, p) {
			t.Fatalf("%v: AllPlacements %+v, PlacementOf %+v %v %v", k, p, one, ok, err)
		}
	}
}

// TestNoPlacementNoShards: in a replicating cluster (its factor fixed), a creation or a
// resharding while no node is registered (every lease lapsed in an etcd outage) fails with
// a retryable InternalFailure and creates nothing, instead of leaving shards no replica
// set: each node would open those as a log of its own. Once a node is back, it succeeds.
func TestNoPlacementNoShards(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Embedded)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := dial(t, srv, "unplaced", nil)
	if err := c.EnsureReplicas(3); err != nil {
		t.Fatal(err)
	}
	e := node(t, c, t.TempDir())
	err := e.CreateStream(stream.CreateStreamInput{Name: "p", ShardCount: 2})
	if stream.KindOf(err) != stream.KindInternalFailure || !errors.Is(err, cluster.ErrUnavailable) {
		t.Fatalf("create with no node registered: %v, want a retryable InternalFailure", err)
	}
	if got := e.ListStreams(); len(got) != 0 {
		t.Fatalf("a refused creation left %v", got)
	}
	if _, err := dial(t, srv, "unplaced", nil).JoinNode(ctx, cluster.Node{ID: 1, Addr: "127.0.0.1:1", RaftID: 11}); err != nil {
		t.Fatal(err)
	}
	if err := e.CreateStream(stream.CreateStreamInput{Name: "p", ShardCount: 2}); err != nil {
		t.Fatal(err)
	}
	p, ok, err := c.PlacementOf("p", 0)
	if err != nil || !ok || !reflect.DeepEqual(p.Raft, []uint64{11}) {
		t.Fatalf("placement of shard 0: %+v %v %v, want node 1's Raft id", p, ok, err)
	}
}
