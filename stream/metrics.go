package stream

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-streams/sluice/segment"
)

// The engine counts what Kinesis reports to CloudWatch, so that every protocol in front of it
// is counted alike:
//
//   - per stream, always (IncomingBytes, PutRecords.Latency, GetRecords.Success, …);
//   - per shard, always: a handful of atomics per shard, cheap enough to keep whether or not
//     the stream's enhanced monitoring asks for them. An exporter shows a shard-level metric
//     only when StreamMetrics.ShardLevel says the stream enabled it;
//   - per enhanced fan-out consumer, for SubscribeToShard and its events, as CloudWatch
//     reports them by StreamName and ConsumerName.
//
// Bytes are a record's partition key plus its data: the size the write limit counts. Bytes out
// come from segment.View.Payload, added up by the read itself: a second pass over the frames
// to count them made BenchmarkGetRecords about a third slower.
//
// Latencies are measured on the engine's clock (Options.Now) from the moment the call found
// its stream to its answer; calls refused before that (unknown stream, invalid name) are not
// counted anywhere.
//
// Concurrency: the counters are typed atomics, added by the data paths without a lock (a few
// adds per call, not per record; BenchmarkPutRecords, BenchmarkGetRecords). A snapshot reads
// them one at a time, so two figures of one snapshot may be a call apart, and a histogram's
// Sum may lag its Counts by the calls in flight. The per-consumer table is guarded by
// streamMetrics.consMu and each consumer's per-shard gauges by consumerMetrics.mu; Subscribe,
// DeregisterConsumer and Metrics take them, never a record's path. A consumerMetrics.mu may be
// taken under consMu, never the reverse, and no other lock is taken under either.

