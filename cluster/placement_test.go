package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/cluster/etcdtest"
	"github.com/sluice-streams/sluice/stream"
)

// placingCluster is a replicating cluster of six nodes up, each in zone zoneOf(id) (nodes 1
// and 4 in z1, 2 and 5 in z2, 3 and 6 in z0) with Raft id 10+id, three replicas, a client
// and an engine sharing its catalog, and a raw etcd client to write placement records
// behind the client's back.
type placingCluster struct {
	c      *cluster.Client
	e      *stream.Engine
	raw    *clientv3.Client
	prefix string // of the cluster's placement records
	ctx    context.Context
}

func newPlacingCluster(t *testing.T, name string) *placingCluster {
	t.Helper()
	srv := etcdtest.Start(t, etcdtest.Embedded)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	c := dial(t, srv, name, nil)
	if err := c.EnsureReplicas(3); err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id <= 6; id++ {
		if _, err := dial(t, srv, name, nil).JoinNode(ctx, cluster.Node{ID: id, Addr: "127.0.0.1:1", Zone: zoneOf(id), RaftID: 10 + id}); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return &placingCluster{c: c, e: node(t, c, t.TempDir()), raw: raw, prefix: "/sluice/" + name + "/placement/", ctx: ctx}
}

// load writes n placement records of stream name on replicas, the preferred leader
// rotating among them, and returns the revision of the last write.
func (pc *placingCluster) load(t *testing.T, name string, n int, replicas []uint64) int64 {
	t.Helper()
	var rev int64
	for sh := range n {
		raft := make([]uint64, len(replicas))
		for i, id := range replicas {
			raft[i] = 10 + id
		}
		b, _ := json.Marshal(map[string]any{"replicas": replicas, "raft": raft, "leader": replicas[sh%len(replicas)]})
		resp, err := pc.raw.Put(pc.ctx, fmt.Sprintf("%s%s/%d", pc.prefix, name, sh), string(b))
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	return rev
}

// drop deletes every placement record of stream name and returns the revision of the delete.
func (pc *placingCluster) drop(t *testing.T, name string) int64 {
	t.Helper()
	resp, err := pc.raw.Delete(pc.ctx, pc.prefix+name+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// create creates stream name of shards shards and checks that each is placed on want (in
// id order), three nodes in three zones, the preferred leaderships spread evenly over them.
func (pc *placingCluster) create(t *testing.T, name string, shards int, want []uint64) {
	t.Helper()
	if err := pc.e.CreateStream(stream.CreateStreamInput{Name: name, ShardCount: shards}); err != nil {
		t.Fatal(err)
	}
	all, err := pc.c.AllPlacements()
	if err != nil {
		t.Fatal(err)
	}
	leads := map[uint64]int{}
	for sh := range shards {
		p, ok := all[cluster.ShardKey{Stream: name, Shard: stream.ShardID(sh)}]
		zones := map[string]bool{}
		for _, id := range p.Replicas {
			zones[zoneOf(id)] = true
		}
		if !ok || !reflect.DeepEqual(p.Replicas, want) || len(zones) != 3 || !slices.Contains(p.Replicas, p.Leader) {
			t.Fatalf("%s shard %d placed on %v (zones %v) led by %d, want %v", name, sh, p.Replicas, zones, p.Leader, want)
		}
		leads[p.Leader]++
	}
	for _, id := range want {
		if leads[id] != shards/len(want) {
			t.Fatalf("%s: preferred leaderships %v, want %d for each of %v", name, leads, shards/len(want), want)
		}
	}
}

// TestCreatePlacesFromCache: with the node's placement cache ready, a creation places on the
// cache's counts, not on a read of every record. The cache is loaded while nodes 1, 2 and 3
// hold ten replicas each, and those records are then deleted behind its back: the cache,
// behind, still counts them, so the six shards of a new stream all go to nodes 4, 5 and 6
// (one per zone, leaderships even), where a read of etcd (no record left) would spread them
// over the six nodes. Once the cache has followed the deletion and the creation, another
// stream goes to nodes 1, 2 and 3, now the least loaded.
func TestCreatePlacesFromCache(t *testing.T) {
	pc := newPlacingCluster(t, "fromcache")
	pc.load(t, "heavy", 10, []uint64{1, 2, 3})
	cache := pc.c.NewPlacementCache()
	from, err := cache.Resume(pc.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if load, _, ready := cache.Counts(); !ready || load[1] != 10 || load[4] != 0 {
		t.Fatalf("the loaded cache counts %v (ready %v)", load, ready)
	}
	pc.c.UsePlacementCache(cache)
	rev := pc.drop(t, "heavy")
	pc.create(t, "s", 6, []uint64{4, 5, 6})

	// The cache follows the deletion and the creation's records.
	all, err := pc.c.AllPlacements()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range all {
		rev = max(rev, p.Rev)
	}
	events := pc.raw.Watch(pc.ctx, pc.prefix, clientv3.WithPrefix(), clientv3.WithRev(from))
	for seen := int64(0); seen < rev; {
		resp := <-events
		if resp.Err() != nil {
			t.Fatal(resp.Err())
		}
		for _, ev := range resp.Events {
			seen = max(seen, ev.Kv.ModRevision)
		}
		if err := cache.Apply(resp.Events); err != nil {
			t.Fatal(err)
		}
	}
	if load, _, _ := cache.Counts(); !reflect.DeepEqual(load, map[uint64]int{4: 6, 5: 6, 6: 6}) {
		t.Fatalf("after the events the cache counts %v", load)
	}
	pc.create(t, "t", 6, []uint64{1, 2, 3})
}

// TestCreatePlacementFallsBack: while the client's placement cache is not ready, a creation
// reads and counts every record. Never loaded (the node starting), it would count nothing:
// the creation reads nodes 1, 2 and 3 holding ten replicas each and places on 4, 5 and 6.
// Loaded, then to be loaded again (as after etcd compacted past its watch) while etcd's
// records changed behind it (nodes 1, 2 and 3 emptied, 4, 5 and 6 given twenty each), the
// cache would place on 4, 5 and 6 again; the read places on 1, 2 and 3.
func TestCreatePlacementFallsBack(t *testing.T) {
	pc := newPlacingCluster(t, "fallback")
	pc.load(t, "heavy", 10, []uint64{1, 2, 3})
	cache := pc.c.NewPlacementCache()
	pc.c.UsePlacementCache(cache)
	pc.create(t, "a", 6, []uint64{4, 5, 6})

	if _, err := cache.Resume(pc.ctx); err != nil {
		t.Fatal(err)
	}
	if load, _, ready := cache.Counts(); !ready || !reflect.DeepEqual(load, map[uint64]int{1: 10, 2: 10, 3: 10, 4: 6, 5: 6, 6: 6}) {
		t.Fatalf("the loaded cache counts %v (ready %v)", load, ready)
	}
	pc.drop(t, "heavy")
	pc.load(t, "heavier", 20, []uint64{4, 5, 6})
	cache.Invalidate()
	pc.create(t, "b", 6, []uint64{1, 2, 3})
}
