package shardmap

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
)

const (
	// NoParent is the Parent and AdjacentParent of a shard that has none: a shard of the
	// stream's initial layout has neither, a child of a split has no AdjacentParent. It is
	// above MaxShardID, so it never names a shard.
	NoParent ShardID = ^ShardID(0)
	// MaxShardID is the largest shard index, as in AWS, which finds no shard past
	// shardId-002147483647. Operations that would need a larger id fail with ErrLimit.
	MaxShardID ShardID = 1<<31 - 1
	// MaxOpen is the largest number of open shards a map holds: the maximum TargetShardCount
	// of the Kinesis API. It bounds what New, Split and UpdateShardCount allocate; the stream
	// layer enforces its own, smaller, per-stream and per-account limits before calling them.
	MaxOpen = 100_000
)

// Shard is one shard of a stream, open or closed.
type Shard struct {
	// ID is the shard's index within the stream; its Kinesis ShardId is ShardName(ID). Ids
	// are handed out in creation order and never reused, so a child's id is above its
	// parents'.
	ID ShardID
	// Parent is the ParentShardId: the split shard, or the ShardToMerge of a merge. NoParent
	// for a shard of the initial layout.
	Parent ShardID
	// AdjacentParent is the AdjacentParentShardId: the AdjacentShardToMerge of a merge.
	// NoParent unless the shard was created by a merge.
	AdjacentParent ShardID
	// Range is the HashKeyRange, inclusive at both ends.
	Range Range
	// Open is true until the shard is split or merged; a closed shard never reopens.
	Open bool
}

// HasParent reports whether s has a ParentShardId.
func (s Shard) HasParent() bool { return s.Parent != NoParent }

// HasAdjacentParent reports whether s has an AdjacentParentShardId (s was created by a merge).
func (s Shard) HasAdjacentParent() bool { return s.AdjacentParent != NoParent }

// Name returns the shard's Kinesis ShardId, s.ID.String().
func (s Shard) Name() string { return s.ID.String() }

// shardPrefix begins every canonical shard name.
const shardPrefix = "shardId-"

// ShardID is a shard's index within its stream. Its Kinesis ShardId (String) is
// "shardId-" and the index in 12 zero-padded decimal digits, e.g. shardId-000000000007; the
// text exists only at the protocol edges, which parse it with ParseShardID.
type ShardID uint32

// String returns the Kinesis ShardId.
func (id ShardID) String() string {
	var buf [len(shardPrefix) + 12]byte
	return string(id.Append(buf[:0]))
}

// Append appends the Kinesis ShardId to dst.
func (id ShardID) Append(dst []byte) []byte {
	dst = append(dst, shardPrefix...)
	var digits [12]byte // a uint32 has at most 10 decimal digits
	v := id
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, digits[:]...)
}

// maxNameLen is the longest ShardId the Kinesis API accepts.
const maxNameLen = 128

// ParseShardID returns the shard index a Kinesis ShardId names. It accepts what AWS accepts
// (as recorded by kinesalite's test suite, which runs against the real service): the canonical
// "shardId-000000000007", but also any prefix of ShardId characters ([a-zA-Z0-9_.]) before a
// '-', no prefix at all, and any number of leading zeros: "shardId-7", "shard-7", "-007" and
// "7" all name index 7. The digits must be a decimal number ≤ MaxShardID (2147483647), and the
// whole name at most 128 bytes. Other strings fail with ErrInvalidName, which the stream layer
// reports as ResourceNotFoundException, as AWS does. (Unlike kinesalite, which reads only the
// text between the first and second '-', a second '-' is rejected.)
func ParseShardID(s string) (ShardID, error) {
	if s == "" || len(s) > maxNameLen {
		return 0, fmt.Errorf("%w: %s", ErrInvalidName, quoteShort(s))
	}
	digits := s
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '-' {
			digits = s[i+1:]
			break
		}
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return 0, fmt.Errorf("%w: %s", ErrInvalidName, quoteShort(s))
		}
	}
	if digits == "" {
		return 0, fmt.Errorf("%w: %s: no shard index", ErrInvalidName, quoteShort(s))
	}
	var v uint64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %s: shard index is not a decimal number", ErrInvalidName, quoteShort(s))
		}
		if v = v*10 + uint64(c-'0'); v > uint64(MaxShardID) {
			return 0, fmt.Errorf("%w: %s: shard index above %d", ErrInvalidName, quoteShort(s), MaxShardID)
		}
	}
	return ShardID(v), nil
}

