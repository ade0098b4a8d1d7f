package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/sluice-streams/sluice/stream"
)

// The controller: every node runs one (Controller.Run) and campaigns in the etcd election
// under controller/; the one elected decides the placement records' replicas and preferred
// leaders and declares dead nodes, until it loses its session. Each of its writes is a
// transaction that also compares its election key's CreateRevision (its fence), so once a
// newer controller is elected (the old key deleted with its lease), nothing the old one
// still tries commits. It runs a pass (plan) when membership, the roster, placement or a
// rebalance request change, and every ControllerConfig.Every. With a Scaler it also decides
// the on-demand streams' splits on the demand every node publishes (demand.go), every
// ControllerConfig.Every.
//
// Dead nodes: etcd does not record when a lease expired, so the controller measures absence
// on its own clock: a roster node not registered is noted down when a pass first finds it so,
// and declared dead (roster state "dead", its slots then replaced) by the first pass at least
// DeadAfter later. A newly elected controller starts those clocks afresh, so a failover
// delays a declaration by up to DeadAfter, never hastens one.

// Defaults of ControllerConfig.
const (
	DefaultDeadAfter       = 5 * time.Minute
	DefaultControllerEvery = 5 * time.Second
	DefaultMaxChanges      = 8
)

// ErrDeposed is returned by a controller pass whose fence is no longer the elected one: a
// newer controller was elected and nothing of the pass committed after that.
var ErrDeposed = errors.New("cluster: this controller was deposed")

// ControllerConfig configures a Controller.
type ControllerConfig struct {
	NodeID uint64 // the node running it, the election's value
	// DeadAfter is how long a node may be unregistered before it is declared dead and its
	// replicas placed elsewhere; default DefaultDeadAfter.
	DeadAfter time.Duration
	// Every is the interval of the passes run without a change to react to; default
	// DefaultControllerEvery.
	Every time.Duration
	// MaxChanges bounds the placement records one pass rewrites; balancing moves start only
	// while fewer records than this have a replica being built (unless a rebalance was
	// requested). Default DefaultMaxChanges.
	MaxChanges int
	// Now is the controller's clock; default time.Now.
	Now func() time.Time
	// Scaler is the engine the elected controller scales on-demand streams through, on
	// the demand every node publishes (demand.go), every Every; nil: it does not scale.
	Scaler OnDemandScaler
	// OnDemandWindow is the trailing window whose peak demand bounds an on-demand stream's
	// growth; default stream.DefaultOnDemandWindow.
	OnDemandWindow time.Duration
}

// ControllerMetrics are a controller's figures since it was made.
type ControllerMetrics struct {
	Leader     bool   // it is the elected controller now
	Passes     uint64 // passes run as controller
	Placements uint64 // placement records written
	Moves      uint64 // replicas added to placement records (each a replica to build)
	DeadNodes  uint64 // nodes declared dead
	// ScalePasses counts the on-demand scaling passes run as controller; OnDemandSplits the
	// shards they split.
	ScalePasses, OnDemandSplits uint64
}

// Controller campaigns for the cluster's controller and, elected, runs its passes.
type Controller struct {
	c   *Client
	cfg ControllerConfig
	log *slog.Logger

	// Written by the goroutine running Run (or a test's pass), read by Metrics.
	leader                               atomic.Bool
	fence                                atomic.Pointer[fence]
	passes, placements, moves, deadNodes atomic.Uint64
	scalePasses, splits                  atomic.Uint64        // written by scaleLoop's goroutine
	downSince                            map[uint64]time.Time // the goroutine running passes only
}

// fence is an elected controller's election key and its CreateRevision.
type fence struct {
	key string
	rev int64
}

