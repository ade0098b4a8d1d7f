package cluster

import (
	"context"
	"slices"
	"strconv"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// view is the cluster's control state read at one etcd revision: what a controller pass, a
// placement of new shards and `sluice cluster status` decide on.
type view struct {
	up           map[uint64]Node        // the nodes registered now (nodes/)
	roster       map[uint64]RosterEntry // every node that ever joined (roster/)
	records      []record               // every placement record, by stream then shard
	replicas     int                    // the replication factor
	replicated   bool                   // meta/replicas is fixed: the nodes replicate (serve --cluster-etcd)
	controller   uint64                 // the elected controller's node id; 0: none
	rebalanceRev int64                  // ModRevision of a pending rebalance request; 0: none
}

type record struct {
	key ShardKey
	p   ShardPlacement
}

// readView reads the view in one transaction (one revision).
func (c *Client) readView(ctx context.Context) (*view, error) {
	resp, err := c.cli.Txn(ctx).Then(
		clientv3.OpGet(c.nodesPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(c.rosterPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(c.prefix+"placement/", clientv3.WithPrefix()),
		clientv3.OpGet(c.replicasKey()),
		clientv3.OpGet(c.controllerPrefix()+"/", clientv3.WithFirstCreate()...),
		clientv3.OpGet(c.rebalanceKey())).Commit()
	if err != nil {
		return nil, unavailable("read the cluster's placement", err)
	}
	kvs := func(i int) []*mvccpb.KeyValue { return resp.Responses[i].GetResponseRange().Kvs }
	v := &view{up: map[uint64]Node{}, roster: map[uint64]RosterEntry{}, replicas: DefaultReplicas}
	for _, kv := range kvs(0) {
		if n, err := c.node(kv); err == nil {
			v.up[n.ID] = n
		}
	}
	entries, err := c.rosterEntries(kvs(1))
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		v.roster[e.ID] = e
	}
	for _, kv := range kvs(2) {
		k, p, err := c.placementRecord(kv)
		if err != nil {
			return nil, err
		}
		v.records = append(v.records, record{k, p})
	}
	slices.SortFunc(v.records, func(a, b record) int {
		if a.key.Stream != b.key.Stream {
			if a.key.Stream < b.key.Stream {
				return -1
			}
			return 1
		}
		return cmpID(uint64(a.key.Shard), uint64(b.key.Shard))
	})
	if r := kvs(3); len(r) == 1 {
		v.replicated = true
		if n, err := strconv.Atoi(string(r[0].Value)); err == nil && n > 0 {
			v.replicas = n
		}
	}
	if r := kvs(4); len(r) == 1 {
		v.controller, _ = strconv.ParseUint(string(r[0].Value), 10, 64)
	}
	if r := kvs(5); len(r) == 1 {
		v.rebalanceRev = r[0].ModRevision
	}
	return v, nil
}

// state returns node id's roster state; a node with no roster entry (it joined before
// there was a roster) is active.
func (v *view) state(id uint64) NodeState {
	if e, ok := v.roster[id]; ok {
		return e.State
	}
	return StateActive
}

// eligible reports whether replicas may be placed on node id: it is up and active.
func (v *view) eligible(id uint64) bool {
	_, up := v.up[id]
	return up && v.state(id) == StateActive
}

// placer returns the placer over the eligible nodes, with the load and leaderships the
// placement records hold now.
func (v *view) placer() *placer { return v.placerOf(v.eligible) }

// placerOf is placer over the nodes up that ok accepts.
func (v *view) placerOf(ok func(id uint64) bool) *placer {
	p := &placer{zoneOf: map[uint64]string{}, load: map[uint64]int{}, leads: map[uint64]int{}}
	for id, e := range v.roster {
		p.zoneOf[id] = e.Zone
	}
	for id, n := range v.up {
		p.zoneOf[id] = n.Zone
		if ok(id) {
			p.nodes = append(p.nodes, id)
		}
	}
	slices.Sort(p.nodes)
	for _, r := range v.records {
		for _, id := range r.p.Replicas {
			p.load[id]++
		}
		if r.p.Leader != 0 {
			p.leads[r.p.Leader]++
		}
	}
	return p
}

// moving returns the number of records with a slot whose node is not yet a voter: moves
// under way.
func (v *view) moving() int {
	n := 0
	for _, r := range v.records {
		if len(r.p.Raft) == len(r.p.Replicas) && slices.Contains(r.p.Raft, 0) {
			n++
		}
	}
	return n
}

// change is one placement record a pass rewrites.
type change struct {
	key   ShardKey
	old   ShardPlacement
	next  ShardPlacement // Replicas, Raft, Leader and Removed; the writer sets Ctl
	added int            // nodes added to the replicas: replicas to build
}

// plan decides the records a controller pass rewrites, at most max of them, in record order:
//
//  1. repairs: a replica on a draining or dead node is dropped; with at least as many zones
//     among the eligible nodes as the replication factor, all but one replica per zone are
//     dropped (an up node kept first, then the least loaded, then the lowest id); then the
//     shard is filled to the factor from the eligible nodes (placer.pick);
//  2. when moveForBalance is set, replicas move from the most to the least loaded eligible node
//     while their counts differ by more than one and a move keeps the zone spread;
//  3. a preferred leader that is not an eligible replica is replaced by the eligible
//     replica leading the fewest shards; then, while the counts differ by more than one, a
//     leadership moves from the node leading the most to one leading fewer, through a chain
//     of handovers between replicas when no shard has both (leaderPath).
//
// Every choice is made in a fixed order with fixed tie-breaks, so the same view gives the
// same plan.
func (v *view) plan(max int, moveForBalance bool) []change {
	pl := v.placer()
	zoneRule := pl.zones() >= v.replicas
	desired := make([][]uint64, len(v.records))
	leader := make([]uint64, len(v.records))
	for i, r := range v.records {
		desired[i], leader[i] = slices.Clone(r.p.Replicas), r.p.Leader
	}
	changed := map[int]bool{}
	can := func(i int) bool { return changed[i] || len(changed) < max }

	for i, r := range v.records {
		if !can(i) {
			break
		}
		if next := v.repair(pl, r.key, desired[i], zoneRule); !slices.Equal(next, desired[i]) {
			desired[i], changed[i] = next, true
		}
	}
	if moveForBalance {
		balance(pl.nodes, pl.load, func(hi, lo uint64) bool {
			for i := range v.records {
				d := desired[i]
				if !can(i) || !slices.Contains(d, hi) || slices.Contains(d, lo) || !spreadKept(d, hi, lo, zoneRule, pl.zoneOf) {
					continue
				}
				d[slices.Index(d, hi)] = lo
				slices.Sort(d)
				changed[i] = true
				return true
			}
			return false
		})
	}
	for i, r := range v.records {
		if l := leader[i]; (l == 0 || !slices.Contains(desired[i], l) || !v.eligible(l)) && can(i) {
			if l != 0 {
				pl.leads[l]--
			}
			if nl := pl.leader(r.key.Stream, r.key.Shard, desired[i]); nl != l {
				leader[i], changed[i] = nl, true
			}
		}
	}
	balance(pl.nodes, pl.leads, func(hi, lo uint64) bool {
		path := leaderPath(hi, lo, leader, desired, can, v.eligible)
		fresh := 0
		for _, st := range path {
			if !changed[st.record] {
				fresh++
			}
		}
		if path == nil || len(changed)+fresh > max {
			return false
		}
		for _, st := range path {
			leader[st.record], changed[st.record] = st.to, true
		}
		return true
	})

	var out []change
	for i, r := range v.records {
		if !changed[i] || slices.Equal(desired[i], r.p.Replicas) && leader[i] == r.p.Leader {
			continue
		}
		ch := change{key: r.key, old: r.p, next: ShardPlacement{Replicas: desired[i], Leader: leader[i], Removed: r.p.Removed}}
		aligned := len(r.p.Raft) == len(r.p.Replicas) && len(r.p.Raft) > 0
		for _, id := range desired[i] {
			j := slices.Index(r.p.Replicas, id)
			if j < 0 {
				ch.added++
			}
			if aligned {
				raft := uint64(0)
				if j >= 0 {
					raft = r.p.Raft[j]
				}
				ch.next.Raft = append(ch.next.Raft, raft)
			}
		}
		out = append(out, ch)
	}
	return out
}

// repair returns the shard's replicas cur with those on nodes no longer active dropped, the
// zone spread restored and the set filled to the replication factor (see plan); pl's load
// follows.
func (v *view) repair(pl *placer, key ShardKey, cur []uint64, zoneRule bool) []uint64 {
	var keep []uint64
	for _, id := range cur {
		if v.state(id) == StateActive {
			keep = append(keep, id)
		} else {
			pl.load[id]--
		}
	}
	if zoneRule {
		slices.SortFunc(keep, func(a, b uint64) int {
			_, upA := v.up[a]
			_, upB := v.up[b]
			switch {
			case upA != upB:
				if upA {
					return -1
				}
				return 1
			case pl.load[a] != pl.load[b]:
				return pl.load[a] - pl.load[b]
			}
			return cmpID(a, b)
		})
		seen := map[string]bool{}
		spread := keep[:0:0]
		for _, id := range keep {
			if z := pl.zoneOf[id]; seen[z] {
				pl.load[id]--
			} else {
				seen[z] = true
				spread = append(spread, id)
			}
		}
		keep = spread
	}
	for len(keep) < v.replicas {
		id := pl.pick(key.Stream, key.Shard, keep)
		if id == 0 {
			break
		}
		keep = append(keep, id)
		pl.load[id]++
	}
	slices.Sort(keep)
	return keep
}

// spreadKept reports whether replacing hi by lo in the replicas d keeps the zone spread: lo's
// zone is none of the others' under the zone rule, and otherwise the number of zones does
// not fall.
func spreadKept(d []uint64, hi, lo uint64, zoneRule bool, zoneOf map[uint64]string) bool {
	before, after := map[string]bool{}, map[string]bool{zoneOf[lo]: true}
	for _, id := range d {
		before[zoneOf[id]] = true
		if id != hi {
			if zoneRule && zoneOf[id] == zoneOf[lo] {
				return false
			}
			after[zoneOf[id]] = true
		}
	}
	return len(after) >= len(before)
}

// balance evens count over nodes: while the most and least counted nodes differ by more
// than one it asks move to move one unit from a node hi to a node lo (the most counted hi
// first, each with the least counted lo first), and stops when no pair can. Each move
// lowers the sum of squared counts, so it ends.
func balance(nodes []uint64, count map[uint64]int, move func(hi, lo uint64) bool) {
	for {
		byCount := slices.Clone(nodes)
		slices.SortStableFunc(byCount, func(a, b uint64) int { return count[a] - count[b] })
		moved := false
	pairs:
		for h := len(byCount) - 1; h >= 0; h-- {
			hi := byCount[h]
			for _, lo := range byCount {
				if count[hi]-count[lo] <= 1 {
					break
				}
				if move(hi, lo) {
					count[hi]--
					count[lo]++
					moved = true
					break pairs
				}
			}
		}
		if !moved {
			return
		}
	}
}

// leaderStep hands record's preferred leadership to node to.
type leaderStep struct {
	record int
	to     uint64
}

// leaderPath returns the shortest chain of handovers that moves one preferred leadership
// from node hi to node lo with every other node's count unchanged: hi hands a record it
// leads to one of its other eligible replicas, which hands another it leads on, until lo
// gets one; nil if there is none (breadth first over the nodes, records in order, so the
// same input gives the same path). Only records usable accepts are handed over.
func leaderPath(hi, lo uint64, leader []uint64, desired [][]uint64, usable func(i int) bool, eligible func(id uint64) bool) []leaderStep {
	type via struct {
		from uint64
		step leaderStep
	}
	prev := map[uint64]via{hi: {}}
	queue := []uint64{hi}
	for len(queue) > 0 {
		a := queue[0]
		queue = queue[1:]
		for i, d := range desired {
			if leader[i] != a || !usable(i) {
				continue
			}
			for _, b := range d {
				if _, seen := prev[b]; seen || !eligible(b) {
					continue
				}
				prev[b] = via{from: a, step: leaderStep{record: i, to: b}}
				if b == lo {
					var path []leaderStep
					for n := lo; n != hi; n = prev[n].from {
						path = append(path, prev[n].step)
					}
					slices.Reverse(path)
					return path
				}
				queue = append(queue, b)
			}
		}
	}
	return nil
}
