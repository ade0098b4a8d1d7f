package cluster

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluice-streams/sluice/multiraft"
	"github.com/sluice-streams/sluice/stream"
)

// The controller's costs at the scale docs/CLUSTER.md ("Scale") extrapolates to: 100 nodes
// in three zones (34, 33 and 33 nodes), 100,000 shards (1,000 streams of 100) with three
// replicas each. Each
// benchmark's bytes are the JSON of every placement record, as etcd holds them, so MB/s
// reads as placement state handled per second.
//
//	go test -run '^$' -bench 'Placement|Plan' -benchtime 3x ./cluster
const (
	scaleNodes   = 100
	scaleStreams = 1000
	scaleShards  = 100 // per stream
	scaleFactor  = 3
)

// scaleView returns a view of nodes nodes up and active in three zones (node id in zone
// id mod 3) holding
// scaleStreams × scaleShards shards placed by the placer one after the other (as the
// catalog transactions that created them would have), with Raft ids and preferred leaders,
// and the bytes of their records' JSON.
func scaleView(tb testing.TB, nodes uint64) (*view, int64) {
	return scaleViewOf(tb, nodes, scaleStreams)
}

// scaleViewOf is scaleView with streams streams of scaleShards shards.
func scaleViewOf(tb testing.TB, nodes uint64, streams int) (*view, int64) {
	tb.Helper()
	v := &view{up: map[uint64]Node{}, roster: map[uint64]RosterEntry{}, replicas: scaleFactor}
	for id := uint64(1); id <= nodes; id++ {
		zone := "z" + strconv.FormatUint(id%3, 10)
		v.up[id] = Node{ID: id, Zone: zone, RaftID: id << 32}
		v.roster[id] = RosterEntry{ID: id, Zone: zone, State: StateActive}
	}
	pl := v.placer()
	var size int64
	for s := range streams {
		name := fmt.Sprintf("stream-%04d", s)
		for sh := range scaleShards {
			id := stream.ShardID(sh)
			p := ShardPlacement{Replicas: pl.place(name, id, scaleFactor)}
			p.Leader = pl.leader(name, id, p.Replicas)
			for _, n := range p.Replicas {
				p.Raft = append(p.Raft, v.up[n].RaftID)
			}
			b, err := json.Marshal(p.value())
			if err != nil {
				tb.Fatal(err)
			}
			size += int64(len(b))
			v.records = append(v.records, record{ShardKey{name, id}, p})
		}
	}
	return v, size
}

// BenchmarkPlacement: the placer choosing the replicas and preferred leader of every one of
// the 100,000 shards in turn, the work the catalog transactions that create them do (each
// creation also takes the nodes' counts first: BenchmarkCreatePlacement).
func BenchmarkPlacement(b *testing.B) {
	v, size := scaleView(b, scaleNodes)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pl := v.placerOf(func(uint64) bool { return true })
		clear(pl.load)
		clear(pl.leads)
		for _, r := range v.records {
			pl.leader(r.key.Stream, r.key.Shard, pl.place(r.key.Stream, r.key.Shard, scaleFactor))
		}
	}
}

