package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluice-streams/sluice/stream"
)

// On-demand scaling in a cluster. A shard's records are counted where they are settled, on
// the node leading the shard (stream's countDemand), so no node sees a stream's whole
// demand. Every node publishes what it counted on each on-demand stream over its last
// interval as demand/<node id>, under its membership lease (a node gone takes its figures
// with it); the elected controller reads every node's, sums them per stream and shard, and
// runs the engine's decision (stream.Engine.ScaleOnDemand) on its own node: the hottest
// shards split, within twice the trailing peak of the stream's total. Each stream's
// trailing peak is kept in etcd (ondemand/<stream>, bucketed: peakBuckets maxima over the
// window), so a new controller goes on from it. Nodes do not scale on their own demand
// (stream.Options.SharedDemand).

// maxDemandShards bounds the shard entries of one node's demand record: past it, the shards
// with the least demand are left out (each stream's total still counts them). Streams are
// bounded by the account's on-demand streams (stream.OnDemandStreamsMax), so a record stays
// near 150 kB at most (a shard entry is about 30 bytes of JSON), well under etcd's 1.5 MiB
// request limit.
const maxDemandShards = 4096

// peakBuckets is how many maxima a stream's trailing peak keeps: one per window/peakBuckets
// (22.5 hours of a 30-day window), so the peak covers the window and at most one bucket
// more.
const peakBuckets = 32

func (c *Client) demandPrefix() string { return c.prefix + "demand/" }
func (c *Client) demandKey(node uint64) string {
	return c.demandPrefix() + strconv.FormatUint(node, 10)
}
func (c *Client) onDemandPrefix() string         { return c.prefix + "ondemand/" }
func (c *Client) onDemandKey(name string) string { return c.onDemandPrefix() + name }

// demandRecord is the value of demand/<node id> (JSON): what the node counted over its last
// interval of Sec seconds, per on-demand stream.
type demandRecord struct {
	Sec     float64        `json:"sec"`
	Streams []demandStream `json:"streams,omitempty"`
}

// demandStream is one stream's part of a demandRecord: its incarnation, its total bytes and
// records, and per shard [shard id, bytes, records] (only shards with demand; at most
// maxDemandShards over the record).
type demandStream struct {
	Name   string     `json:"name"`
	Gen    uint64     `json:"gen"`
	Total  [2]int64   `json:"total"`
	Shards [][3]int64 `json:"shards,omitempty"`
}

// encodeDemand builds a node's demand record from what it counted over sec seconds.
func encodeDemand(d []stream.StreamDemand, sec float64) []byte {
	type entry struct {
		stream int
		sd     stream.ShardDemand
	}
	rec := demandRecord{Sec: sec, Streams: make([]demandStream, len(d))}
	var all []entry
	for i, sd := range d {
		rec.Streams[i] = demandStream{Name: sd.Stream, Gen: sd.Gen}
		for _, sh := range sd.Shards {
			rec.Streams[i].Total[0] += sh.Bytes
			rec.Streams[i].Total[1] += sh.Records
			all = append(all, entry{i, sh})
		}
	}
	if len(all) > maxDemandShards {
		need := func(sh stream.ShardDemand) float64 {
			return math.Max(float64(sh.Bytes)/float64(stream.WriteBytesPerSec), float64(sh.Records)/float64(stream.WriteRecordsPerSec))
		}
		slices.SortStableFunc(all, func(a, b entry) int { return cmp.Compare(need(b.sd), need(a.sd)) })
		all = all[:maxDemandShards]
	}
	for _, e := range all {
		s := &rec.Streams[e.stream]
		s.Shards = append(s.Shards, [3]int64{int64(e.sd.Shard), e.sd.Bytes, e.sd.Records})
	}
	b, _ := json.Marshal(rec)
	return b
}

// DemandSource is where a node's demand publisher takes the demand from: its engine.
type DemandSource interface {
	TakeDemand() []stream.StreamDemand
}

// DemandPublisher publishes one node's write demand (demand/<node id>, under the node's
// membership lease). Publish is called by one goroutine at a time.
type DemandPublisher struct {
	m     *Member
	src   DemandSource
	now   func() time.Time
	last  time.Time // the previous Publish; zero before the first
	empty bool      // the record last written held no demand
}

