package shardmap

import (
	"hash/maphash"
	"strings"
	"sync/atomic"
)

// KeyCache remembers the hash keys of partition keys that recur, so that routing a key seen
// recently costs a maphash and a string comparison instead of an MD5. Producers usually
// reuse a bounded set of partition keys (device ids, user ids, one key per worker); an MD5
// of a short key costs ~105 ns here, a hit ~15 ns (BenchmarkKeyCache).
//
// It is a set of keyCacheSlots slots in pairs. A key is looked up in the two slots of its
// pair. A key that misses is cached only on its second miss in a row at its pair (the pair
// remembers the maphash of the last key that missed there), so a stream of keys that never
// recur, such as a fresh UUID per record, costs one maphash per record and no allocation;
// a recurring key allocates its entry once. Keys longer than maxCachedKey bytes are not
// cached: the cache holds at most keyCacheSlots × (maxCachedKey + 40) bytes.
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

// cachedKey is a partition key (its own copy) and its hash key.
type cachedKey struct {
	pk  string
	key Key
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
		if e := c.slots[j].Load(); e != nil && e.pk == partitionKey {
			return e.key
		}
	}
	k := KeyOfString(partitionKey)
	m := &c.missed[i/2]
	if m.Load() != h {
		m.Store(h)
		return k
	}
	// The second miss in a row: cache it, in the pair's empty slot if it has one, else in
	// the slot a bit of the hash picks.
	j := i + int(h>>63)
	if c.slots[i].Load() == nil {
		j = i
	} else if c.slots[i+1].Load() == nil {
		j = i + 1
	}
	c.slots[j].Store(&cachedKey{pk: strings.Clone(partitionKey), key: k})
	return k
}
