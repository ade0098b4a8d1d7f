package shardmap

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// cached reports whether c holds pk in one of its slots.
func (c *KeyCache) cached(pk string) bool {
	for i := range c.slots {
		if e := c.slots[i].Load(); e != nil && e.is(pk) {
			return true
		}
	}
	return false
}

func TestKeyCache(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	keys := []string{"", "a", strings.Repeat("x", maxCachedKey), strings.Repeat("y", maxCachedKey+1), "ключ"}
	for range 3 * keyCacheSlots { // more keys than slots: pairs collide and evict
		keys = append(keys, fmt.Sprintf("key-%d", rng.Uint64()))
	}
	c := NewKeyCache()
	for pass := range 3 {
		for _, pk := range keys {
			if got, want := c.KeyOf(pk), KeyOfString(pk); got != want {
				t.Fatalf("pass %d: KeyOf(%q) = %v, want %v", pass, pk, got, want)
			}
		}
	}
	// A key takes an empty slot of its pair at once; a long one is never cached.
	c = NewKeyCache()
	for _, pk := range []string{"a", strings.Repeat("x", maxCachedKey), strings.Repeat("y", maxCachedKey+1)} {
		c.KeyOf(pk)
		if want := len(pk) <= maxCachedKey; c.cached(pk) != want {
			t.Fatalf("%d-byte key cached after a miss: %v, want %v", len(pk), c.cached(pk), want)
		}
		if got, want := c.KeyOf(pk), KeyOfString(pk); got != want {
			t.Fatalf("KeyOf(%q) from the cache = %v, want %v", pk, got, want)
		}
	}
	// Three keys of one pair: the third replaces one of the first two on its second miss in
	// a row, not on its first.
	pair := func(pk string) uint64 { return maphash.String(c.seed, pk) & (keyCacheSlots - 1) &^ 1 }
	var same []string
	for i := 0; len(same) < 3; i++ {
		if pk := fmt.Sprintf("p%d", i); pair(pk) == pair("p0") {
			same = append(same, pk)
		}
	}
	c.KeyOf(same[0])
	c.KeyOf(same[1])
	if !c.cached(same[0]) || !c.cached(same[1]) {
		t.Fatal("two keys of a pair are not both cached")
	}
	c.KeyOf(same[2])
	if c.cached(same[2]) {
		t.Fatal("a key replaced an entry of a full pair on its first miss")
	}
	c.KeyOf(same[2])
	if !c.cached(same[2]) || c.cached(same[0]) == c.cached(same[1]) {
		t.Fatalf("after a second miss in a row: cached %v %v %v, want the third and one of the others",
			c.cached(same[0]), c.cached(same[1]), c.cached(same[2]))
	}
}

// TestKeyCacheConcurrent runs lookups from several goroutines over keys that collide, for
// the race detector, and checks every answer.
func TestKeyCacheConcurrent(t *testing.T) {
	c := NewKeyCache()
	keys := make([]string, 2*keyCacheSlots)
	for i := range keys {
		keys[i] = fmt.Sprintf("pk-%d", i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			for pass := range 3 {
				for i := range keys {
					pk := keys[(i*(g+1))%len(keys)]
					if got, want := c.KeyOf(pk), KeyOfString(pk); got != want {
						errs <- fmt.Errorf("goroutine %d pass %d: KeyOf(%q) = %v, want %v", g, pass, pk, got, want)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