// NewController returns node cfg.NodeID's controller; Run runs it.
func (c *Client) NewController(cfg ControllerConfig) (*Controller, error) {
	if cfg.NodeID == 0 {
		return nil, errors.New("cluster: controller of node 0: ids start at 1")
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = DefaultDeadAfter
	}
	if cfg.Every <= 0 {
		cfg.Every = DefaultControllerEvery
	}
	if cfg.MaxChanges <= 0 {
		cfg.MaxChanges = DefaultMaxChanges
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OnDemandWindow <= 0 {
		cfg.OnDemandWindow = stream.DefaultOnDemandWindow
	}
	return &Controller{c: c, cfg: cfg, log: c.cfg.Logger.With("controller", cfg.NodeID), downSince: map[uint64]time.Time{}}, nil
}

// Metrics returns the controller's figures.
func (ct *Controller) Metrics() ControllerMetrics {
	return ControllerMetrics{Leader: ct.leader.Load(), Passes: ct.passes.Load(), Placements: ct.placements.Load(),
		Moves: ct.moves.Load(), DeadNodes: ct.deadNodes.Load(), ScalePasses: ct.scalePasses.Load(), OnDemandSplits: ct.splits.Load()}
}

// Run campaigns and, elected, runs passes until it loses its session (then campaigns again)
// or ctx ends; then it resigns (its session's lease is revoked) and returns.
func (ct *Controller) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := ct.term(ctx); err != nil && ctx.Err() == nil {
			ct.log.Warn("cluster controller", "err", err)
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
		}
	}
}

// term is one session: a campaign and, if elected, the passes until the session or ctx ends.
func (ct *Controller) term(ctx context.Context) error {
	// The session's own context outlives ctx until Close, so that Close can revoke the lease
	// (a prompt resignation); ctx ending before the session is made cancels it.
	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	stop := context.AfterFunc(ctx, scancel)
	ttl := int((ct.c.cfg.LeaseTTL + time.Second - 1) / time.Second)
	sess, err := concurrency.NewSession(ct.c.cli, concurrency.WithTTL(ttl), concurrency.WithContext(sctx))
	stopped := stop()
	if err != nil {
		return unavailable("open the controller's session", err)
	}
	if !stopped { // ctx ended meanwhile
		sess.Close()
		return nil
	}
	defer sess.Close()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
			cancel()
		case <-lctx.Done():
		}
	}()
	el := concurrency.NewElection(sess, ct.c.controllerPrefix())
	if err := el.Campaign(lctx, strconv.FormatUint(ct.cfg.NodeID, 10)); err != nil {
		if lctx.Err() != nil {
			return nil
		}
		return unavailable("campaign for controller", err)
	}
	f := &fence{key: el.Key(), rev: el.Rev()}
	ct.fence.Store(f)
	ct.leader.Store(true)
	defer ct.leader.Store(false)
	clear(ct.downSince)
	ct.log.Info("elected the cluster's controller", "fence", f.rev)
	if ct.cfg.Scaler != nil {
		scaled := make(chan struct{})
		go func() { defer close(scaled); ct.scaleLoop(lctx, f) }()
		defer func() { cancel(); <-scaled }()
	}
	err = ct.lead(lctx, f)
	ct.log.Info("no longer the cluster's controller", "err", err)
	if errors.Is(err, ErrDeposed) {
		return nil
	}
	return err
}