// BenchmarkPlacementDecode: decoding every placement record of a range read of placement/,
// what a placement cache's load does, and a shard creation while its node's cache is not
// ready (before the caches, each controller pass, each shard creation and each group
// leader's reconcile did it before deciding anything).
func BenchmarkPlacementDecode(b *testing.B) {
	v, size := scaleView(b, scaleNodes)
	c := &Client{prefix: "/sluice/bench/"}
	kvs := make([]*mvccpb.KeyValue, len(v.records))
	for i, r := range v.records {
		val, _ := json.Marshal(r.p.value())
		kvs[i] = &mvccpb.KeyValue{Key: []byte(c.placementKey(r.key)), Value: val, ModRevision: int64(i + 1)}
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, kv := range kvs {
			if _, _, err := c.placementRecord(kv); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// converge applies uncapped plans to v until one changes nothing: the placement a quiet
// cluster's controller ends at. (The placer's choices, one shard at a time, leave a few
// preferred leaderships to even.)
func converge(tb testing.TB, v *view) {
	tb.Helper()
	at := make(map[ShardKey]int, len(v.records))
	for i, r := range v.records {
		at[r.key] = i
	}
	for range 10 {
		changes := v.plan(len(v.records), true)
		if len(changes) == 0 {
			return
		}
		for _, ch := range changes {
			v.records[at[ch.key]].p = ch.next
		}
	}
	tb.Fatal("10 uncapped plans did not converge")
}

// joinNode makes node id join v, up and active in zone z1, holding nothing.
func joinNode(v *view, id uint64) {
	v.up[id] = Node{ID: id, Zone: "z1", RaftID: id << 32}
	v.roster[id] = RosterEntry{ID: id, Zone: "z1", State: StateActive}
}

// BenchmarkPlan: one controller pass's plan over the 100,000 records (at most 8 changes, as
// ControllerConfig's default), with balancing moves allowed, from a converged placement:
//
//	steady           nothing to do: the plan changes nothing (a quiet cluster's pass,
//	                 every 5 s); zones of 34, 33 and 33 nodes, whose per-node loads differ
//	                 by more than one between zones (the zone rule forbids those moves)
//	steady-99        the same with 99 nodes, 33 in each zone: loads even everywhere
//	node-dead        one node dead: its 3,000 slots are to be replaced, 8 per pass
//	node-joined      a 101st node joined empty: replicas and leaderships move to it
//	drain            one node draining: its slots and leaderships move off
func BenchmarkPlan(b *testing.B) {
	cases := []struct {
		name   string
		nodes  uint64
		change func(v *view)
		want   int
	}{
		{"steady", scaleNodes, func(*view) {}, 0},
		{"steady-99", scaleNodes - 1, func(*view) {}, 0},
		{"node-dead", scaleNodes, func(v *view) {
			delete(v.up, 7)
			v.roster[7] = RosterEntry{ID: 7, Zone: v.roster[7].Zone, State: StateDead}
		}, 8},
		{"node-joined", scaleNodes, func(v *view) { joinNode(v, scaleNodes+1) }, 8},
		{"drain", scaleNodes, func(v *view) {
			v.roster[7] = RosterEntry{ID: 7, Zone: v.roster[7].Zone, State: StateDraining}
		}, 8},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			v, size := scaleView(b, c.nodes)
			converge(b, v)
			c.change(v)
			b.SetBytes(size)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if n := len(v.plan(8, true)); n != c.want {
					b.Fatalf("the plan changed %d records, want %d", n, c.want)
				}
			}
		})
	}
}

// BenchmarkPlanJoin: a 101st node (zone z1) joins a converged placement of 100 nodes, and
// controller passes of at most 8 changes, each pass's changes applied before the next (as
// the watch delivers them), run until one changes nothing: the number of passes a join
// takes to reach balance (passes), what each costs (ns/pass), and the replicas and
// preferred leaderships the new node ends with (replicas, leaders; its zone's 35 nodes
// share one replica of every shard). shards=100000 is the full size; shards=10000 (100
// streams) the same cluster with a tenth of the shards.
//
//	go test -run '^$' -bench 'PlanJoin' -benchtime 1x ./cluster
func BenchmarkPlanJoin(b *testing.B) {
	for _, streams := range []int{scaleStreams / 10, scaleStreams} {
		b.Run(fmt.Sprintf("shards=%d", streams*scaleShards), func(b *testing.B) {
			base, size := scaleViewOf(b, scaleNodes, streams)
			converge(b, base)
			joinNode(base, scaleNodes+1)
			b.SetBytes(size)
			b.ReportAllocs()
			var passes int
			var elapsed time.Duration
			for b.Loop() {
				b.StopTimer()
				v := *base
				v.records = slices.Clone(base.records)
				at := make(map[ShardKey]int, len(v.records))
				for i, r := range v.records {
					at[r.key] = i
				}
				b.StartTimer()
				start := time.Now()
				for passes = 1; ; passes++ {
					changes := v.plan(8, true)
					if len(changes) == 0 {
						break
					}
					for _, ch := range changes {
						v.records[at[ch.key]].p = ch.next
					}
					if passes > 100*len(v.records) {
						b.Fatal("the passes do not converge")
					}
				}
				elapsed = time.Since(start)
				b.StopTimer()
				replicas, leads := 0, 0
				for _, r := range v.records {
					if slices.Contains(r.p.Replicas, scaleNodes+1) {
						replicas++
					}
					if r.p.Leader == scaleNodes+1 {
						leads++
					}
				}
				if fair := len(v.records) / 35; replicas < fair-1 || leads < len(v.records)/(scaleNodes+1)-1 {
					b.Fatalf("after %d passes the new node holds %d replicas (fair: %d) and leads %d", passes, replicas, fair, leads)
				}
				b.ReportMetric(float64(replicas), "replicas")
				b.ReportMetric(float64(leads), "leaders")
				b.StartTimer()
			}
			b.ReportMetric(float64(passes), "passes")
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(passes), "ns/pass")
		})
	}
}