// latencyBounds are the inclusive upper bounds of the latency histograms' buckets: 10 µs to
// 10 s in 1-2.5-5 steps, so that an append to the page cache and one that waits for an
// fdatasync land in buckets of their own. A call is placed by a linear scan: a few
// comparisons for the calls this engine answers in under a millisecond.
var latencyBounds = [...]time.Duration{
	10 * time.Microsecond, 25 * time.Microsecond, 50 * time.Microsecond,
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// LatencyBuckets is the number of buckets of a Latency: one per bound of LatencyBounds, and
// one for the longer calls.
const LatencyBuckets = len(latencyBounds) + 1

// LatencyBounds returns the inclusive upper bounds of a Latency's buckets, all but the last
// (which has none), in increasing order. The slice is the caller's.
func LatencyBounds() []time.Duration {
	b := latencyBounds
	return b[:]
}

// Latency is a snapshot of a latency histogram: Counts[i] is the number of calls that took at
// most LatencyBounds()[i] and more than the bound before it; Counts[LatencyBuckets-1] counts
// the calls longer than every bound. Sum is the total time of the calls counted.
type Latency struct {
	Counts [LatencyBuckets]uint64
	Sum    time.Duration
}

// Count returns the number of calls counted.
func (l *Latency) Count() uint64 {
	var n uint64
	for _, c := range l.Counts {
		n += c
	}
	return n
}

// latency is a histogram of call durations. Written by the data paths, read by Metrics.
type latency struct {
	counts [LatencyBuckets]atomic.Uint64
	sum    atomic.Int64 // nanoseconds
}

func (l *latency) observe(d time.Duration) {
	d = max(d, 0) // an injected clock may step back
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	l.counts[i].Add(1)
	l.sum.Add(int64(d))
}

func (l *latency) snapshot() Latency {
	var out Latency
	for i := range l.counts {
		out.Counts[i] = l.counts[i].Load()
	}
	out.Sum = time.Duration(l.sum.Load())
	return out
}

// streamMetrics are one stream's counters. The data paths add to them without a lock; Metrics
// reads them.
type streamMetrics struct {
	incomingBytes, incomingRecords      atomic.Uint64 // PutRecord and PutRecords, appended
	putRecordBytes, putRecordSuccess    atomic.Uint64
	putRecordsBytes, putRecordsSuccess  atomic.Uint64 // Success: calls with a record appended
	putRecordsOK, putRecordsFailed      atomic.Uint64 // records appended, failed internally
	putRecordsThrottled                 atomic.Uint64 // records refused by a shard's write limit
	getRecordsBytes, getRecordsRecords  atomic.Uint64
	getRecordsSuccess                   atomic.Uint64
	writeExceeded, readExceeded         atomic.Uint64 // records refused, GetRecords calls refused
	putRecordLatency, putRecordsLatency latency
	getRecordsLatency                   latency

	consMu    sync.Mutex
	consumers map[string]*consumerMetrics // by consumer name; guarded by consMu
}

// shardMetrics are one shard's counters: the enhanced (shard-level) metrics of Kinesis.
type shardMetrics struct {
	incomingBytes, incomingRecords atomic.Uint64
	outgoingBytes, outgoingRecords atomic.Uint64 // GetRecords
	writeExceeded, readExceeded    atomic.Uint64
	iteratorAge                    atomic.Int64 // milliseconds: the latest GetRecords' MillisBehindLatest
}

// consumerMetrics are one enhanced fan-out consumer's counters.
type consumerMetrics struct {
	rateExceeded, success                atomic.Uint64 // SubscribeToShard calls
	eventBytes, eventRecords, eventCount atomic.Uint64 // SubscribeToShardEvents sent

	mu     sync.Mutex
	behind map[ShardID]*atomic.Int64 // shard → latest event's MillisBehindLatest; guarded by mu
}

// putTally is the outcome of one put call's records, counted as they are routed and appended.
type putTally struct {
	records, bytes    int // appended
	throttled, failed int // refused by a write limit, failed internally
}

// putDone counts a PutRecord (single) or PutRecords call that found its stream.
func (m *streamMetrics) putDone(single bool, t *putTally, d time.Duration) {
	if t.records > 0 {
		m.incomingRecords.Add(uint64(t.records))
		m.incomingBytes.Add(uint64(t.bytes))
	}
	if t.throttled > 0 {
		m.writeExceeded.Add(uint64(t.throttled))
	}
	if single {
		m.putRecordLatency.observe(d)
		if t.records > 0 {
			m.putRecordSuccess.Add(1)
			m.putRecordBytes.Add(uint64(t.bytes))
		}
		return
	}
	m.putRecordsLatency.observe(d)
	if t.records > 0 {
		m.putRecordsSuccess.Add(1)
		m.putRecordsOK.Add(uint64(t.records))
		m.putRecordsBytes.Add(uint64(t.bytes))
	}
	if t.throttled > 0 {
		m.putRecordsThrottled.Add(uint64(t.throttled))
	}
	if t.failed > 0 {
		m.putRecordsFailed.Add(uint64(t.failed))
	}
}

// appended counts a batch of n records of the given bytes appended to a shard.
func (sm *shardMetrics) appended(n, bytes int) {
	sm.incomingRecords.Add(uint64(n))
	sm.incomingBytes.Add(uint64(bytes))
}

// throttledWrite counts a record refused by the shard's write limit.
func (sm *shardMetrics) throttledWrite() { sm.writeExceeded.Add(1) }

// throttledRead counts a GetRecords call refused by the shard's read limit.
func (m *streamMetrics) throttledRead(sm *shardMetrics) {
	m.readExceeded.Add(1)
	sm.readExceeded.Add(1)
}

// read counts a successful GetRecords call of the shard.
func (m *streamMetrics) read(sm *shardMetrics, v *segment.View, millisBehind int64) {
	m.getRecordsSuccess.Add(1)
	if v.Count > 0 {
		m.getRecordsRecords.Add(uint64(v.Count))
		m.getRecordsBytes.Add(uint64(v.Payload))
		sm.outgoingRecords.Add(uint64(v.Count))
		sm.outgoingBytes.Add(uint64(v.Payload))
	}
	sm.iteratorAge.Store(millisBehind)
}

// consumer returns the counters of the named consumer, created on first use.
func (m *streamMetrics) consumer(name string) *consumerMetrics {
	m.consMu.Lock()
	defer m.consMu.Unlock()
	cm := m.consumers[name]
	if cm == nil {
		if m.consumers == nil {
			m.consumers = map[string]*consumerMetrics{}
		}
		cm = &consumerMetrics{}
		m.consumers[name] = cm
	}
	return cm
}

// dropConsumer forgets a deregistered consumer's counters.
func (m *streamMetrics) dropConsumer(name string) {
	m.consMu.Lock()
	delete(m.consumers, name)
	m.consMu.Unlock()
}

// shard returns the consumer's MillisBehindLatest gauge for a shard, created on first use.
func (cm *consumerMetrics) shard(id ShardID) *atomic.Int64 {
	cm.mu.Lock()
	defer cm.mu.Unlock()
	g := cm.behind[id]
	if g == nil {
		if cm.behind == nil {
			cm.behind = map[ShardID]*atomic.Int64{}
		}
		g = new(atomic.Int64)
		cm.behind[id] = g
	}
	return g
}

// sent counts a SubscribeToShardEvent about to be returned by Subscription.Next.
func (sub *Subscription) sent(ev *Event) {
	cm := sub.metrics
	cm.eventCount.Add(1)
	if ev.Records.Count > 0 {
		cm.eventRecords.Add(uint64(ev.Records.Count))
		cm.eventBytes.Add(uint64(ev.Records.Payload))
	}
	sub.behind.Store(ev.MillisBehind)
}

// StreamMetrics is a snapshot of one stream's metrics, named after the CloudWatch metrics of
// Kinesis (namespace AWS/Kinesis, dimension StreamName). Counters count from the moment the
// stream was opened by this process; gauges hold the latest value.
type StreamMetrics struct {
	Stream string
	// ShardLevelMetrics are the shard-level metrics the stream's enhanced monitoring enables
	// (EnableEnhancedMonitoring), ALL expanded, in the model's order.
	ShardLevelMetrics []string

	IncomingBytes   uint64 // bytes appended by PutRecord and PutRecords
	IncomingRecords uint64 // records appended by PutRecord and PutRecords

	PutRecordBytes   uint64 // bytes appended by PutRecord
	PutRecordSuccess uint64 // PutRecord calls that appended their record
	PutRecordLatency Latency

	PutRecordsBytes             uint64 // bytes appended by PutRecords
	PutRecordsSuccess           uint64 // PutRecords calls that appended at least one record
	PutRecordsSuccessfulRecords uint64 // records appended by PutRecords (also PutRecords.Records)
	PutRecordsFailedRecords     uint64 // records of PutRecords that failed internally
	PutRecordsThrottledRecords  uint64 // records of PutRecords refused by a shard's write limit
	PutRecordsLatency           Latency

	GetRecordsBytes   uint64 // bytes returned by GetRecords
	GetRecordsRecords uint64 // records returned by GetRecords
	GetRecordsSuccess uint64 // GetRecords calls answered with records or none
	GetRecordsLatency Latency
	// GetRecordsIteratorAgeMillis is the largest, across the stream's shards, of the
	// MillisBehindLatest of the latest GetRecords call of each shard.
	GetRecordsIteratorAgeMillis int64

	WriteProvisionedThroughputExceeded uint64 // records refused by a shard's write limit
	ReadProvisionedThroughputExceeded  uint64 // GetRecords calls refused by a shard's read limit

	Consumers []ConsumerMetrics // the registered consumers, by name
	Shards    []ShardMetrics    // every shard the stream holds, in id order
}

// ShardLevel reports whether the stream's enhanced monitoring enables a shard-level metric
// (one of ShardLevelMetrics): an exporter shows the Shards figure of that metric only then.
func (m *StreamMetrics) ShardLevel(metric string) bool {
	for _, n := range m.ShardLevelMetrics {
		if n == metric {
			return true
		}
	}
	return false
}

// ConsumerMetrics is a snapshot of one enhanced fan-out consumer's metrics (CloudWatch
// dimensions StreamName and ConsumerName).
type ConsumerMetrics struct {
	Consumer                     string
	SubscribeToShardRateExceeded uint64 // refused: another subscription of the consumer and shard is too recent
	SubscribeToShardSuccess      uint64 // subscriptions started
	EventBytes                   uint64 // SubscribeToShardEvent.Bytes
	EventRecords                 uint64 // SubscribeToShardEvent.Records
	EventSuccess                 uint64 // SubscribeToShardEvent.Success: events sent, heartbeats included
	// EventMillisBehindLatest is the largest, across the stream's shards, of the
	// MillisBehindLatest of the latest event sent to the consumer from each shard.
	EventMillisBehindLatest int64
}

// ShardMetrics is a snapshot of one shard's metrics (CloudWatch dimensions StreamName and
// ShardId), the ones EnableEnhancedMonitoring names.
type ShardMetrics struct {
	Shard                              string // shardId-…
	IncomingBytes                      uint64
	IncomingRecords                    uint64
	OutgoingBytes                      uint64 // GetRecords
	OutgoingRecords                    uint64 // GetRecords
	WriteProvisionedThroughputExceeded uint64
	ReadProvisionedThroughputExceeded  uint64
	IteratorAgeMillis                  int64 // IteratorAgeMilliseconds: the latest GetRecords' MillisBehindLatest
}

// Metrics returns a snapshot of every stream's metrics, in name order. It takes no lock the
// data paths take; it is meant for a scrape, not for a data path.
func (e *Engine) Metrics() []StreamMetrics {
	streams := e.streamList()
	out := make([]StreamMetrics, 0, len(streams))
	for _, s := range streams {
		out = append(out, s.metricsSnapshot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Stream < out[j].Stream })
	return out
}

func (s *Stream) metricsSnapshot() StreamMetrics {
	meta, set := s.meta.Load(), s.set.Load()
	m := &s.metrics
	out := StreamMetrics{
		Stream:            meta.Name,
		ShardLevelMetrics: append([]string{}, meta.Metrics...),

		IncomingBytes:   m.incomingBytes.Load(),
		IncomingRecords: m.incomingRecords.Load(),

		PutRecordBytes:   m.putRecordBytes.Load(),
		PutRecordSuccess: m.putRecordSuccess.Load(),
		PutRecordLatency: m.putRecordLatency.snapshot(),

		PutRecordsBytes:             m.putRecordsBytes.Load(),
		PutRecordsSuccess:           m.putRecordsSuccess.Load(),
		PutRecordsSuccessfulRecords: m.putRecordsOK.Load(),
		PutRecordsFailedRecords:     m.putRecordsFailed.Load(),
		PutRecordsThrottledRecords:  m.putRecordsThrottled.Load(),
		PutRecordsLatency:           m.putRecordsLatency.snapshot(),

		GetRecordsBytes:   m.getRecordsBytes.Load(),
		GetRecordsRecords: m.getRecordsRecords.Load(),
		GetRecordsSuccess: m.getRecordsSuccess.Load(),
		GetRecordsLatency: m.getRecordsLatency.snapshot(),

		WriteProvisionedThroughputExceeded: m.writeExceeded.Load(),
		ReadProvisionedThroughputExceeded:  m.readExceeded.Load(),
	}
	ids := make([]ShardID, 0, len(set.shards))
	for id := range set.shards {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	out.Shards = make([]ShardMetrics, 0, len(ids))
	for _, id := range ids {
		sm := &set.shards[id].metrics
		age := sm.iteratorAge.Load()
		out.GetRecordsIteratorAgeMillis = max(out.GetRecordsIteratorAgeMillis, age)
		out.Shards = append(out.Shards, ShardMetrics{
			Shard:                              id.String(),
			IncomingBytes:                      sm.incomingBytes.Load(),
			IncomingRecords:                    sm.incomingRecords.Load(),
			OutgoingBytes:                      sm.outgoingBytes.Load(),
			OutgoingRecords:                    sm.outgoingRecords.Load(),
			WriteProvisionedThroughputExceeded: sm.writeExceeded.Load(),
			ReadProvisionedThroughputExceeded:  sm.readExceeded.Load(),
			IteratorAgeMillis:                  age,
		})
	}
	names := make([]string, 0, len(meta.Consumers))
	for _, c := range meta.Consumers {
		names = append(names, c.Name)
	}
	sort.Strings(names)
	m.consMu.Lock()
	defer m.consMu.Unlock()
	for _, name := range names {
		cs := ConsumerMetrics{Consumer: name}
		if cm := m.consumers[name]; cm != nil {
			cs.SubscribeToShardRateExceeded = cm.rateExceeded.Load()
			cs.SubscribeToShardSuccess = cm.success.Load()
			cs.EventBytes = cm.eventBytes.Load()
			cs.EventRecords = cm.eventRecords.Load()
			cs.EventSuccess = cm.eventCount.Load()
			cm.mu.Lock()
			for id, g := range cm.behind {
				if _, held := set.shards[id]; held {
					cs.EventMillisBehindLatest = max(cs.EventMillisBehindLatest, g.Load())
				}
			}
			cm.mu.Unlock()
		}
		out.Consumers = append(out.Consumers, cs)
	}
	return out
}
