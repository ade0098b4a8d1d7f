package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/cluster/etcdtest"
	"github.com/sluice-streams/sluice/stream"
)

// zoneOf is the zone the tests put node id in: three zones.
func zoneOf(id uint64) string { return fmt.Sprintf("z%d", id%3) }

// spreadAndBalanced returns what is wrong with records placed on nodes 1..n in zones
// zoneOf with factor r: a shard without r replicas in r distinct zones, replica counts of
// one zone's nodes more than one apart, a preferred leader not among its replicas, or
// leaderships more than one apart. "" if nothing.
func spreadAndBalanced(records []cluster.PlanRecord, n uint64, r int) string {
	load, leads := map[uint64]int{}, map[uint64]int{}
	for _, rec := range records {
		zones := map[string]bool{}
		for _, id := range rec.P.Replicas {
			zones[zoneOf(id)] = true
			load[id]++
		}
		if len(rec.P.Replicas) != r || len(zones) != r {
			return fmt.Sprintf("%v on %v: want %d replicas in %d zones", rec.Key, rec.P.Replicas, r, r)
		}
		if !slices.Contains(rec.P.Replicas, rec.P.Leader) {
			return fmt.Sprintf("%v on %v led by %d", rec.Key, rec.P.Replicas, rec.P.Leader)
		}
		leads[rec.P.Leader]++
	}
	for _, z := range []string{"z0", "z1", "z2"} {
		lo, hi := 1<<30, 0
		for id := uint64(1); id <= n; id++ {
			if zoneOf(id) == z {
				lo, hi = min(lo, load[id]), max(hi, load[id])
			}
		}
		if hi-lo > 1 {
			return fmt.Sprintf("zone %s: replicas per node from %d to %d: %v", z, lo, hi, load)
		}
	}
	lo, hi := 1<<30, 0
	for id := uint64(1); id <= n; id++ {
		lo, hi = min(lo, leads[id]), max(hi, leads[id])
	}
	if hi-lo > 1 {
		return fmt.Sprintf("leaderships per node from %d to %d: %v", lo, hi, leads)
	}
	return ""
}

// converge plans passes of at most max changes until one changes nothing.
func converge(t *testing.T, nodes []cluster.PlanNode, r int, records []cluster.PlanRecord, max int) []cluster.PlanRecord {
	t.Helper()
	for pass := 0; pass < 1000; pass++ {
		next, n := cluster.PlanOnce(nodes, r, records, max, true)
		if n > max {
			t.Fatalf("a pass changed %d records, more than its bound %d", n, max)
		}
		if n == 0 {
			return records
		}
		records = next
	}
	t.Fatal("1000 passes did not converge")
	return nil
}

// TestPlanSpreadsAndBalances: 30 shards all placed on node 1 (created while it was alone)
// with N = 5..9 nodes in three zones: passes of at most 4 changes each converge to every
// shard on three zones, replicas even within each zone, leaderships even; the same input
// gives the same placement; a drained node is left with nothing.
func TestPlanSpreadsAndBalances(t *testing.T) {
	for n := uint64(5); n <= 9; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var nodes []cluster.PlanNode
			for id := uint64(1); id <= n; id++ {
				nodes = append(nodes, cluster.PlanNode{ID: id, Zone: zoneOf(id), Up: true, State: cluster.StateActive})
			}
			var records []cluster.PlanRecord
			for sh := range 30 {
				records = append(records, cluster.PlanRecord{Key: cluster.ShardKey{Stream: "s", Shard: stream.ShardID(sh)},
					P: cluster.ShardPlacement{Replicas: []uint64{1}, Leader: 1}})
			}
			got := converge(t, nodes, 3, records, 4)
			if msg := spreadAndBalanced(got, n, 3); msg != "" {
				t.Fatal(msg)
			}
			if again := converge(t, nodes, 3, records, 4); !reflect.DeepEqual(got, again) {
				t.Fatalf("the same input planned twice differs:\n%v\n%v", got, again)
			}
			nodes[1].State = cluster.StateDraining // node 2
			drained := converge(t, nodes, 3, got, 4)
			for _, rec := range drained {
				if slices.Contains(rec.P.Replicas, 2) || rec.P.Leader == 2 || len(rec.P.Replicas) != 3 {
					t.Fatalf("after draining node 2: %v on %v led by %d", rec.Key, rec.P.Replicas, rec.P.Leader)
				}
			}
		})
	}
}

