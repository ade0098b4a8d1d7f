package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/internal/vfs"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/shardmap"
)

// metricsOf returns the snapshot of one stream.
func metricsOf(t *testing.T, e *Engine, name string) StreamMetrics {
	t.Helper()
	for _, m := range e.Metrics() {
		if m.Stream == name {
			return m
		}
	}
	t.Fatalf("no metrics for stream %s", name)
	return StreamMetrics{}
}

// counters returns a snapshot's stream-level figures by CloudWatch name; a histogram gives
// its number of calls as "<name>#count".
func counters(m StreamMetrics) map[string]uint64 {
	return map[string]uint64{
		"IncomingBytes":                      m.IncomingBytes,
		"IncomingRecords":                    m.IncomingRecords,
		"PutRecord.Bytes":                    m.PutRecordBytes,
		"PutRecord.Success":                  m.PutRecordSuccess,
		"PutRecord.Latency#count":            m.PutRecordLatency.Count(),
		"PutRecords.Bytes":                   m.PutRecordsBytes,
		"PutRecords.Success":                 m.PutRecordsSuccess,
		"PutRecords.SuccessfulRecords":       m.PutRecordsSuccessfulRecords,
		"PutRecords.FailedRecords":           m.PutRecordsFailedRecords,
		"PutRecords.ThrottledRecords":        m.PutRecordsThrottledRecords,
		"PutRecords.Latency#count":           m.PutRecordsLatency.Count(),
		"GetRecords.Bytes":                   m.GetRecordsBytes,
		"GetRecords.Records":                 m.GetRecordsRecords,
		"GetRecords.Success":                 m.GetRecordsSuccess,
		"GetRecords.Latency#count":           m.GetRecordsLatency.Count(),
		"GetRecords.IteratorAgeMilliseconds": uint64(m.GetRecordsIteratorAgeMillis),
		"WriteProvisionedThroughputExceeded": m.WriteProvisionedThroughputExceeded,
		"ReadProvisionedThroughputExceeded":  m.ReadProvisionedThroughputExceeded,
	}
}

// zeroCounters returns counters with every figure zero but the ones given.
func zeroCounters(set map[string]uint64) map[string]uint64 {
	out := counters(StreamMetrics{})
	for k, v := range set {
		if _, ok := out[k]; !ok {
			panic("unknown counter " + k)
		}
		out[k] = v
	}
	return out
}

func sameCounters(t *testing.T, what string, got, want map[string]uint64) {
	t.Helper()
	if maps.Equal(got, want) {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if got[k] != want[k] {
			t.Errorf("%s: %s = %d, want %d", what, k, got[k], want[k])
		}
	}
	t.FailNow()
}

// shardTotals are the shard-level figures a test expects of one shard.
type shardTotals struct{ inRecs, inBytes, outRecs, outBytes, writeExc, readExc uint64 }

func shardFigures(s ShardMetrics) shardTotals {
	return shardTotals{s.IncomingRecords, s.IncomingBytes, s.OutgoingRecords, s.OutgoingBytes,
		s.WriteProvisionedThroughputExceeded, s.ReadProvisionedThroughputExceeded}
}

func sameShards(t *testing.T, m StreamMetrics, want map[string]shardTotals) {
	t.Helper()
	if len(m.Shards) != len(want) {
		t.Fatalf("%d shards in the metrics, want %d", len(m.Shards), len(want))
	}
	for _, s := range m.Shards {
		if got := shardFigures(s); got != want[s.Shard] {
			t.Fatalf("shard %s: %+v, want %+v", s.Shard, got, want[s.Shard])
		}
	}
}