// Map is the shard layout of one stream: every shard not yet pruned, open and closed, and the
// open shards indexed for routing. A Map is immutable once made: every operation returns a new
// Map and leaves its receiver unchanged, so a Map may be read by any number of goroutines
// while its owner derives the next one (see Pointer). Maps are made by New, Decode and the
// operations; the zero Map is not a valid map.
//
// Invariant (Validate): the open shards' ranges cover 0 … 2^128−1 exactly once.
type Map struct {
	all     []Shard // every shard not pruned, by ascending id
	open    []Shard // the open shards, by ascending id
	byStart []Shard // the open shards, by ascending Range.Start: Route's answers
	starts  []Key   // byStart[i].Range.Start: the keys Route searches, 16 bytes apart
	nextID  ShardID // the id the next created shard gets
}

// New returns the layout of a stream created with n shards, as Kinesis CreateStream lays it
// out: shards 0 … n−1, all open, shard i starting at i·⌊2^128/n⌋ and ending one key before
// the next one, the last ending at 2^128−1 (it absorbs the remainder of the division). n must
// be at least 1 (ErrInvalidCount) and at most MaxOpen (ErrLimit).
func New(n int) (*Map, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: %d shards, want at least 1", ErrInvalidCount, n)
	}
	if n > MaxOpen {
		return nil, fmt.Errorf("%w: %d shards, at most %d open shards", ErrLimit, n, MaxOpen)
	}
	ranges := uniform(n)
	all := make([]Shard, n)
	for i, r := range ranges {
		all[i] = Shard{ID: ShardID(i), Parent: NoParent, AdjacentParent: NoParent, Range: r, Open: true}
	}
	return freeze(all, ShardID(n)), nil
}

// uniform returns the ranges of n uniform shards, n ≥ 1: each ⌊2^128/n⌋ keys wide, the last
// one ending at MaxKey.
func uniform(n int) []Range {
	ranges := make([]Range, n)
	if n == 1 {
		ranges[0] = Range{End: MaxKey}
		return ranges
	}
	// ⌊2^128/n⌋ from ⌊(2^128−1)/n⌋: the two differ by one exactly when n divides 2^128,
	// that is when (2^128−1) mod n = n−1. The width is below 2^128 for n ≥ 2.
	w, r := MaxKey.divmod(uint64(n))
	if r == uint64(n)-1 {
		w = w.Next()
	}
	start := Key{}
	for i := range ranges {
		ranges[i].Start = start
		if i == n-1 {
			ranges[i].End = MaxKey
			break
		}
		next, _ := w.mul(uint64(i + 1)) // (i+1)·w < n·w ≤ 2^128: no overflow
		ranges[i].End = next.Prev()
		start = next
	}
	return ranges
}

// freeze makes a Map of all (sorted by id, owned by the Map from now on) and derives the
// routing index. It does not validate.
func freeze(all []Shard, nextID ShardID) *Map {
	m := &Map{all: all, nextID: nextID}
	nopen := 0
	for i := range all {
		if all[i].Open {
			nopen++
		}
	}
	m.open = make([]Shard, 0, nopen)
	for _, s := range all {
		if s.Open {
			m.open = append(m.open, s)
		}
	}
	m.byStart = slices.Clone(m.open)
	slices.SortFunc(m.byStart, func(a, b Shard) int { return a.Range.Start.Compare(b.Range.Start) })
	m.starts = make([]Key, len(m.byStart))
	for i, s := range m.byStart {
		m.starts[i] = s.Range.Start
	}
	return m
}

