package cluster

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluice-streams/sluice/stream"
)

// placementCache is every placement record as a watch of placement/ keeps it: loaded by one
// range read, then changed by the watch's events, watched from the revision after the read
// (resume). A watch that fails is resumed from the revision after the newest event applied,
// so nothing is missed; one that fails because etcd compacted past that revision makes the
// cache load again (invalidate, then resume). So a change of one record costs its event, not
// a read and decoding of every record (BenchmarkPlacementApply: 100,000 records).
//
// The controller keeps one for its passes (the goroutine running them applies its watch's
// events, so records' slice is never changed while a pass reads it); each node keeps one for
// its reconciles (Replication.watchPlacement applies, the reconcile goroutine reads through
// get and take, and the node's catalog transactions placing new shards through counts).
// mu guards every field but c.
type placementCache struct {
	c *Client

	mu       sync.Mutex
	loaded   bool             // a load completed: the records are there
	stale    bool             // the next resume loads again (invalidate)
	rev      int64            // the load's revision, or the newest event applied since
	recs     []record         // every record; in stream, shard order unless unsorted
	at       map[ShardKey]int // each record's index in recs
	unsorted bool             // records were added or deleted since recs was sorted
	bad      map[string]error // keys holding what is not a placement record, and why
	// changed holds the keys put or deleted since the last take; all is set by a load (every
	// key counts as changed).
	changed map[ShardKey]struct{}
	all     bool
	// load and leads are, over recs, the replicas and the preferred leaderships each node
	// holds (a node counting none is absent): counted by a load, then kept by every put and
	// delete, so that a placement of new shards takes them without a walk of the records
	// (counts; BenchmarkCreatePlacement).
	load, leads map[uint64]int
}

func (c *Client) newPlacementCache() *placementCache {
	return &placementCache{c: c, at: map[ShardKey]int{}, bad: map[string]error{}, changed: map[ShardKey]struct{}{},
		load: map[uint64]int{}, leads: map[uint64]int{}}
}

// resume returns the revision to watch placement/ from: after the newest revision the cache
// holds, loading it first when it holds none (never loaded, or invalidated).
func (pc *placementCache) resume(ctx context.Context) (int64, error) {
	pc.mu.Lock()
	fresh, rev := pc.loaded && !pc.stale, pc.rev
	pc.mu.Unlock()
	if fresh {
		return rev + 1, nil
	}
	resp, err := pc.c.cli.Get(ctx, pc.c.prefix+"placement/", clientv3.WithPrefix())
	if err != nil {
		return 0, unavailable("read placement", err)
	}
	recs := make([]record, 0, len(resp.Kvs))
	bad := map[string]error{}
	for _, kv := range resp.Kvs {
		k, p, err := pc.c.placementRecord(kv)
		if err != nil {
			bad[string(kv.Key)] = err
			continue
		}
		recs = append(recs, record{k, p})
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.loaded, pc.stale, pc.rev, pc.recs, pc.bad, pc.all = true, false, resp.Header.Revision, recs, bad, true
	pc.sortLocked()
	clear(pc.changed)
	clear(pc.load)
	clear(pc.leads)
	for _, r := range pc.recs {
		pc.countLocked(r.p, 1)
	}
	return pc.rev + 1, nil
}

// invalidate makes the next resume load every record again: the watch cannot resume where
// the cache stopped (etcd compacted past it). Until then the cache answers as it stands.
func (pc *placementCache) invalidate() {
	pc.mu.Lock()
	pc.stale = true
	pc.mu.Unlock()
}

// apply applies the events of a watch of (a prefix holding) placement/, in order; events of
// other keys are ignored. It returns the first key whose value is not a placement record
// (kept out of the records, and reported by records until a put or delete mends it).
func (pc *placementCache) apply(events []*clientv3.Event) error {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	var first error
	prefix := pc.c.prefix + "placement/"
	for _, ev := range events {
		key := string(ev.Kv.Key)
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		pc.rev = max(pc.rev, ev.Kv.ModRevision)
		delete(pc.bad, key)
		k, err := pc.c.placementKeyOf(key)
		var p ShardPlacement
		if err == nil && ev.Type == clientv3.EventTypePut {
			p, err = decodePlacement(ev.Kv)
		}
		if err != nil {
			pc.bad[key] = err
			first = cmp.Or(first, err)
			pc.deleteLocked(k)
			continue
		}
		if ev.Type == clientv3.EventTypePut {
			pc.putLocked(k, p)
		} else {
			pc.changed[k] = struct{}{}
			pc.deleteLocked(k)
		}
	}
	return first
}

// note records p as shard k's record, written by the goroutine that applies the events
// (the controller's pass) before its watch delivers the write. It leaves the revision to
// resume from as it is: the watch still delivers the write, and applies it again.
func (pc *placementCache) note(k ShardKey, p ShardPlacement) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	pc.putLocked(k, p)
}

