package main

import (
	"context"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sluice-streams/sluice/segment"
)

// The sweep suite: the put paths over a range of record sizes, and the latency paths at
// several percentiles, each beside the limit it is drawn against in the report.
//
//	limit_loopback_tcp        as in the e2e suite: one TCP connection, 1 MiB writes
//	sweep_native_put_<size>   native put, sweepBatch(size) records per request,
//	                          4 connections, durability none: data bytes/s against loopback
//	                          TCP (records/s is the value divided by the size, and in the note)
//	sweep_kinesis_put_<size>  PutRecords through the JSON API, the same batches
//	lat_fasthttp_100B_<q>     fasthttp, one connection, one 100-byte request at a time: the
//	                          round-trip latency at percentile q (p50, p90, p99, p99.9)
//	lat_put_none_<q>          one PutRecord at a time through the JSON API, durability none,
//	                          against lat_fasthttp_100B_<q>
//	lat_put_sync_<q>          the same with durability sync
//	lat_efo_<q>               one native put at a time, received by a native subscriber:
//	                          put → delivery, against lat_fasthttp_100B_<q>
//
// <size> is 100B, 1KiB, 10KiB or 100KiB. A latency figure is the median over the rounds of
// each round's percentile; a run of duration/3 holds a few thousand samples on this machine,
// so p99.9 rests on a handful of them (the note gives the count).
//
// No figure of this suite has a target: the targets are the e2e suite's. It is here to be
// drawn (report.go).

// sweepSizes are the record sizes of the put sweep, in bytes.
var sweepSizes = []int{100, 1 << 10, 10 << 10, 100 << 10}

// sweepRequestBytes bounds the data of one sweep request: under PutRecords' 5 MiB, with room
// for the partition keys.
const sweepRequestBytes = 4 << 20

// percentiles are the latency percentiles of the sweep, with the suffix of their names.
var percentiles = []struct {
	suffix string
	q      float64
}{{"p50", 0.50}, {"p90", 0.90}, {"p99", 0.99}, {"p99.9", 0.999}}

// latencyPaths are the latency paths of the sweep: the prefix of their names and what the
// report calls them. The first is the limit the others are compared with.
var latencyPaths = []struct{ prefix, label string }{
	{"lat_fasthttp_100B", "fasthttp 100 B round trip (limit)"},
	{"lat_put_none", "PutRecord, JSON API, durability none"},
	{"lat_put_sync", "PutRecord, JSON API, durability sync"},
	{"lat_efo", "native put → enhanced fan-out subscriber"},
}

// sizeName is how a record size appears in a name: 100B, 1KiB, 10KiB, 100KiB.
func sizeName(size int) string {
	if size >= 1<<10 && size%(1<<10) == 0 {
		return strconv.Itoa(size>>10) + "KiB"
	}
	return strconv.Itoa(size) + "B"
}

func sweepNativeName(size int) string  { return "sweep_native_put_" + sizeName(size) }
func sweepKinesisName(size int) string { return "sweep_kinesis_put_" + sizeName(size) }

// sweepBatch is the number of records per request at a record size: e2eBatch, or fewer when
// e2eBatch records would pass sweepRequestBytes.
func sweepBatch(size int) int { return max(1, min(e2eBatch, sweepRequestBytes/size)) }

func sweepSuite(ctx context.Context, cfg config) ([]result, error) {
	none, err := startE2EServer(filepath.Join(cfg.dir, "none"), segment.None)
	if err != nil {
		return nil, err
	}
	defer none.close()
	durable, err := startE2EServer(filepath.Join(cfg.dir, "sync"), segment.Sync)
	if err != nil {
		return nil, err
	}
	defer durable.close()
	lim, err := startLimitServers(cfg.dir)
	if err != nil {
		return nil, err
	}
	defer lim.close()

	ms := []measurement{{"limit_loopback_tcp", "B/s", measureLoopbackTCP}}
	for _, size := range sweepSizes {
		ms = append(ms,
			measurement{sweepNativeName(size), "B/s", func(ctx context.Context, d time.Duration) (float64, string, error) {
				return none.sweepNativePut(ctx, d, size)
			}},
			measurement{sweepKinesisName(size), "B/s", func(ctx context.Context, d time.Duration) (float64, string, error) {
				return none.sweepKinesisPut(ctx, d, size)
			}})
	}
	latFns := []func(context.Context, time.Duration) (latencies, error){
		lim.measureSmallLatency, none.putLatency, durable.putLatency, none.efoLatency,
	}
	// runRounds keeps one value per measurement and round: a latency run measures once and
	// keeps every percentile of that run here, its median becomes the value of the run.
	byPct := make([][][]float64, len(latencyPaths)) // path, percentile, round
	for i, p := range latencyPaths {
		byPct[i] = make([][]float64, len(percentiles))
		ms = append(ms, measurement{p.prefix, "µs", func(ctx context.Context, d time.Duration) (float64, string, error) {
			l, err := latFns[i](ctx, d)
			if err != nil {
				return 0, "", err
			}
			for j, pc := range percentiles {
				byPct[i][j] = append(byPct[i][j], l.quantile(pc.q))
			}
			return l.quantile(0.5), l.note(), nil
		}})
	}
	s, err := runRounds(ctx, cfg, ms)
	if err != nil {
		return nil, err
	}

	tcp, _ := s["limit_loopback_tcp"].median()
	out := []result{limitResult("limit_loopback_tcp", "B/s", s["limit_loopback_tcp"])}
	for _, size := range sweepSizes {
		out = append(out,
			pathResult(sweepNativeName(size), "B/s", s[sweepNativeName(size)], tcp, "limit_loopback_tcp", 0),
			pathResult(sweepKinesisName(size), "B/s", s[sweepKinesisName(size)], tcp, "limit_loopback_tcp", 0))
	}
	for j, pc := range percentiles {
		ref := &sampled{values: byPct[0][j], note: s[latencyPaths[0].prefix].note}
		refName := latencyPaths[0].prefix + "_" + pc.suffix
		out = append(out, limitResult(refName, "µs", ref))
		refValue, _ := ref.median()
		for i := 1; i < len(latencyPaths); i++ {
			p := &sampled{values: byPct[i][j], note: s[latencyPaths[i].prefix].note}
			r := pathResult(latencyPaths[i].prefix+"_"+pc.suffix, "µs", p, refValue, refName, 0)
			r.LowerIsBetter = true
			out = append(out, r)
		}
	}
	return out, nil
}

// sweepNativePut is nativePut with sweepBatch(size) records per request.
func (e *e2eServer) sweepNativePut(ctx context.Context, d time.Duration, size int) (float64, string, error) {
	r, err := e.nativePut(ctx, d, size, sweepBatch(size))
	return r.bytes, r.note(), err
}

// sweepKinesisPut is kinesisPut with sweepBatch(size) records of size bytes per request.
func (e *e2eServer) sweepKinesisPut(ctx context.Context, d time.Duration, size int) (float64, string, error) {
	r, err := e.kinesisPut(ctx, d, size, sweepBatch(size))
	return r.bytes, r.note(), err
}
