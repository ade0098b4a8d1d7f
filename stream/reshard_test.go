package stream

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/shardmap"
)

// TestReshardUnderConcurrentProducers splits, merges and rescales a stream while producers
// write, then checks that every acknowledged record is in exactly one shard, at the sequence
// number it was acknowledged with, and that no closed shard took a record after it closed.
func TestReshardUnderConcurrentProducers(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "off")
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "r", ShardCount: 2}); err != nil {
		t.Fatal(err)
	}
	type ack struct {
		key, data string
		seq       SeqNum
	}
	var mu sync.Mutex
	acks := map[string]ack{}
	stop := make(chan struct{})
	progress := make(chan struct{}, 64) // a tick per acknowledged batch, dropped when full
	var wg sync.WaitGroup
	for p := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 5000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var batch []PutEntry
				for j := range 1 + n%4 {
					batch = append(batch, PutEntry{PartitionKey: fmt.Sprintf("key-%d-%d", p, (n+j)%13), Data: []byte(fmt.Sprintf("p%d-n%d-j%d", p, n, j))})
				}
				res, err := e.PutRecords("r", batch)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for i, r := range res {
					if r.Err != nil {
						t.Errorf("put: %v", r.Err)
						continue
					}
					acks[string(batch[i].Data)] = ack{batch[i].PartitionKey, string(batch[i].Data), r.Seq}
				}
				mu.Unlock()
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}()
	}
	producersDone := make(chan struct{})
	go func() { wg.Wait(); close(producersDone) }()
	r := rand.New(rand.NewPCG(seed, 1))
	for step := range 30 {
		for range 40 { // let producers write between steps, so every step races with them
			select {
			case <-progress:
			case <-producersDone:
				t.Fatal("producers stopped before the resharding was done")
			}
		}
		d, err := e.Describe("r")
		if err != nil {
			t.Fatal(err)
		}
		var open []ShardDescription
		for _, sd := range d.Shards {
			if sd.Open {
				open = append(open, sd)
			}
		}
		switch step % 3 {
		case 0: // split a random open shard in the middle
			sd := open[r.IntN(len(open))]
			mid := midpoint(sd.Range)
			if err := e.SplitShard("r", sd.ID, mid); err != nil {
				t.Fatalf("split %s at %s: %v", sd.ID, mid, err)
			}
		case 1: // merge two adjacent open shards
			sortByStart(open)
			i := r.IntN(len(open) - 1)
			if err := e.MergeShards("r", open[i].ID, open[i+1].ID); err != nil {
				t.Fatalf("merge: %v", err)
			}
		case 2:
			if _, _, err := e.UpdateShardCount("r", 2+r.IntN(3)); err != nil && !errors.Is(err, ErrLimitExceeded) {
				t.Fatalf("update shard count: %v", err)
			}
		}
	}
	close(stop)
	wg.Wait()

	d, err := e.Describe("r")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, sd := range d.Shards {
		id := sd.ID
		it, err := e.GetShardIterator(IteratorInput{Stream: "r", Shard: sd.ID, Type: TrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		recs, next := drain(t, e, it, id)
		if !sd.Open {
			end := sd.EndingSeq
			if next != "" {
				t.Fatalf("closed shard %s drained but returned a next iterator", sd.ID)
			}
			for _, g := range recs {
				if end.Less(g.seq) {
					t.Fatalf("closed shard %s took record %v after its ending %v", sd.ID, g.seq, end)
				}
			}
		}
		for _, g := range recs {
			a, ok := acks[g.data]
			if !ok {
				t.Fatalf("record %s in %s was never acknowledged", g.data, sd.ID)
			}
			if seen[g.data] {
				t.Fatalf("record %s stored twice", g.data)
			}
			seen[g.data] = true
			if a.seq != g.seq || a.key != g.key {
				t.Fatalf("record %s at %v, acknowledged at %v", g.data, g.seq, a.seq)
			}
		}
	}
	if len(seen) != len(acks) {
		t.Fatalf("%d of %d acknowledged records found", len(seen), len(acks))
	}
	t.Logf("%d records across %d shards", len(acks), len(d.Shards))
}

func sortByStart(s []ShardDescription) {
	key := func(sd ShardDescription) shardmap.Key { return sd.Range.Start }
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && key(s[j]).Less(key(s[j-1])); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func TestReshardLineageAndChildShards(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	dir := t.TempDir()
	e := testEngine(t, dir, c, "off")
	if err := e.CreateStream(CreateStreamInput{Name: "l", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.PutRecords("l", []PutEntry{{PartitionKey: "a", Data: []byte("before")}}); err != nil {
		t.Fatal(err)
	}
	it, _ := e.GetShardIterator(IteratorInput{Stream: "l", Shard: 0, Type: TrimHorizon})
	if err := e.SplitShard("l", 0, mustKey(t, "170141183460469231731687303715884105728")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		err  error
		want error
	}{
		{e.SplitShard("l", 0, mustKey(t, "170141183460469231731687303715884105728")), ErrResourceInUse},
		{e.SplitShard("l", 9, mustKey(t, "1000")), ErrResourceNotFound},
		{e.MergeShards("l", 2, 1), ErrInvalidArgument},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Fatalf("%v, want %v", tc.err, tc.want.(*Error).Kind)
		}
	}
	// Reading the parent to its end yields its record, then no iterator and the children.
	r, err := e.GetRecords(it, 10)
	if err != nil {
		t.Fatal(err)
	}
	n := r.Records.Count
	r.Release()
	if n == 1 && r.NextIterator != "" {
		r, err = e.GetRecords(r.NextIterator, 10)
		if err != nil {
			t.Fatal(err)
		}
		r.Release()
	}
	if r.NextIterator != "" || len(r.ChildShards) != 2 || r.ChildShards[0].Parents[0] != 0 {
		t.Fatalf("end of a closed shard: next %q children %+v", r.NextIterator, r.ChildShards)
	}
	if err := e.MergeShards("l", 1, 2); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = testEngine(t, dir, c, "off")
	defer e.Close()
	d, err := e.Describe("l")
	if err != nil || len(d.Shards) != 4 || d.OpenShards != 1 {
		t.Fatalf("after restart: %d shards, %d open, %v", len(d.Shards), d.OpenShards, err)
	}
	m := d.Shards[3]
	if m.Parent != 1 || m.AdjacentParent != 2 || !m.Open {
		t.Fatalf("merged child: %+v", m)
	}
	if d.Shards[0].Open {
		t.Fatal("the split parent has no ending sequence number")
	}
	res, err := e.PutRecords("l", []PutEntry{{PartitionKey: "a", Data: []byte("after")}})
	if err != nil || res[0].Err != nil || res[0].Shard != 3 {
		t.Fatalf("put after merge: shard %d, %v %v", res[0].Shard, err, res[0].Err)
	}
	if first := d.Shards[0].EndingSeq; !first.Less(res[0].Seq) {
		t.Fatal("a child's sequence number does not exceed its parent's")
	}
}
