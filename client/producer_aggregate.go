package client

import (
	"fmt"
	"strconv"
	"time"

	"github.com/sluice-streams/sluice/kpl"
)

// maxReroutes is how many times a record's aggregates may land on the wrong shard before it
// fails: a refreshed shard map fixes the first one.
const maxReroutes = 3

// aggregator is the aggregated record being filled for one shard (ProducerConfig.Aggregate).
// Guarded by Producer.mu.
type aggregator struct {
	shard    uint32
	recs     []*rec // the records added, in Put order
	b        kpl.Builder
	deadline time.Time // when lingering ends: the first record's Put plus Linger
}

// aggregateLocked adds u to the aggregate of the shard its key maps to, sealing that
// aggregate first if u would take it past maxAgg. p.mu must be held.
func (p *Producer) aggregateLocked(u *rec, now time.Time) {
	if p.abandon != nil {
		var done []*rec
		p.finishLocked(u, SeqNum{}, p.abandonError(u), now, &done)
		p.deliverLater(done)
		return
	}
	u.shard = p.routes.route(u.hash)
	a := p.aggs[u.shard]
	if a != nil && a.b.SizeWith(u.key, "", len(u.data)) > p.maxAgg {
		p.sealAggregateLocked(a, now)
		a = nil
	}
	if a == nil {
		if n := len(p.freeAggs); n > 0 {
			a = p.freeAggs[n-1]
			p.freeAggs = p.freeAggs[:n-1]
		} else {
			a = &aggregator{}
		}
		a.shard, a.deadline = u.shard, now.Add(p.cfg.Linger)
		p.aggs[u.shard] = a
		p.ring()
	}
	a.recs = append(a.recs, u)
	a.b.Add(u.key, "", u.data)
}

// sealAggregateLocked sends a's records as one record: an aggregated record, or the record
// itself when it is alone, as the KPL sends a lone record. Either is sent in order with the
// other records of its shard, unless Unordered. p.mu must be held.
func (p *Producer) sealAggregateLocked(a *aggregator, now time.Time) {
	var r *rec
	if len(a.recs) == 1 {
		r = a.recs[0]
	} else {
		first := a.recs[0]
		r = &rec{key: first.key, hash: first.hash, shard: a.shard, put: first.put,
			subs: a.recs, data: a.b.AppendTo(make([]byte, 0, a.b.Size()))}
		a.recs = nil // r owns them now
		p.stats.Aggregates++
	}
	if p.keys != nil {
		ord, ok := p.ordKeys[a.shard]
		if !ok {
			// With Aggregate only these keys enter p.keys, never a partition key.
			ord = "\x00shard " + strconv.FormatUint(uint64(a.shard), 10)
			p.ordKeys[a.shard] = ord
		}
		r.ord = ord
	}
	p.dropAggregatorLocked(a)
	p.submitLocked(r, now)
}

// dropAggregatorLocked forgets a and keeps it for reuse. p.mu must be held.
func (p *Producer) dropAggregatorLocked(a *aggregator) {
	delete(p.aggs, a.shard)
	clear(a.recs)
	a.recs = a.recs[:0]
	a.b.Reset()
	if len(p.freeAggs) < 64 {
		p.freeAggs = append(p.freeAggs, a)
	}
}

// tickAggregatesLocked seals the aggregates whose linger time is over (all of them while a
// Flush waits) and tells soonest when the others' ends. In order, an aggregate whose shard
// has an aggregate on its way keeps filling after its linger time, up to maxAgg, until that
// one is done (releaseKeyLocked rings the pump then): sealed at once, it would only wait
// behind it, and the shard would get many small aggregates, one per request
// (BenchmarkProducer, aggregated/ordered). p.mu must be held.
func (p *Producer) tickAggregatesLocked(now time.Time, soonest func(time.Time)) {
	for _, a := range p.aggs {
		switch {
		case p.flushing > 0:
			p.sealAggregateLocked(a, now)
		case now.Before(a.deadline):
			soonest(a.deadline)
		case !p.shardBusyLocked(a.shard):
			p.sealAggregateLocked(a, now)
		}
	}
}

// shardBusyLocked reports whether, in order, an aggregate of shard is on its way or waiting
// to be sent. p.mu must be held.
func (p *Producer) shardBusyLocked(shard uint32) bool {
	if p.keys == nil {
		return false
	}
	ord, ok := p.ordKeys[shard]
	return ok && p.keys[ord] != nil
}

// rerouteLocked handles an aggregated record appended to another shard than the one its
// records were grouped for (the shard map changed): a consumer reading that shard drops it
// if any of its records belongs elsewhere (see Deaggregator), so, as the KPL does, its
// records are aggregated again once the shard map is refreshed. Records that did belong to
// that shard may then be read twice. A record rerouted maxReroutes times, or out of attempts
// or time, fails with ErrMisrouted: its shard map is not being refreshed, and each reroute
// appends it again. p.mu must be held.
func (p *Producer) rerouteLocked(r *rec, shard uint32, now time.Time, done *[]*rec) {
	p.stats.Rerouted++
	for _, u := range r.subs {
		u.attempts += r.attempts
		u.reroutes++
		if u.reroutes >= maxReroutes || p.cfg.MaxAttempts > 0 && u.attempts >= p.cfg.MaxAttempts ||
			p.cfg.RecordTimeout > 0 && now.Sub(u.put) >= p.cfg.RecordTimeout {
			p.finishOneLocked(u, SeqNum{}, fmt.Errorf("%w: shard %d, not %d", ErrMisrouted, shard, r.shard), done)
			continue
		}
		p.rerouted = append(p.rerouted, u)
	}
	r.subs, r.data = nil, nil
	p.releaseKeyLocked(r, now)
}

// reaggregateLocked aggregates the rerouted records again, with the current shard map.
// p.mu must be held.
func (p *Producer) reaggregateLocked(now time.Time) {
	rs := p.rerouted
	p.rerouted = nil
	for _, u := range rs {
		p.aggregateLocked(u, now)
	}
	clear(rs)
}