// Route returns the open shard whose range holds k. It takes no lock and does not allocate:
// a binary search over the open shards' starting keys (BenchmarkRoute).
func (m *Map) Route(k Key) Shard {
	return m.byStart[m.routeIndex(k)]
}

// RouteIndex returns the index in OpenByRange of the open shard whose range holds k: Route
// without the copy of the Shard, for a caller that groups records by shard.
func (m *Map) RouteIndex(k Key) int { return m.routeIndex(k) }

// routeIndex returns the index in byStart of the open shard holding k: the last shard whose
// start is ≤ k. starts[0] is 0, so there always is one.
func (m *Map) routeIndex(k Key) int {
	starts := m.starts
	lo, hi := 0, len(starts) // starts[lo] ≤ k < starts[hi] (starts[len] = +∞)
	for hi-lo > 1 {
		mid := int(uint(lo+hi) >> 1)
		if k.Less(starts[mid]) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return lo
}

// Lookup returns the shard with index id, open or closed, and whether the map holds it (a
// pruned or never created id is not held).
func (m *Map) Lookup(id ShardID) (Shard, bool) {
	i, ok := m.index(id)
	if !ok {
		return Shard{}, false
	}
	return m.all[i], true
}

// index returns the position of id in m.all.
func (m *Map) index(id ShardID) (int, bool) {
	return slices.BinarySearchFunc(m.all, id, func(s Shard, id ShardID) int {
		switch {
		case s.ID < id:
			return -1
		case s.ID > id:
			return 1
		}
		return 0
	})
}

// Open returns the open shards in id order. The slice belongs to the map and is shared by
// every reader: it must not be modified. It stays valid (and unchanged) for as long as the
// caller holds the map.
func (m *Map) Open() []Shard { return m.open }

// All returns every shard the map holds, open and closed, in id order: everything created and
// not pruned, for ListShards and lineage. The slice belongs to the map and must not be
// modified; it stays valid for as long as the caller holds the map.
func (m *Map) All() []Shard { return m.all }

// OpenByRange returns the open shards in hash key order, the order Route searches. The slice
// belongs to the map and must not be modified.
func (m *Map) OpenByRange() []Shard { return m.byStart }

// NextID returns the index the next created shard will get: one past the largest id ever
// handed out in this stream, pruned shards included.
func (m *Map) NextID() ShardID { return m.nextID }

// Children returns the shards the map holds whose Parent or AdjacentParent is id, in id
// order: the ChildShards a reader gets at the end of closed shard id. It allocates a new slice.
func (m *Map) Children(id ShardID) []Shard {
	var out []Shard
	i, _ := m.index(id)
	for _, s := range m.all[i:] { // children have larger ids than their parents
		if s.Parent == id || s.AdjacentParent == id {
			out = append(out, s)
		}
	}
	return out
}

// Prune returns a map without the given closed shards, as when retention has expired them. Ids
// of open shards are ignored (an open shard is never pruned), and so are ids the map does not
// hold. Lineage of the remaining shards may then name parents that no longer exist, which is
// valid. NextID does not change: pruned ids are never handed out again.
func (m *Map) Prune(ids ...ShardID) *Map {
	drop := make(map[ShardID]bool, len(ids))
	for _, id := range ids {
		if i, ok := m.index(id); ok && !m.all[i].Open {
			drop[id] = true
		}
	}
	if len(drop) == 0 {
		return m
	}
	all := make([]Shard, 0, len(m.all)-len(drop))
	for _, s := range m.all {
		if !drop[s.ID] {
			all = append(all, s)
		}
	}
	return freeze(all, m.nextID)
}

// Validate checks the map's invariants and returns an error wrapping ErrCorrupt that names the
// first violation:
//   - shards sorted by strictly ascending id, every id ≤ MaxShardID and below NextID;
//   - every range has Start ≤ End;
//   - lineage: a parent id is below its child's id; an AdjacentParent only with a Parent, and
//     different from it; a parent the map still holds is closed, and the child's range lies
//     within it (split) or is the union of the two adjacent parents (merge). Parents that are
//     no longer held (pruned) are fine;
//   - the open shards, by start, cover 0 … 2^128−1 exactly once: the first starts at 0, each
//     next one starts one key after the previous end, the last ends at 2^128−1; at most
//     MaxOpen of them;
//   - the routing index agrees with the shards.
//
// Maps made by this package always validate; Decode validates what it reads.
func (m *Map) Validate() error {
	if err := validateShards(m.all, m.nextID); err != nil {
		return err
	}
	var open []Shard
	for _, s := range m.all {
		if s.Open {
			open = append(open, s)
		}
	}
	if !slices.Equal(open, m.open) {
		return fmt.Errorf("%w: open shards index disagrees with the shards", ErrCorrupt)
	}
	if len(m.byStart) != len(m.open) || len(m.starts) != len(m.open) {
		return fmt.Errorf("%w: routing index has %d/%d entries for %d open shards", ErrCorrupt, len(m.byStart), len(m.starts), len(m.open))
	}
	for i, s := range m.byStart {
		if m.starts[i] != s.Range.Start {
			return fmt.Errorf("%w: routing key %d disagrees with %s", ErrCorrupt, i, s.Name())
		}
		if j, ok := m.index(s.ID); !ok || m.all[j] != s {
			return fmt.Errorf("%w: routing entry %s disagrees with the shards", ErrCorrupt, s.Name())
		}
	}
	return checkCover(m.byStart)
}

// validateShards checks everything in Validate that does not need the routing index.
func validateShards(all []Shard, nextID ShardID) error {
	if nextID > MaxShardID+1 {
		return fmt.Errorf("%w: next id %d above %d", ErrCorrupt, nextID, uint64(MaxShardID)+1)
	}
	nopen := 0
	for i, s := range all {
		if s.ID > MaxShardID || s.ID >= nextID {
			return fmt.Errorf("%w: shard id %d not below next id %d", ErrCorrupt, s.ID, nextID)
		}
		if i > 0 && s.ID <= all[i-1].ID {
			return fmt.Errorf("%w: shard ids %d and %d out of order", ErrCorrupt, all[i-1].ID, s.ID)
		}
		if s.Range.End.Less(s.Range.Start) {
			return fmt.Errorf("%w: %s: range starts at %s after its end %s", ErrCorrupt, s.Name(), s.Range.Start, s.Range.End)
		}
		if s.Open {
			nopen++
		}
		if err := checkLineage(all, s); err != nil {
			return err
		}
	}
	if nopen == 0 {
		return fmt.Errorf("%w: no open shard", ErrCorrupt)
	}
	if nopen > MaxOpen {
		return fmt.Errorf("%w: %d open shards, at most %d", ErrCorrupt, nopen, MaxOpen)
	}
	return nil
}

// checkLineage checks s's parent links against the shards of all (sorted by id).
func checkLineage(all []Shard, s Shard) error {
	if !s.HasParent() {
		if s.HasAdjacentParent() {
			return fmt.Errorf("%w: %s has an adjacent parent but no parent", ErrCorrupt, s.Name())
		}
		return nil
	}
	if s.Parent >= s.ID {
		return fmt.Errorf("%w: %s has parent %d, not below its own id", ErrCorrupt, s.Name(), s.Parent)
	}
	find := func(id ShardID) (Shard, bool) {
		i, ok := slices.BinarySearchFunc(all, id, func(s Shard, id ShardID) int {
			return cmp.Compare(s.ID, id)
		})
		if !ok {
			return Shard{}, false
		}
		return all[i], true
	}
	p, pok := find(s.Parent)
	if pok && p.Open {
		return fmt.Errorf("%w: %s has open parent %s", ErrCorrupt, s.Name(), p.Name())
	}
	if !s.HasAdjacentParent() { // a split child lies within its parent
		if pok && (s.Range.Start.Less(p.Range.Start) || p.Range.End.Less(s.Range.End)) {
			return fmt.Errorf("%w: %s lies outside its parent %s", ErrCorrupt, s.Name(), p.Name())
		}
		return nil
	}
	if s.AdjacentParent >= s.ID || s.AdjacentParent == s.Parent {
		return fmt.Errorf("%w: %s has adjacent parent %d", ErrCorrupt, s.Name(), s.AdjacentParent)
	}
	a, aok := find(s.AdjacentParent)
	if aok && a.Open {
		return fmt.Errorf("%w: %s has open adjacent parent %s", ErrCorrupt, s.Name(), a.Name())
	}
	// A merge child is the union of its parents, the parent below the adjacent parent.
	switch {
	case pok && aok:
		if p.Range.End.Next() != a.Range.Start || p.Range.End == MaxKey || s.Range != (Range{p.Range.Start, a.Range.End}) {
			return fmt.Errorf("%w: %s is not the union of %s and %s", ErrCorrupt, s.Name(), p.Name(), a.Name())
		}
	case pok:
		if s.Range.Start != p.Range.Start || !p.Range.End.Less(s.Range.End) {
			return fmt.Errorf("%w: %s does not begin with its parent %s", ErrCorrupt, s.Name(), p.Name())
		}
	case aok:
		if s.Range.End != a.Range.End || !s.Range.Start.Less(a.Range.Start) {
			return fmt.Errorf("%w: %s does not end with its adjacent parent %s", ErrCorrupt, s.Name(), a.Name())
		}
	}
	return nil
}

// checkCover checks that open shards sorted by start cover 0 … 2^128−1 exactly once.
func checkCover(byStart []Shard) error {
	if len(byStart) == 0 {
		return fmt.Errorf("%w: no open shard", ErrCorrupt)
	}
	if s := byStart[0]; s.Range.Start != (Key{}) {
		return fmt.Errorf("%w: keys below %s (start of %s) have no open shard", ErrCorrupt, s.Range.Start, s.Name())
	}
	for i := 1; i < len(byStart); i++ {
		prev, s := byStart[i-1], byStart[i]
		if prev.Range.End == MaxKey || prev.Range.End.Next() != s.Range.Start {
			kind := "overlap"
			if prev.Range.End.Less(s.Range.Start) {
				kind = "gap"
			}
			return fmt.Errorf("%w: %s between %s (ending at %s) and %s (starting at %s)",
				ErrCorrupt, kind, prev.Name(), prev.Range.End, s.Name(), s.Range.Start)
		}
	}
	if s := byStart[len(byStart)-1]; s.Range.End != MaxKey {
		return fmt.Errorf("%w: keys above %s (end of %s) have no open shard", ErrCorrupt, s.Range.End, s.Name())
	}
	return nil
}

// String returns a short description of the map, for logs and test failures.
func (m *Map) String() string {
	b := []byte("shardmap{")
	for i, s := range m.all {
		if i > 0 {
			b = append(b, ' ')
		}
		b = strconv.AppendUint(b, uint64(s.ID), 10)
		if s.Open {
			b = append(b, '*')
		}
		b = append(b, '[')
		b = s.Range.Start.AppendDecimal(b)
		b = append(b, ',')
		b = s.Range.End.AppendDecimal(b)
		b = append(b, ']')
	}
	b = append(b, " next="...)
	b = strconv.AppendUint(b, uint64(m.nextID), 10)
	return string(append(b, '}'))
}

// Pointer publishes the current Map of a stream. The owner (the one goroutine that serialises
// resharding for the stream) derives a new Map from Load() and Stores it; routing readers Load
// without a lock and keep using the Map they loaded, which never changes. A Pointer must not
// be copied after first use. The zero Pointer holds nil.
type Pointer struct {
	p atomic.Pointer[Map]
}

// Load returns the current map (nil before the first Store).
func (p *Pointer) Load() *Map { return p.p.Load() }

// Store publishes m: readers that Load after Store returns see m.
func (p *Pointer) Store(m *Map) { p.p.Store(m) }