// BenchmarkPlacementApply: a node's side of one placement change among 100,000 records: the
// watch's event applied to the node's placement cache (the record's JSON decoded), the
// changed key taken, and the groups to step chosen among the node's 100,000 (reconcileDue:
// one). Bytes are the event's value. Before the cache, every change made every node read
// and decode all the records (BenchmarkPlacementDecode) and step every group.
func BenchmarkPlacementApply(b *testing.B) {
	v, _ := scaleView(b, scaleNodes)
	c := &Client{prefix: "/sluice/bench/"}
	pc := c.newPlacementCache()
	pc.loaded, pc.recs = true, slices.Clone(v.records)
	pc.sortLocked()
	groups := make([]*shardLog, len(v.records))
	for i, r := range v.records {
		groups[i] = &shardLog{stream: r.key.Stream, shard: r.key.Shard, gid: multiraft.GroupID(i + 1), stepped: true}
	}
	r := v.records[len(v.records)/2]
	var events [2][]*clientv3.Event
	for i := range events {
		p := r.p
		p.Leader = p.Replicas[i]
		val, _ := json.Marshal(p.value())
		events[i] = []*clientv3.Event{{Type: clientv3.EventTypePut,
			Kv: &mvccpb.KeyValue{Key: []byte(c.placementKey(r.key)), Value: val, ModRevision: int64(i + 2)}}}
	}
	b.SetBytes(int64(len(events[0][0].Kv.Value)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := pc.apply(events[i%2]); err != nil {
			b.Fatal(err)
		}
		changed, _, _ := pc.take()
		if due := reconcileDue(groups, false, changed, nil, nil); len(due) != 1 || due[0].shard != r.key.Shard {
			b.Fatalf("%d groups due", len(due))
		}
		if p, _ := pc.get(r.key); p.Leader != r.p.Replicas[i%2] {
			b.Fatalf("leader %d after the event", p.Leader)
		}
	}
}

// BenchmarkCreatePlacement: one CreateStream's placement of 100 shards (a stream not placed
// yet) among the 100,000 records, 100 nodes; the etcd round trip is not in it. Bytes are the
// JSON of every record, the state the placement stands on.
//
//	read   without a ready placement cache (placingView's fallback, and every creation
//	       before the cache was used): every record of the range read decoded and counted
//	cache  the node's placement cache ready: the per-node counts it keeps copied, nothing
//	       decoded
//
//	go test -run '^$' -bench 'CreatePlacement' -benchtime 20x ./cluster
func BenchmarkCreatePlacement(b *testing.B) {
	base, size := scaleView(b, scaleNodes)
	c := &Client{prefix: "/sluice/bench/"}
	kvs := make([]*mvccpb.KeyValue, len(base.records))
	events := make([]*clientv3.Event, len(base.records))
	for i, r := range base.records {
		val, _ := json.Marshal(r.p.value())
		kvs[i] = &mvccpb.KeyValue{Key: []byte(c.placementKey(r.key)), Value: val, ModRevision: int64(i + 1)}
		events[i] = &clientv3.Event{Type: clientv3.EventTypePut, Kv: kvs[i]}
	}
	pc := c.newPlacementCache()
	if err := pc.apply(events); err != nil {
		b.Fatal(err)
	}
	pc.loaded = true
	const name = "stream-new"
	// place places the new stream's shards with pl, as placementOps does, and returns the
	// placements.
	place := func(tb testing.TB, v *view, pl *placer) [][]uint64 {
		out := make([][]uint64, scaleShards)
		for sh := range scaleShards {
			pv, err := v.placeNew(pl, name, stream.ShardID(sh))
			if err != nil || len(pv.Replicas) != scaleFactor {
				tb.Fatalf("shard %d placed on %v: %v", sh, pv.Replicas, err)
			}
			out[sh] = pv.Replicas
		}
		return out
	}
	variants := []struct {
		name string
		op   func(tb testing.TB) [][]uint64
	}{
		{"read", func(tb testing.TB) [][]uint64 {
			recs, err := c.placementRecords(kvs)
			if err != nil {
				tb.Fatal(err)
			}
			v := *base
			v.records = recs
			return place(tb, &v, v.newShardPlacer())
		}},
		{"cache", func(tb testing.TB) [][]uint64 {
			load, leads, ok := pc.counts()
			if !ok {
				tb.Fatal("the cache is not ready")
			}
			v := *base
			v.records = nil
			return place(tb, &v, v.newShardPlacerCounting(load, leads))
		}},
	}
	// A cache holding what etcd holds places as the full read does.
	if read, cached := variants[0].op(b), variants[1].op(b); !slices.EqualFunc(read, cached, slices.Equal) {
		b.Fatalf("the cache's placement differs from the full read's:\n%v\n%v", cached, read)
	}
	for _, vr := range variants {
		b.Run(vr.name, func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				vr.op(b)
			}
		})
	}
}
