package cluster

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// view is the cluster's control state read at one etcd revision: what a controller pass, a
// placement of new shards and `sluice cluster status` decide on.
type view struct {
	up           map[uint64]Node        // the nodes registered now (nodes/)
	roster       map[uint64]RosterEntry // every node that ever joined (roster/)
	records      []record               // every placement record, by stream then shard; placingView's: see there
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
func (c *Client) readView(ctx context.Context) (*view, error) { return c.readViewWith(ctx, nil) }

// readViewWith is readView, but the placement records are those of cache when it holds them
// (then the view's records may be older than the rest of it, by the events the cache's
// watch has not delivered yet: a controller's writes compare each record's revision, so a
// record changed since is left to the next pass). A nil cache: readView.
func (c *Client) readViewWith(ctx context.Context, cache *placementCache) (*view, error) {
	if cache != nil {
		recs, cached, err := cache.records()
		if err != nil {
			return nil, err
		}
		if cached {
			v, _, err := c.readViewAnd(ctx, nil)
			if err != nil {
				return nil, err
			}
			v.records = recs
			return v, nil
		}
	}
	all := clientv3.OpGet(c.prefix+"placement/", clientv3.WithPrefix())
	v, kvs, err := c.readViewAnd(ctx, &all)
	if err != nil {
		return nil, err
	}
	if v.records, err = c.placementRecords(kvs); err != nil {
		return nil, err
	}
	return v, nil
}

// readViewAnd reads the view but its records in one transaction (one revision), with the
// range read also, when it is not nil: its keys and values are returned.
func (c *Client) readViewAnd(ctx context.Context, also *clientv3.Op) (*view, []*mvccpb.KeyValue, error) {
	ops := []clientv3.Op{
		clientv3.OpGet(c.nodesPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(c.rosterPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(c.replicasKey()),
		clientv3.OpGet(c.controllerPrefix()+"/", clientv3.WithFirstCreate()...),
		clientv3.OpGet(c.rebalanceKey()),
	}
	if also != nil {
		ops = append(ops, *also)
	}
	resp, err := c.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, nil, unavailable("read the cluster's placement", err)
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
		return nil, nil, err
	}
	for _, e := range entries {
		v.roster[e.ID] = e
	}
	if r := kvs(2); len(r) == 1 {
		v.replicated = true
		if n, err := strconv.Atoi(string(r[0].Value)); err == nil && n > 0 {
			v.replicas = n
		}
	}
	if r := kvs(3); len(r) == 1 {
		v.controller, _ = strconv.ParseUint(string(r[0].Value), 10, 64)
	}
	if r := kvs(4); len(r) == 1 {
		v.rebalanceRev = r[0].ModRevision
	}
	if also == nil {
		return v, nil, nil
	}
	return v, kvs(5), nil
}

// placementRecords decodes the keys and values of a range read under placement/ into
// records, in stream, shard order.
func (c *Client) placementRecords(kvs []*mvccpb.KeyValue) ([]record, error) {
	recs := make([]record, 0, len(kvs))
	for _, kv := range kvs {
		k, p, err := c.placementRecord(kv)
		if err != nil {
			return nil, err
		}
		recs = append(recs, record{k, p})
	}
	sortRecords(recs)
	return recs, nil
}

// sortRecords puts records in stream, shard order.
func sortRecords(records []record) {
	slices.SortFunc(records, func(a, b record) int {
		if c := strings.Compare(a.key.Stream, b.key.Stream); c != 0 {
			return c
		}
		return cmp.Compare(a.key.Shard, b.key.Shard)
	})
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
//
// Cost (BenchmarkPlan, docs/CLUSTER.md "Scale"): one scan of the records to count, one to
// repair (a record that needs nothing is recognised without allocating), then work bounded
// by the nodes' own records: a replica move from node hi looks only at the records holding
// hi (planState.holds), a leadership chain at the records each node leads
// (planState.ledBy), and once max records changed, only at those.
func (v *view) plan(max int, moveForBalance bool) []change {
	pl := v.placer()
	zoneRule := pl.zones() >= v.replicas
	ps := newPlanState(v.records, max)
	desired, leader := ps.desired, ps.leader

	v.repairAll(pl, ps, zoneRule)
	ps.index()
	if moveForBalance {
		// Under the zone rule whether a record of hi's can move to lo depends on lo only
		// through lo's zone (a record holding lo has lo's zone already), so a node hi found
		// unable to move to one node of a zone is not tried again with another of that zone
		// until a move changes one of hi's records (a move changes only the moved record, and
		// makes no other record movable that was not).
		type hiZone struct {
			hi   uint64
			zone string
		}
		stuck := map[hiZone]bool{}
		zones := slices.Compact(slices.Sorted(maps.Values(pl.zoneOf)))
		balance(pl.nodes, pl.load, func(hi, lo uint64) bool {
			hz := hiZone{hi, pl.zoneOf[lo]}
			if zoneRule && stuck[hz] {
				return false
			}
			for _, i := range ps.among(ps.holds[hi]) {
				d := desired[i]
				if !ps.can(i) || !slices.Contains(d, hi) || slices.Contains(d, lo) || !spreadKept(pl, d, hi, lo, zoneRule) {
					continue
				}
				if !ps.changed[i] {
					d = slices.Clone(d) // the record's own slice stays as read
				}
				d[slices.Index(d, hi)] = lo
				slices.Sort(d)
				desired[i] = d
				ps.mark(i)
				ps.holds[hi] = removeIndex(ps.holds[hi], i)
				ps.holds[lo] = insertIndex(ps.holds[lo], i)
				for _, id := range d {
					for _, z := range zones {
						delete(stuck, hiZone{id, z})
					}
				}
				return true
			}
			if zoneRule {
				stuck[hz] = true
			}
			return false
		})
	}
	v.replaceLeaders(pl, ps)
	// One breadth-first search from each node hi serves every lo tried with it (the search
	// does not depend on lo), until a handover changes the leaderships.
	searches := map[uint64]*leaderSearch{}
	balance(pl.nodes, pl.leads, func(hi, lo uint64) bool {
		if !ps.reachable(lo) {
			return false
		}
		s := searches[hi]
		if s == nil {
			s = ps.newLeaderSearch(hi, v.eligible)
			searches[hi] = s
		}
		path := s.pathTo(lo)
		if !ps.fits(path) {
			return false
		}
		for _, st := range path {
			ps.setLeader(st.record, st.to)
			ps.mark(st.record)
		}
		clear(searches)
		return true
	})

	var out []change
	for _, i := range ps.list {
		r := v.records[i]
		if slices.Equal(desired[i], r.p.Replicas) && leader[i] == r.p.Leader {
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

// repairAll repairs the records in record order (repair) while records may change.
func (v *view) repairAll(pl *placer, ps *planState, zoneRule bool) {
	for i, r := range v.records {
		if !ps.can(i) {
			break
		}
		if next := v.repair(pl, r.key, ps.desired[i], zoneRule); !slices.Equal(next, ps.desired[i]) {
			ps.desired[i] = next
			ps.mark(i)
		}
	}
}

// replaceLeaders replaces each preferred leader that is not an eligible replica of its
// record (or none) by the eligible replica leading the fewest shards (placer.leader), in
// record order, while records may change.
func (v *view) replaceLeaders(pl *placer, ps *planState) {
	for i, r := range v.records {
		if l := ps.leader[i]; (l == 0 || !slices.Contains(ps.desired[i], l) || !v.eligible(l)) && ps.can(i) {
			if l != 0 {
				pl.leads[l]--
			}
			if nl := pl.leader(r.key.Stream, r.key.Shard, ps.desired[i]); nl != l {
				ps.setLeader(i, nl)
				ps.mark(i)
			}
		}
	}
}

// planState is what a plan decides, record by record (indexes into view.records).
type planState struct {
	// desired and leader are each record's replicas and preferred leader as planned.
	// desired[i] is the record's own slice until the record is changed (never written
	// through: a change makes a new slice).
	desired [][]uint64
	leader  []uint64
	changed []bool // the records changed so far
	list    []int  // the same, in record order
	n, max  int    // len(list); the bound on it
	// holds and ledBy index, after the repairs (index), the records whose desired replicas
	// hold a node and those a node is the preferred leader of, each in record order; kept up
	// to date as the plan moves replicas and leaderships.
	holds, ledBy map[uint64][]int
}

func newPlanState(records []record, max int) *planState {
	ps := &planState{desired: make([][]uint64, len(records)), leader: make([]uint64, len(records)),
		changed: make([]bool, len(records)), max: max}
	for i, r := range records {
		ps.desired[i], ps.leader[i] = r.p.Replicas, r.p.Leader
	}
	return ps
}

// can reports whether record i may change: it has changed already or fewer than max have.
func (ps *planState) can(i int) bool { return ps.changed[i] || ps.n < ps.max }

// mark counts record i as changed.
func (ps *planState) mark(i int) {
	if !ps.changed[i] {
		ps.changed[i] = true
		ps.list = insertIndex(ps.list, i)
		ps.n++
	}
}

// among returns the records worth looking at out of all (an index's list, in record order):
// all, or, once max records changed (no other may change), the changed ones. The caller
// checks each against what it looks for.
func (ps *planState) among(all []int) []int {
	if ps.n >= ps.max {
		return ps.list
	}
	return all
}

// fits reports whether the chain of handovers path can be made: it is one (not nil), and
// the records it changes that had not changed keep the changes within max.
func (ps *planState) fits(path []leaderStep) bool {
	fresh := 0
	for _, st := range path {
		if !ps.changed[st.record] {
			fresh++
		}
	}
	return path != nil && ps.n+fresh <= ps.max
}

// index builds holds and ledBy from desired and leader.
func (ps *planState) index() {
	ps.holds, ps.ledBy = map[uint64][]int{}, map[uint64][]int{}
	for i, d := range ps.desired {
		for _, id := range d {
			ps.holds[id] = append(ps.holds[id], i)
		}
		if l := ps.leader[i]; l != 0 {
			ps.ledBy[l] = append(ps.ledBy[l], i)
		}
	}
}

// setLeader makes to record i's preferred leader, in ledBy too once it is built.
func (ps *planState) setLeader(i int, to uint64) {
	if ps.ledBy != nil {
		if from := ps.leader[i]; from != 0 {
			ps.ledBy[from] = removeIndex(ps.ledBy[from], i)
		}
		if to != 0 {
			ps.ledBy[to] = insertIndex(ps.ledBy[to], i)
		}
	}
	ps.leader[i] = to
}

// reachable reports whether a leadership could be handed to node lo at all: a record that
// may change holds lo and is led by another node. (A necessary condition of leaderPath
// finding a path to lo, checked before searching.)
func (ps *planState) reachable(lo uint64) bool {
	for _, i := range ps.among(ps.holds[lo]) {
		if l := ps.leader[i]; ps.can(i) && l != 0 && l != lo && slices.Contains(ps.desired[i], lo) {
			return true
		}
	}
	return false
}

// insertIndex inserts i into the sorted list s (if absent).
func insertIndex(s []int, i int) []int {
	if j, found := slices.BinarySearch(s, i); !found {
		s = slices.Insert(s, j, i)
	}
	return s
}

// removeIndex removes i from the sorted list s (if present).
func removeIndex(s []int, i int) []int {
	if j, found := slices.BinarySearch(s, i); found {
		s = slices.Delete(s, j, j+1)
	}
	return s
}

// repair returns the shard's replicas cur with those on nodes no longer active dropped, the
// zone spread restored and the set filled to the replication factor (see plan); pl's load
// follows. It returns cur itself when that changes nothing.
func (v *view) repair(pl *placer, key ShardKey, cur []uint64, zoneRule bool) []uint64 {
	if v.sound(pl, cur, zoneRule) {
		return cur
	}
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
			return cmp.Compare(a, b)
		})
		spread := keep[:0:0]
		for _, id := range keep {
			if pl.zoneAmong(spread, pl.zoneOf[id], 0) {
				pl.load[id]--
			} else {
				spread = append(spread, id)
			}
		}
		keep = spread
	}
	return pl.extend(key.Stream, key.Shard, keep, v.replicas)
}

// sound reports whether repair would return cur unchanged: at least the replication
// factor's worth of nodes, in id order, all active, in distinct zones under the zone rule.
func (v *view) sound(pl *placer, cur []uint64, zoneRule bool) bool {
	if len(cur) < v.replicas {
		return false
	}
	for j, id := range cur {
		if j > 0 && cur[j-1] > id || v.state(id) != StateActive || zoneRule && pl.zoneAmong(cur[:j], pl.zoneOf[id], 0) {
			return false
		}
	}
	return true
}

// spreadKept reports whether replacing hi by lo in the replicas d keeps the zone spread: lo's
// zone is none of the others' under the zone rule, and otherwise the number of zones does
// not fall. It allocates nothing.
func spreadKept(pl *placer, d []uint64, hi, lo uint64, zoneRule bool) bool {
	zl := pl.zoneOf[lo]
	before, after := 0, 1 // the zones of d; those of d without hi, and lo's
	for j, id := range d {
		z := pl.zoneOf[id]
		if !pl.zoneAmong(d[:j], z, 0) {
			before++
		}
		switch {
		case id == hi:
		case z == zl:
			if zoneRule {
				return false
			}
		case !pl.zoneAmong(d[:j], z, hi):
			after++
		}
	}
	return after >= before
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

// leaderSearch finds the shortest chain of handovers that moves one preferred leadership
// from node hi to a node lo with every other node's count unchanged: hi hands a record it
// leads to one of its other eligible replicas, which hands another it leads on, until lo
// gets one. It searches breadth first over the nodes, each node's records (planState.ledBy)
// in order, so the same input gives the same path; only records that may change are handed
// over. The search goes only as far as the lo asked for needs and resumes from there for the
// next: the tree it builds does not depend on lo. It is valid until a leadership or the
// changed records change.
type leaderSearch struct {
	ps       *planState
	eligible func(id uint64) bool
	hi       uint64
	prev     map[uint64]leaderVia
	queue    []uint64
	head     int
}

// leaderVia is how a leaderSearch reached a node: from node from, by step.
type leaderVia struct {
	from uint64
	step leaderStep
}

func (ps *planState) newLeaderSearch(hi uint64, eligible func(id uint64) bool) *leaderSearch {
	return &leaderSearch{ps: ps, eligible: eligible, hi: hi, prev: map[uint64]leaderVia{hi: {}}, queue: []uint64{hi}}
}

// pathTo returns the chain to lo (lo != hi), nil if there is none.
func (s *leaderSearch) pathTo(lo uint64) []leaderStep {
	for {
		if _, seen := s.prev[lo]; seen {
			var path []leaderStep
			for n := lo; n != s.hi; n = s.prev[n].from {
				path = append(path, s.prev[n].step)
			}
			slices.Reverse(path)
			return path
		}
		if s.head == len(s.queue) {
			return nil
		}
		a := s.queue[s.head]
		s.head++
		for _, i := range s.ps.among(s.ps.ledBy[a]) {
			if s.ps.leader[i] != a || !s.ps.can(i) {
				continue
			}
			for _, b := range s.ps.desired[i] {
				if _, seen := s.prev[b]; seen || !s.eligible(b) {
					continue
				}
				s.prev[b] = leaderVia{from: a, step: leaderStep{record: i, to: b}}
				s.queue = append(s.queue, b)
			}
		}
	}
}
