package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The roster: roster/<id> = {"zone","raft","state","joined","lastSeen"} records every node
// that ever joined, with no lease, so a node stays known while it is down. The node writes
// its entry when it registers (creating it, or refreshing zone, Raft id and lastSeen); it
// never changes a state set by an operator (draining) or the controller (dead), except that
// a dead node coming back under a new Raft id (an empty data directory) is active again.
// `sluice cluster drain/undrain` change the state with a transaction on the entry's revision;
// the controller declares a node dead the same way, fenced on its election key.

// NodeState is a node's state in the roster.
type NodeState string

// The roster states.
const (
	// StateActive: the node may hold replicas and be a preferred leader.
	StateActive NodeState = "active"
	// StateDraining: an operator asked for the node's replicas to move elsewhere; it is
	// given none and leads none by preference.
	StateDraining NodeState = "draining"
	// StateDead: the controller found the node's membership gone longer than its
	// dead-after and replaced its slots. Only the node joining again under a new Raft id
	// makes it active again.
	StateDead NodeState = "dead"
)

// ErrUnknownNode is wrapped by the errors of roster operations on a node id that never joined.
var ErrUnknownNode = errors.New("cluster: no such node")

type rosterValue struct {
	Zone     string    `json:"zone"`
	Raft     uint64    `json:"raft"`
	State    NodeState `json:"state"`
	Joined   int64     `json:"joined"`   // unix ms
	LastSeen int64     `json:"lastSeen"` // unix ms: its last registration
}

// RosterEntry is one node's roster record.
type RosterEntry struct {
	ID       uint64
	Zone     string
	RaftID   uint64
	State    NodeState
	Joined   time.Time
	LastSeen time.Time
	Rev      int64 // the key's ModRevision
}

func (c *Client) rosterPrefix() string { return c.prefix + "roster/" }
func (c *Client) rosterKey(id uint64) string {
	return c.rosterPrefix() + strconv.FormatUint(id, 10)
}

// controllerPrefix is the election's prefix (concurrency.NewElection appends "/", so the
// candidates' keys are controller//<lease>); rebalanceKey is beside it, not under it.
func (c *Client) controllerPrefix() string { return c.prefix + "controller/" }
func (c *Client) rebalanceKey() string     { return c.prefix + "controller/rebalance" }

func (c *Client) rosterEntry(kv *mvccpb.KeyValue) (RosterEntry, error) {
	id, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), c.rosterPrefix()), 10, 64)
	var v rosterValue
	if err != nil || id == 0 || json.Unmarshal(kv.Value, &v) != nil {
		return RosterEntry{}, fmt.Errorf("cluster: %s holds %q", kv.Key, kv.Value)
	}
	switch v.State {
	case StateActive, StateDraining, StateDead:
	default:
		return RosterEntry{}, fmt.Errorf("cluster: %s holds the state %q", kv.Key, v.State)
	}
	return RosterEntry{ID: id, Zone: v.Zone, RaftID: v.Raft, State: v.State, Joined: time.UnixMilli(v.Joined),
		LastSeen: time.UnixMilli(v.LastSeen), Rev: kv.ModRevision}, nil
}

func (e RosterEntry) value() rosterValue {
	return rosterValue{Zone: e.Zone, Raft: e.RaftID, State: e.State, Joined: e.Joined.UnixMilli(), LastSeen: e.LastSeen.UnixMilli()}
}

// rosterJoin creates or refreshes node n's roster entry (see the roster above).
func (c *Client) rosterJoin(ctx context.Context, n Node) error {
	key := c.rosterKey(n.ID)
	now := time.Now()
	for {
		resp, err := c.cli.Get(ctx, key)
		if err != nil {
			return unavailable("read the roster", err)
		}
		e := RosterEntry{ID: n.ID, State: StateActive, Joined: now}
		if len(resp.Kvs) == 1 {
			if e, err = c.rosterEntry(resp.Kvs[0]); err != nil {
				return err
			}
			if e.State == StateDead && n.RaftID != 0 && n.RaftID != e.RaftID {
				e.State, e.Joined = StateActive, now
			}
		}
		e.Zone, e.RaftID, e.LastSeen = n.Zone, n.RaftID, now
		if ok, err := c.putRoster(ctx, e); ok || err != nil {
			return err
		}
	}
}

// Roster returns every node's roster entry, in id order.
func (c *Client) Roster() ([]RosterEntry, error) {
	ctx, cancel := c.ctx()
	defer cancel()
	resp, err := c.cli.Get(ctx, c.rosterPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, unavailable("read the roster", err)
	}
	return c.rosterEntries(resp.Kvs)
}

