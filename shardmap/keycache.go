package shardmap

import (
	"hash/maphash"
	"sync/atomic"
)

// KeyCache remembers the hash keys of partition keys that recur, so that routing a key seen
// recently costs a maphash and a string comparison instead of an MD5. Producers usually
// reuse a bounded set of partition keys (device ids, user ids, one key per worker). A hit
// took about a third of the time of the MD5 of a 36-byte key here, and a lookup that misses
// about a fifth more than the MD5 alone (BenchmarkKeyCache).
//
// It is a set of keyCacheSlots slots in pairs. A key is looked up in the two slots of its
// pair. A key that misses takes an empty slot of its pair; when both are taken, it replaces
// one of them only on its second miss in a row at that pair (the pair remembers the maphash
// of the last key that missed there). So once the cache is full, a stream of keys that
// never recur, such as a fresh UUID per record, costs one maphash per record and no
// allocation, while a recurring key allocates its entry once. Keys longer than maxCachedKey
// bytes are not cached: the cache holds at most keyCacheSlots × (maxCachedKey + 32) bytes.
//
// Concurrency: any number of goroutines may call KeyOf at once. An entry is immutable once
// published through its slot's atomic pointer; a slot is overwritten whole, so a reader sees
// either the old entry or the new one, and a hit compares the entry's own copy of the key.
// The missed fingerprints are plain hints: a lost update only delays caching.
type KeyCache struct {
	seed   maphash.Seed
	slots  [keyCacheSlots]atomic.Pointer[cachedKey]
	missed [keyCacheSlots / 2]atomic.Uint64 // per pair: the maphash of the last key that missed
}

const (
	keyCacheSlots = 8192 // a power of two
	maxCachedKey  = 64   // bytes
)

// cachedKey is a partition key (its own copy) and its hash key, in one allocation: a hit
// reads one entry, not an entry and then a string elsewhere on the heap.
type cachedKey struct {
	key Key
	n   int // length of the partition key
	pk  [maxCachedKey]byte
}

func (e *cachedKey) is(partitionKey string) bool {
	return e.n == len(partitionKey) && string(e.pk[:e.n]) == partitionKey
}

// NewKeyCache returns an empty cache.
func NewKeyCache() *KeyCache { return &KeyCache{seed: maphash.MakeSeed()} }

// KeyOf returns KeyOfString(partitionKey), from the cache when it holds the key.
func (c *KeyCache) KeyOf(partitionKey string) Key {
	if len(partitionKey) > maxCachedKey {
		return KeyOfString(partitionKey)
	}
	h := maphash.String(c.seed, partitionKey)
	i := int(h & (keyCacheSlots - 1) &^ 1) // the pair's first slot
	for j := i; j < i+2; j++ {
		if e := c.slots[j].Load(); e != nil && e.is(partitionKey) {
			return e.key
		}
	}
	k := KeyOfString(partitionKey)
	// An empty slot of the pair takes the key at once; a full pair gives up one of its
	// entries, the one a bit of the hash picks, only on the key's second miss in a row.
	j := i
	switch {
	case c.slots[i].Load() == nil:
	case c.slots[i+1].Load() == nil:
		j = i + 1
	default:
		if m := &c.missed[i/2]; m.Load() != h {
			m.Store(h)
			return k
		}
		j = i + int(h>>63)
	}
	e := &cachedKey{key: k, n: len(partitionKey)}
	copy(e.pk[:], partitionKey)
	c.slots[j].Store(e)
	return k
}
