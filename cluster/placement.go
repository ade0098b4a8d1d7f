package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluice-streams/sluice/stream"
)

// Placement: placement/<stream>/<shard> holds the ids of the nodes that hold (or are to
// hold) the shard's replicas, {"replicas":[1,2,3],"raft":[…],"leader":2,"ctl":REV}. It is
// first written in the catalog transaction that creates the shard (a stream's creation or a
// resharding) and deleted in the one that drops it (a deletion, a pruning). After that the
// controller (controller.go) rewrites "replicas" (the DESIRED replica set) and "leader" (the
// preferred leader) with transactions fenced on its election key, recording its fence in
// "ctl". Both choose with the same placer: the cluster's replication factor's worth of the
// active nodes up, spread over zones, the least loaded first (replicas per node), ties broken
// by rendezvous hashing (stable, spread evenly); replicas are kept in id order. With fewer
// eligible nodes than the factor, the shard is placed on those there are and the controller
// fills it when more come.
//
// Raft records, aligned with Replicas, the Raft id each replica's node is a voter of the
// group under: at creation the group's initial voters; 0 in a slot whose node is not (yet)
// a voter (the controller writes 0 for a node it adds); rewritten by the group's leader as
// its configuration changes (replication.go): Raft[i] is the id node Replicas[i] holds the
// group's replica under.
//
// Removed ("removed", absent when empty) lists the Raft ids the group's leader removed from
// the group (the removal applied: committed), of nodes not in Replicas, newest last, at most
// maxRemoved; an id is dropped from it when its node is in Replicas again. A node finds
// there that its replica was removed even when it missed the entry that removed it (the
// leader sends nothing to a member it removed), and deletes it (lifecycle.go).

type placementValue struct {
	Replicas []uint64 `json:"replicas"`
	Raft     []uint64 `json:"raft,omitempty"`
	Leader   uint64   `json:"leader,omitempty"`
	Ctl      int64    `json:"ctl,omitempty"`
	Removed  []uint64 `json:"removed,omitempty"`
}

// ShardPlacement is one shard's placement record.
type ShardPlacement struct {
	Replicas []uint64 // node ids
	Raft     []uint64 // the Raft id of each replica that is a voter (same order; 0: not a voter); may be empty
	Leader   uint64   // the preferred leader's node id; 0: none
	Ctl      int64    // the fence of the controller that last wrote the record; 0: none did
	Removed  []uint64 // Raft ids the group's leader removed from the group, of nodes not in Replicas
	Rev      int64    // the record's ModRevision, for SetPlacementRaft
}

func (p ShardPlacement) value() placementValue {
	return placementValue{Replicas: p.Replicas, Raft: p.Raft, Leader: p.Leader, Ctl: p.Ctl, Removed: p.Removed}
}

// placementOps returns the operations that place the shards of the entry data (for stream
// name) not yet placed and remove the placement of those it no longer holds. New shards are
// placed by the controller's placer, on the membership, roster and placement read here
// (placingView).
func (c *Client) placementOps(ctx context.Context, name string, data []byte) ([]clientv3.Op, error) {
	sm, err := stream.CatalogShardMap(data)
	if err != nil {
		return nil, err
	}
	v, pl, err := c.placingView(ctx, name)
	if err != nil {
		return nil, err
	}
	placed := map[string]bool{}
	for _, r := range v.records {
		if r.key.Stream == name {
			placed[c.placementKey(r.key)] = true
		}
	}
	var ops []clientv3.Op
	for _, sh := range sm.All() {
		key := c.placementKey(ShardKey{name, sh.ID})
		if placed[key] {
			delete(placed, key)
			continue
		}
		// A shard is never created without its replicas' Raft ids: every node would open it
		// as a log of its own, and the copies would diverge. With no node registered (all
		// leases lapsed in an etcd outage, the nodes not yet back) or some chosen nodes
		// without a Raft id, the change fails, retryably, and changes nothing. (Engines that
		// share a catalog with no replicating node, meta/replicas unset, place nothing; nodes
		// that all registered without Raft ids replicate nothing: shards are placed without.)
		if len(pl.nodes) == 0 {
			if !v.replicated {
				continue // engines sharing a catalog, none a replicating node: nothing to place on
			}
			return nil, unavailable("place the shards of "+name, errors.New("no node is registered"))
		}
		pv, err := v.placeNew(pl, name, sh.ID)
		if err != nil {
			return nil, err
		}
		b, _ := json.Marshal(pv)
		ops = append(ops, clientv3.OpPut(key, string(b)))
	}
	for key := range placed {
		ops = append(ops, clientv3.OpDelete(key)) // a shard the map no longer holds
	}
	return ops, nil
}

