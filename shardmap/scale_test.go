package shardmap

import (
	"bytes"
	"errors"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkScale checks the result of before.UpdateShardCount(target): the open shards have the
// layout of New(target); replaying the changes one by one from before, each closes shards that
// were open and creates shards with fresh ids whose parents were open, and the replay ends at
// after; shards closed before stay closed and unchanged; the lineage validates.
func checkScale(t testing.TB, before, after *Map, changes []Change, target int, r *rand.Rand) {
	t.Helper()
	checkMap(t, after, r, 20)
	if want := openRanges(mustNew(t, target)); !slices.Equal(openRanges(after), want) {
		t.Fatalf("UpdateShardCount(%d) from %v: open ranges %v, want New's %v", target, before, openRanges(after), want)
	}
	// Step by step for the small cases (validating every step is quadratic), in one call for
	// all.
	cur := before
	for i, c := range changes {
		if len(changes) > 64 {
			break
		}
		for _, id := range c.Closed {
			if s, ok := cur.Lookup(id); !ok || !s.Open {
				t.Fatalf("change %d (%v) closes %d, which was %+v, %v", i, c, id, s, ok)
			}
		}
		for j, s := range c.Created {
			if s.ID != cur.NextID()+ShardID(j) || !s.Open {
				t.Fatalf("change %d (%v) creates %+v; next id was %d", i, c, s, cur.NextID())
			}
		}
		next, err := cur.Apply(c)
		if err != nil {
			t.Fatalf("change %d (%v): Apply: %v", i, c, err)
		}
		if err := next.Validate(); err != nil {
			t.Fatalf("after change %d (%v): %v", i, c, err)
		}
		cur = next
	}
	for i, c := range changes {
		for _, s := range c.Created {
			if !slices.Contains(c.Closed, s.Parent) || (s.HasAdjacentParent() && !slices.Contains(c.Closed, s.AdjacentParent)) {
				t.Fatalf("change %d (%v): child %+v's parents are not the closed shards", i, c, s)
			}
		}
	}
	if len(changes) > 64 {
		var err error
		if cur, err = before.Apply(changes...); err != nil {
			t.Fatalf("Apply(%d changes): %v", len(changes), err)
		}
	}
	if !bytes.Equal(cur.Encode(), after.Encode()) {
		t.Fatalf("replaying %d changes gives %v, want %v", len(changes), cur, after)
	}
	for _, s := range before.All() {
		got, ok := after.Lookup(s.ID)
		if !ok {
			t.Fatalf("shard %d disappeared", s.ID)
		}
		if !s.Open && got != s {
			t.Fatalf("closed shard %+v became %+v", s, got)
		}
		if got.ID != s.ID || got.Parent != s.Parent || got.AdjacentParent != s.AdjacentParent || got.Range != s.Range {
			t.Fatalf("shard %+v became %+v", s, got)
		}
	}
}

// TestUpdateShardCountPairs scales uniform streams of 1 … 40 shards (and some larger ones) to
// every target the limits allow.
func TestUpdateShardCountPairs(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	type pair struct{ from, to int }
	var pairs []pair
	for from := 1; from <= 40; from++ {
		for to := (from + 1) / 2; to <= 2*from; to++ {
			pairs = append(pairs, pair{from, to})
		}
	}
	for _, from := range []int{64, 100, 127, 333, 1000} {
		for _, to := range []int{(from + 1) / 2, from/2 + 1, from - 1, from, from + 1, 3 * from / 2, 2*from - 1, 2 * from} {
			pairs = append(pairs, pair{from, to})
		}
	}
	for _, p := range pairs {
		before := mustNew(t, p.from)
		after, changes, err := before.UpdateShardCount(p.to)
		if err != nil {
			t.Fatalf("UpdateShardCount(%d → %d): %v", p.from, p.to, err)
		}
		if p.from == p.to {
			if after != before || changes != nil {
				t.Fatalf("UpdateShardCount(%d → %d) changed a uniform map", p.from, p.to)
			}
			continue
		}
		checkScale(t, before, after, changes, p.to, r)
	}
}

// TestUpdateShardCountKinesis checks the aligned cases against what AWS reports: 2 → 4 is two
// splits (6 shards, 2 closed), 4 → 2 two merges (6 shards, 4 closed).
func TestUpdateShardCountKinesis(t *testing.T) {
	for _, c := range []struct {
		from, to       int
		kinds          []Kind
		shards, closed int
	}{
		{2, 4, []Kind{KindSplit, KindSplit}, 6, 2},
		{4, 2, []Kind{KindMerge, KindMerge}, 6, 4},
		{1, 2, []Kind{KindSplit}, 3, 1},
		{2, 1, []Kind{KindMerge}, 3, 2},
		{4, 8, []Kind{KindSplit, KindSplit, KindSplit, KindSplit}, 12, 4},
		// 2 → 3: 2 shards are split at the 1/3 and 2/3 boundaries (2 splits), then the two
		// middle pieces merged: 2 + 4 + 1 shards, 4 closed, 3 open.
		{2, 3, []Kind{KindSplit, KindSplit, KindMerge}, 7, 4},
	} {
		m := mustNew(t, c.from)
		after, changes, err := m.UpdateShardCount(c.to)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []Kind
		for _, ch := range changes {
			kinds = append(kinds, ch.Kind)
		}
		closed := len(after.All()) - len(after.Open())
		if !slices.Equal(kinds, c.kinds) || len(after.All()) != c.shards || closed != c.closed {
			t.Errorf("%d → %d: %v, %d shards, %d closed; want %v, %d, %d", c.from, c.to, changes, len(after.All()), closed, c.kinds, c.shards, c.closed)
		}
	}
	// 2 → 4 in detail: shard 0 is split into 2 and 3, shard 1 into 4 and 5.
	m := mustNew(t, 2)
	_, changes, _ := m.UpdateShardCount(4)
	q := mustNew(t, 4).All()
	want := []Change{
		{Kind: KindSplit, Closed: []ShardID{0}, Created: []Shard{
			{ID: 2, Parent: 0, AdjacentParent: NoParent, Range: q[0].Range, Open: true},
			{ID: 3, Parent: 0, AdjacentParent: NoParent, Range: q[1].Range, Open: true}}},
		{Kind: KindSplit, Closed: []ShardID{1}, Created: []Shard{
			{ID: 4, Parent: 1, AdjacentParent: NoParent, Range: q[2].Range, Open: true},
			{ID: 5, Parent: 1, AdjacentParent: NoParent, Range: q[3].Range, Open: true}}},
	}
	if len(changes) != len(want) || !sameChange(changes[0], want[0]) || !sameChange(changes[1], want[1]) {
		t.Errorf("2 → 4: %v, want %v", changes, want)
	}
}

func TestUpdateShardCountErrors(t *testing.T) {
	six := mustNew(t, 6)
	five := mustNew(t, 5)
	for _, c := range []struct {
		name   string
		m      *Map
		target int
		want   error
	}{
		{"zero", six, 0, ErrInvalidCount},
		{"negative", six, -3, ErrInvalidCount},
		{"over double", six, 13, ErrLimit},
		{"far over double", six, 1 << 40, ErrLimit},
		{"below half", six, 2, ErrLimit},
		{"below half of odd", five, 2, ErrLimit}, // 2 < 2.5
		{"over MaxOpen", mustNew(t, MaxOpen), MaxOpen + 1, ErrLimit},
		{"ids exhausted", exhaustedFixture(t, 1), 3, ErrLimit},
	} {
		before := c.m.Encode()
		if m, ch, err := c.m.UpdateShardCount(c.target); !errors.Is(err, c.want) || m != nil || ch != nil {
			t.Errorf("%s: UpdateShardCount(%d) = %v, %v, %v; want %v", c.name, c.target, m, ch, err, c.want)
		}
		if !bytes.Equal(before, c.m.Encode()) {
			t.Errorf("%s: UpdateShardCount modified its receiver", c.name)
		}
	}
	for _, c := range []struct {
		m      *Map
		target int
	}{{six, 3}, {six, 12}, {five, 3}, {five, 10}, {mustNew(t, 1), 2}, {mustNew(t, 1), 1}} {
		if _, _, err := c.m.UpdateShardCount(c.target); err != nil {
			t.Errorf("UpdateShardCount(%d → %d): %v", len(c.m.Open()), c.target, err)
		}
	}
	// The same count on a non-uniform map reshapes it.
	m, _, err := mustNew(t, 2).Split(0, Key{Hi: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, _, err = m.Merge(3, 1)
	if err != nil {
		t.Fatal(err)
	}
	after, changes, err := m.UpdateShardCount(2)
	if err != nil || len(changes) == 0 {
		t.Fatalf("UpdateShardCount(2) of a non-uniform map: %v, %v", changes, err)
	}
	checkScale(t, m, after, changes, 2, rand.New(rand.NewPCG(1, 1)))
}

// randomSplitKey returns a key that Split accepts for s (Start+1 < key < End), and false if
// the shard is too small to split.
func randomSplitKey(t testing.TB, r *rand.Rand, s Shard) (Key, bool) {
	lo := new(big.Int).Add(bigOf(s.Range.Start), big.NewInt(2))
	hi := new(big.Int).Sub(bigOf(s.Range.End), big.NewInt(1))
	if lo.Cmp(hi) > 0 {
		return Key{}, false
	}
	span := new(big.Int).Add(new(big.Int).Sub(hi, lo), big.NewInt(1))
	var off *big.Int
	switch r.IntN(4) {
	case 0:
		off = big.NewInt(0)
	case 1:
		off = new(big.Int).Sub(span, big.NewInt(1))
	default:
		// Uniform enough for a test: 192 random bits reduced modulo the span.
		x := new(big.Int).SetUint64(r.Uint64())
		for range 2 {
			x.Lsh(x, 64).Or(x, new(big.Int).SetUint64(r.Uint64()))
		}
		off = x.Mod(x, span)
	}
	return keyOfBig(t, lo.Add(lo, off)), true
}

// TestRandomOps runs long random sequences of splits, merges, scalings and prunes, with the
// seed logged. After every step the map validates, Route agrees with a linear scan for random
// keys and every boundary ±1, the receiver is unchanged, the result survives Encode/Decode,
// and the step's changes replay onto the previous map.
func TestRandomOps(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	steps := 400
	if testing.Short() {
		steps = 100
	}
	for run := range 4 {
		m := mustNew(t, 1+r.IntN(8))
		for step := range steps {
			before := m.Encode()
			next, changes, op := randomOp(t, r, m)
			if !bytes.Equal(before, m.Encode()) {
				t.Fatalf("run %d step %d: %s modified its receiver", run, step, op)
			}
			if next == nil {
				continue
			}
			checkMap(t, next, r, 30)
			cur := m
			for _, c := range changes {
				var err error
				if cur, err = cur.Apply(c); err != nil {
					t.Fatalf("run %d step %d: %s: Apply(%v): %v", run, step, op, c, err)
				}
			}
			if op != "prune" && !bytes.Equal(cur.Encode(), next.Encode()) {
				t.Fatalf("run %d step %d: %s: replay differs", run, step, op)
			}
			dec, err := Decode(next.Encode())
			if err != nil || !bytes.Equal(dec.Encode(), next.Encode()) {
				t.Fatalf("run %d step %d: %s: round trip: %v", run, step, op, err)
			}
			m = next
		}
		t.Logf("run %d: %d shards, %d open, next id %d", run, len(m.All()), len(m.Open()), m.NextID())
	}
}

// randomOp applies one random operation to m and returns the new map (nil if the operation
// failed, as it must for the invalid arguments it sometimes picks), its changes and its name.
func randomOp(t testing.TB, r *rand.Rand, m *Map) (*Map, []Change, string) {
	t.Helper()
	open := m.OpenByRange()
	switch op := r.IntN(10); {
	case op < 4 && len(open) < 64: // split
		s := open[r.IntN(len(open))]
		k, ok := randomSplitKey(t, r, s)
		if !ok || r.IntN(8) == 0 {
			k = s.Range.Start.Next() // never valid
			next, _, err := m.Split(s.ID, k)
			if !errors.Is(err, ErrInvalidKey) || next != nil {
				t.Fatalf("Split(%d, start+1) = %v, %v", s.ID, next, err)
			}
			return nil, nil, "split"
		}
		next, c, err := m.Split(s.ID, k)
		if err != nil {
			t.Fatalf("Split(%d, %s) of %v: %v", s.ID, k, m, err)
		}
		return next, []Change{c}, "split"
	case op < 7 && len(open) > 1: // merge
		i := r.IntN(len(open) - 1)
		a, b := open[i], open[i+1]
		if r.IntN(8) == 0 {
			next, _, err := m.Merge(b.ID, a.ID) // inverted: never valid
			if !errors.Is(err, ErrNotAdjacent) || next != nil {
				t.Fatalf("Merge(%d, %d) inverted = %v, %v", b.ID, a.ID, next, err)
			}
			return nil, nil, "merge"
		}
		next, c, err := m.Merge(a.ID, b.ID)
		if err != nil {
			t.Fatalf("Merge(%d, %d) of %v: %v", a.ID, b.ID, m, err)
		}
		return next, []Change{c}, "merge"
	case op < 9: // scale
		n := len(open)
		target := (n+1)/2 + r.IntN(2*n-(n+1)/2+1)
		target = min(target, 64)
		next, changes, err := m.UpdateShardCount(target)
		if err != nil {
			t.Fatalf("UpdateShardCount(%d) of %v: %v", target, m, err)
		}
		return next, changes, "scale"
	default: // prune some closed shards, sometimes also naming open ones
		var ids []ShardID
		for _, s := range m.All() {
			if r.IntN(3) == 0 {
				ids = append(ids, s.ID)
			}
		}
		return m.Prune(ids...), nil, "prune"
	}
}