// TestPlanKeepsRaftAligned: a replaced slot's Raft id becomes 0 (not yet a voter), a kept
// one keeps its id, in the order of the replicas.
func TestPlanKeepsRaftAligned(t *testing.T) {
	nodes := []cluster.PlanNode{{ID: 1, Up: true, State: cluster.StateActive}, {ID: 2, Up: true, State: cluster.StateDraining},
		{ID: 3, Up: true, State: cluster.StateActive}, {ID: 4, Up: true, State: cluster.StateActive}}
	records := []cluster.PlanRecord{{Key: cluster.ShardKey{Stream: "s"},
		P: cluster.ShardPlacement{Replicas: []uint64{1, 2, 3}, Raft: []uint64{11, 22, 33}, Leader: 2}}}
	got, n := cluster.PlanOnce(nodes, 3, records, 8, false)
	want := cluster.ShardPlacement{Replicas: []uint64{1, 3, 4}, Raft: []uint64{11, 33, 0}, Leader: 1}
	if n != 1 || !reflect.DeepEqual(got[0].P, want) {
		t.Fatalf("planned %+v (%d changes), want %+v", got[0].P, n, want)
	}
}

// runController runs a controller of node id on c until the test ends.
func runController(t *testing.T, c *cluster.Client, id uint64, mod func(*cluster.ControllerConfig)) *cluster.Controller {
	t.Helper()
	cfg := cluster.ControllerConfig{NodeID: id, Every: 100 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	ct, err := c.NewController(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); ct.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return ct
}

// records returns every placement record, in stream and shard order.
func records(t *testing.T, c *cluster.Client) []cluster.PlanRecord {
	t.Helper()
	all, err := c.AllPlacements()
	if err != nil {
		t.Fatal(err)
	}
	var out []cluster.PlanRecord
	for k, p := range all {
		out = append(out, cluster.PlanRecord{Key: k, P: p})
	}
	slices.SortFunc(out, func(a, b cluster.PlanRecord) int { return int(a.Key.Shard) - int(b.Key.Shard) })
	return out
}

// TestControllerPlacesAcrossZones: a stream of 12 shards created while one node was up is
// placed on it alone; once N = 5..9 nodes in three zones are up, the controller in etcd
// spreads every shard over the three zones, evens replicas within each zone and
// leaderships, and reports no shard under-replicated.
func TestControllerPlacesAcrossZones(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Embedded)
	for n := uint64(5); n <= 9; n++ {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			name := fmt.Sprintf("zones%d", n)
			c := dial(t, srv, name, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if _, err := c.JoinNode(ctx, cluster.Node{ID: 1, Addr: "127.0.0.1:1", Zone: zoneOf(1)}); err != nil {
				t.Fatal(err)
			}
			e := node(t, c, t.TempDir())
			if err := e.CreateStream(stream.CreateStreamInput{Name: "s", ShardCount: 12}); err != nil {
				t.Fatal(err)
			}
			for _, r := range records(t, c) {
				if !reflect.DeepEqual(r.P.Replicas, []uint64{1}) {
					t.Fatalf("%v placed on %v with node 1 alone up", r.Key, r.P.Replicas)
				}
			}
			for id := uint64(2); id <= n; id++ {
				if _, err := dial(t, srv, name, nil).JoinNode(ctx, cluster.Node{ID: id, Addr: "127.0.0.1:1", Zone: zoneOf(id)}); err != nil {
					t.Fatal(err)
				}
			}
			ct := runController(t, c, 1, nil)
			var last string
			eventually(t, "the controller spreads and balances the placement", func() bool {
				last = spreadAndBalanced(records(t, c), n, 3)
				return last == ""
			})
			st, err := c.Status()
			if err != nil || st.Controller != 1 || len(st.UnderReplicated) != 0 || st.Shards != 12 {
				t.Fatalf("status %+v, %v", st, err)
			}
			if m := ct.Metrics(); !m.Leader || m.Placements == 0 || m.Moves < 24 {
				t.Fatalf("controller metrics %+v: want the leader, having added at least 24 replicas", m)
			}
		})
	}
}

