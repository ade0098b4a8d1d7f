package stream

import (
	"cmp"
	"math"
	"slices"
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
	DefaultOnDemandWindow    = 30 * 24 * time.Hour
)

// DemandRate is a write demand per second: the bytes (partition keys and data) and records
// asked of a shard or stream, accepted or throttled.
type DemandRate struct {
	Bytes, Records float64
}

// Add returns the sum of d and o.
func (d DemandRate) Add(o DemandRate) DemandRate {
	return DemandRate{Bytes: d.Bytes + o.Bytes, Records: d.Records + o.Records}
}

// Max returns the larger of d and o in each figure.
func (d DemandRate) Max(o DemandRate) DemandRate {
	return DemandRate{Bytes: math.Max(d.Bytes, o.Bytes), Records: math.Max(d.Records, o.Records)}
}

// demandSample is the write demand of a stream measured over one Maintain interval.
type demandSample struct {
	at   time.Time
	rate DemandRate
}

// ShardDemand is the write demand an engine counted on one shard between two TakeDemand
// calls: bytes and records asked, accepted or throttled.
type ShardDemand struct {
	Shard          ShardID
	Bytes, Records int64
}

// StreamDemand is the write demand an engine counted on the open shards of one on-demand
// stream (incarnation Gen) between two TakeDemand calls; shards with none are left out.
type StreamDemand struct {
	Stream string
	Gen    uint64
	Shards []ShardDemand
}

// TakeDemand returns the write demand counted on every on-demand stream's open shards since
// the previous call (or since the engine opened), and starts counting again from zero on
// every stream. Streams without demand are left out. With Options.SharedDemand it is how
// a cluster node learns the demand its Maintain no longer acts on (package cluster
// publishes it); on a single node Maintain takes the counters itself.
func (e *Engine) TakeDemand() []StreamDemand {
	streams := e.streamList()
	var out []StreamDemand
	for _, s := range streams {
		meta, set := s.meta.Load(), s.set.Load()
		sd := StreamDemand{Stream: meta.Name, Gen: meta.Gen}
		for id, sh := range set.shards {
			b, r := sh.demandBytes.Swap(0), sh.demandRecs.Swap(0)
			if info, ok := set.m.Lookup(id); ok && info.Open && r > 0 {
				sd.Shards = append(sd.Shards, ShardDemand{Shard: id, Bytes: b, Records: r})
			}
		}
		if meta.Mode == ModeOnDemand && len(sd.Shards) > 0 {
			slices.SortFunc(sd.Shards, func(a, b ShardDemand) int { return cmp.Compare(a.Shard, b.Shard) })
			out = append(out, sd)
		}
	}
	slices.SortFunc(out, func(a, b StreamDemand) int { return cmp.Compare(a.Stream, b.Stream) })
	return out
}

// scaleOnDemand splits the hottest shards of an on-demand stream whose writes asked for more
// than the shards allow since the previous call. It is called by Maintain on a single node
// (not with Options.SharedDemand, where the cluster's controller calls ScaleOnDemand).
func (s *Stream) scaleOnDemand(now time.Time) error {
	set := s.set.Load()
	s.mu.Lock()
	elapsed := now.Sub(s.lastScale)
	first := s.lastScale.IsZero()
	s.lastScale = now
	rates := make(map[ShardID]DemandRate, len(set.m.Open()))
	var total DemandRate
	for _, sh := range set.m.Open() {
		rt := set.shards[sh.ID]
		b, r := rt.demandBytes.Swap(0), rt.demandRecs.Swap(0)
		if first || elapsed <= 0 {
			continue
		}
		sec := elapsed.Seconds()
		d := DemandRate{Bytes: float64(b) / sec, Records: float64(r) / sec}
		total = total.Add(d)
		rates[sh.ID] = d
	}
	meta := s.meta.Load()
	if first || meta.Mode != ModeOnDemand {
		s.mu.Unlock()
		return nil
	}
	s.samples = append(s.samples, demandSample{at: now, rate: total})
	window := s.engine.opts.OnDemandWindow
	for len(s.samples) > 0 && now.Sub(s.samples[0].at) > window {
		s.samples = s.samples[1:]
	}
	var peak DemandRate
	for _, smp := range s.samples {
		peak = peak.Max(smp.rate)
	}
	s.mu.Unlock()
	_, err := s.splitHot(meta.Name, rates, peak)
	return err
}