// NewDemandPublisher returns the publisher of m's node's demand taken from src; now is its
// clock (nil: time.Now).
func (m *Member) NewDemandPublisher(src DemandSource, now func() time.Time) *DemandPublisher {
	if now == nil {
		now = time.Now
	}
	return &DemandPublisher{m: m, src: src, now: now}
}

// Publish takes the demand counted since the previous call and writes it, as rates over the
// time since then, under the node's lease. The first call only starts the interval. A
// record with no demand is not written again while there is none. Demand taken in an
// interval whose write fails (etcd unreachable, the lease being replaced) is lost.
func (p *DemandPublisher) Publish(ctx context.Context) error {
	d, now := p.src.TakeDemand(), p.now()
	last := p.last
	p.last = now
	if last.IsZero() || !now.After(last) {
		return nil
	}
	if len(d) == 0 && p.empty {
		return nil
	}
	val := encodeDemand(d, now.Sub(last).Seconds())
	m, c := p.m, p.m.c
	m.mu.Lock()
	lease := m.lease
	m.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	if _, err := c.cli.Put(rctx, c.demandKey(m.node.ID), string(val), clientv3.WithLease(lease)); err != nil {
		p.empty = false
		return unavailable("publish the node's write demand", err)
	}
	p.empty = len(d) == 0
	return nil
}

