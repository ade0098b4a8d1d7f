package stream

import (
	"testing"
	"time"

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
	load := func(stream string) {
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
	load("od")
	load("prov")
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