// placingView returns the view new shards of stream name are placed on, and the placer that
// places them. When the node's placement cache is ready (Client.placements, counts), the
// view's records are those of stream name only, keys without values, read with the view
// (which of its shards are placed comes from etcd, never from a cache that may be behind),
// and the placer takes each node's replicas and preferred leaderships from the cache's
// counters: a placement costs O(new shards × nodes), not a read and decoding of every
// record (BenchmarkCreatePlacement). Otherwise (a client that replicates nothing; the
// node starting; the cache loading again after etcd compacted past its watch) the view is
// read whole and the placer counts every record, as the controller's does.
//
// A cache behind etcd (events its watch has not delivered yet) misjudges the counts by the
// records changed since, so a placement can be less balanced than it would be: the
// controller's passes even it. It is never wrong: the nodes it may choose, their zones and
// the replication factor are those of the view read here, and the placer gives a shard
// distinct nodes spread over the zones whatever the counts. The catalog transaction stays
// conditional on the stream's revision, as with a full read.
func (c *Client) placingView(ctx context.Context, name string) (*view, *placer, error) {
	var load, leads map[uint64]int
	cached := false
	if pc := c.placements.Load(); pc != nil {
		load, leads, cached = pc.counts()
	}
	if !cached {
		v, err := c.readView(ctx)
		if err != nil {
			return nil, nil, err
		}
		return v, v.newShardPlacer(), nil
	}
	own := clientv3.OpGet(c.placementPrefix(name), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	v, kvs, err := c.readViewAnd(ctx, &own)
	if err != nil {
		return nil, nil, err
	}
	for _, kv := range kvs {
		k, err := c.placementKeyOf(string(kv.Key))
		if err != nil {
			return nil, nil, err
		}
		v.records = append(v.records, record{key: k})
	}
	return v, v.newShardPlacerCounting(load, leads), nil
}

// newShardPlacerCounting is newShardPlacer with each node's replicas and preferred
// leaderships given (a placement cache's counts, which it keeps) instead of counted over
// v's records.
func (v *view) newShardPlacerCounting(load, leads map[uint64]int) *placer {
	pl := v.newShardPlacer()
	pl.load, pl.leads = load, leads
	return pl
}

// newShardPlacer is the placer of new shards: the active nodes up, or, when every node up is
// draining, those.
func (v *view) newShardPlacer() *placer {
	pl := v.placer()
	if len(pl.nodes) == 0 {
		pl = v.placerOf(func(id uint64) bool { return v.state(id) != StateDead })
	}
	return pl
}

// placeNew is the placement record of a new shard, chosen by pl (which has nodes). Some
// chosen nodes without a Raft id: an error (retryable) — every node would open the shard as
// a log of its own; all of them without: no Raft ids (no replication: catalog only).
func (v *view) placeNew(pl *placer, name string, id stream.ShardID) (placementValue, error) {
	pv := placementValue{Replicas: pl.place(name, id, v.replicas)}
	pv.Leader = pl.leader(name, id, pv.Replicas)
	for _, n := range pv.Replicas {
		pv.Raft = append(pv.Raft, v.up[n].RaftID)
	}
	switch {
	case !slices.ContainsFunc(pv.Raft, func(id uint64) bool { return id != 0 }):
		pv.Raft = nil // nodes registered without Raft ids (no replication: catalog only)
	case slices.Contains(pv.Raft, 0):
		return placementValue{}, unavailable("place the shards of "+name, errors.New("a chosen node has no Raft id"))
	}
	return pv, nil
}

// EnsurePlacement returns the placement record of a shard, writing it first when it has none
// (a transaction: only if the key still does not exist; the record found otherwise): a node
// opening the log of a shard its own resharding is adding does so before the catalog
// transaction that would place it. The catalog transaction then finds the shard placed; a
// resharding that fails leaves the record to the same shard id's next creation, or to the
// next save of the stream, which deletes the records of shards its map does not hold. ok is
// false when no engine sharing the catalog replicates (nothing to place on); a replicating
// cluster with no node to place on is a retryable error, as placementOps's.
func (c *Client) EnsurePlacement(streamName string, shard stream.ShardID) (p ShardPlacement, ok bool, err error) {
	if p, ok, err = c.PlacementOf(streamName, shard); err != nil || ok {
		return p, ok, err
	}
	ctx, cancel := c.ctx()
	defer cancel()
	v, pl, err := c.placingView(ctx, streamName)
	if err != nil {
		return ShardPlacement{}, false, err
	}
	if len(pl.nodes) == 0 {
		if !v.replicated {
			return ShardPlacement{}, false, nil
		}
		return ShardPlacement{}, false, unavailable("place the shards of "+streamName, errors.New("no node is registered"))
	}
	pv, err := v.placeNew(pl, streamName, shard)
	if err != nil {
		return ShardPlacement{}, false, err
	}
	key := c.placementKey(ShardKey{streamName, shard})
	b, _ := json.Marshal(pv)
	if _, err := c.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).Then(clientv3.OpPut(key, string(b))).Commit(); err != nil {
		return ShardPlacement{}, false, unavailable("place "+streamName, err)
	}
	return c.PlacementOf(streamName, shard)
}

