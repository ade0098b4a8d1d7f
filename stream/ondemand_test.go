package stream

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/shardmap"
)

func TestOnDemandScaling(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "kinesis")
	defer e.Close()
	for _, name := range []string{"od", "prov"} {
		in := CreateStreamInput{Name: name, Mode: ModeOnDemand}
		if name == "prov" {
			in = CreateStreamInput{Name: name, ShardCount: 4}
		}
		if err := e.CreateStream(in); err != nil {
			t.Fatal(err)
		}
	}
	if d, _ := e.Describe("od"); d.OpenShards != 4 || d.Mode != ModeOnDemand {
		t.Fatalf("a new on-demand stream: %d shards, mode %s", d.OpenShards, d.Mode)
	}
	if err := e.Maintain(); err != nil { // starts the measurement
		t.Fatal(err)
	}
	// One hot key asks for 3 MiB in a second: three times what its shard allows.
	hotLoad(t, e, "od")
	hotLoad(t, e, "prov")
	c.Advance(time.Second)
	if err := e.Maintain(); err != nil {
		t.Fatal(err)
	}
	d, _ := e.Describe("od")
	if d.OpenShards != 5 {
		t.Fatalf("on-demand stream has %d open shards after a hot second, want 5 (the hot shard split)", d.OpenShards)
	}
	hot := shardmap.KeyOfString("hot")
	split := false
	for _, sd := range d.Shards {
		if !sd.Open {
			split = split || sd.Range.Contains(hot)
		}
	}
	if !split {
		t.Fatal("the shard that split is not the hot one")
	}
	if d, _ := e.Describe("prov"); d.OpenShards != 4 {
		t.Fatalf("a provisioned stream scaled itself: %d shards", d.OpenShards)
	}
	// A quiet second changes nothing; the ceiling (twice the peak) bounds growth.
	c.Advance(time.Second)
	if err := e.Maintain(); err != nil {
		t.Fatal(err)
	}
	if d, _ := e.Describe("od"); d.OpenShards != 5 {
		t.Fatalf("a quiet second changed the shards: %d", d.OpenShards)
	}
}