// putLocked makes p shard k's record (pc.mu held).
func (pc *placementCache) putLocked(k ShardKey, p ShardPlacement) {
	pc.changed[k] = struct{}{}
	pc.countLocked(p, 1)
	if i, held := pc.at[k]; held {
		pc.countLocked(pc.recs[i].p, -1)
		pc.recs[i].p = p
		return
	}
	pc.at[k] = len(pc.recs)
	pc.recs = append(pc.recs, record{k, p})
	pc.unsorted = true
}

// deleteLocked removes k's record if the cache holds one (pc.mu held).
func (pc *placementCache) deleteLocked(k ShardKey) {
	i, held := pc.at[k]
	if !held {
		return
	}
	pc.countLocked(pc.recs[i].p, -1)
	last := len(pc.recs) - 1
	pc.recs[i] = pc.recs[last]
	pc.at[pc.recs[i].key] = i
	pc.recs = pc.recs[:last]
	delete(pc.at, k)
	pc.unsorted = true
}

// countLocked adds d to the counts of p's replicas and preferred leader (pc.mu held).
func (pc *placementCache) countLocked(p ShardPlacement, d int) {
	for _, id := range p.Replicas {
		addCount(pc.load, id, d)
	}
	if p.Leader != 0 {
		addCount(pc.leads, p.Leader, d)
	}
}

// addCount adds d to m[id], removing an entry that falls to zero.
func addCount(m map[uint64]int, id uint64, d int) {
	if n := m[id] + d; n != 0 {
		m[id] = n
	} else {
		delete(m, id)
	}
}

// sortLocked puts recs in stream, shard order and indexes them (pc.mu held).
func (pc *placementCache) sortLocked() {
	sortRecords(pc.recs)
	clear(pc.at)
	for i, r := range pc.recs {
		pc.at[r.key] = i
	}
	pc.unsorted = false
}

// records returns every record, in stream, shard order: the cache's own slice, to be read
// only, and only by the goroutine that applies the events (it changes with the next apply or
// resume). ok is false if the cache was never loaded; err names a key holding what is not a
// placement record (as a range read's decoding would fail).
func (pc *placementCache) records() (recs []record, ok bool, err error) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if !pc.loaded {
		return nil, false, nil
	}
	for _, err := range pc.bad {
		return nil, true, err
	}
	if pc.unsorted {
		pc.sortLocked()
	}
	return pc.recs, true, nil
}

// get returns shard k's placement record; ok is false when the cache holds none.
func (pc *placementCache) get(k ShardKey) (p ShardPlacement, ok bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	i, ok := pc.at[k]
	if !ok {
		return ShardPlacement{}, false
	}
	return pc.recs[i].p, true
}

// counts returns copies of the replicas and the preferred leaderships each node holds in
// the records, as a placer's load and leads: O(nodes), whatever the records. ok is false
// while the cache is not ready to stand for etcd: never loaded, or to be loaded again (etcd
// compacted past its watch, or the watch that kept it ended). Keys holding what is not a
// placement record count nothing.
func (pc *placementCache) counts() (load, leads map[uint64]int, ok bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if !pc.loaded || pc.stale {
		return nil, nil, false
	}
	return maps.Clone(pc.load), maps.Clone(pc.leads), true
}

// take returns the keys put or deleted since the last take, and forgets them; all is set
// when the cache was loaded since (every record may have changed). loaded is false while the
// cache holds nothing yet.
func (pc *placementCache) take() (keys map[ShardKey]struct{}, all, loaded bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	keys, all = pc.changed, pc.all
	pc.changed, pc.all = map[ShardKey]struct{}{}, false
	return keys, all, pc.loaded
}

// placementKeyOf returns the shard a key under placement/ names.
func (c *Client) placementKeyOf(key string) (ShardKey, error) {
	// A stream's name has no '/' (stream.CreateStream checks it).
	name, shard, found := strings.Cut(strings.TrimPrefix(key, c.prefix+"placement/"), "/")
	id, err := strconv.ParseUint(shard, 10, 32)
	if !found || err != nil {
		return ShardKey{}, fmt.Errorf("cluster: placement key %s", key)
	}
	return ShardKey{name, stream.ShardID(id)}, nil
}
