package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluice-streams/sluice/stream"
)

// Placement: placement/<stream>/<shard> holds the ids of the nodes that are to hold the
// shard's replicas, {"replicas":[1,2,3]}: the desired replica set. It is written in the
// catalog transaction that creates the shard (a stream's creation or a resharding) and
// deleted in the one that drops it (a deletion, a pruning); between the two, whatever
// changes `replicas` (an operator, a controller) moves the shard's replicas: the group's
// leader converges the group to it (move.go) and each node keeps or deletes its replica
// (lifecycle.go). At creation a shard's replicas are the cluster's replication factor's
// worth of the nodes up: all of them when there are no more than that, otherwise those that
// rank highest for the shard by rendezvous hashing (stable, and spread evenly). With fewer
// nodes up than the factor, the shard is placed on those there are.
//
// Raft records, in the same order, the Raft ids of the group's voters as the group's leader
// last recorded them: Raft[i] is the id node Replicas[i] holds the group's replica under
// when that replica is a voter, 0 when it is not (yet). At creation it is the group's
// initial voters; the leader rewrites it after each change of the group's voters
// (SetPlacementRaft), with a compare-and-swap on the record's revision.
//
// Removed ("removed", absent when empty) lists the Raft ids the group's leader removed from
// the group (the removal applied: committed), of nodes not in Replicas, newest last, at most
// maxRemoved; an id is dropped from it when its node is in Replicas again. A node finds
// there that its replica was removed even when it missed the entry that removed it (the
// leader sends nothing to a member it removed), and deletes it (lifecycle.go).

type placementValue struct {
	Replicas []uint64 `json:"replicas"`
	Raft     []uint64 `json:"raft,omitempty"`
	Removed  []uint64 `json:"removed,omitempty"`
}

// ShardPlacement is one shard's placement record.
type ShardPlacement struct {
	Replicas []uint64 // node ids
	Raft     []uint64 // the Raft id of each replica that is a voter (same order; 0: not a voter); may be empty
	Removed  []uint64 // Raft ids the group's leader removed from the group, of nodes not in Replicas
	Rev      int64    // the record's ModRevision, for SetPlacementRaft
}

// placementOps returns the operations that place the shards of the entry data (for stream
// name) not yet placed and remove the placement of those it no longer holds.
func (c *Client) placementOps(ctx context.Context, name string, data []byte) ([]clientv3.Op, error) {
	sm, err := stream.CatalogShardMap(data)
	if err != nil {
		return nil, err
	}
	resp, err := c.cli.Txn(ctx).Then(
		clientv3.OpGet(c.placementPrefix(name), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(c.nodesPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(c.replicasKey())).Commit()
	if err != nil {
		return nil, unavailable("read placement of "+name, err)
	}
	placed := map[string]bool{}
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		placed[string(kv.Key)] = true
	}
	var nodes []uint64
	raftOf := map[uint64]uint64{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		if n, err := c.node(kv); err == nil {
			nodes = append(nodes, n.ID)
			raftOf[n.ID] = n.RaftID
		}
	}
	replicas := DefaultReplicas
	if kvs := resp.Responses[2].GetResponseRange().Kvs; len(kvs) == 1 {
		if n, err := strconv.Atoi(string(kvs[0].Value)); err == nil && n > 0 {
			replicas = n
		}
	}
	var ops []clientv3.Op
	for _, sh := range sm.All() {
		key := c.placementPrefix(name) + strconv.FormatUint(uint64(sh.ID), 10)
		if placed[key] {
			delete(placed, key)
			continue
		}
		if len(nodes) == 0 {
			continue // no node has joined: nothing to place on
		}
		pv := placementValue{Replicas: place(name, sh.ID, nodes, replicas)}
		for _, id := range pv.Replicas {
			pv.Raft = append(pv.Raft, raftOf[id])
		}
		if slices.Contains(pv.Raft, 0) {
			pv.Raft = nil // a node registered without a Raft id: the shard is not replicated
		}
		v, _ := json.Marshal(pv)
		ops = append(ops, clientv3.OpPut(key, string(v)))
	}
	for key := range placed {
		ops = append(ops, clientv3.OpDelete(key)) // a shard the map no longer holds
	}
	return ops, nil
}

// place returns the n nodes that rank highest for the shard (all of them, in id order,
// when there are no more than n).
func place(streamName string, shard stream.ShardID, nodes []uint64, n int) []uint64 {
	out := append([]uint64(nil), nodes...)
	if len(out) > n {
		score := func(id uint64) uint64 {
			h := fnv.New64a()
			fmt.Fprintf(h, "%s/%d/%d", streamName, shard, id)
			return h.Sum64()
		}
		sort.Slice(out, func(i, j int) bool { return score(out[i]) > score(out[j]) })
		out = out[:n]
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Placement returns the replicas of each placed shard of a stream.
func (c *Client) Placement(streamName string) (map[stream.ShardID][]uint64, error) {
	ctx, cancel := c.ctx()
	defer cancel()
	resp, err := c.cli.Get(ctx, c.placementPrefix(streamName), clientv3.WithPrefix())
	if err != nil {
		return nil, unavailable("read placement of "+streamName, err)
	}
	out := make(map[stream.ShardID][]uint64, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		id, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), c.placementPrefix(streamName)), 10, 32)
		var v placementValue
		if err != nil || json.Unmarshal(kv.Value, &v) != nil {
			return nil, fmt.Errorf("cluster: %s holds %q", kv.Key, kv.Value)
		}
		out[stream.ShardID(id)] = v.Replicas
	}
	return out, nil
}

