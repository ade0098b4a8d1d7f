package cluster

import "context"

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
