package server

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/sluice-streams/sluice/iam"
	"github.com/sluice-streams/sluice/stream"
)

// GET /metrics serves the engine's counters in the Prometheus exposition format (text,
// OpenMetrics or protobuf, as the scraper asks), with the process and Go runtime metrics.
// The engine counts on its data paths (package stream, metrics.go); this file only reads a
// snapshot of its counters when a scraper asks, so no request pays for Prometheus.
//
// Naming: every CloudWatch metric of Kinesis keeps its name, in snake case, behind a prefix
// that says its level: sluice_stream_… (label stream), sluice_shard_… (labels stream and
// shard) for the enhanced shard-level metrics, shown only for the metrics the stream's
// EnableEnhancedMonitoring lists. The SubscribeToShard metrics carry a consumer label, as
// CloudWatch reports them by StreamName and ConsumerName. Prometheus conventions apply on
// top: counters end in _total, byte counts in _bytes_total, latencies are histograms in
// seconds, and millisecond gauges are exported in seconds. README.md ("Metrics") has the
// table from each CloudWatch name to its Prometheus name.

// metricsNamespace prefixes every engine metric.
const metricsNamespace = "sluice"

// streamCounter is a stream-level counter and how to read it from a snapshot.
type streamCounter struct {
	desc  *prometheus.Desc
	value func(*stream.StreamMetrics) uint64
}

func newStreamDesc(name, cloudwatch, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metricsNamespace+"_stream_"+name,
		fmt.Sprintf("%s (CloudWatch %s).", help, cloudwatch), append([]string{"stream"}, labels...), nil)
}