// TestDrainUndrain: draining a node moves every slot and preferred leadership off it;
// undraining and a rebalance give it replicas again; an unknown node is refused.
func TestDrainUndrain(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Embedded)
	c := dial(t, srv, "drain", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for id := uint64(1); id <= 4; id++ {
		if _, err := dial(t, srv, "drain", nil).Join(ctx, id, "127.0.0.1:1"); err != nil {
			t.Fatal(err)
		}
	}
	e := node(t, c, t.TempDir())
	if err := e.CreateStream(stream.CreateStreamInput{Name: "s", ShardCount: 8}); err != nil {
		t.Fatal(err)
	}
	if err := c.Drain(9); !errors.Is(err, cluster.ErrUnknownNode) {
		t.Fatalf("draining node 9, which never joined: %v", err)
	}
	runController(t, c, 1, nil)
	if err := c.Drain(2); err != nil {
		t.Fatal(err)
	}
	on := func(id uint64) (replicas, leads int) {
		for _, r := range records(t, c) {
			if slices.Contains(r.P.Replicas, id) {
				replicas++
			}
			if r.P.Leader == id {
				leads++
			}
		}
		return replicas, leads
	}
	eventually(t, "node 2 holds no slot and leads nothing", func() bool {
		r, l := on(2)
		return r == 0 && l == 0
	})
	for _, r := range records(t, c) {
		if len(r.P.Replicas) != 3 {
			t.Fatalf("%v on %v after the drain", r.Key, r.P.Replicas)
		}
	}
	if err := c.Undrain(2); err != nil {
		t.Fatal(err)
	}
	if err := c.RequestRebalance(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node 2 holds 6 of the 24 slots again and the rebalance is done", func() bool {
		st, err := c.Status()
		r, _ := on(2)
		return err == nil && !st.RebalancePending && r == 6
	})
}

// TestDeadNodeReplaced: a node whose membership is gone longer than dead-after is declared
// dead and its slots are placed on the others; it comes back active only under a new Raft
// id.
func TestDeadNodeReplaced(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Embedded)
	c := dial(t, srv, "dead", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for id := uint64(1); id <= 3; id++ {
		if _, err := dial(t, srv, "dead", nil).JoinNode(ctx, cluster.Node{ID: id, Addr: "127.0.0.1:1", RaftID: 100 + id}); err != nil {
			t.Fatal(err)
		}
	}
	dying := dial(t, srv, "dead", func(cfg *cluster.Config) { cfg.LeaseTTL = 2 * time.Second })
	if _, err := dying.JoinNode(ctx, cluster.Node{ID: 4, Addr: "127.0.0.1:1", RaftID: 104}); err != nil {
		t.Fatal(err)
	}
	e := node(t, c, t.TempDir())
	if err := e.CreateStream(stream.CreateStreamInput{Name: "s", ShardCount: 4}); err != nil {
		t.Fatal(err)
	}
	ct := runController(t, c, 1, func(cfg *cluster.ControllerConfig) { cfg.DeadAfter = time.Second })
	eventually(t, "node 4 holds a slot", func() bool {
		return slices.ContainsFunc(records(t, c), func(r cluster.PlanRecord) bool { return slices.Contains(r.P.Replicas, 4) })
	})
	dying.Close() // its lease expires
	state := func(id uint64) cluster.NodeState {
		roster, err := c.Roster()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range roster {
			if e.ID == id {
				return e.State
			}
		}
		return ""
	}
	eventually(t, "node 4 declared dead and replaced", func() bool {
		return state(4) == cluster.StateDead && !slices.ContainsFunc(records(t, c), func(r cluster.PlanRecord) bool {
			return slices.Contains(r.P.Replicas, 4) || len(r.P.Replicas) != 3
		})
	})
	if m := ct.Metrics(); m.DeadNodes != 1 {
		t.Fatalf("metrics %+v: want one node declared dead", m)
	}
	for _, r := range records(t, c) {
		for i, id := range r.P.Replicas {
			if want := 100 + id; r.P.Raft[i] != want && r.P.Raft[i] != 0 {
				t.Fatalf("%v: raft %v beside replicas %v", r.Key, r.P.Raft, r.P.Replicas)
			}
		}
	}
	if err := c.Undrain(4); err == nil {
		t.Fatal("undrain of a dead node was accepted")
	}
	back := dial(t, srv, "dead", nil)
	m, err := back.JoinNode(ctx, cluster.Node{ID: 4, Addr: "127.0.0.1:1", RaftID: 104})
	if err != nil {
		t.Fatal(err)
	}
	if s := state(4); s != cluster.StateDead {
		t.Fatalf("node 4 back under its old Raft id is %q, want dead", s)
	}
	if err := m.Leave(); err != nil {
		t.Fatal(err)
	}
	if _, err := back.JoinNode(ctx, cluster.Node{ID: 4, Addr: "127.0.0.1:1", RaftID: 204}); err != nil {
		t.Fatal(err)
	}
	if s := state(4); s != cluster.StateActive {
		t.Fatalf("node 4 back under a new Raft id is %q, want active", s)
	}
}

