package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/cluster/etcdtest"
)

// TestPlacementCacheFollowsWatch: a placement cache loaded by its range read and then fed a
// watch's events holds exactly what a range read of placement/ holds, in stream and shard
// order (records changed, deleted and added, a stream that sorts first), reports the keys
// changed and nothing else, refuses its records while a key holds what is not a placement
// record and takes them again once it is mended; after etcd compacted past the watch it
// loads again and again holds what etcd holds.
func TestPlacementCacheFollowsWatch(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Embedded)
	c := dial(t, srv, "pcache", nil)
	raw, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	prefix := "/sluice/pcache/placement/"
	var rev int64 // of the last write
	put := func(name string, shard int, replicas []uint64, leader uint64) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"replicas": replicas, "raft": replicas, "leader": leader})
		resp, err := raw.Put(ctx, fmt.Sprintf("%s%s/%d", prefix, name, shard), string(b))
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	del := func(name string, shard int) {
		t.Helper()
		resp, err := raw.Delete(ctx, fmt.Sprintf("%s%s/%d", prefix, name, shard))
		if err != nil {
			t.Fatal(err)
		}
		rev = resp.Header.Revision
	}
	for s := range 3 {
		for sh := range 12 { // shards 10 and 11 sort after 9 as numbers, before 2 as text
			put(fmt.Sprintf("s%d", s), sh, []uint64{1, 2, 3}, uint64(1+sh%3))
		}
	}
	// inEtcd is every record as a range read returns it, in stream and shard order.
	inEtcd := func() []cluster.PlanRecord {
		all, err := c.AllPlacements()
		if err != nil {
			t.Fatal(err)
		}
		var out []cluster.PlanRecord
		for k, p := range all {
			out = append(out, cluster.PlanRecord{Key: k, P: p})
		}
		slices.SortFunc(out, func(a, b cluster.PlanRecord) int {
			if c := strings.Compare(a.Key.Stream, b.Key.Stream); c != 0 {
				return c
			}
			return int(a.Key.Shard) - int(b.Key.Shard)
		})
		return out
	}
	pc := c.NewPlacementCache()
	check := func(what string) {
		t.Helper()
		got, ok, err := pc.Records()
		want := inEtcd()
		if !ok || err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: the cache holds (loaded %v, %v)\n%v\netcd holds\n%v", what, ok, err, got, want)
		}
		// Its counters are, node by node, the replicas and preferred leaderships of etcd's
		// records.
		wantLoad, wantLeads := map[uint64]int{}, map[uint64]int{}
		for _, r := range want {
			for _, id := range r.P.Replicas {
				wantLoad[id]++
			}
			wantLeads[r.P.Leader]++
		}
		load, leads, ready := pc.Counts()
		if !ready || !reflect.DeepEqual(load, wantLoad) || !reflect.DeepEqual(leads, wantLeads) {
			t.Fatalf("%s: the cache counts (ready %v) replicas %v, leaderships %v; etcd's records %v, %v", what, ready, load, leads, wantLoad, wantLeads)
		}
	}
	if _, ok, _ := pc.Records(); ok {
		t.Fatal("a cache never loaded holds records")
	}
	if _, _, ready := pc.Counts(); ready {
		t.Fatal("a cache never loaded is ready to place on")
	}
	from, err := pc.Resume(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check("loaded")
	if _, all := pc.Take(); !all {
		t.Fatal("a load is not reported as every key changed")
	}
	wctx, stop := context.WithCancel(ctx)
	events := raw.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(from))
	// follow applies the watch's events until the last write's.
	follow := func() {
		t.Helper()
		for seen := int64(0); seen < rev; {
			resp := <-events
			if resp.Err() != nil {
				t.Fatal(resp.Err())
			}
			for _, ev := range resp.Events {
				seen = max(seen, ev.Kv.ModRevision)
			}
			pc.Apply(resp.Events)
		}
	}
	put("s1", 4, []uint64{2, 3, 4}, 4)
	put("s2", 0, []uint64{1, 5, 6}, 5)
	del("s0", 7)
	del("s2", 11)
	put("a", 3, []uint64{7, 8, 9}, 8) // a stream that sorts before the others
	put("a", 1, []uint64{7, 8, 9}, 7)
	put("s1", 4, []uint64{2, 3, 5}, 5) // the same record twice
	follow()
	check("after the events")
	keys, all := pc.Take()
	slices.SortFunc(keys, func(a, b cluster.ShardKey) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	want := []cluster.ShardKey{{Stream: "a", Shard: 1}, {Stream: "a", Shard: 3}, {Stream: "s0", Shard: 7}, {Stream: "s1", Shard: 4},
		{Stream: "s2", Shard: 0}, {Stream: "s2", Shard: 11}}
	if all || !reflect.DeepEqual(keys, want) {
		t.Fatalf("changed keys %v (all %v), want %v", keys, all, want)
	}
	if keys, all := pc.Take(); len(keys) != 0 || all {
		t.Fatalf("a second take returns %v (all %v)", keys, all)
	}

	if resp, err := raw.Put(ctx, prefix+"s0/3", "not json"); err != nil {
		t.Fatal(err)
	} else {
		rev = resp.Header.Revision
	}
	follow()
	if _, _, err := pc.Records(); err == nil || !strings.Contains(err.Error(), "s0/3") {
		t.Fatalf("with a malformed record the cache answers %v, want an error naming its key", err)
	}
	put("s0", 3, []uint64{1, 2, 3}, 2)
	follow()
	check("after the malformed record was mended")

	// Compacted past the watch: the cache cannot resume; it loads again.
	stop()
	put("s0", 5, []uint64{4, 5, 6}, 6)
	del("s1", 9)
	if _, err := raw.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
	from, err = pc.Resume(ctx)
	if err != nil {
		t.Fatal(err)
	}
	resp := <-raw.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(from))
	if resp.CompactRevision == 0 {
		t.Fatalf("resuming from %d after a compaction at %d: %+v", from, rev, resp)
	}
	pc.Invalidate()
	if _, _, ready := pc.Counts(); ready {
		t.Fatal("a cache to load again is ready to place on")
	}
	if again, err := pc.Resume(ctx); err != nil || again <= rev {
		t.Fatalf("resume after invalidate: %d, %v; want a revision after %d", again, err, rev)
	}
	check("loaded again after the compaction")
	if _, all := pc.Take(); !all {
		t.Fatal("a load after a compaction is not reported as every key changed")
	}
}