// PlacementOf returns the placement record of one shard; ok is false when it has none.
func (c *Client) PlacementOf(streamName string, shard stream.ShardID) (p ShardPlacement, ok bool, err error) {
	ctx, cancel := c.ctx()
	defer cancel()
	key := c.placementPrefix(streamName) + strconv.FormatUint(uint64(shard), 10)
	resp, err := c.cli.Get(ctx, key)
	if err != nil {
		return ShardPlacement{}, false, unavailable("read placement of "+streamName, err)
	}
	if len(resp.Kvs) == 0 {
		return ShardPlacement{}, false, nil
	}
	p, err = decodePlacement(resp.Kvs[0])
	return p, err == nil, err
}

// decodePlacement decodes one placement record.
func decodePlacement(kv *mvccpb.KeyValue) (ShardPlacement, error) {
	var v placementValue
	if err := json.Unmarshal(kv.Value, &v); err != nil || len(v.Raft) != 0 && len(v.Raft) != len(v.Replicas) {
		return ShardPlacement{}, fmt.Errorf("cluster: %s holds %q", kv.Key, kv.Value)
	}
	return ShardPlacement{Replicas: v.Replicas, Raft: v.Raft, Removed: v.Removed, Rev: kv.ModRevision}, nil
}

// SetPlacementRaft replaces the Raft ids (Raft, Removed) of a shard's placement record if the record is
// still at revision p.Rev (a transaction); it reports whether it did.
func (c *Client) SetPlacementRaft(streamName string, shard stream.ShardID, p ShardPlacement) (bool, error) {
	ctx, cancel := c.ctx()
	defer cancel()
	key := c.placementPrefix(streamName) + strconv.FormatUint(uint64(shard), 10)
	v, _ := json.Marshal(placementValue{Replicas: p.Replicas, Raft: p.Raft, Removed: p.Removed})
	resp, err := c.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", p.Rev)).
		Then(clientv3.OpPut(key, string(v))).Commit()
	if err != nil {
		return false, unavailable("write placement of "+streamName, err)
	}
	return resp.Succeeded, nil
}

// ShardKey names one shard of the cluster: its stream and its id.
type ShardKey struct {
	Stream string
	Shard  stream.ShardID
}

// AllPlacements returns the placement record of every placed shard of every stream, read
// with one range request (a leader's reconcile reads them all at once, not one per group).
func (c *Client) AllPlacements() (map[ShardKey]ShardPlacement, error) {
	ctx, cancel := c.ctx()
	defer cancel()
	root := c.prefix + "placement/"
	resp, err := c.cli.Get(ctx, root, clientv3.WithPrefix())
	if err != nil {
		return nil, unavailable("read placement", err)
	}
	out := make(map[ShardKey]ShardPlacement, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		// A stream's name has no '/' (stream.CreateStream checks it).
		name, shard, found := strings.Cut(strings.TrimPrefix(string(kv.Key), root), "/")
		id, err := strconv.ParseUint(shard, 10, 32)
		if !found || err != nil {
			return nil, fmt.Errorf("cluster: placement key %s", kv.Key)
		}
		p, err := decodePlacement(kv)
		if err != nil {
			return nil, err
		}
		out[ShardKey{name, stream.ShardID(id)}] = p
	}
	return out, nil
}

// WatchPlacement watches every placement record: the channel receives a value after each
// change (changes that come together may give one value), and one when the watch starts,
// until ctx ends and it is closed. A watch that etcd ends (a compaction, a lost etcd leader)
// is started again after a second, with a value for what it may have missed.
func (c *Client) WatchPlacement(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		for ctx.Err() == nil {
			select { // what changed while no watch ran (none before the first)
			case out <- struct{}{}:
			default:
			}
			for resp := range c.cli.Watch(clientv3.WithRequireLeader(ctx), c.prefix+"placement/", clientv3.WithPrefix()) {
				if resp.Err() != nil || len(resp.Events) == 0 {
					continue
				}
				select {
				case out <- struct{}{}:
				default:
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return out
}