// lead runs passes until ctx ends or the controller is deposed. Its passes read the
// placement records from a placementCache its watch of the cluster's prefix keeps (loaded
// once, then again only after etcd compacted past the watch), and the rest of the view
// (nodes, roster, settings: a few hundred keys) from etcd.
func (ct *Controller) lead(ctx context.Context, f *fence) error {
	tick := time.NewTicker(ct.cfg.Every)
	defer tick.Stop()
	cache := ct.c.newPlacementCache()
	var events clientv3.WatchChan
	stopWatch := func() {}
	defer func() { stopWatch() }()
	pending := true
	for {
		if events == nil {
			if from, err := cache.resume(ctx); err != nil {
				ct.log.Warn("cluster controller: reading placement", "err", err) // again at the next tick
			} else {
				wctx, cancel := context.WithCancel(ctx)
				events, stopWatch = ct.c.cli.Watch(clientv3.WithRequireLeader(wctx), ct.c.prefix, clientv3.WithPrefix(), clientv3.WithRev(from)), cancel
			}
			pending = true
		}
		if pending {
			pending = false
			if err := ct.pass(ctx, f, cache); err != nil {
				if errors.Is(err, ErrDeposed) || ctx.Err() != nil {
					return err
				}
				ct.log.Warn("cluster controller pass", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			pending = true
		case resp, ok := <-events:
			if !ok || resp.Err() != nil {
				if resp.CompactRevision != 0 {
					cache.invalidate()
				}
				stopWatch()
				events, pending = nil, true
				continue
			}
			cache.apply(resp.Events) // a malformed record fails the passes until it is mended
			for _, ev := range resp.Events {
				pending = pending || ct.watched(string(ev.Kv.Key))
			}
		}
	}
}

// watched reports whether a change of key calls for a pass.
func (ct *Controller) watched(key string) bool {
	k := strings.TrimPrefix(key, ct.c.prefix)
	return strings.HasPrefix(k, "nodes/") || strings.HasPrefix(k, "roster/") || strings.HasPrefix(k, "placement/") ||
		key == ct.c.rebalanceKey()
}

// pass reads the view (its placement records from cache when that holds them; nil: all from
// etcd), declares the nodes absent past DeadAfter dead, and writes the plan's changes, each
// fenced by f. A record changed since the view was read is left to the next pass. It
// returns ErrDeposed once a write fails on the fence.
func (ct *Controller) pass(ctx context.Context, f *fence, cache *placementCache) error {
	rctx, cancel := context.WithTimeout(ctx, ct.c.cfg.RequestTimeout)
	defer cancel()
	v, err := ct.c.readViewWith(rctx, cache)
	if err != nil {
		return err
	}
	ct.passes.Add(1)
	now := ct.cfg.Now()
	for _, id := range slices.Sorted(maps.Keys(v.roster)) {
		e := v.roster[id]
		if _, up := v.up[id]; up || e.State == StateDead {
			delete(ct.downSince, id)
			continue
		}
		since, seen := ct.downSince[id]
		if !seen {
			ct.downSince[id] = now
			continue
		}
		if now.Sub(since) < ct.cfg.DeadAfter {
			continue
		}
		e.State = StateDead
		b, _ := json.Marshal(e.value())
		_, ok, err := ct.put(rctx, f, ct.c.rosterKey(id), e.Rev, string(b))
		if err != nil {
			return err
		}
		if ok {
			v.roster[id] = e
			delete(ct.downSince, id)
			ct.deadNodes.Add(1)
			ct.log.Warn("declared a node dead: its replicas are placed elsewhere", "node", id, "absent", now.Sub(since).Round(time.Second).String())
		}
	}
	rebalance := v.rebalanceRev != 0
	changes := v.plan(ct.cfg.MaxChanges, rebalance || v.moving() < ct.cfg.MaxChanges)
	for _, ch := range changes {
		ch.next.Ctl = f.rev
		b, _ := json.Marshal(ch.next.value())
		rev, ok, err := ct.put(rctx, f, ct.c.placementKey(ch.key), ch.old.Rev, string(b))
		if err != nil {
			return err
		}
		if ok {
			if cache != nil {
				// The next pass plans on this write even if the watch has not delivered it.
				ch.next.Rev = rev
				cache.note(ch.key, ch.next)
			}
			ct.placements.Add(1)
			ct.moves.Add(uint64(ch.added))
			ct.log.Info("placement changed", "stream", ch.key.Stream, "shard", ch.key.Shard.String(),
				"replicas", ch.next.Replicas, "was", ch.old.Replicas, "leader", ch.next.Leader)
		}
	}
	if rebalance && len(changes) == 0 {
		// Balanced: the request is done (unless it was made again since the view).
		if _, _, err := ct.txn(rctx, f, clientv3.Compare(clientv3.ModRevision(ct.c.rebalanceKey()), "=", v.rebalanceRev),
			clientv3.OpDelete(ct.c.rebalanceKey())); err != nil {
			return err
		}
	}
	return nil
}

// put writes key = val if key is still at revision rev (0: absent) and f is still the
// elected controller's fence; ok is false if key changed. written is the revision of the write.
func (ct *Controller) put(ctx context.Context, f *fence, key string, rev int64, val string) (written int64, ok bool, err error) {
	return ct.txn(ctx, f, clientv3.Compare(clientv3.ModRevision(key), "=", rev), clientv3.OpPut(key, val))
}

// txn commits op if cmp holds and f is the elected controller's fence, at revision rev; it
// returns ErrDeposed if f is not.
func (ct *Controller) txn(ctx context.Context, f *fence, cmp clientv3.Cmp, op clientv3.Op) (rev int64, ok bool, err error) {
	resp, err := ct.c.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(f.key), "=", f.rev), cmp).
		Then(op).Else(clientv3.OpGet(f.key)).Commit()
	if err != nil {
		return 0, false, unavailable("write as the controller", err)
	}
	if resp.Succeeded {
		return resp.Header.Revision, true, nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 0 || kvs[0].CreateRevision != f.rev {
		return 0, false, ErrDeposed
	}
	return 0, false, nil
}