// placementToOpen returns the placement of a shard whose log this node opens: its record,
// or, for a shard that the catalog's shard map does not hold yet (this node's own
// resharding is adding it, before its catalog transaction), one written now
// (EnsurePlacement). A shard of the catalog without a record (created before any node
// joined) stays without one.
func (c *Client) placementToOpen(streamName string, shard stream.ShardID) (ShardPlacement, bool, error) {
	p, ok, err := c.PlacementOf(streamName, shard)
	if err != nil || ok {
		return p, ok, err
	}
	ctx, cancel := c.ctx()
	defer cancel()
	resp, err := c.cli.Get(ctx, c.streamKey(streamName))
	if err != nil {
		return ShardPlacement{}, false, unavailable("read the catalog entry of "+streamName, err)
	}
	if len(resp.Kvs) > 0 {
		sm, err := stream.CatalogShardMap(resp.Kvs[0].Value)
		if err != nil {
			return ShardPlacement{}, false, err
		}
		if _, held := sm.Lookup(shard); held {
			return ShardPlacement{}, false, nil
		}
	}
	return c.EnsurePlacement(streamName, shard)
}

func (c *Client) placementKey(k ShardKey) string {
	return c.placementPrefix(k.Stream) + strconv.FormatUint(uint64(k.Shard), 10)
}

// placer chooses nodes for replicas and preferred leaders. Its choices depend only on its
// fields and the shard's name, so every caller with the same view chooses alike.
type placer struct {
	nodes  []uint64          // the eligible nodes (active and up), in id order
	zoneOf map[uint64]string // every known node's zone
	load   map[uint64]int    // desired replicas per node, kept up to date by the caller
	leads  map[uint64]int    // preferred leaderships per node, likewise
}

// FNV-1a 64's offset basis and prime (hash/fnv's).
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// A shard's rendezvous-hashing score of node id is FNV-1a 64 of "<stream>/<shard>/<id>"
// (decimal numbers): rendezvousScore(rendezvousBase(stream, shard), id).

// rendezvousBase is the FNV-1a 64 state after "<stream>/<shard>/", the bytes every score of
// the shard starts with: a choice among the nodes hashes them once. It allocates nothing
// (hash/fnv's interface and fmt cost about 600 allocations a shard at 100 nodes:
// BenchmarkPlacement).
func rendezvousBase(streamName string, shard stream.ShardID) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(streamName); i++ {
		h = (h ^ uint64(streamName[i])) * fnvPrime64
	}
	h = fnvDecimal((h^'/')*fnvPrime64, uint64(shard))
	return (h ^ '/') * fnvPrime64
}

// rendezvousScore is node id's score from the shard's rendezvousBase.
func rendezvousScore(base, id uint64) uint64 { return fnvDecimal(base, id) }

// fnvDecimal continues FNV-1a 64 state h over the decimal digits of n.
func fnvDecimal(h, n uint64) uint64 {
	var buf [20]byte
	for _, b := range strconv.AppendUint(buf[:0], n, 10) {
		h = (h ^ uint64(b)) * fnvPrime64
	}
	return h
}

// zones returns the number of distinct zones among the eligible nodes.
func (p *placer) zones() int {
	seen := map[string]bool{}
	for _, id := range p.nodes {
		seen[p.zoneOf[id]] = true
	}
	return len(seen)
}

// pick returns the eligible node to add to the shard's replicas have, or 0 if every
// eligible node is among them: one in a zone none of have is in if there is one, then the
// least loaded, then the highest rendezvous score.
func (p *placer) pick(streamName string, shard stream.ShardID, have []uint64) uint64 {
	base := rendezvousBase(streamName, shard)
	var best uint64
	var bestNew bool
	var bestLoad int
	var bestScore uint64
	for _, id := range p.nodes {
		if slices.Contains(have, id) {
			continue
		}
		isNew, load, score := !p.zoneAmong(have, p.zoneOf[id], 0), p.load[id], rendezvousScore(base, id)
		if best == 0 || isNew && !bestNew || isNew == bestNew && (load < bestLoad || load == bestLoad && score > bestScore) {
			best, bestNew, bestLoad, bestScore = id, isNew, load, score
		}
	}
	return best
}