// TestControllerFencing: of two controllers one is elected; when its session is lost (its
// lease revoked) the other takes over; a pass with the first one's fence then commits
// nothing and says it was deposed; a controller elected afterwards makes the change, under
// its own fence.
func TestControllerFencing(t *testing.T) {
	eachEtcd(t, func(t *testing.T, srv *etcdtest.Server) {
		c := dial(t, srv, "fence", nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for id := uint64(1); id <= 4; id++ {
			if _, err := dial(t, srv, "fence", nil).Join(ctx, id, "127.0.0.1:1"); err != nil {
				t.Fatal(err)
			}
		}
		e := node(t, c, t.TempDir())
		if err := e.CreateStream(stream.CreateStreamInput{Name: "s", ShardCount: 4}); err != nil {
			t.Fatal(err)
		}
		start := func(id uint64) (*cluster.Controller, func()) {
			ct, err := dial(t, srv, "fence", nil).NewController(cluster.ControllerConfig{NodeID: id, Every: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			cctx, stop := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); ct.Run(cctx) }()
			return ct, func() { stop(); <-done }
		}
		a, stopA := start(1)
		eventually(t, "controller 1 elected", func() bool { return a.Metrics().Leader })
		b, stopB := start(2)
		keyA, revA := a.Fence()
		raw, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		resp, err := raw.Get(ctx, keyA)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("controller 1's election key %s: %v %v", keyA, resp, err)
		}
		if b.Metrics().Leader {
			t.Fatal("two controllers elected at once")
		}
		if _, err := raw.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
			t.Fatal(err)
		}
		eventually(t, "controller 2 elected after controller 1's session was lost", func() bool { return b.Metrics().Leader })
		stopA()
		stopB()
		before := records(t, c)
		if err := c.Drain(3); err != nil {
			t.Fatal(err)
		}
		if err := a.PassWithFence(ctx, keyA, revA); !errors.Is(err, cluster.ErrDeposed) {
			t.Fatalf("a pass of the deposed controller: %v, want ErrDeposed", err)
		}
		if after := records(t, c); !reflect.DeepEqual(before, after) {
			t.Fatalf("the deposed controller changed placement:\n%v\n%v", before, after)
		}
		cNew := runController(t, c, 3, nil)
		eventually(t, "the new controller moves node 3's slots", func() bool {
			return !slices.ContainsFunc(records(t, c), func(r cluster.PlanRecord) bool { return slices.Contains(r.P.Replicas, 3) })
		})
		_, revNew := cNew.Fence()
		for i, r := range records(t, c) {
			if slices.Contains(before[i].P.Replicas, 3) && r.P.Ctl != revNew {
				t.Fatalf("%v moved off node 3 under fence %d; the new controller's is %d", r.Key, r.P.Ctl, revNew)
			}
		}
	})
}