// hotLoad puts 3,000 records of 1 KiB under one partition key, "hot": three times what its
// shard takes in a second.
func hotLoad(t *testing.T, e *Engine, stream string) {
	t.Helper()
	data := make([]byte, 1024)
	for range 6 {
		batch := make([]PutEntry, 500)
		for i := range batch {
			batch[i] = PutEntry{PartitionKey: "hot", Data: data}
		}
		if _, err := e.PutRecords(stream, batch); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSharedDemand: with Options.SharedDemand, Maintain never splits on the demand the engine
// counted; TakeDemand hands it out (on-demand streams only, once), and ScaleOnDemand splits
// the hot shard it names, once, within the ceiling the peak gives.
func TestSharedDemand(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l, _ := ParseLimits("kinesis")
	e, err := Open(Options{Dir: t.TempDir(), Now: c.Now, Limits: l, SegmentSize: segment.MinSegmentSize, SharedDemand: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "od", Mode: ModeOnDemand}); err != nil {
		t.Fatal(err)
	}
	if err := e.CreateStream(CreateStreamInput{Name: "prov", ShardCount: 4}); err != nil {
		t.Fatal(err)
	}
	if err := e.Maintain(); err != nil {
		t.Fatal(err)
	}
	hotLoad(t, e, "od")
	hotLoad(t, e, "prov")
	c.Advance(time.Second)
	if err := e.Maintain(); err != nil {
		t.Fatal(err)
	}
	if d, _ := e.Describe("od"); d.OpenShards != 4 {
		t.Fatalf("Maintain split a stream whose demand is shared: %d open shards", d.OpenShards)
	}
	got := e.TakeDemand()
	hot := shardSetOf(t, e, "od").m.Route(shardmap.KeyOfString("hot")).ID
	want := ShardDemand{Shard: hot, Bytes: 3000 * (1024 + 3), Records: 3000}
	if len(got) != 1 || got[0].Stream != "od" || len(got[0].Shards) != 1 || got[0].Shards[0] != want {
		t.Fatalf("TakeDemand = %+v, want od's shard %+v only", got, want)
	}
	if again := e.TakeDemand(); len(again) != 0 {
		t.Fatalf("a second TakeDemand = %+v, want nothing", again)
	}
	d, _ := e.Describe("od")
	rate := map[ShardID]DemandRate{hot: {Bytes: 3000 * 1027, Records: 3000}}
	if n, err := e.ScaleOnDemand("od", got[0].Gen+1, rate, rate[hot]); err != nil || n != 0 {
		t.Fatalf("ScaleOnDemand of another incarnation: %d splits, %v", n, err)
	}
	if n, err := e.ScaleOnDemand("prov", 0, rate, rate[hot]); err != nil || n != 0 {
		t.Fatalf("ScaleOnDemand of a provisioned stream: %d splits, %v", n, err)
	}
	if n, err := e.ScaleOnDemand("od", got[0].Gen, rate, rate[hot]); err != nil || n != 1 {
		t.Fatalf("ScaleOnDemand: %d splits, %v; want 1", n, err)
	}
	if after, _ := e.Describe("od"); after.OpenShards != d.OpenShards+1 {
		t.Fatalf("%d open shards after one split of %d", after.OpenShards, d.OpenShards)
	}
	// The same decision again finds the hot shard closed; a low peak's ceiling (4) allows
	// no split of the children either.
	if n, err := e.ScaleOnDemand("od", got[0].Gen, rate, rate[hot]); err != nil || n != 0 {
		t.Fatalf("ScaleOnDemand again: %d splits, %v; want 0", n, err)
	}
	children := map[ShardID]DemandRate{}
	for _, sh := range shardSetOf(t, e, "od").m.Open() {
		children[sh.ID] = DemandRate{Records: 2000}
	}
	if n, err := e.ScaleOnDemand("od", got[0].Gen, children, DemandRate{Records: 10}); err != nil || n != 0 {
		t.Fatalf("ScaleOnDemand above the ceiling: %d splits, %v; want 0", n, err)
	}
}

// shardSetOf returns stream name's published shard set.
func shardSetOf(t *testing.T, e *Engine, name string) *shardSet {
	t.Helper()
	s, err := e.stream(name)
	if err != nil {
		t.Fatal(err)
	}
	return s.set.Load()
}

// leaderSwitchLog is a replicated log of the test's own: Leader answers here, and an Append
// with lose set fails as one whose leadership was lost during the append.
type leaderSwitchLog struct {
	*segment.Log
	here, lose *atomic.Bool
}

func (l leaderSwitchLog) Leader() (uint64, bool) { return 7, l.here.Load() }

func (l leaderSwitchLog) Append(batch []segment.Record) error {
	if l.lose.Load() {
		return &NotLeaderError{Leader: 7}
	}
	return l.Log.Append(batch)
}

// TestDemandCountedOnce: a record counts once, where its fate is settled: not on a node
// that routes it to another leader, nor when its leader is lost during the append (the
// server puts it again), but when it is appended or throttled on the leader.
func TestDemandCountedOnce(t *testing.T) {
	var here, lose atomic.Bool
	open := func(cfg ShardLogConfig) (ShardLog, error) {
		l, err := segment.Open(cfg.Dir, cfg.Opts)
		return leaderSwitchLog{Log: l, here: &here, lose: &lose}, err
	}
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l, _ := ParseLimits("kinesis")
	e, err := Open(Options{Dir: t.TempDir(), Now: c.Now, Limits: l, SegmentSize: segment.MinSegmentSize, OpenShardLog: open, SharedDemand: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "od", Mode: ModeOnDemand, ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	put := func(n int) []PutResult {
		batch := make([]PutEntry, n)
		for i := range batch {
			batch[i] = PutEntry{PartitionKey: "k", Data: []byte(strings.Repeat("d", 9))}
		}
		res, err := e.PutRecords("od", batch)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	put(10) // another node leads
	here.Store(true)
	lose.Store(true)
	put(20) // the leadership is lost during the append
	if d := e.TakeDemand(); len(d) != 0 {
		t.Fatalf("demand counted for records this node did not settle: %+v", d)
	}
	lose.Store(false)
	throttled := 0
	for range 3 { // 1,500 records in one instant: the shard takes 1,000
		for _, r := range put(500) {
			if KindOf(r.Err) == KindProvisionedThroughputExceeded {
				throttled++
			}
		}
	}
	d := e.TakeDemand()
	if throttled == 0 || len(d) != 1 || len(d[0].Shards) != 1 || d[0].Shards[0].Records != 1500 || d[0].Shards[0].Bytes != 1500*10 {
		t.Fatalf("after 1,500 records put (%d throttled): demand %+v, want 1,500 records and 15,000 bytes", throttled, d)
	}
}

func TestMidpoint(t *testing.T) {
	full := shardmap.Range{Start: shardmap.Key{}, End: shardmap.Key{Hi: ^uint64(0), Lo: ^uint64(0)}}
	if m := midpoint(full); m != (shardmap.Key{Hi: 1 << 63}) {
		t.Fatalf("midpoint of the whole space: %v", m)
	}
	r := shardmap.Range{Start: shardmap.Key{Lo: 10}, End: shardmap.Key{Lo: 13}}
	if m := midpoint(r); m != (shardmap.Key{Lo: 12}) {
		t.Fatalf("midpoint of [10, 13]: %v", m)
	}
}
