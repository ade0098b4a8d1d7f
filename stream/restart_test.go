package stream

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// TestRestartKeepsEverything writes streams, shards (with resharding), consumers, settings and
// records, closes the engine, reopens it and compares everything.
func TestRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, dir, c, "off")
	type snapshot struct {
		streams   []string
		desc      map[string]StreamDescription
		consumers map[string][]Consumer
		tags      map[string][]Tag
		records   map[string][]got
	}
	take := func(e *Engine) snapshot {
		sn := snapshot{streams: e.ListStreams(), desc: map[string]StreamDescription{}, consumers: map[string][]Consumer{},
			tags: map[string][]Tag{}, records: map[string][]got{}}
		for _, name := range sn.streams {
			d, err := e.Describe(name)
			if err != nil {
				t.Fatal(err)
			}
			sn.desc[name] = d
			sn.consumers[name], _ = e.ListConsumers(name)
			sn.tags[name], _ = e.Tags(name)
			for _, sd := range d.Shards {
				it, err := e.GetShardIterator(IteratorInput{Stream: name, Shard: sd.ID, Type: TrimHorizon})
				if err != nil {
					t.Fatal(err)
				}
				recs, _ := drain(t, e, it, sd.ID)
				sn.records[name+"/"+sd.ID.String()] = recs
			}
		}
		return sn
	}
	for i, n := range []int{1, 3} {
		name := fmt.Sprintf("s%d", i)
		if err := e.CreateStream(CreateStreamInput{Name: name, ShardCount: n, Tags: map[string]string{"i": fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
		var batch []PutEntry
		for j := range 40 {
			batch = append(batch, PutEntry{PartitionKey: fmt.Sprintf("k%d", j), Data: []byte(fmt.Sprintf("%s-%d", name, j))})
		}
		if _, err := e.PutRecords(name, batch); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := e.UpdateShardCount("s1", 5); err != nil {
		t.Fatal(err)
	}
	if _, err := e.PutRecord("s1", PutEntry{PartitionKey: "late", Data: []byte("after scaling")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.RegisterConsumer("s1", "reader"); err != nil {
		t.Fatal(err)
	}
	if err := e.IncreaseRetention("s0", 72); err != nil {
		t.Fatal(err)
	}
	before := take(e)
	if len(before.desc["s1"].Shards) <= 5 {
		t.Fatalf("resharding left %d shards", len(before.desc["s1"].Shards))
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = testEngine(t, dir, c, "off")
	defer e.Close()
	after := take(e)
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("after a restart the engine differs:\nbefore %+v\nafter  %+v", before, after)
	}
	total := 0
	for _, r := range after.records {
		total += len(r)
	}
	if total != 81 {
		t.Fatalf("%d records after restart, want 81", total)
	}
}
