package shardmap

import (
	"cmp"
	"fmt"
	"slices"
)

// Kind is the kind of a Change.
type Kind uint8

const (
	// KindSplit closes one shard and creates two children that share its range.
	KindSplit Kind = 1
	// KindMerge closes two adjacent shards and creates one child with the union of their
	// ranges.
	KindMerge Kind = 2
)

// String returns "split" or "merge".
func (k Kind) String() string {
	switch k {
	case KindSplit:
		return "split"
	case KindMerge:
		return "merge"
	}
	return "Kind(" + fmt.Sprint(uint8(k)) + ")"
}

// Change is one resharding step: the shards it closed and the shards it created. The owner
// applies a Change to the stream by ending the closed shards (EndingSequenceNumber) and
// starting the created ones, in this order; Apply replays it on a Map.
type Change struct {
	Kind Kind
	// Closed holds the parents the step closed: for a split, the split shard; for a merge,
	// the ShardToMerge then the AdjacentShardToMerge.
	Closed []ShardID
	// Created holds the children as created (open; a later step of the same
	// UpdateShardCount may close them again): for a split, the lower half then the upper
	// half; for a merge, the one child.
	Created []Shard
}

// String describes c, e.g. "split 0 -> 1[0,1] 2[2,…]".
func (c Change) String() string {
	b := []byte(c.Kind.String())
	for _, id := range c.Closed {
		b = fmt.Appendf(b, " %d", id)
	}
	b = append(b, " ->"...)
	for _, s := range c.Created {
		b = fmt.Appendf(b, " %d[%s,%s]", s.ID, s.Range.Start, s.Range.End)
	}
	return string(b)
}

// edit is a Map being derived by one operation: a private copy of the shards that the
// operation changes in place before freezing it into the new Map.
type edit struct {
	all    []Shard // by id; new shards are appended (their ids are the largest)
	nextID ShardID
	nopen  int
}

func (m *Map) edit() *edit {
	return &edit{all: slices.Clone(m.all), nextID: m.nextID, nopen: len(m.open)}
}

func (e *edit) freeze() *Map { return freeze(e.all, e.nextID) }

// shard returns the position of open shard id.
func (e *edit) shard(id ShardID) (int, error) {
	i, ok := slices.BinarySearchFunc(e.all, id, func(s Shard, id ShardID) int { return cmp.Compare(s.ID, id) })
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrNotFound, id.String())
	}
	if !e.all[i].Open {
		return 0, fmt.Errorf("%w: %s has already been split or merged", ErrNotOpen, id.String())
	}
	return i, nil
}

// ids reserves n new shard ids.
func (e *edit) ids(n uint32) (ShardID, error) {
	first := e.nextID
	if uint64(first)+uint64(n) > uint64(MaxShardID)+1 {
		return 0, fmt.Errorf("%w: no shard ids left (next id %d, largest %d)", ErrLimit, first, MaxShardID)
	}
	e.nextID += ShardID(n)
	return first, nil
}

// split splits open shard id at key at, which must satisfy Start < at ≤ End (the caller
// checks), into [Start, at−1] and [at, End].
func (e *edit) split(id ShardID, at Key) (Change, error) {
	i, err := e.shard(id)
	if err != nil {
		return Change{}, err
	}
	p := e.all[i]
	if !(p.Range.Start.Less(at) && !p.Range.End.Less(at)) {
		return Change{}, fmt.Errorf("%w: %s cannot split %s [%s, %s]", ErrInvalidKey, at, p.Name(), p.Range.Start, p.Range.End)
	}
	first, err := e.ids(2)
	if err != nil {
		return Change{}, err
	}
	lower := Shard{ID: first, Parent: id, AdjacentParent: NoParent, Range: Range{p.Range.Start, at.Prev()}, Open: true}
	upper := Shard{ID: first + 1, Parent: id, AdjacentParent: NoParent, Range: Range{at, p.Range.End}, Open: true}
	e.all[i].Open = false
	e.all = append(e.all, lower, upper)
	e.nopen++
	return Change{Kind: KindSplit, Closed: []ShardID{id}, Created: []Shard{lower, upper}}, nil
}

