package shardmap

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Benchmarks of the routing path: hashing a partition key (KeyOf) and finding its open shard
// (Route), which every PutRecord does once per record.
//
//	go test -run='^$' -bench=. -benchtime=200ms ./shardmap
//
// The figures are ns/op and allocs/op, which must be 0; KeyOf also reports bytes/s of
// partition key hashed. No machine limit applies: both are CPU-bound and touch a few cache
// lines.

const (
	benchSeed    = 20240601
	benchQueries = 1 << 12 // a power of two
)

func benchKeys() []Key {
	r := rand.New(rand.NewPCG(benchSeed, 1))
	keys := make([]Key, benchQueries)
	for i := range keys {
		keys[i] = Key{Hi: r.Uint64(), Lo: r.Uint64()}
	}
	return keys
}

// BenchmarkRoute routes uniformly random keys among 1, 16, 1024 and MaxOpen open shards.
func BenchmarkRoute(b *testing.B) {
	keys := benchKeys()
	for _, n := range []int{1, 16, 1024, MaxOpen} {
		m, err := New(n)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("shards=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var sink ShardID
			i := 0
			for b.Loop() {
				sink += m.Route(keys[i&(benchQueries-1)]).ID
				i++
			}
			_ = sink
		})
	}
}

// BenchmarkKeyOf hashes partition keys of typical sizes: a short id, a UUID, and the largest
// key AWS allows in ASCII (256 bytes).
func BenchmarkKeyOf(b *testing.B) {
	for _, n := range []int{8, 36, 256} {
		pk := make([]byte, n)
		for i := range pk {
			pk[i] = 'a' + byte(i%26)
		}
		b.Run(fmt.Sprintf("bytes=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(n))
			var sink Key
			for b.Loop() {
				sink = KeyOf(pk)
			}
			_ = sink
		})
		b.Run(fmt.Sprintf("string/bytes=%d", n), func(b *testing.B) {
			s := string(pk)
			b.ReportAllocs()
			b.SetBytes(int64(n))
			var sink Key
			for b.Loop() {
				sink = KeyOfString(s)
			}
			_ = sink
		})
	}
}

// BenchmarkKeyOfRoute is the whole routing path of one record: hash a 36-byte partition key
// and route it among 16 open shards.
func BenchmarkKeyOfRoute(b *testing.B) {
	m, err := New(16)
	if err != nil {
		b.Fatal(err)
	}
	pk := []byte("3f2504e0-4f89-11d3-9a0c-0305e82c3301")
	b.ReportAllocs()
	b.SetBytes(int64(len(pk)))
	var sink ShardID
	for b.Loop() {
		pk[0]++
		sink += m.Route(KeyOf(pk)).ID
	}
	_ = sink
}

// BenchmarkKeyDecimal formats and parses hash keys of 39 digits, as every ListShards
// response and ExplicitHashKey does.
func BenchmarkKeyDecimal(b *testing.B) {
	keys := benchKeys()
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 64)
		i := 0
		for b.Loop() {
			buf = keys[i&(benchQueries-1)].AppendDecimal(buf[:0])
			i++
		}
	})
	strs := make([]string, len(keys))
	for i, k := range keys {
		strs[i] = k.String()
	}
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := ParseKey(strs[i&(benchQueries-1)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

// BenchmarkKeyCache is KeyCache.KeyOf on 36-byte keys: 500 keys that recur (hits), keys
// that mostly miss (unique: the maphash on top of the MD5), and KeyOfString for comparison.
func BenchmarkKeyCache(b *testing.B) {
	keys := make([]string, 500)
	for i := range keys {
		keys[i] = fmt.Sprintf("%08d-4f89-11d3-9a0c-0305e82c3301", i)
	}
	run := func(name string, f func(i int) Key) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(36)
			var sink Key
			i := 0
			for b.Loop() {
				sink = f(i)
				i++
			}
			_ = sink
		})
	}
	c := NewKeyCache()
	run("hit", func(i int) Key { return c.KeyOf(keys[i%len(keys)]) })
	// 65,536 keys in turn: the cache holds at most keyCacheSlots of them and a key comes
	// back only after 65,535 others, so at least 7 lookups in 8 miss.
	many := make([]string, 1<<16)
	for i := range many {
		many[i] = fmt.Sprintf("%08d-4f89-11d3-9a0c-0305e82c3301", i)
	}
	unique := NewKeyCache()
	run("unique", func(i int) Key { return unique.KeyOf(many[i%len(many)]) })
	run("KeyOfString", func(i int) Key { return KeyOfString(keys[i%len(keys)]) })
}
