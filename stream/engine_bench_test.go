package stream

import (
	"cmp"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/shardmap"
)

// BenchmarkPutRecords puts batches of 500 records of 100 B and 1 KiB with random partition
// keys through the engine (routing, grouping by shard, one append per shard) into streams of
// 1, 4, 16 and 64 shards, limits off, durability none.
func BenchmarkPutRecords(b *testing.B) {
	for _, size := range []int{100, 1024} {
		for _, shards := range []int{1, 4, 16, 64} {
			b.Run(fmt.Sprintf("size=%d/shards=%d", size, shards), func(b *testing.B) {
				e, err := Open(Options{Dir: b.TempDir(), Limits: Limits{Off: true, Factor: 1},
					Durability: segment.Durability{Mode: segment.None}, MaxShardsPerStream: 64})
				if err != nil {
					b.Fatal(err)
				}
				defer e.Close()
				if err := e.CreateStream(CreateStreamInput{Name: "b", ShardCount: shards}); err != nil {
					b.Fatal(err)
				}
				batch := make([]PutEntry, 500)
				data := make([]byte, size)
				for i := range batch {
					batch[i] = PutEntry{PartitionKey: fmt.Sprintf("key-%08d", i*7919), Data: data}
				}
				b.ReportAllocs()
				b.SetBytes(int64(len(batch) * size))
				for b.Loop() {
					res, err := e.PutRecords("b", batch)
					if err != nil || res[0].Err != nil {
						b.Fatal(err, res[0].Err)
					}
				}
				b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// BenchmarkGetRecords reads 1 KiB records through GetRecords (iterator decode, zero-copy view,
// next iterator) 1,000 records a call, limits off.
func BenchmarkGetRecords(b *testing.B) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e, err := Open(Options{Dir: b.TempDir(), Now: c.Now, Limits: Limits{Off: true, Factor: 1},
		Durability: segment.Durability{Mode: segment.None}})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "b", ShardCount: 1}); err != nil {
		b.Fatal(err)
	}
	batch := make([]PutEntry, 500)
	for i := range batch {
		batch[i] = PutEntry{PartitionKey: "k", Data: make([]byte, 1024)}
	}
	for range 200 { // 100,000 records, about 100 MiB
		if _, err := e.PutRecords("b", batch); err != nil {
			b.Fatal(err)
		}
	}
	start, err := e.GetShardIterator(IteratorInput{Stream: "b", Shard: 0, Type: TrimHorizon})
	if err != nil {
		b.Fatal(err)
	}
	it := start
	b.ReportAllocs()
	b.SetBytes(1000 * 1024)
	for b.Loop() {
		r, err := e.GetRecords(it, 1000)
		if err != nil {
			b.Fatal(err)
		}
		if r.Records.Count == 0 {
			it = start
		} else {
			it = r.NextIterator
		}
		r.Release()
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkGroupByShard routes 500 records of recurring 12-byte partition keys over 4 shards
// and groups them by shard: by counting (what PutRecords does), by sorting (its path past
// countingMaxShards open shards), and, for reference, as PutRecords did before: an MD5 per
// record and a stable sort comparing through the results. Bytes are partition key bytes.
func BenchmarkGroupByShard(b *testing.B) {
	m, err := shardmap.New(4)
	if err != nil {
		b.Fatal(err)
	}
	entries := make([]PutEntry, 500)
	pending := make([]int, len(entries))
	for i := range entries {
		entries[i].PartitionKey = fmt.Sprintf("key-%08d", i*7919)
		pending[i] = i
	}
	results := make([]PutResult, len(entries))
	buf := make([]int, 2*len(entries))
	for _, tc := range []struct {
		name        string
		maxCounting int
	}{{"counting", countingMaxShards}, {"sort", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			saved := countingMaxShards
			countingMaxShards = tc.maxCounting
			defer func() { countingMaxShards = saved }()
			b.SetBytes(int64(len(entries) * 12))
			b.ReportAllocs()
			for b.Loop() {
				groupByShard(m, entries, pending, results, buf)
			}
		})
	}
	b.Run("stable-sort-before", func(b *testing.B) {
		b.SetBytes(int64(len(entries) * 12))
		b.ReportAllocs()
		order := buf[:len(entries)]
		for b.Loop() {
			for _, i := range pending {
				results[i].Shard = m.Route(shardmap.KeyOfString(entries[i].PartitionKey)).ID
			}
			copy(order, pending)
			slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(results[a].Shard, results[b].Shard) })
		}
	})
}