// merge merges open shard id with open shard adj, whose range must begin one key after id's
// ends.
func (e *edit) merge(id, adj ShardID) (Change, error) {
	i, err := e.shard(id)
	if err != nil {
		return Change{}, err
	}
	j, err := e.shard(adj)
	if err != nil {
		return Change{}, err
	}
	lo, hi := e.all[i], e.all[j]
	if id == adj || lo.Range.End == MaxKey || lo.Range.End.Next() != hi.Range.Start {
		return Change{}, fmt.Errorf("%w: %s [%s, %s] and %s [%s, %s]: the adjacent shard must begin one key after the shard to merge ends",
			ErrNotAdjacent, lo.Name(), lo.Range.Start, lo.Range.End, hi.Name(), hi.Range.Start, hi.Range.End)
	}
	first, err := e.ids(1)
	if err != nil {
		return Change{}, err
	}
	child := Shard{ID: first, Parent: id, AdjacentParent: adj, Range: Range{lo.Range.Start, hi.Range.End}, Open: true}
	e.all[i].Open = false
	e.all[j].Open = false
	e.all = append(e.all, child)
	e.nopen--
	return Change{Kind: KindMerge, Closed: []ShardID{id, adj}, Created: []Shard{child}}, nil
}

// Split is SplitShard: it closes open shard id and creates two children with the next two
// ids, the first with [Start, newStart−1] and the second with [newStart, End] of the parent's
// range, both with Parent id and no AdjacentParent.
//
// As in AWS, newStart must be greater than one plus the parent's StartingHashKey and less than
// its EndingHashKey (Start+1 < newStart < End), so that each child holds at least two keys;
// otherwise Split fails with ErrInvalidKey. (The AWS API reference only says the key must be
// "in the range of hash keys being mapped into the shard"; the exact bounds are those of the
// service's error message, "… is not both greater than one plus the shard's StartingHashKey
// … and less than the shard's EndingHashKey …", recorded by kinesalite against the real
// service: newStart = Start+2 and newStart = End−1 succeed, Start+1 and End fail.)
//
// Errors: ErrNotFound (no such shard), ErrNotOpen (closed), ErrInvalidKey, ErrLimit (more
// than MaxOpen open shards or no ids left).
func (m *Map) Split(id ShardID, newStart Key) (*Map, Change, error) {
	e := m.edit()
	i, err := e.shard(id)
	if err != nil {
		return nil, Change{}, err
	}
	r := e.all[i].Range
	if !(r.Start.Less(newStart) && r.Start.Less(newStart.Prev()) && newStart.Less(r.End)) {
		return nil, Change{}, fmt.Errorf("%w: NewStartingHashKey %s used on %s is not both greater than one plus the shard's StartingHashKey %s and less than the shard's EndingHashKey %s",
			ErrInvalidKey, newStart, id.String(), r.Start, r.End)
	}
	if e.nopen+1 > MaxOpen {
		return nil, Change{}, fmt.Errorf("%w: splitting %s would make %d open shards, at most %d", ErrLimit, id.String(), e.nopen+1, MaxOpen)
	}
	c, err := e.split(id, newStart)
	if err != nil {
		return nil, Change{}, err
	}
	return e.freeze(), c, nil
}

// Merge is MergeShards: it closes open shards id (ShardToMerge) and adjacentID
// (AdjacentShardToMerge) and creates one child with the next id, the union of their ranges,
// Parent id and AdjacentParent adjacentID.
//
// The pair must be adjacent in the order given: adjacentID's range must begin one key after
// id's range ends, otherwise Merge fails with ErrNotAdjacent. This is AWS's behaviour as
// recorded by kinesalite against the real service: merging shardId-000000000001 with its lower
// neighbour shardId-000000000000 as the adjacent shard fails with "… are not an adjacent pair
// of shards eligible for merging", although the API reference defines adjacency symmetrically.
//
// Errors: ErrNotFound, ErrNotOpen, ErrNotAdjacent (also for id == adjacentID), ErrLimit (no
// ids left).
func (m *Map) Merge(id, adjacentID ShardID) (*Map, Change, error) {
	e := m.edit()
	c, err := e.merge(id, adjacentID)
	if err != nil {
		return nil, Change{}, err
	}
	return e.freeze(), c, nil
}