// ScaleOnDemand is the on-demand decision of Maintain for a stream whose demand is measured
// elsewhere (Options.SharedDemand: the cluster's controller sums every node's): it splits
// the open shards of on-demand stream name (incarnation gen) whose demand in shards asks for
// more than a shard allows, hottest first, while the stream has fewer open shards than
// twice peak (the trailing peak of the stream's total demand) allows, within 200 MiB/s and
// MaxShardsPerStream. It returns how many shards it split. A stream that is not on-demand,
// or is another incarnation, is left alone.
func (e *Engine) ScaleOnDemand(name string, gen uint64, shards map[ShardID]DemandRate, peak DemandRate) (int, error) {
	s, err := e.stream(name)
	if err != nil {
		return 0, err
	}
	if meta := s.meta.Load(); meta.Gen != gen || meta.Mode != ModeOnDemand {
		return 0, nil
	}
	return s.splitHot(name, shards, peak)
}

// splitHot splits, hottest first, each open shard whose demand in rates asks for more than
// one shard's capacity, while the stream has fewer open shards than onDemandCeiling(peak).
// Each split checks the ceiling and the shard on the map it changes, so a split that another
// writer's resharding overtook changes nothing. It returns the splits made.
func (s *Stream) splitHot(name string, rates map[ShardID]DemandRate, peak DemandRate) (int, error) {
	e := s.engine
	type hot struct {
		id   ShardID
		need float64 // how many shards' worth of capacity it asked for
	}
	var hots []hot
	for _, sh := range s.set.Load().m.Open() {
		d := rates[sh.ID]
		need := math.Max(d.Bytes/float64(e.opts.Limits.scale(WriteBytesPerSec)), d.Records/float64(e.opts.Limits.scale(WriteRecordsPerSec)))
		if need > 1 {
			hots = append(hots, hot{sh.ID, need})
		}
	}
	slices.SortStableFunc(hots, func(a, b hot) int { return cmp.Compare(b.need, a.need) })
	ceiling := e.onDemandCeiling(peak)
	splits := 0
	for _, h := range hots {
		open, split := 0, false
		err := e.reshard(name, func(m *shardmap.Map) (*shardmap.Map, []shardmap.Change, error) {
			open = len(m.Open())
			sh, ok := m.Lookup(h.id)
			if open >= ceiling || !ok || !sh.Open {
				return m, nil, nil
			}
			nm, ch, err := m.Split(h.id, midpoint(sh.Range))
			split = err == nil
			return nm, []shardmap.Change{ch}, err
		})
		if err != nil {
			return splits, err
		}
		if open >= ceiling {
			break
		}
		if split {
			splits++
			e.opts.Logger.Info("on-demand stream split a hot shard", "stream", name, "shard", h.id.String(),
				"demand", h.need, "open", open+1, "ceiling", ceiling)
		}
	}
	return splits, nil
}

// onDemandCeiling is the most open shards an on-demand stream whose trailing peak demand is
// peak may have: twice the peak, at least the 4 shards it starts with, within 200 MiB/s and
// MaxShardsPerStream.
func (e *Engine) onDemandCeiling(peak DemandRate) int {
	byBytes := 2 * math.Min(peak.Bytes, OnDemandMaxBytesPerSec) / float64(e.opts.Limits.scale(WriteBytesPerSec))
	byRecs := 2 * math.Min(peak.Records, OnDemandMaxRecordsPerSec) / float64(e.opts.Limits.scale(WriteRecordsPerSec))
	ceiling := int(math.Max(defaultShardsOnDemand, math.Ceil(math.Max(byBytes, byRecs))))
	return min(ceiling, int(OnDemandMaxBytesPerSec/WriteBytesPerSec), e.opts.MaxShardsPerStream)
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
