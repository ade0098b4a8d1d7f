package client

import (
	"testing"
	"time"
)

// TestProducerBatchesPerDestination: records are batched by destination (their shard's
// leader, or the endpoint for a shard with no known leader or led by the endpoint itself);
// a full batch is sealed alone, the others keep filling; a leader forgotten after a failure
// sends its shards' next records to the endpoint, and stays avoided when an answer names it
// again within leadersEvery.
func TestProducerBatchesPerDestination(t *testing.T) {
	p := &Producer{cfg: ProducerConfig{MaxBatchRecords: 3, MaxBatchBytes: 1 << 20, Linger: time.Hour},
		wake: make(chan struct{}, 1)}
	p.senders.L = &p.mu
	now := time.Now()
	const self = "10.0.0.1:4567"
	p.leaders.set(map[uint32]string{0: "10.0.0.2:4567", 1: "10.0.0.3:4567", 2: self}, self, now)
	if !p.leaders.clustered {
		t.Fatal("an answer naming leaders does not mark the producer clustered")
	}
	add := func(shard uint32) *rec {
		r := &rec{key: "k", data: []byte("d"), shard: shard}
		p.addToBatchLocked(r, now)
		return r
	}
	dests := func() map[string]int {
		out := map[string]int{}
		for _, b := range p.open {
			if _, dup := out[b.dest]; dup {
				t.Fatalf("two open batches for %q", b.dest)
			}
			out[b.dest] = len(b.recs)
		}
		return out
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	add(0)
	add(1)
	add(2) // led by the endpoint itself
	add(7) // no known leader
	add(0)
	if got, want := dests(), map[string]int{"10.0.0.2:4567": 2, "10.0.0.3:4567": 1, "": 2}; !equalCounts(got, want) {
		t.Fatalf("open batches %v, want %v", got, want)
	}
	if len(p.ready) != 0 {
		t.Fatalf("%d batches sealed before any is full", len(p.ready))
	}
	add(0) // the third record for 10.0.0.2: that batch alone is sealed
	if len(p.ready) != 1 || p.ready[0].dest != "10.0.0.2:4567" || len(p.ready[0].recs) != 3 {
		t.Fatalf("ready %+v, want the one full batch of 10.0.0.2", p.ready)
	}
	if got, want := dests(), map[string]int{"10.0.0.3:4567": 1, "": 2}; !equalCounts(got, want) {
		t.Fatalf("open batches after sealing one: %v, want %v", got, want)
	}
	for _, r := range p.ready[0].recs {
		if r.shard != 0 {
			t.Fatalf("a record of shard %d in the batch of shard 0's leader", r.shard)
		}
	}

	// 10.0.0.3 could not be reached: shard 1 goes to the endpoint, even after an answer that
	// still names it, until leadersEvery has passed.
	p.leaders.forget("10.0.0.3:4567", now)
	add(1) // the endpoint's third record: its batch is sealed
	if got, want := dests(), map[string]int{"10.0.0.3:4567": 1}; !equalCounts(got, want) {
		t.Fatalf("open batches after forgetting 10.0.0.3: %v, want %v", got, want)
	}
	if len(p.ready) != 2 || p.ready[1].dest != "" || p.ready[1].recs[2].shard != 1 {
		t.Fatalf("ready %+v, want the endpoint's batch ending with shard 1's record", p.ready)
	}
	answer := map[uint32]string{0: "10.0.0.2:4567", 1: "10.0.0.3:4567"}
	p.leaders.set(answer, self, now.Add(leadersEvery/2))
	if d := p.leaders.of(1); d != "" {
		t.Fatalf("shard 1 goes to %q within leadersEvery of its leader's failure", d)
	}
	p.leaders.set(answer, self, now.Add(leadersEvery))
	if d := p.leaders.of(1); d != "10.0.0.3:4567" {
		t.Fatalf("shard 1 goes to %q after leadersEvery, want its leader again", d)
	}

	p.sealLocked()
	if len(p.open) != 0 || len(p.ready) != 3 {
		t.Fatalf("after sealing all: %d open, %d ready; want 0 and 3", len(p.open), len(p.ready))
	}
	p.leaders.set(nil, self, now)
	if p.leaders.clustered || p.leaders.of(0) != "" {
		t.Fatal("an empty answer (a single node) leaves a leader or the clustered mark")
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