var (
	streamCounters = []streamCounter{
		{newStreamDesc("incoming_bytes_total", "IncomingBytes", "Bytes (partition keys and data) appended by PutRecord and PutRecords"),
			func(m *stream.StreamMetrics) uint64 { return m.IncomingBytes }},
		{newStreamDesc("incoming_records_total", "IncomingRecords", "Records appended by PutRecord and PutRecords"),
			func(m *stream.StreamMetrics) uint64 { return m.IncomingRecords }},
		{newStreamDesc("put_record_bytes_total", "PutRecord.Bytes", "Bytes appended by PutRecord"),
			func(m *stream.StreamMetrics) uint64 { return m.PutRecordBytes }},
		{newStreamDesc("put_record_success_total", "PutRecord.Success", "PutRecord calls that appended their record"),
			func(m *stream.StreamMetrics) uint64 { return m.PutRecordSuccess }},
		{newStreamDesc("put_records_bytes_total", "PutRecords.Bytes", "Bytes appended by PutRecords"),
			func(m *stream.StreamMetrics) uint64 { return m.PutRecordsBytes }},
		{newStreamDesc("put_records_success_total", "PutRecords.Success", "PutRecords calls that appended at least one record"),
			func(m *stream.StreamMetrics) uint64 { return m.PutRecordsSuccess }},
		{newStreamDesc("get_records_bytes_total", "GetRecords.Bytes", "Bytes (partition keys and data) returned by GetRecords"),
			func(m *stream.StreamMetrics) uint64 { return m.GetRecordsBytes }},
		{newStreamDesc("get_records_records_total", "GetRecords.Records", "Records returned by GetRecords"),
			func(m *stream.StreamMetrics) uint64 { return m.GetRecordsRecords }},
		{newStreamDesc("get_records_success_total", "GetRecords.Success", "GetRecords calls answered"),
			func(m *stream.StreamMetrics) uint64 { return m.GetRecordsSuccess }},
		{newStreamDesc("write_provisioned_throughput_exceeded_total", "WriteProvisionedThroughputExceeded", "Records refused by a shard's write limit"),
			func(m *stream.StreamMetrics) uint64 { return m.WriteProvisionedThroughputExceeded }},
		{newStreamDesc("read_provisioned_throughput_exceeded_total", "ReadProvisionedThroughputExceeded", "GetRecords calls refused by a shard's read limit"),
			func(m *stream.StreamMetrics) uint64 { return m.ReadProvisionedThroughputExceeded }},
	}

	// PutRecords' records by outcome: their sum is PutRecords.TotalRecords.
	putRecordsRecords = newStreamDesc("put_records_records_total",
		"PutRecords.SuccessfulRecords, .FailedRecords and .ThrottledRecords; their sum is PutRecords.TotalRecords",
		"Records of PutRecords calls by result: successful, failed (internal failure) or throttled", "result")

	putRecordLatency  = newStreamDesc("put_record_latency_seconds", "PutRecord.Latency", "Time the engine took to answer PutRecord")
	putRecordsLatency = newStreamDesc("put_records_latency_seconds", "PutRecords.Latency", "Time the engine took to answer PutRecords")
	getRecordsLatency = newStreamDesc("get_records_latency_seconds", "GetRecords.Latency", "Time the engine took to answer GetRecords")

	iteratorAge = newStreamDesc("get_records_iterator_age_seconds", "GetRecords.IteratorAgeMilliseconds",
		"How far behind the tip the latest GetRecords call of a shard read, largest across the stream's shards")

	consumerCounters = []struct {
		desc  *prometheus.Desc
		value func(*stream.ConsumerMetrics) uint64
	}{
		{newStreamDesc("subscribe_to_shard_rate_exceeded_total", "SubscribeToShard.RateExceeded", "SubscribeToShard calls refused because the consumer's subscription to the shard is too recent", "consumer"),
			func(m *stream.ConsumerMetrics) uint64 { return m.SubscribeToShardRateExceeded }},
		{newStreamDesc("subscribe_to_shard_success_total", "SubscribeToShard.Success", "Subscriptions started", "consumer"),
			func(m *stream.ConsumerMetrics) uint64 { return m.SubscribeToShardSuccess }},
		{newStreamDesc("subscribe_to_shard_event_bytes_total", "SubscribeToShardEvent.Bytes", "Bytes (partition keys and data) pushed to the consumer", "consumer"),
			func(m *stream.ConsumerMetrics) uint64 { return m.EventBytes }},
		{newStreamDesc("subscribe_to_shard_event_records_total", "SubscribeToShardEvent.Records", "Records pushed to the consumer", "consumer"),
			func(m *stream.ConsumerMetrics) uint64 { return m.EventRecords }},
		{newStreamDesc("subscribe_to_shard_event_success_total", "SubscribeToShardEvent.Success", "Events pushed to the consumer, heartbeats included", "consumer"),
			func(m *stream.ConsumerMetrics) uint64 { return m.EventSuccess }},
	}
	eventBehind = newStreamDesc("subscribe_to_shard_event_behind_latest_seconds", "SubscribeToShardEvent.MillisBehindLatest",
		"How far behind the tip the latest event pushed to the consumer from a shard was, largest across the stream's shards", "consumer")
)

// shardMetric is a shard-level metric, exported for the streams whose enhanced monitoring
// lists its CloudWatch name.
type shardMetric struct {
	cloudwatch string // the name EnableEnhancedMonitoring takes
	desc       *prometheus.Desc
	kind       prometheus.ValueType
	value      func(*stream.ShardMetrics) float64
}

func newShardMetric(name, cloudwatch, help string, kind prometheus.ValueType, value func(*stream.ShardMetrics) float64) shardMetric {
	return shardMetric{cloudwatch: cloudwatch, kind: kind, value: value,
		desc: prometheus.NewDesc(metricsNamespace+"_shard_"+name,
			fmt.Sprintf("%s (CloudWatch %s, shown when enhanced monitoring enables it).", help, cloudwatch),
			[]string{"stream", "shard"}, nil)}
}