// zoneAmong reports whether a node of ids other than skip is in zone z.
func (p *placer) zoneAmong(ids []uint64, z string, skip uint64) bool {
	for _, id := range ids {
		if id != skip && p.zoneOf[id] == z {
			return true
		}
	}
	return false
}

// place returns up to n eligible nodes for a new shard, in id order, and counts them in load.
func (p *placer) place(streamName string, shard stream.ShardID, n int) []uint64 {
	return p.extend(streamName, shard, nil, n)
}

// extend adds eligible nodes to out, the shard's nodes so far, until it holds n (or no
// eligible node is left), counts the added ones in load, and returns out in id order.
func (p *placer) extend(streamName string, shard stream.ShardID, out []uint64, n int) []uint64 {
	for len(out) < n {
		id := p.pick(streamName, shard, out)
		if id == 0 {
			break
		}
		out = append(out, id)
		p.load[id]++
	}
	slices.Sort(out)
	return out
}

// leader returns the preferred leader among replicas: an eligible one leading the fewest
// shards, then the highest rendezvous score; 0 if none is eligible. It counts it in leads.
func (p *placer) leader(streamName string, shard stream.ShardID, replicas []uint64) uint64 {
	base := rendezvousBase(streamName, shard)
	var best uint64
	var bestLeads int
	var bestScore uint64
	for _, id := range replicas {
		if _, found := slices.BinarySearch(p.nodes, id); !found {
			continue
		}
		leads, score := p.leads[id], rendezvousScore(base, id)
		if best == 0 || leads < bestLeads || leads == bestLeads && score > bestScore {
			best, bestLeads, bestScore = id, leads, score
		}
	}
	if best != 0 {
		p.leads[best]++
	}
	return best
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

// placedShards returns the shards of stream streamName that have a placement record, by
// their ids in decimal (the keys' last element).
func (c *Client) placedShards(streamName string) (map[string]bool, error) {
	ctx, cancel := c.ctx()
	defer cancel()
	prefix := c.placementPrefix(streamName)
	resp, err := c.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, unavailable("read the placements of "+streamName, err)
	}
	out := make(map[string]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[strings.TrimPrefix(string(kv.Key), prefix)] = true
	}
	return out, nil
}

// decodePlacement decodes one placement record.
func decodePlacement(kv *mvccpb.KeyValue) (ShardPlacement, error) {
	var v placementValue
	if err := json.Unmarshal(kv.Value, &v); err != nil || len(v.Raft) != 0 && len(v.Raft) != len(v.Replicas) {
		return ShardPlacement{}, fmt.Errorf("cluster: %s holds %q", kv.Key, kv.Value)
	}
	return ShardPlacement{Replicas: v.Replicas, Raft: v.Raft, Leader: v.Leader, Ctl: v.Ctl, Removed: v.Removed, Rev: kv.ModRevision}, nil
}

// SetPlacementRaft replaces the Raft ids (Raft, Removed) of a shard's placement record if the record is
// still at revision p.Rev (a transaction); it reports whether it did. The record's other
// fields are written as p holds them (as read at p.Rev).
func (c *Client) SetPlacementRaft(streamName string, shard stream.ShardID, p ShardPlacement) (bool, error) {
	ctx, cancel := c.ctx()
	defer cancel()
	key := c.placementPrefix(streamName) + strconv.FormatUint(uint64(shard), 10)
	v, _ := json.Marshal(p.value())
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
// with one range request (tools and tests; the controller and the nodes keep the records in
// a placementCache).
func (c *Client) AllPlacements() (map[ShardKey]ShardPlacement, error) {
	ctx, cancel := c.ctx()
	defer cancel()
	resp, err := c.cli.Get(ctx, c.prefix+"placement/", clientv3.WithPrefix())
	if err != nil {
		return nil, unavailable("read placement", err)
	}
	out := make(map[ShardKey]ShardPlacement, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		k, p, err := c.placementRecord(kv)
		if err != nil {
			return nil, err
		}
		out[k] = p
	}
	return out, nil
}

// placementRecord decodes a key and value under placement/.
func (c *Client) placementRecord(kv *mvccpb.KeyValue) (ShardKey, ShardPlacement, error) {
	k, err := c.placementKeyOf(string(kv.Key))
	if err != nil {
		return ShardKey{}, ShardPlacement{}, err
	}
	p, err := decodePlacement(kv)
	return k, p, err
}