func (c *Client) rosterEntries(kvs []*mvccpb.KeyValue) ([]RosterEntry, error) {
	out := make([]RosterEntry, 0, len(kvs))
	for _, kv := range kvs {
		e, err := c.rosterEntry(kv)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b RosterEntry) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// putRoster writes e as node e.ID's roster entry if the entry is still at revision e.Rev
// (0: absent); it reports whether it did.
func (c *Client) putRoster(ctx context.Context, e RosterEntry) (bool, error) {
	key := c.rosterKey(e.ID)
	v, _ := json.Marshal(e.value())
	tx, err := c.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", e.Rev)).
		Then(clientv3.OpPut(key, string(v))).Commit()
	if err != nil {
		return false, unavailable("write the roster", err)
	}
	return tx.Succeeded, nil
}

// Drain marks node id draining: the controller moves its replicas to other nodes and
// prefers other leaders. Draining a draining node is no change.
func (c *Client) Drain(id uint64) error {
	return c.setState(id, StateDraining)
}

// Undrain makes a draining node active again: the controller may place replicas on it
// (a rebalance moves some back). A dead node cannot be undrained: it becomes active when it
// joins again with an empty data directory.
func (c *Client) Undrain(id uint64) error {
	return c.setState(id, StateActive)
}

// setState moves node id from active or draining to state, a transaction on its roster
// entry's revision.
func (c *Client) setState(id uint64, state NodeState) error {
	ctx, cancel := c.ctx()
	defer cancel()
	key := c.rosterKey(id)
	for {
		resp, err := c.cli.Get(ctx, key)
		if err != nil {
			return unavailable("read the roster", err)
		}
		if len(resp.Kvs) == 0 {
			return fmt.Errorf("%w: node %d never joined cluster %q", ErrUnknownNode, id, c.cfg.Name)
		}
		e, err := c.rosterEntry(resp.Kvs[0])
		if err != nil {
			return err
		}
		if e.State == StateDead {
			return fmt.Errorf("cluster: node %d was declared dead and its replicas moved; it becomes active when it joins again with an empty data directory", id)
		}
		if e.State == state {
			return nil
		}
		e.State = state
		if ok, err := c.putRoster(ctx, e); ok || err != nil {
			return err
		}
	}
}

// RequestRebalance asks the controller for a full rebalance: it runs passes at once, each
// allowed to start moves whatever the number already under way, until one finds nothing to
// change; then it deletes the request.
func (c *Client) RequestRebalance() error {
	ctx, cancel := c.ctx()
	defer cancel()
	if _, err := c.cli.Put(ctx, c.rebalanceKey(), strconv.FormatInt(time.Now().UnixMilli(), 10)); err != nil {
		return unavailable("request a rebalance", err)
	}
	return nil
}

// NodeStatus is one node as `sluice cluster status` shows it.
type NodeStatus struct {
	ID       uint64    `json:"id"`
	Zone     string    `json:"zone"`
	State    NodeState `json:"state"`
	Up       bool      `json:"up"`
	Addr     string    `json:"addr,omitempty"` // "" while down
	RaftID   uint64    `json:"raftId"`
	Replicas int       `json:"replicas"` // placement slots (desired replicas) on the node
	Leaders  int       `json:"leaders"`  // shards the node is the preferred leader of
	LastSeen time.Time `json:"lastSeen"` // its last registration
}

// ShardHealth names a shard with fewer healthy replicas than the replication factor.
type ShardHealth struct {
	Stream   string   `json:"stream"`
	Shard    string   `json:"shardId"`
	Replicas []uint64 `json:"replicas"`
	Healthy  int      `json:"healthy"` // replicas on nodes up and, where recorded, voters
}

// Status is the cluster as the operator sees it.
type Status struct {
	Controller        uint64        `json:"controller"` // the elected controller's node id; 0: none
	ReplicationFactor int           `json:"replicationFactor"`
	Nodes             []NodeStatus  `json:"nodes"`
	Shards            int           `json:"shards"`
	UnderReplicated   []ShardHealth `json:"underReplicated"`
	RebalancePending  bool          `json:"rebalancePending"`
}

// Status reads the roster, membership, placement and the controller at one revision.
func (c *Client) Status() (Status, error) {
	ctx, cancel := c.ctx()
	defer cancel()
	v, err := c.readView(ctx)
	if err != nil {
		return Status{}, err
	}
	st := Status{Controller: v.controller, ReplicationFactor: v.replicas, Shards: len(v.records), RebalancePending: v.rebalanceRev != 0}
	load, leads := map[uint64]int{}, map[uint64]int{}
	for _, r := range v.records {
		healthy := 0
		for i, id := range r.p.Replicas {
			load[id]++
			if _, up := v.up[id]; up && (len(r.p.Raft) != len(r.p.Replicas) || r.p.Raft[i] != 0) {
				healthy++
			}
		}
		if r.p.Leader != 0 {
			leads[r.p.Leader]++
		}
		if healthy < v.replicas {
			st.UnderReplicated = append(st.UnderReplicated, ShardHealth{Stream: r.key.Stream, Shard: r.key.Shard.String(),
				Replicas: r.p.Replicas, Healthy: healthy})
		}
	}
	ids := map[uint64]bool{}
	for id := range v.up {
		ids[id] = true
	}
	for id := range v.roster {
		ids[id] = true
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		n, up := v.up[id]
		e, known := v.roster[id]
		ns := NodeStatus{ID: id, Zone: n.Zone, State: StateActive, Up: up, Addr: n.Addr, RaftID: n.RaftID, Replicas: load[id], Leaders: leads[id]}
		if known {
			ns.Zone, ns.State, ns.RaftID, ns.LastSeen = e.Zone, e.State, e.RaftID, e.LastSeen
		}
		st.Nodes = append(st.Nodes, ns)
	}
	return st, nil
}