var shardMetrics = []shardMetric{
	newShardMetric("incoming_bytes_total", "IncomingBytes", "Bytes (partition keys and data) appended to the shard", prometheus.CounterValue,
		func(m *stream.ShardMetrics) float64 { return float64(m.IncomingBytes) }),
	newShardMetric("incoming_records_total", "IncomingRecords", "Records appended to the shard", prometheus.CounterValue,
		func(m *stream.ShardMetrics) float64 { return float64(m.IncomingRecords) }),
	newShardMetric("outgoing_bytes_total", "OutgoingBytes", "Bytes (partition keys and data) GetRecords returned from the shard", prometheus.CounterValue,
		func(m *stream.ShardMetrics) float64 { return float64(m.OutgoingBytes) }),
	newShardMetric("outgoing_records_total", "OutgoingRecords", "Records GetRecords returned from the shard", prometheus.CounterValue,
		func(m *stream.ShardMetrics) float64 { return float64(m.OutgoingRecords) }),
	newShardMetric("write_provisioned_throughput_exceeded_total", "WriteProvisionedThroughputExceeded", "Records refused by the shard's write limit", prometheus.CounterValue,
		func(m *stream.ShardMetrics) float64 { return float64(m.WriteProvisionedThroughputExceeded) }),
	newShardMetric("read_provisioned_throughput_exceeded_total", "ReadProvisionedThroughputExceeded", "GetRecords calls refused by the shard's read limit", prometheus.CounterValue,
		func(m *stream.ShardMetrics) float64 { return float64(m.ReadProvisionedThroughputExceeded) }),
	newShardMetric("iterator_age_seconds", "IteratorAgeMilliseconds", "How far behind the tip the latest GetRecords call of the shard read", prometheus.GaugeValue,
		func(m *stream.ShardMetrics) float64 { return float64(m.IteratorAgeMillis) / 1e3 }),
}

// engineCollector is a prometheus.Collector over an engine's metrics snapshot.
type engineCollector struct{ engine *stream.Engine }

func (c engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, sc := range streamCounters {
		ch <- sc.desc
	}
	for _, cc := range consumerCounters {
		ch <- cc.desc
	}
	for _, sm := range shardMetrics {
		ch <- sm.desc
	}
	for _, d := range []*prometheus.Desc{putRecordsRecords, putRecordLatency, putRecordsLatency, getRecordsLatency, iteratorAge, eventBehind} {
		ch <- d
	}
}

func (c engineCollector) Collect(ch chan<- prometheus.Metric) {
	bounds := stream.LatencyBounds()
	for _, m := range c.engine.Metrics() {
		name := m.Stream
		for _, sc := range streamCounters {
			ch <- prometheus.MustNewConstMetric(sc.desc, prometheus.CounterValue, float64(sc.value(&m)), name)
		}
		ch <- prometheus.MustNewConstMetric(putRecordsRecords, prometheus.CounterValue, float64(m.PutRecordsSuccessfulRecords), name, "successful")
		ch <- prometheus.MustNewConstMetric(putRecordsRecords, prometheus.CounterValue, float64(m.PutRecordsFailedRecords), name, "failed")
		ch <- prometheus.MustNewConstMetric(putRecordsRecords, prometheus.CounterValue, float64(m.PutRecordsThrottledRecords), name, "throttled")
		ch <- latencyHistogram(putRecordLatency, &m.PutRecordLatency, bounds, name)
		ch <- latencyHistogram(putRecordsLatency, &m.PutRecordsLatency, bounds, name)
		ch <- latencyHistogram(getRecordsLatency, &m.GetRecordsLatency, bounds, name)
		ch <- prometheus.MustNewConstMetric(iteratorAge, prometheus.GaugeValue, float64(m.GetRecordsIteratorAgeMillis)/1e3, name)
		for i := range m.Consumers {
			cm := &m.Consumers[i]
			for _, cc := range consumerCounters {
				ch <- prometheus.MustNewConstMetric(cc.desc, prometheus.CounterValue, float64(cc.value(cm)), name, cm.Consumer)
			}
			ch <- prometheus.MustNewConstMetric(eventBehind, prometheus.GaugeValue, float64(cm.EventMillisBehindLatest)/1e3, name, cm.Consumer)
		}
		for _, sm := range shardMetrics {
			if !m.ShardLevel(sm.cloudwatch) {
				continue
			}
			for i := range m.Shards {
				sh := &m.Shards[i]
				ch <- prometheus.MustNewConstMetric(sm.desc, sm.kind, sm.value(sh), name, sh.Shard)
			}
		}
	}
}