func TestMetricsPutAndGet(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "off")
	defer e.Close()
	for _, in := range []CreateStreamInput{{Name: "s", ShardCount: 2}, {Name: "other", ShardCount: 1}} {
		if err := e.CreateStream(in); err != nil {
			t.Fatal(err)
		}
	}
	shards := map[string]shardTotals{"shardId-000000000000": {}, "shardId-000000000001": {}}
	var entries []PutEntry
	var putsBytes uint64
	for i := range 12 {
		en := PutEntry{PartitionKey: fmt.Sprintf("key-%d", i), Data: bytes.Repeat([]byte{'x'}, i+1)}
		entries = append(entries, en)
		putsBytes += uint64(len(en.PartitionKey) + len(en.Data))
	}
	res, err := e.PutRecords("s", entries)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		st := shards[r.Shard.String()]
		st.inRecs++
		st.inBytes += uint64(len(entries[i].PartitionKey) + len(entries[i].Data))
		shards[r.Shard.String()] = st
	}
	one, err := e.PutRecord("s", PutEntry{PartitionKey: "single", Data: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	st := shards[one.Shard.String()]
	st.inRecs++
	st.inBytes += uint64(len("single") + len("hello"))
	shards[one.Shard.String()] = st
	if shards["shardId-000000000000"].inRecs == 0 || shards["shardId-000000000001"].inRecs == 0 {
		t.Fatalf("the keys did not reach both shards: %+v", shards)
	}
	// A call refused for its input counts in the latency only; one to a missing stream
	// counts nowhere.
	if _, err := e.PutRecords("s", nil); !errors.Is(err, ErrValidation) {
		t.Fatalf("empty PutRecords: %v", err)
	}
	if _, err := e.PutRecords("missing", entries); !errors.Is(err, ErrResourceNotFound) {
		t.Fatalf("PutRecords to a missing stream: %v", err)
	}
	want := map[string]uint64{
		"IncomingRecords": 13, "IncomingBytes": putsBytes + 11,
		"PutRecord.Success": 1, "PutRecord.Bytes": 11, "PutRecord.Latency#count": 1,
		"PutRecords.Success": 1, "PutRecords.SuccessfulRecords": 12, "PutRecords.Bytes": putsBytes,
		"PutRecords.Latency#count": 2,
	}
	sameCounters(t, "after the puts", counters(metricsOf(t, e, "s")), zeroCounters(want))
	sameShards(t, metricsOf(t, e, "s"), shards)

	// Read each shard to its end: one call with every record, one with none.
	for _, id := range []ShardID{0, 1} {
		it, err := e.GetShardIterator(IteratorInput{Stream: "s", Shard: id, Type: TrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			r, err := e.GetRecords(it, 100)
			if err != nil {
				t.Fatal(err)
			}
			it = r.NextIterator
			r.Release()
		}
		st := shards[id.String()]
		st.outRecs, st.outBytes = st.inRecs, st.inBytes
		shards[id.String()] = st
	}
	if _, err := e.GetRecords("forged", 100); err == nil {
		t.Fatal("a forged iterator was accepted")
	}
	want["GetRecords.Records"], want["GetRecords.Bytes"] = 13, putsBytes+11
	want["GetRecords.Success"], want["GetRecords.Latency#count"] = 4, 4
	m := metricsOf(t, e, "s")
	sameCounters(t, "after the reads", counters(m), zeroCounters(want))
	sameShards(t, m, shards)
	sameCounters(t, "the other stream", counters(metricsOf(t, e, "other")), zeroCounters(nil))
	// The engine's clock stood still: every call took no time.
	if m.PutRecordsLatency.Counts[0] != 2 || m.PutRecordsLatency.Sum != 0 {
		t.Fatalf("PutRecords latency on a still clock: %+v", m.PutRecordsLatency)
	}
	if names := []string{e.Metrics()[0].Stream, e.Metrics()[1].Stream}; names[0] != "other" || names[1] != "s" {
		t.Fatalf("streams in the snapshot: %v, want name order", names)
	}
}

func TestMetricsIteratorAge(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "off")
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 2}); err != nil {
		t.Fatal(err)
	}
	zero, err := shardmap.ParseKey("0")
	if err != nil {
		t.Fatal(err)
	}
	// Two records on shard 0, 1.5 s apart.
	for range 2 {
		res, err := e.PutRecords("s", []PutEntry{{PartitionKey: "k", ExplicitHashKey: &zero, Data: []byte("d")}})
		if err != nil || res[0].Err != nil || res[0].Shard != 0 {
			t.Fatal(err, res[0])
		}
		c.Advance(1500 * time.Millisecond)
	}
	it, err := e.GetShardIterator(IteratorInput{Stream: "s", Shard: 0, Type: TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	age := func() (stream, shard0, shard1 int64) {
		m := metricsOf(t, e, "s")
		return m.GetRecordsIteratorAgeMillis, m.Shards[0].IteratorAgeMillis, m.Shards[1].IteratorAgeMillis
	}
	r, err := e.GetRecords(it, 1)
	if err != nil || r.Records.Count != 1 || r.MillisBehind != 1500 {
		t.Fatalf("first read: %d records, %d ms behind, %v", r.Records.Count, r.MillisBehind, err)
	}
	r.Release()
	if s, s0, s1 := age(); s != 1500 || s0 != 1500 || s1 != 0 {
		t.Fatalf("iterator age after a read 1.5 s behind: stream %d, shards %d %d", s, s0, s1)
	}
	r, err = e.GetRecords(r.NextIterator, 1)
	if err != nil || r.Records.Count != 1 || r.MillisBehind != 0 {
		t.Fatalf("second read: %d records, %d ms behind, %v", r.Records.Count, r.MillisBehind, err)
	}
	r.Release()
	if s, s0, s1 := age(); s != 0 || s0 != 0 || s1 != 0 {
		t.Fatalf("iterator age once caught up: stream %d, shards %d %d", s, s0, s1)
	}
}

func TestMetricsThrottling(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	// A hundredth of Kinesis: 10 records/s in, 1 GetRecords call/s.
	e := testEngine(t, t.TempDir(), c, "scaled:0.01")
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	entries := make([]PutEntry, 15)
	for i := range entries {
		entries[i] = PutEntry{PartitionKey: "k", Data: []byte("ab")}
	}
	res, err := e.PutRecords("s", entries)
	if err != nil {
		t.Fatal(err)
	}
	throttled := 0
	for _, r := range res {
		if errors.Is(r.Err, ErrProvisionedThroughputExceeded) {
			throttled++
		}
	}
	if throttled != 5 {
		t.Fatalf("%d records throttled, want 5", throttled)
	}
	if _, err := e.PutRecord("s", PutEntry{PartitionKey: "k", Data: []byte("ab")}); !errors.Is(err, ErrProvisionedThroughputExceeded) {
		t.Fatalf("PutRecord past the limit: %v", err)
	}
	it, err := e.GetShardIterator(IteratorInput{Stream: "s", Shard: 0, Type: TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.GetRecords(it, 100)
	if err != nil {
		t.Fatal(err)
	}
	r.Release()
	if _, err := e.GetRecords(r.NextIterator, 100); !errors.Is(err, ErrProvisionedThroughputExceeded) {
		t.Fatalf("second GetRecords in a second: %v", err)
	}
	want := zeroCounters(map[string]uint64{
		"IncomingRecords": 10, "IncomingBytes": 30,
		"PutRecord.Latency#count": 1,
		"PutRecords.Success":      1, "PutRecords.SuccessfulRecords": 10, "PutRecords.ThrottledRecords": 5,
		"PutRecords.Bytes": 30, "PutRecords.Latency#count": 1,
		"WriteProvisionedThroughputExceeded": 6,
		"GetRecords.Records":                 10, "GetRecords.Bytes": 30, "GetRecords.Success": 1,
		"GetRecords.Latency#count":          2,
		"ReadProvisionedThroughputExceeded": 1,
	})
	m := metricsOf(t, e, "s")
	sameCounters(t, "throttled", counters(m), want)
	sameShards(t, m, map[string]shardTotals{"shardId-000000000000": {inRecs: 10, inBytes: 30, outRecs: 10, outBytes: 30, writeExc: 6, readExc: 1}})
}

// failingFS fails every fsync of a data file while fail is set.
type failingFS struct {
	vfs.FS
	fail *atomic.Bool
}

func (f failingFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return failingFile{file, f.fail}, nil
}

type failingFile struct {
	vfs.File
	fail *atomic.Bool
}

func (f failingFile) Sync() error {
	if f.fail.Load() {
		return errors.New("injected fsync failure")
	}
	return f.File.Sync()
}

func TestMetricsFailedRecords(t *testing.T) {
	fail := new(atomic.Bool)
	e, err := Open(Options{Dir: t.TempDir(), FS: failingFS{vfs.OS, fail}, Limits: Limits{Off: true, Factor: 1},
		SegmentSize: segment.MinSegmentSize, Durability: segment.Durability{Mode: segment.Sync}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	res, err := e.PutRecords("s", []PutEntry{{PartitionKey: "a", Data: []byte("1")}, {PartitionKey: "b", Data: []byte("2")}, {PartitionKey: "c", Data: []byte("3")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err == nil {
			t.Fatal("a record was acknowledged although its fsync failed")
		}
	}
	sameCounters(t, "failed appends", counters(metricsOf(t, e, "s")), zeroCounters(map[string]uint64{
		"PutRecords.FailedRecords": 3, "PutRecords.Latency#count": 1}))
}

func TestMetricsSubscriptions(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e, err := Open(Options{Dir: t.TempDir(), Now: c.Now, Limits: Limits{Off: true, Factor: 1},
		SegmentSize: 8 << 20, Durability: segment.Durability{Mode: segment.None}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	app, err := e.RegisterConsumer("s", "app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.RegisterConsumer("s", "idle"); err != nil {
		t.Fatal(err)
	}
	// Three records of 1 MiB, a second apart: an event carries 2 MiB of frames at most, so
	// the first event holds one record, 2 s behind the last.
	big := bytes.Repeat([]byte{'z'}, 1<<20)
	for range 3 {
		if _, err := e.PutRecord("s", PutEntry{PartitionKey: "k", Data: big}); err != nil {
			t.Fatal(err)
		}
		c.Advance(time.Second)
	}
	sub, err := e.Subscribe(SubscribeInput{ConsumerARN: app.ARN, Shard: 0, Type: TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if _, err := e.Subscribe(SubscribeInput{ConsumerARN: app.ARN, Shard: 0, Type: TrimHorizon}); !errors.Is(err, ErrResourceInUse) {
		t.Fatalf("a second subscription within 5 s: %v", err)
	}
	ev, err := next(t, sub)
	if err != nil || ev.Records.Count != 1 || ev.MillisBehind != 2000 {
		t.Fatalf("first event: %d records, %d ms behind, %v", ev.Records.Count, ev.MillisBehind, err)
	}
	ev.Release()
	consumer := func(name string) ConsumerMetrics {
		t.Helper()
		m := metricsOf(t, e, "s")
		for _, cm := range m.Consumers {
			if cm.Consumer == name {
				return cm
			}
		}
		t.Fatalf("no metrics for consumer %s: %+v", name, m.Consumers)
		return ConsumerMetrics{}
	}
	rec := uint64(1 + len(big))
	want := ConsumerMetrics{Consumer: "app", SubscribeToShardRateExceeded: 1, SubscribeToShardSuccess: 1,
		EventBytes: rec, EventRecords: 1, EventSuccess: 1, EventMillisBehindLatest: 2000}
	if got := consumer("app"); got != want {
		t.Fatalf("after one event:\n got %+v\nwant %+v", got, want)
	}
	ev, err = next(t, sub)
	if err != nil || ev.Records.Count != 1 || ev.MillisBehind != 1000 {
		t.Fatalf("second event: %d records, %d ms behind, %v", ev.Records.Count, ev.MillisBehind, err)
	}
	ev.Release()
	ev, err = next(t, sub)
	if err != nil || ev.Records.Count != 1 || ev.MillisBehind != 0 {
		t.Fatalf("third event: %d records, %d ms behind, %v", ev.Records.Count, ev.MillisBehind, err)
	}
	ev.Release()
	want.EventBytes, want.EventRecords, want.EventSuccess, want.EventMillisBehindLatest = 3*rec, 3, 3, 0
	if got := consumer("app"); got != want {
		t.Fatalf("after three events:\n got %+v\nwant %+v", got, want)
	}
	// The end of the shard is an event too.
	if err := e.SplitShard("s", 0, mustKey(t, "1000")); err != nil {
		t.Fatal(err)
	}
	ev, err = next(t, sub)
	if err != nil || len(ev.ChildShards) != 2 {
		t.Fatalf("end of shard event: %+v %v", ev.ChildShards, err)
	}
	want.EventSuccess = 4
	if got := consumer("app"); got != want {
		t.Fatalf("after the end of the shard:\n got %+v\nwant %+v", got, want)
	}
	// A consumer that never subscribed reports zeros; a deregistered one is gone.
	if got := consumer("idle"); got != (ConsumerMetrics{Consumer: "idle"}) {
		t.Fatalf("idle consumer: %+v", got)
	}
	if err := e.DeregisterConsumer("s", "app", ""); err != nil {
		t.Fatal(err)
	}
	if cs := metricsOf(t, e, "s").Consumers; len(cs) != 1 || cs[0].Consumer != "idle" {
		t.Fatalf("consumers after deregistering app: %+v", cs)
	}
	// Subscription bytes are not GetRecords bytes.
	m := metricsOf(t, e, "s")
	if m.GetRecordsBytes != 0 || m.Shards[0].OutgoingBytes != 0 || m.IncomingBytes != 3*rec {
		t.Fatalf("stream figures: GetRecords.Bytes %d, OutgoingBytes %d, IncomingBytes %d", m.GetRecordsBytes, m.Shards[0].OutgoingBytes, m.IncomingBytes)
	}
}

func TestMetricsShardLevelSettings(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "off")
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 2}); err != nil {
		t.Fatal(err)
	}
	enabled := func() []string {
		m := metricsOf(t, e, "s")
		var on []string
		for _, n := range ShardLevelMetrics {
			if m.ShardLevel(n) {
				on = append(on, n)
			}
		}
		return on
	}
	if on := enabled(); len(on) != 0 {
		t.Fatalf("enabled before EnableEnhancedMonitoring: %v", on)
	}
	// The shards' counters run whether or not they are enabled.
	if _, err := e.PutRecord("s", PutEntry{PartitionKey: "k", Data: []byte("abc")}); err != nil {
		t.Fatal(err)
	}
	var in uint64
	for _, s := range metricsOf(t, e, "s").Shards {
		in += s.IncomingRecords
	}
	if in != 1 {
		t.Fatalf("shards counted %d records in, want 1", in)
	}
	for _, step := range []struct {
		metrics []string
		enable  bool
		want    []string
	}{
		{[]string{"IncomingBytes", "IteratorAgeMilliseconds"}, true, []string{"IncomingBytes", "IteratorAgeMilliseconds"}},
		{ShardLevelMetrics, true, ShardLevelMetrics},
		{[]string{"IncomingBytes", "OutgoingRecords"}, false, []string{"IncomingRecords", "OutgoingBytes", "WriteProvisionedThroughputExceeded", "ReadProvisionedThroughputExceeded", "IteratorAgeMilliseconds"}},
		{ShardLevelMetrics, false, nil},
	} {
		if _, _, err := e.SetMonitoring("s", step.metrics, step.enable); err != nil {
			t.Fatal(err)
		}
		if on := enabled(); !slices.Equal(on, step.want) {
			t.Fatalf("after SetMonitoring(%v, %v): %v, want %v", step.metrics, step.enable, on, step.want)
		}
	}
	// Closed shards stay in the snapshot beside their children.
	if err := e.SplitShard("s", 0, mustKey(t, "1000")); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range metricsOf(t, e, "s").Shards {
		ids = append(ids, s.Shard)
	}
	if want := []string{"shardId-000000000000", "shardId-000000000001", "shardId-000000000002", "shardId-000000000003"}; !slices.Equal(ids, want) {
		t.Fatalf("shards after a split: %v, want %v", ids, want)
	}
}

func TestLatencyBuckets(t *testing.T) {
	var l latency
	bounds := LatencyBounds()
	if len(bounds) != LatencyBuckets-1 || !slices.IsSorted(bounds) {
		t.Fatalf("bounds %v", bounds)
	}
	bounds[0] = time.Hour // the caller's copy
	if LatencyBounds()[0] != 10*time.Microsecond {
		t.Fatal("LatencyBounds returned the histogram's own bounds")
	}
	for _, tc := range []struct {
		d      time.Duration
		bucket int
	}{
		{-time.Second, 0}, {0, 0}, {10 * time.Microsecond, 0}, {10*time.Microsecond + 1, 1},
		{time.Millisecond, 6}, {3 * time.Millisecond, 8}, {10 * time.Second, 18}, {time.Minute, 19},
	} {
		before := l.snapshot()
		l.observe(tc.d)
		after := l.snapshot()
		for i := range after.Counts {
			want := before.Counts[i]
			if i == tc.bucket {
				want++
			}
			if after.Counts[i] != want {
				t.Fatalf("observe(%v): bucket %d holds %d, want %d", tc.d, i, after.Counts[i], want)
			}
		}
		if got, want := after.Sum-before.Sum, max(tc.d, 0); got != want {
			t.Fatalf("observe(%v) added %v to the sum", tc.d, got)
		}
	}
	if s := l.snapshot(); s.Count() != 8 {
		t.Fatalf("count %d, want 8", s.Count())
	}
}

// Producers, readers and a scraper at once: the counters add up exactly, and -race sees the
// snapshot read the data paths' atomics without a lock.
func TestMetricsConcurrent(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "off")
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 4}); err != nil {
		t.Fatal(err)
	}
	const producers, calls, batch = 4, 25, 10
	var wg sync.WaitGroup
	errs := make(chan error, producers+1)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			entries := make([]PutEntry, batch)
			for i := range entries {
				entries[i] = PutEntry{PartitionKey: fmt.Sprintf("p%d-%d", p, i), Data: []byte("0123456789")}
			}
			for range calls {
				if _, err := e.PutRecords("s", entries); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	scraped := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				scraped <- n
				return
			default:
			}
			for _, m := range e.Metrics() { // no t.Fatal off the test's goroutine
				if m.IncomingRecords > producers*calls*batch {
					select { // one report is enough; never block the scraper
					case errs <- fmt.Errorf("%d records counted mid-run, more than were put", m.IncomingRecords):
					default:
					}
				}
			}
			n++
		}
	}()
	wg.Wait()
	close(stop)
	if n := <-scraped; n == 0 {
		t.Fatal("the scraper never ran")
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	m := metricsOf(t, e, "s")
	var shardRecs uint64
	for _, s := range m.Shards {
		shardRecs += s.IncomingRecords
	}
	const total = producers * calls * batch
	if m.IncomingRecords != total || m.PutRecordsSuccessfulRecords != total || shardRecs != total ||
		m.PutRecordsSuccess != producers*calls || m.PutRecordsLatency.Count() != producers*calls {
		t.Fatalf("after %d records in %d calls: %+v", total, producers*calls, counters(m))
	}
	if want := uint64(total * (len("p0-0") + 10)); m.IncomingBytes != want {
		t.Fatalf("IncomingBytes %d, want %d", m.IncomingBytes, want)
	}
}