// UpdateShardCount is UpdateShardCount with UNIFORM_SCALING: it reshapes the open shards into
// target shards with the uniform layout of New(target), through splits and merges, and returns
// the new map and every step in the order taken, so that the owner can replay them.
//
// First every open shard (in hash key order) is split at each target boundary that falls
// strictly inside it, lowest first, each split splitting the upper half of the previous one.
// Then, for each target range, the pieces that make it up are merged from the lowest up: the
// first two, then their child with the third, and so on. The intermediate shards this creates
// are closed again within the same call, as AWS creates intermediate closed shards.
//
// As in AWS, one call may at most double and at least halve the number of open shards:
// target > 2·open or 2·target < open fails with ErrLimit (LimitExceededException, "cannot
// scale up over double / down below half your current open shard count"). target < 1 fails
// with ErrInvalidCount and target > MaxOpen with ErrLimit. When the open shards already have
// the target layout, UpdateShardCount returns m itself and no changes.
func (m *Map) UpdateShardCount(target int) (*Map, []Change, error) {
	open := len(m.open)
	switch {
	case target < 1:
		return nil, nil, fmt.Errorf("%w: target shard count %d, want at least 1", ErrInvalidCount, target)
	case target > MaxOpen:
		return nil, nil, fmt.Errorf("%w: target shard count %d, at most %d open shards", ErrLimit, target, MaxOpen)
	case target > 2*open:
		return nil, nil, fmt.Errorf("%w: UpdateShardCount cannot scale up over double your current open shard count. Current open shard count: %d, Target shard count: %d", ErrLimit, open, target)
	case 2*target < open:
		return nil, nil, fmt.Errorf("%w: UpdateShardCount cannot scale down below half your current open shard count. Current open shard count: %d, Target shard count: %d", ErrLimit, open, target)
	}
	layout := uniform(target)
	if target == open {
		same := true
		for i, s := range m.byStart {
			if s.Range != layout[i] {
				same = false
				break
			}
		}
		if same {
			return m, nil, nil
		}
	}

	e := m.edit()
	var changes []Change
	// Splits: afterwards every open shard lies within one target range. pieces are the open
	// shards in hash key order.
	pieces := make([]Shard, 0, open+target)
	next := 1 // index in layout of the next target boundary (the start of range next)
	for _, cur := range m.byStart {
		for next < target && !cur.Range.Start.Less(layout[next].Start) {
			next++ // a boundary at cur's start needs no split
		}
		for next < target && !cur.Range.End.Less(layout[next].Start) {
			c, err := e.split(cur.ID, layout[next].Start)
			if err != nil {
				return nil, nil, err
			}
			changes = append(changes, c)
			pieces = append(pieces, c.Created[0])
			cur = c.Created[1]
			next++
		}
		pieces = append(pieces, cur)
	}
	// Merges: the pieces of each target range, lowest first.
	p := 0
	for _, r := range layout {
		acc := pieces[p]
		p++
		for p < len(pieces) && !r.End.Less(pieces[p].Range.Start) {
			c, err := e.merge(acc.ID, pieces[p].ID)
			if err != nil {
				return nil, nil, err
			}
			changes = append(changes, c)
			acc = c.Created[0]
			p++
		}
		if acc.Range != r {
			panic(fmt.Sprintf("BUG: shardmap: UpdateShardCount(%d) made %v for target range [%s, %s]", target, acc, r.Start, r.End))
		}
	}
	return e.freeze(), changes, nil
}

// Apply replays changes, in order, each returned by an operation on the map the previous
// ones produced (the first on a map equal to m), and returns the map the last one produced. It
// checks that each change applies (its parents are open and the created ids and ranges are
// exactly those the step makes) and fails with ErrCorrupt otherwise, so a log of changes can
// be replayed onto a decoded map after a crash. Apply does not re-check the SplitShard bounds
// or the UpdateShardCount limits: the steps of an UpdateShardCount may split closer to a
// shard's ends than SplitShard allows. With no changes it returns m.
func (m *Map) Apply(changes ...Change) (*Map, error) {
	if len(changes) == 0 {
		return m, nil
	}
	e := m.edit()
	for i, c := range changes {
		var got Change
		var err error
		switch {
		case c.Kind == KindSplit && len(c.Closed) == 1 && len(c.Created) == 2:
			got, err = e.split(c.Closed[0], c.Created[1].Range.Start)
		case c.Kind == KindMerge && len(c.Closed) == 2 && len(c.Created) == 1:
			got, err = e.merge(c.Closed[0], c.Closed[1])
		default:
			return nil, fmt.Errorf("%w: change %d: malformed %v", ErrCorrupt, i, c)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: change %d (%v) does not apply: %w", ErrCorrupt, i, c, err)
		}
		if !slices.Equal(got.Created, c.Created) {
			return nil, fmt.Errorf("%w: change %d (%v) does not apply: the step creates %v", ErrCorrupt, i, c, got)
		}
	}
	return e.freeze(), nil
}