// latencyHistogram turns an engine latency snapshot into a Prometheus histogram in seconds.
func latencyHistogram(desc *prometheus.Desc, l *stream.Latency, bounds []time.Duration, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(bounds))
	var cum uint64
	for i, b := range bounds {
		cum += l.Counts[i]
		buckets[b.Seconds()] = cum
	}
	return prometheus.MustNewConstHistogram(desc, cum+l.Counts[len(bounds)], l.Sum.Seconds(), buckets, labels...)
}

// runtimeMetrics gathers the process and Go runtime metrics: one registry for the process,
// whatever the number of servers in it.
var runtimeMetrics = sync.OnceValue(func() prometheus.Gatherer {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
})

// serveMetrics answers GET /metrics. The registry is built for the scrape, so that a Server
// keeps no metrics state: registering the engine's few dozen descriptions costs little next
// to a scrape, which comes every few seconds at most.
// authorizeMetrics lets a request for /metrics through: any request without authorisation
// (no --iam), else a signed request of a user whose policies allow iam.GetMetrics on "*".
// The metrics name every stream, shard and consumer, which a caller without the right to
// list them must not learn.
func (s *Server) authorizeMetrics(ctx *fasthttp.RequestCtx) error {
	if !s.authorizing {
		return nil
	}
	p, err := s.auth.Authenticate(&ctx.Request)
	if err != nil {
		return err
	}
	c := s.newCall(ctx, iam.GetMetrics, p)
	defer c.release()
	return s.authorize(c, "*")
}

func (s *Server) serveMetrics(ctx *fasthttp.RequestCtx) {
	reg := prometheus.NewRegistry()
	forwarded := prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: metricsNamespace, Name: "forwarded_records_total",
		Help: "Records this node forwarded to the node leading their shard, which took them (0 on a single node)."},
		func() float64 { return float64(s.forwarded.Load()) })
	if err := errors.Join(reg.Register(engineCollector{s.engine}), reg.Register(forwarded), reg.Register(extraCollector{s.metrics})); err != nil {
		s.fail(ctx, toAPIError(err))
		return
	}
	h := promhttp.HandlerFor(prometheus.Gatherers{runtimeMetrics(), reg}, promhttp.HandlerOpts{
		ErrorLog: promLogger{s.log}, ErrorHandling: promhttp.ContinueOnError, EnableOpenMetrics: true})
	fasthttpadaptor.NewFastHTTPHandler(h)(ctx)
}

// Metric is one figure Options.Metrics gives /metrics: a counter or a gauge named
// sluice_<Name>. Every Metric of one Name has the same label names.
type Metric struct {
	Name    string
	Help    string
	Counter bool // a counter; else a gauge
	Value   float64
	// Labels are name, value pairs (a cluster node's shard figures: stream, shard, ...).
	Labels []string
}

// extraCollector exposes Options.Metrics. It describes nothing ahead (an unchecked
// collector): its figures are known only at the scrape.
type extraCollector struct{ f func() []Metric }

func (c extraCollector) Describe(chan<- *prometheus.Desc) {}

func (c extraCollector) Collect(ch chan<- prometheus.Metric) {
	if c.f == nil {
		return
	}
	for _, m := range c.f() {
		kind := prometheus.GaugeValue
		if m.Counter {
			kind = prometheus.CounterValue
		}
		var names, values []string
		for i := 0; i+1 < len(m.Labels); i += 2 {
			names, values = append(names, m.Labels[i]), append(values, m.Labels[i+1])
		}
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(metricsNamespace+"_"+m.Name, m.Help, names, nil), kind, m.Value, values...)
	}
}

// promLogger passes the exposition's errors to the server's logger.
type promLogger struct{ l *slog.Logger }

func (p promLogger) Println(v ...any) { p.l.Warn("metrics", "err", fmt.Sprint(v...)) }
