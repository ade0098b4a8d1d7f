package stream

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/shardmap"
)

// TestGroupByShard checks groupByShard's three ways of grouping (counts on the stack, counts
// on the heap, the sort past countingMaxShards) against routing each record alone: every
// pending record comes back once, with its shard set, its shard's records together and in
// call order.
func TestGroupByShard(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for _, tc := range []struct {
		shards, maxCounting int
	}{
		{1, 1024}, {4, 1024}, {countingStack, 1024}, {countingStack + 1, 1024}, {300, 1024}, {4, 3}, {300, 16},
	} {
		t.Run(fmt.Sprintf("shards=%d/counting=%d", tc.shards, tc.maxCounting), func(t *testing.T) {
			saved := countingMaxShards
			countingMaxShards = tc.maxCounting
			defer func() { countingMaxShards = saved }()
			m, err := shardmap.New(tc.shards)
			if err != nil {
				t.Fatal(err)
			}
			entries := make([]PutEntry, 500)
			for i := range entries {
				entries[i].PartitionKey = fmt.Sprintf("k%d", rng.IntN(700))
				if rng.IntN(10) == 0 {
					k := shardmap.Key{Hi: rng.Uint64(), Lo: rng.Uint64()}
					entries[i].ExplicitHashKey = &k
				}
			}
			for _, n := range []int{1, 2, 499} { // pending: a subset, in call order
				pending := rng.Perm(len(entries))[:n]
				slices.Sort(pending)
				results := make([]PutResult, len(entries))
				order := groupByShard(m, entries, pending, results, make([]int, 2*len(pending)))
				if len(order) != len(pending) {
					t.Fatalf("%d records back, want %d", len(order), len(pending))
				}
				seen := map[int]bool{}
				done := map[ShardID]bool{} // shards whose group has ended
				for j, i := range order {
					en := entries[i]
					k := shardmap.KeyOfString(en.PartitionKey)
					if en.ExplicitHashKey != nil {
						k = *en.ExplicitHashKey
					}
					if want := m.Route(k).ID; results[i].Shard != want {
						t.Fatalf("record %d routed to shard %d, want %d", i, results[i].Shard, want)
					}
					if seen[i] {
						t.Fatalf("record %d twice", i)
					}
					seen[i] = true
					if j > 0 {
						prev := order[j-1]
						if results[prev].Shard == results[i].Shard && prev > i {
							t.Fatalf("shard %d: record %d after record %d", results[i].Shard, i, prev)
						}
						if results[prev].Shard != results[i].Shard {
							done[results[prev].Shard] = true
						}
					}
					if done[results[i].Shard] {
						t.Fatalf("shard %d's records are not together", results[i].Shard)
					}
				}
				for _, i := range pending {
					if !seen[i] {
						t.Fatalf("record %d lost", i)
					}
				}
			}
		})
	}
}

// TestPutRecordsPartitionKeyLength checks the 1 … 256 character bound on partition keys,
// counted in characters, not bytes: a whole call with one bad key is refused.
func TestPutRecordsPartitionKeyLength(t *testing.T) {
	e, err := Open(Options{Dir: t.TempDir(), Limits: Limits{Off: true, Factor: 1}, Durability: segment.Durability{Mode: segment.None}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 2}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"", false}, {"k", true}, {strings.Repeat("k", 256), true}, {strings.Repeat("k", 257), false},
		{strings.Repeat("é", 256), true}, {strings.Repeat("é", 257), false}, {strings.Repeat("\xff", 256), true},
	} {
		_, err := e.PutRecords("s", []PutEntry{{PartitionKey: "other", Data: []byte("x")}, {PartitionKey: tc.key, Data: []byte("x")}})
		if tc.ok && err != nil {
			t.Fatalf("a key of %d bytes: %v", len(tc.key), err)
		}
		if !tc.ok && KindOf(err) != KindValidation {
			t.Fatalf("a key of %d bytes: %v, want a validation error", len(tc.key), err)
		}
	}
}
