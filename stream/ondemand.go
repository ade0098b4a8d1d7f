package stream

import (
	"math"
	"time"

	"github.com/sluice-streams/sluice/shardmap"
)

// On-demand capacity, as Kinesis defines it: a new on-demand stream starts with 4 shards
// (4 MiB/s in), and grows when its writes need more, up to twice the peak write throughput of
// a trailing window (Kinesis: 30 days; Options.OnDemandWindow) and never beyond 200 MiB/s and
// 200,000 records/s in.
const (
	OnDemandMaxBytesPerSec   = 200 << 20
	OnDemandMaxRecordsPerSec = 200_000
	defaultOnDemandWindow    = 30 * 24 * time.Hour
)

// demandSample is the write demand of a stream measured over one Maintain interval.
type demandSample struct {
	at    time.Time
	bytes float64 // bytes/s asked (accepted or throttled)
	recs  float64 // records/s asked
}

// scaleOnDemand splits the hottest shards of an on-demand stream whose writes asked for more
// than the shards allow since the previous call. It is called by Maintain.
func (s *Stream) scaleOnDemand(now time.Time) error {
	e := s.engine
	set := s.set.Load()
	s.mu.Lock()
	elapsed := now.Sub(s.lastScale)
	first := s.lastScale.IsZero()
	s.lastScale = now
	type hot struct {
		id   ShardID
		need float64 // how many shards' worth of capacity it asked for
	}
	var hots []hot
	var total demandSample
	for _, sh := range set.m.Open() {
		rt := set.shards[sh.ID]
		b, r := rt.demandBytes.Swap(0), rt.demandRecs.Swap(0)
		if first || elapsed <= 0 {
			continue
		}
		sec := elapsed.Seconds()
		br, rr := float64(b)/sec, float64(r)/sec
		total.bytes += br
		total.recs += rr
		need := math.Max(br/float64(e.opts.Limits.scale(WriteBytesPerSec)), rr/float64(e.opts.Limits.scale(WriteRecordsPerSec)))
		if need > 1 {
			hots = append(hots, hot{sh.ID, need})
		}
	}
	meta := s.meta.Load()
	if first || meta.Mode != ModeOnDemand {
		s.mu.Unlock()
		return nil
	}
	total.at = now
	s.samples = append(s.samples, total)
	window := e.opts.OnDemandWindow
	for len(s.samples) > 0 && now.Sub(s.samples[0].at) > window {
		s.samples = s.samples[1:]
	}
	var peak demandSample
	for _, smp := range s.samples {
		peak.bytes = math.Max(peak.bytes, smp.bytes)
		peak.recs = math.Max(peak.recs, smp.recs)
	}
	// The most open shards allowed: twice the peak, within the ceiling.
	byBytes := 2 * math.Min(peak.bytes, OnDemandMaxBytesPerSec) / float64(e.opts.Limits.scale(WriteBytesPerSec))
	byRecs := 2 * math.Min(peak.recs, OnDemandMaxRecordsPerSec) / float64(e.opts.Limits.scale(WriteRecordsPerSec))
	ceiling := int(math.Max(defaultShardsOnDemand, math.Ceil(math.Max(byBytes, byRecs))))
	ceiling = min(ceiling, int(OnDemandMaxBytesPerSec/WriteBytesPerSec), e.opts.MaxShardsPerStream)
	s.mu.Unlock()

	open := len(set.m.Open())
	for _, h := range hots {
		if open >= ceiling {
			break
		}
		sh, ok := set.m.Lookup(h.id)
		if !ok || !sh.Open {
			continue
		}
		mid := midpoint(sh.Range)
		err := e.reshard(meta.Name, func(m *shardmap.Map) (*shardmap.Map, []shardmap.Change, error) {
			nm, ch, err := m.Split(h.id, mid)
			return nm, []shardmap.Change{ch}, err
		})
		if err != nil {
			return err
		}
		open++
		e.opts.Logger.Info("on-demand stream split a hot shard", "stream", meta.Name, "shard", h.id.String(),
			"demand", h.need, "open", open, "ceiling", ceiling)
	}
	return nil
}

// midpoint returns the first key of the upper half of r: start + ceil((end - start) / 2),
// in 128-bit arithmetic (end - start + 1 would overflow for the whole space).
func midpoint(r shardmap.Range) shardmap.Key {
	dHi, dLo := r.End.Hi-r.Start.Hi, r.End.Lo-r.Start.Lo
	if r.End.Lo < r.Start.Lo {
		dHi--
	}
	half := shardmap.Key{Hi: dHi >> 1, Lo: dLo>>1 | dHi<<63}
	if dLo&1 == 1 {
		half.Lo++
		if half.Lo == 0 {
			half.Hi++
		}
	}
	k := shardmap.Key{Hi: r.Start.Hi + half.Hi, Lo: r.Start.Lo + half.Lo}
	if k.Lo < r.Start.Lo {
		k.Hi++
	}
	return k
}
