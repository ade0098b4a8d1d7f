package replica

import (
	pb "go.etcd.io/raft/v3/raftpb"
)

// entryCache holds the entries persist wrote most recently and the replica has not applied
// yet, as raft gave them, so that Storage.Entries answers raft's reads of them from memory:
// the committed entries of every Ready on a leader (raft reads them back from Storage once
// they are stable) and the MsgApps of a follower that is a little behind. Without it each
// such read decodes the frame from the segment log and encodes it again, five allocations
// and a copy per entry (BenchmarkAppendThroughHost, BenchmarkEntries).
//
// The entries are raft's own: raft does not modify an entry once it is in its log, and
// neither do Apply nor the Host, so sharing them is safe. Their Data is the frame as raft
// carried it (on the leader the proposal's, whose seq is a proposal token, not the index):
// every replica persists a frame with seq := index and its CRC recomputed whatever seq the
// entry's frame carries, so a follower stores the same bytes either way.
//
// It holds consecutive indexes; persist cuts it where raft overwrites a suffix, Apply drops
// what it applied, and it never holds more than cacheMaxEntries entries or (beyond one entry)
// cacheMaxBytes of Data: an entry that fell out is read from the segment log again. Guarded
// by Storage.mu.
type entryCache struct {
	ents  []*pb.Entry
	bytes int // sum of len(Data) over ents
}

const (
	cacheMaxEntries = 1 << 14
	cacheMaxBytes   = 4 << 20
)

// first and last are the cache's index range; empty: first > last.
func (c *entryCache) first() uint64 {
	if len(c.ents) == 0 {
		return 1
	}
	return c.ents[0].GetIndex()
}

func (c *entryCache) last() uint64 {
	if len(c.ents) == 0 {
		return 0
	}
	return c.ents[len(c.ents)-1].GetIndex()
}

// add records ents (consecutive, as persist wrote them). Entries at or above ents[0] are
// replaced; a gap before ents[0] starts the cache again.
func (c *entryCache) add(ents []*pb.Entry) {
	if len(ents) == 0 {
		return
	}
	first := ents[0].GetIndex()
	if len(c.ents) > 0 && (first < c.first() || first > c.last()+1) {
		c.reset()
	}
	c.cutFrom(first)
	for _, e := range ents {
		c.ents = append(c.ents, e)
		c.bytes += len(e.GetData())
	}
	drop := 0
	for len(c.ents)-drop > 1 && (len(c.ents)-drop > cacheMaxEntries || c.bytes > cacheMaxBytes) {
		c.bytes -= len(c.ents[drop].GetData())
		drop++
	}
	c.dropFront(drop)
}

// cutFrom forgets the entries at index i and above.
func (c *entryCache) cutFrom(i uint64) {
	if len(c.ents) == 0 || i > c.last() {
		return
	}
	if i <= c.first() {
		c.reset()
		return
	}
	k := int(i - c.first())
	for _, e := range c.ents[k:] {
		c.bytes -= len(e.GetData())
	}
	clear(c.ents[k:])
	c.ents = c.ents[:k]
}

// dropUpTo forgets the entries at index i and below.
func (c *entryCache) dropUpTo(i uint64) {
	if len(c.ents) == 0 || i < c.first() {
		return
	}
	if i >= c.last() {
		c.reset()
		return
	}
	k := int(i - c.first() + 1)
	for _, e := range c.ents[:k] {
		c.bytes -= len(e.GetData())
	}
	c.dropFront(k)
}

// dropFront forgets the first k entries (their bytes already subtracted). The rest moves
// to the front of the slice when it is at most as long as what went, so that appends reuse
// the slice's capacity and the copying costs O(1) per entry dropped.
func (c *entryCache) dropFront(k int) {
	if k == 0 {
		return
	}
	if rest := len(c.ents) - k; rest <= k {
		n := copy(c.ents, c.ents[k:])
		clear(c.ents[n:])
		c.ents = c.ents[:n]
		return
	}
	clear(c.ents[:k])
	c.ents = c.ents[k:]
}

func (c *entryCache) reset() {
	clear(c.ents)
	c.ents, c.bytes = c.ents[:0], 0
}

// get returns the entries [lo, hi) within maxSize (raft.Storage.Entries' rule: at least
// one entry; sizes are len(Data)), or false when the cache does not hold all of them.
func (c *entryCache) get(lo, hi, maxSize uint64) ([]*pb.Entry, bool) {
	if len(c.ents) == 0 || lo < c.first() || hi > c.last()+1 || lo >= hi {
		return nil, false
	}
	src := c.ents[lo-c.first() : hi-c.first()]
	var size uint64
	n := 0
	for _, e := range src {
		size += uint64(len(e.GetData()))
		if n > 0 && size > maxSize {
			break
		}
		n++
	}
	out := make([]*pb.Entry, n)
	copy(out, src)
	return out, true
}