// Run publishes every interval until ctx ends.
func (p *DemandPublisher) Run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if err := p.Publish(ctx); err != nil && ctx.Err() == nil {
			p.m.c.cfg.Logger.Warn("on-demand scaling", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// OnDemandScaler applies the controller's on-demand decisions: the engine of the
// controller's node (stream.Engine).
type OnDemandScaler interface {
	ScaleOnDemand(name string, gen uint64, shards map[stream.ShardID]stream.DemandRate, peak stream.DemandRate) (int, error)
}

// clusterDemand is one stream's demand summed over the nodes' records.
type clusterDemand struct {
	gen    uint64
	total  stream.DemandRate
	shards map[stream.ShardID]stream.DemandRate
}

// sumDemand adds up the nodes' demand records, as rates, per stream and shard. Records of
// a stream's older incarnation than another node reports are left out.
func sumDemand(kvs [][]byte) map[string]*clusterDemand {
	out := map[string]*clusterDemand{}
	for _, v := range kvs {
		var rec demandRecord
		if json.Unmarshal(v, &rec) != nil || !(rec.Sec > 0) {
			continue
		}
		rate := func(b, r int64) stream.DemandRate {
			return stream.DemandRate{Bytes: float64(b) / rec.Sec, Records: float64(r) / rec.Sec}
		}
		for _, s := range rec.Streams {
			cd := out[s.Name]
			if cd == nil || cd.gen < s.Gen {
				cd = &clusterDemand{gen: s.Gen, shards: map[stream.ShardID]stream.DemandRate{}}
				out[s.Name] = cd
			} else if cd.gen > s.Gen {
				continue
			}
			cd.total = cd.total.Add(rate(s.Total[0], s.Total[1]))
			for _, sh := range s.Shards {
				if sh[0] < 0 || sh[0] > math.MaxUint32 {
					continue
				}
				id := stream.ShardID(sh[0])
				cd.shards[id] = cd.shards[id].Add(rate(sh[1], sh[2]))
			}
		}
	}
	return out
}

// peakRecord is the value of ondemand/<stream> (JSON): the trailing peak of the stream's
// total demand, as the maxima of buckets of Span milliseconds, oldest first. Written by the
// controller (fenced); deleted with the stream.
type peakRecord struct {
	Gen   uint64       `json:"gen"`
	Span  int64        `json:"span"`
	Peaks []peakBucket `json:"peaks"`
}

// peakBucket is the highest demand of the bucket starting at At (Unix ms).
type peakBucket struct {
	At      int64   `json:"at"`
	Bytes   float64 `json:"bytes"`
	Records float64 `json:"records"`
}

// add records demand d measured at now and drops the buckets entirely older than window. It
// reports whether the record changed.
func (r *peakRecord) add(now time.Time, d stream.DemandRate, window time.Duration) bool {
	span := max(1, window.Milliseconds()/peakBuckets)
	changed := false
	if r.Span != span {
		r.Span, r.Peaks, changed = span, nil, true
	}
	ms := now.UnixMilli()
	for len(r.Peaks) > 0 && r.Peaks[0].At+span <= ms-window.Milliseconds() {
		r.Peaks, changed = r.Peaks[1:], true
	}
	start := ms / span * span
	if n := len(r.Peaks); n > 0 && r.Peaks[n-1].At == start {
		b := &r.Peaks[n-1]
		if d.Bytes > b.Bytes || d.Records > b.Records {
			b.Bytes, b.Records, changed = math.Max(b.Bytes, d.Bytes), math.Max(b.Records, d.Records), true
		}
		return changed
	}
	if d.Bytes > 0 || d.Records > 0 {
		r.Peaks, changed = append(r.Peaks, peakBucket{At: start, Bytes: d.Bytes, Records: d.Records}), true
	}
	return changed
}

// peak returns the highest demand of the buckets reaching into the window before now.
func (r *peakRecord) peak(now time.Time, window time.Duration) stream.DemandRate {
	var p stream.DemandRate
	for _, b := range r.Peaks {
		if b.At+r.Span > now.UnixMilli()-window.Milliseconds() {
			p = p.Max(stream.DemandRate{Bytes: b.Bytes, Records: b.Records})
		}
	}
	return p
}

// scaleLoop runs a scale pass every Every until ctx ends or the controller is deposed.
func (ct *Controller) scaleLoop(ctx context.Context, f *fence) {
	tick := time.NewTicker(ct.cfg.Every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := ct.scalePass(ctx, f); err != nil {
			if errors.Is(err, ErrDeposed) || ctx.Err() != nil {
				return
			}
			ct.log.Warn("on-demand scaling pass", "err", err)
		}
	}
}

// scalePass reads every node's demand and the streams' trailing peaks (one transaction,
// refused once f is not the elected controller's fence), adds each stream's summed demand
// to its peak (a fenced write, compared with the record's revision) and asks the scaler to
// split its hot shards. A stream whose peak another write changed meanwhile waits for the
// next pass.
func (ct *Controller) scalePass(ctx context.Context, f *fence) error {
	rctx, cancel := context.WithTimeout(ctx, ct.c.cfg.RequestTimeout)
	defer cancel()
	c := ct.c
	resp, err := c.cli.Txn(rctx).If(clientv3.Compare(clientv3.CreateRevision(f.key), "=", f.rev)).
		Then(clientv3.OpGet(c.demandPrefix(), clientv3.WithPrefix()), clientv3.OpGet(c.onDemandPrefix(), clientv3.WithPrefix())).Commit()
	if err != nil {
		return unavailable("read the nodes' write demand", err)
	}
	if !resp.Succeeded {
		return ErrDeposed
	}
	ct.scalePasses.Add(1)
	var vals [][]byte
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		vals = append(vals, kv.Value)
	}
	demand := sumDemand(vals)
	type stored struct {
		rec peakRecord
		rev int64
	}
	peaks := map[string]stored{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		var st stored
		if json.Unmarshal(kv.Value, &st.rec) == nil {
			st.rev = kv.ModRevision
			peaks[strings.TrimPrefix(string(kv.Key), c.onDemandPrefix())] = st
		}
	}
	now := ct.cfg.Now()
	window := ct.cfg.OnDemandWindow
	for _, name := range slices.Sorted(maps.Keys(demand)) {
		d := demand[name]
		st := peaks[name]
		if st.rec.Gen != d.gen {
			st.rec = peakRecord{Gen: d.gen}
		}
		if st.rec.add(now, d.total, window) {
			b, _ := json.Marshal(st.rec)
			pctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
			_, ok, err := ct.put(pctx, f, c.onDemandKey(name), st.rev, string(b))
			cancel()
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		n, err := ct.cfg.Scaler.ScaleOnDemand(name, d.gen, d.shards, st.rec.peak(now, window))
		ct.splits.Add(uint64(n))
		if err != nil && stream.KindOf(err) != stream.KindResourceNotFound {
			ct.log.Warn("on-demand scaling", "stream", name, "splits", n, "err", err)
		}
	}
	return nil
}
