package cluster

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// PassWithFence runs one controller pass whose writes are fenced on election key key at
// create revision rev: a test gives it a deposed controller's fence. Not while Run runs.
func (ct *Controller) PassWithFence(ctx context.Context, key string, rev int64) error {
	return ct.pass(ctx, &fence{key: key, rev: rev}, nil)
}

// Fence returns the election key and its create revision the controller was last elected
// under ("", 0: never).
func (ct *Controller) Fence() (string, int64) {
	if f := ct.fence.Load(); f != nil {
		return f.key, f.rev
	}
	return "", 0
}

// PlanNode is a node as a plan test describes it.
type PlanNode struct {
	ID    uint64
	Zone  string
	Up    bool
	State NodeState
}

// PlanRecord is a placement record as a plan test describes it.
type PlanRecord struct {
	Key ShardKey
	P   ShardPlacement
}

// PlanOnce plans one controller pass over nodes and records (in stream, shard order) and
// returns the records with its changes applied and the number it changed.
func PlanOnce(nodes []PlanNode, replicas int, records []PlanRecord, max int, balance bool) ([]PlanRecord, int) {
	v := &view{up: map[uint64]Node{}, roster: map[uint64]RosterEntry{}, replicas: replicas}
	for _, n := range nodes {
		if n.Up {
			v.up[n.ID] = Node{ID: n.ID, Zone: n.Zone}
		}
		v.roster[n.ID] = RosterEntry{ID: n.ID, Zone: n.Zone, State: n.State}
	}
	for _, r := range records {
		v.records = append(v.records, record{r.Key, r.P})
	}
	changes := v.plan(max, balance)
	out := append([]PlanRecord(nil), records...)
	for _, ch := range changes {
		for i := range out {
			if out[i].Key == ch.key {
				out[i].P = ch.next
			}
		}
	}
	return out, len(changes)
}

// PlacementCache is a placement cache, for tests: the one the controller and each node keep.
type PlacementCache struct{ pc *placementCache }

// NewPlacementCache returns an empty placement cache of c's cluster.
func (c *Client) NewPlacementCache() PlacementCache { return PlacementCache{c.newPlacementCache()} }

// Resume loads the cache if it must and returns the revision to watch placement/ from.
func (p PlacementCache) Resume(ctx context.Context) (int64, error) { return p.pc.resume(ctx) }

// Apply applies a watch's events.
func (p PlacementCache) Apply(events []*clientv3.Event) error { return p.pc.apply(events) }

// Invalidate makes the next Resume load again.
func (p PlacementCache) Invalidate() { p.pc.invalidate() }

// Records returns the records the cache holds, in its order.
func (p PlacementCache) Records() ([]PlanRecord, bool, error) {
	recs, ok, err := p.pc.records()
	var out []PlanRecord
	for _, r := range recs {
		out = append(out, PlanRecord{r.key, r.p})
	}
	return out, ok, err
}

// Take returns and forgets the keys changed since the last Take, and whether it loaded since.
func (p PlacementCache) Take() (keys []ShardKey, all bool) {
	changed, all, _ := p.pc.take()
	for k := range changed {
		keys = append(keys, k)
	}
	return keys, all
}

// Counts returns each node's replicas and preferred leaderships as the cache counts them,
// and whether it is ready to place new shards on.
func (p PlacementCache) Counts() (load, leads map[uint64]int, ok bool) { return p.pc.counts() }

// UsePlacementCache makes p the client's placement cache, as NewReplication makes the node's.
func (c *Client) UsePlacementCache(p PlacementCache) { c.placements.Store(p.pc) }
