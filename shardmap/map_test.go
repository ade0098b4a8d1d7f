package shardmap

import (
	"bytes"
	"errors"
	"math/big"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// linearRoute is the reference router: a scan over the open shards.
func linearRoute(m *Map, k Key) (Shard, bool) {
	var found Shard
	n := 0
	for _, s := range m.Open() {
		if s.Range.Contains(k) {
			found = s
			n++
		}
	}
	return found, n == 1
}

// probeKeys returns the keys around every open range boundary and the extremes.
func probeKeys(m *Map) []Key {
	keys := []Key{{}, {Lo: 1}, MaxKey, MaxKey.Prev()}
	for _, s := range m.Open() {
		for _, k := range []Key{s.Range.Start, s.Range.End} {
			keys = append(keys, k.Prev(), k, k.Next()) // wraps at the extremes, which are probes anyway
		}
	}
	return keys
}

// checkMap validates m and checks Route against linearRoute for every boundary ±1 and for
// random keys.
func checkMap(t testing.TB, m *Map, r *rand.Rand, randomKeys int) {
	t.Helper()
	if err := m.Validate(); err != nil {
		t.Fatalf("Validate: %v\n%v", err, m)
	}
	keys := probeKeys(m)
	for range randomKeys {
		keys = append(keys, Key{Hi: r.Uint64(), Lo: r.Uint64()})
	}
	for _, k := range keys {
		want, ok := linearRoute(m, k)
		if !ok {
			t.Fatalf("key %s is not in exactly one open shard\n%v", k, m)
		}
		if got := m.Route(k); got != want {
			t.Fatalf("Route(%s) = %v, want %v\n%v", k, got, want, m)
		}
	}
}

// openRanges returns the ranges of m's open shards in hash key order.
func openRanges(m *Map) []Range {
	var rs []Range
	for _, s := range m.OpenByRange() {
		rs = append(rs, s.Range)
	}
	return rs
}

func mustNew(t testing.TB, n int) *Map {
	t.Helper()
	m, err := New(n)
	if err != nil {
		t.Fatalf("New(%d): %v", n, err)
	}
	return m
}

// TestNewLayout compares New(n) with the layout computed with math/big: shard i starts at
// i·⌊2^128/n⌋, ends one key before the next start, and the last ends at 2^128−1.
func TestNewLayout(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5, 7, 10, 16, 17, 100, 1000, 1023} {
		m := mustNew(t, n)
		checkMap(t, m, rand.New(rand.NewPCG(uint64(n), 0)), 100)
		w := new(big.Int).Div(two128, big.NewInt(int64(n)))
		all := m.All()
		if len(all) != n || len(m.Open()) != n || m.NextID() != ShardID(n) {
			t.Fatalf("New(%d): %d shards, %d open, next id %d", n, len(all), len(m.Open()), m.NextID())
		}
		for i, s := range all {
			start := new(big.Int).Mul(w, big.NewInt(int64(i)))
			end := new(big.Int).Sub(new(big.Int).Add(start, w), big.NewInt(1))
			if i == n-1 {
				end.Sub(two128, big.NewInt(1))
			}
			want := Shard{ID: ShardID(i), Parent: NoParent, AdjacentParent: NoParent,
				Range: Range{keyOfBig(t, start), keyOfBig(t, end)}, Open: true}
			if s != want {
				t.Fatalf("New(%d) shard %d = %+v, want %+v", n, i, s, want)
			}
		}
	}
}

// TestNewKinesis pins New against the hash key ranges the real service prints.
func TestNewKinesis(t *testing.T) {
	for _, c := range []struct {
		n    int
		want [][2]string
	}{
		{1, [][2]string{{"0", "340282366920938463463374607431768211455"}}},
		{2, [][2]string{
			{"0", "170141183460469231731687303715884105727"},
			{"170141183460469231731687303715884105728", "340282366920938463463374607431768211455"},
		}},
		{3, [][2]string{
			{"0", "113427455640312821154458202477256070484"},
			{"113427455640312821154458202477256070485", "226854911280625642308916404954512140969"},
			{"226854911280625642308916404954512140970", "340282366920938463463374607431768211455"},
		}},
	} {
		m := mustNew(t, c.n)
		for i, s := range m.All() {
			if got := [2]string{s.Range.Start.String(), s.Range.End.String()}; got != c.want[i] {
				t.Errorf("New(%d) shard %d: %v, want %v", c.n, i, got, c.want[i])
			}
		}
	}
}

func TestNewErrors(t *testing.T) {
	for _, c := range []struct {
		n    int
		want error
	}{
		{0, ErrInvalidCount},
		{-1, ErrInvalidCount},
		{-1 << 40, ErrInvalidCount},
		{MaxOpen + 1, ErrLimit},
		{1 << 40, ErrLimit},
	} {
		if m, err := New(c.n); !errors.Is(err, c.want) || m != nil {
			t.Errorf("New(%d) = %v, %v; want %v", c.n, m, err, c.want)
		}
	}
	m := mustNew(t, MaxOpen)
	if len(m.Open()) != MaxOpen {
		t.Fatalf("New(MaxOpen): %d open", len(m.Open()))
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
}

// splitFixture returns New(3) after splitting shard 0 at 2^64: shard 0 closed, 1 and 2 open,
// 3 = [0, 2^64−1] and 4 = [2^64, end of 0] open.
func splitFixture(t testing.TB) *Map {
	m, _, err := mustNew(t, 3).Split(0, Key{Hi: 1})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSplit(t *testing.T) {
	base := mustNew(t, 3)
	r0 := base.All()[0].Range
	full := mustNew(t, 1)
	for _, c := range []struct {
		name string
		m    *Map
		id   ShardID
		key  Key
		want error
	}{
		{"middle", base, 0, Key{Hi: 1}, nil},
		{"lowest allowed: start+2", base, 0, Key{Lo: 2}, nil},
		{"highest allowed: end-1", base, 0, r0.End.Prev(), nil},
		{"whole space lowest", full, 0, Key{Lo: 2}, nil},
		{"whole space highest", full, 0, MaxKey.Prev(), nil},
		{"last shard", base, 2, MaxKey.Prev().Prev(), nil},
		{"child of a split", splitFixture(t), 4, Key{Hi: 2}, nil},

		{"unknown id", base, 3, Key{Hi: 1}, ErrNotFound},
		{"unknown large id", base, MaxShardID, Key{Hi: 1}, ErrNotFound},
		{"NoParent id", base, NoParent, Key{Hi: 1}, ErrNotFound},
		{"closed", splitFixture(t), 0, Key{Lo: 5}, ErrNotOpen},
		{"key at start", base, 0, Key{}, ErrInvalidKey},
		{"key at start+1", base, 0, Key{Lo: 1}, ErrInvalidKey},
		{"key at end", base, 0, r0.End, ErrInvalidKey},
		{"key at end+1", base, 0, r0.End.Next(), ErrInvalidKey},
		{"key below the range", base, 1, Key{Lo: 5}, ErrInvalidKey},
		{"key above the range", base, 0, MaxKey, ErrInvalidKey},
		{"whole space at MaxKey", full, 0, MaxKey, ErrInvalidKey},
		{"start+1 of a later shard", base, 1, base.All()[1].Range.Start.Next(), ErrInvalidKey},
		{"three-key shard", tinyFixture(t, 3), 1, Key{Hi: 1, Lo: 2}, ErrInvalidKey},
		{"ids exhausted", exhaustedFixture(t, 1), MaxShardID - 2, Key{Hi: 1}, ErrLimit},
		{"last two ids", exhaustedFixture(t, 2), MaxShardID - 3, Key{Hi: 1}, nil},
		{"too many open shards", mustNew(t, MaxOpen), 0, Key{Lo: 1 << 20}, ErrLimit},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := c.m.Encode()
			m, ch, err := c.m.Split(c.id, c.key)
			if !bytes.Equal(before, c.m.Encode()) {
				t.Fatal("Split modified its receiver")
			}
			if c.want != nil {
				if !errors.Is(err, c.want) || m != nil {
					t.Fatalf("Split(%d, %s) = %v, %v; want %v", c.id, c.key, m, err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Split(%d, %s): %v", c.id, c.key, err)
			}
			checkMap(t, m, rand.New(rand.NewPCG(1, 2)), 50)
			p, _ := c.m.Lookup(c.id)
			next := c.m.NextID()
			lower := Shard{ID: next, Parent: c.id, AdjacentParent: NoParent, Range: Range{p.Range.Start, c.key.Prev()}, Open: true}
			upper := Shard{ID: next + 1, Parent: c.id, AdjacentParent: NoParent, Range: Range{c.key, p.Range.End}, Open: true}
			want := Change{Kind: KindSplit, Closed: []ShardID{c.id}, Created: []Shard{lower, upper}}
			if !sameChange(ch, want) {
				t.Fatalf("change %v, want %v", ch, want)
			}
			if got, _ := m.Lookup(c.id); got.Open || got.Range != p.Range || got.Parent != p.Parent {
				t.Fatalf("parent after split: %+v", got)
			}
			for _, s := range want.Created {
				if got, ok := m.Lookup(s.ID); !ok || got != s {
					t.Fatalf("Lookup(%d) = %+v, %v; want %+v", s.ID, got, ok, s)
				}
			}
			if m.NextID() != next+2 || len(m.All()) != len(c.m.All())+2 || len(m.Open()) != len(c.m.Open())+1 {
				t.Fatalf("after split: next %d, %d shards, %d open", m.NextID(), len(m.All()), len(m.Open()))
			}
			if got := m.Route(c.key); got != upper {
				t.Fatalf("Route(newStart) = %v, want %v", got, upper)
			}
			if got := m.Route(c.key.Prev()); got != lower {
				t.Fatalf("Route(newStart-1) = %v, want %v", got, lower)
			}
			if again, err := c.m.Apply(ch); err != nil || !bytes.Equal(again.Encode(), m.Encode()) {
				t.Fatalf("Apply(change) = %v, %v; want %v", again, err, m)
			}
		})
	}
}

// tinyFixture returns a map whose shard 1 is [2^64, 2^64+n−1], between shards 0 and 2.
func tinyFixture(t testing.TB, n uint64) *Map {
	t.Helper()
	all := []Shard{
		{ID: 0, Parent: NoParent, AdjacentParent: NoParent, Range: Range{Key{}, Key{Lo: ^uint64(0)}}, Open: true},
		{ID: 1, Parent: NoParent, AdjacentParent: NoParent, Range: Range{Key{Hi: 1}, Key{Hi: 1, Lo: n - 1}}, Open: true},
		{ID: 2, Parent: NoParent, AdjacentParent: NoParent, Range: Range{Key{Hi: 1, Lo: n}, MaxKey}, Open: true},
	}
	m := freeze(all, 3)
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m
}

// exhaustedFixture returns New(2)'s layout with ids MaxShardID−1 and MaxShardID and free ids
// left before MaxShardID is passed.
func exhaustedFixture(t testing.TB, free ShardID) *Map {
	t.Helper()
	base := mustNew(t, 2).All()
	id0 := ShardID(MaxShardID+1) - free - 2
	all := []Shard{base[0], base[1]}
	all[0].ID, all[1].ID = id0, id0+1
	m := freeze(all, id0+2)
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m
}

func sameChange(a, b Change) bool {
	return a.Kind == b.Kind && slices.Equal(a.Closed, b.Closed) && slices.Equal(a.Created, b.Created)
}

func TestMerge(t *testing.T) {
	base := mustNew(t, 3)
	split := splitFixture(t) // 0 closed; 3, 4, 1, 2 open in hash order
	for _, c := range []struct {
		name    string
		m       *Map
		id, adj ShardID
		want    error
	}{
		{"first pair", base, 0, 1, nil},
		{"last pair", base, 1, 2, nil},
		{"split children back together", split, 3, 4, nil},
		{"split child with next shard", split, 4, 1, nil},
		{"two-shard stream", mustNew(t, 2), 0, 1, nil},
		{"single-key shards", tinyFixture(t, 1), 0, 1, nil},

		{"unknown shard", base, 7, 1, ErrNotFound},
		{"unknown adjacent shard", base, 0, 7, ErrNotFound},
		{"NoParent", base, NoParent, 0, ErrNotFound},
		{"closed shard", split, 0, 1, ErrNotOpen},
		{"closed adjacent shard", split, 2, 0, ErrNotOpen},
		{"inverted pair", base, 1, 0, ErrNotAdjacent},
		{"inverted split children", split, 4, 3, ErrNotAdjacent},
		{"gap", base, 0, 2, ErrNotAdjacent},
		{"wrap: last with first", base, 2, 0, ErrNotAdjacent},
		{"same shard", base, 1, 1, ErrNotAdjacent},
		{"ids exhausted", exhaustedFixture(t, 0), MaxShardID - 1, MaxShardID, ErrLimit},
		{"last id", exhaustedFixture(t, 1), MaxShardID - 2, MaxShardID - 1, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := c.m.Encode()
			m, ch, err := c.m.Merge(c.id, c.adj)
			if !bytes.Equal(before, c.m.Encode()) {
				t.Fatal("Merge modified its receiver")
			}
			if c.want != nil {
				if !errors.Is(err, c.want) || m != nil {
					t.Fatalf("Merge(%d, %d) = %v, %v; want %v", c.id, c.adj, m, err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Merge(%d, %d): %v", c.id, c.adj, err)
			}
			checkMap(t, m, rand.New(rand.NewPCG(3, 4)), 50)
			p, _ := c.m.Lookup(c.id)
			a, _ := c.m.Lookup(c.adj)
			child := Shard{ID: c.m.NextID(), Parent: c.id, AdjacentParent: c.adj, Range: Range{p.Range.Start, a.Range.End}, Open: true}
			want := Change{Kind: KindMerge, Closed: []ShardID{c.id, c.adj}, Created: []Shard{child}}
			if !sameChange(ch, want) {
				t.Fatalf("change %v, want %v", ch, want)
			}
			for _, id := range want.Closed {
				if s, ok := m.Lookup(id); !ok || s.Open {
					t.Fatalf("parent %d after merge: %+v, %v", id, s, ok)
				}
			}
			if got, ok := m.Lookup(child.ID); !ok || got != child {
				t.Fatalf("Lookup(child) = %+v, %v; want %+v", got, ok, child)
			}
			if m.NextID() != c.m.NextID()+1 || len(m.Open()) != len(c.m.Open())-1 {
				t.Fatalf("after merge: next %d, %d open", m.NextID(), len(m.Open()))
			}
			for _, k := range []Key{p.Range.Start, p.Range.End, a.Range.Start, a.Range.End} {
				if got := m.Route(k); got != child {
					t.Fatalf("Route(%s) = %v, want the child", k, got)
				}
			}
			if again, err := c.m.Apply(ch); err != nil || !bytes.Equal(again.Encode(), m.Encode()) {
				t.Fatalf("Apply(change) = %v, %v; want %v", again, err, m)
			}
		})
	}
}

func TestApplyRejects(t *testing.T) {
	base := mustNew(t, 2)
	_, split, err := base.Split(0, Key{Hi: 5})
	if err != nil {
		t.Fatal(err)
	}
	_, merge, err := base.Merge(0, 1)
	if err != nil {
		t.Fatal(err)
	}
	other := splitFixture(t)
	mod := func(c Change, f func(*Change)) Change {
		c.Closed = slices.Clone(c.Closed)
		c.Created = slices.Clone(c.Created)
		f(&c)
		return c
	}
	for _, c := range []struct {
		name string
		m    *Map
		c    Change
	}{
		{"zero change", base, Change{}},
		{"unknown kind", base, mod(split, func(c *Change) { c.Kind = 9 })},
		{"split without children", base, mod(split, func(c *Change) { c.Created = c.Created[:1] })},
		{"merge with one parent", base, mod(merge, func(c *Change) { c.Closed = c.Closed[:1] })},
		{"split of another map", other, split},
		{"split twice", mustApply(t, base, split), split},
		{"merge of closed shards", mustApply(t, base, split), merge},
		{"wrong child id", base, mod(split, func(c *Change) { c.Created[0].ID++ })},
		{"wrong lower range", base, mod(split, func(c *Change) { c.Created[0].Range.End = c.Created[0].Range.End.Prev() })},
		{"closed child", base, mod(merge, func(c *Change) { c.Created[0].Open = false })},
		{"wrong adjacent parent", base, mod(merge, func(c *Change) { c.Created[0].AdjacentParent = 0 })},
		{"split key outside", base, mod(split, func(c *Change) { c.Created[1].Range.Start = MaxKey })},
	} {
		if m, err := c.m.Apply(c.c); !errors.Is(err, ErrCorrupt) || m != nil {
			t.Errorf("%s: Apply(%v) = %v, %v; want ErrCorrupt", c.name, c.c, m, err)
		}
	}
}

func mustApply(t testing.TB, m *Map, c Change) *Map {
	t.Helper()
	m, err := m.Apply(c)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLookupChildrenPrune(t *testing.T) {
	m := mustNew(t, 2)
	m, _, _ = m.Split(0, Key{Hi: 1})    // 0 → 2, 3
	m, _, _ = m.Merge(3, 1)             // 3 + 1 → 4
	m, _, err := m.Split(4, Key{Hi: 7}) // 4 → 5, 6
	if err != nil {
		t.Fatal(err)
	}
	checkMap(t, m, rand.New(rand.NewPCG(5, 6)), 20)
	ids := func(ss []Shard) []ShardID {
		var out []ShardID
		for _, s := range ss {
			out = append(out, s.ID)
		}
		return out
	}
	if got := ids(m.All()); !slices.Equal(got, []ShardID{0, 1, 2, 3, 4, 5, 6}) {
		t.Fatalf("All: %v", got)
	}
	if got := ids(m.Open()); !slices.Equal(got, []ShardID{2, 5, 6}) {
		t.Fatalf("Open: %v", got)
	}
	if got := ids(m.OpenByRange()); !slices.Equal(got, []ShardID{2, 5, 6}) {
		t.Fatalf("OpenByRange: %v", got)
	}
	for id, want := range map[ShardID][]ShardID{0: {2, 3}, 1: {4}, 3: {4}, 4: {5, 6}, 2: nil, 6: nil, 99: nil} {
		if got := ids(m.Children(id)); !slices.Equal(got, want) {
			t.Errorf("Children(%d) = %v, want %v", id, got, want)
		}
	}
	if _, ok := m.Lookup(7); ok {
		t.Error("Lookup(7) found a shard")
	}

	before := m.Encode()
	p := m.Prune(0, 3, 2, 99, 6) // 2 and 6 are open, 99 unknown: ignored
	if !bytes.Equal(before, m.Encode()) {
		t.Fatal("Prune modified its receiver")
	}
	checkMap(t, p, rand.New(rand.NewPCG(7, 8)), 20)
	if got := ids(p.All()); !slices.Equal(got, []ShardID{1, 2, 4, 5, 6}) {
		t.Fatalf("All after Prune: %v", got)
	}
	if p.NextID() != m.NextID() {
		t.Fatalf("Prune changed NextID: %d", p.NextID())
	}
	if _, ok := p.Lookup(0); ok {
		t.Fatal("pruned shard 0 still found")
	}
	if s, ok := p.Lookup(4); !ok || s.Parent != 3 || s.AdjacentParent != 1 {
		t.Fatalf("lineage of 4 after pruning its parent: %+v", s)
	}
	if _, _, err := p.Merge(3, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Merge of a pruned shard: %v", err)
	}
	if q := p.Prune(2, 5, 6, 1234); q != p {
		t.Fatal("Prune of open or unknown shards made a new map")
	}
	// Pruned ids are never handed out again.
	q, ch, err := p.Split(2, Key{Hi: 0, Lo: 1 << 40})
	if err != nil || ch.Created[0].ID != 7 {
		t.Fatalf("split after prune: %v, %v", ch, err)
	}
	checkMap(t, q, rand.New(rand.NewPCG(9, 10)), 20)
	if again, err := Decode(p.Encode()); err != nil || !bytes.Equal(again.Encode(), p.Encode()) {
		t.Fatalf("round trip of a pruned map: %v", err)
	}
}

// TestValidateRejects builds broken maps by hand: Validate must name each problem.
func TestValidateRejects(t *testing.T) {
	open := func(id ShardID, start, end Key) Shard {
		return Shard{ID: id, Parent: NoParent, AdjacentParent: NoParent, Range: Range{start, end}, Open: true}
	}
	half := Key{Hi: 1 << 63}
	good := []Shard{open(0, Key{}, half.Prev()), open(1, half, MaxKey)}
	closed := func(s Shard) Shard { s.Open = false; return s }
	child := func(s Shard, parent, adj ShardID) Shard { s.Parent, s.AdjacentParent = parent, adj; return s }
	for _, c := range []struct {
		name   string
		all    []Shard
		nextID ShardID
	}{
		{"no shards", nil, 0},
		{"no open shard", []Shard{closed(good[0]), closed(good[1])}, 2},
		{"gap", []Shard{open(0, Key{}, half.Prev().Prev()), open(1, half, MaxKey)}, 2},
		{"overlap", []Shard{open(0, Key{}, half), open(1, half, MaxKey)}, 2},
		{"contained", []Shard{open(0, Key{}, MaxKey), open(1, half, MaxKey)}, 2},
		{"duplicate", []Shard{open(0, Key{}, MaxKey), open(1, Key{}, MaxKey)}, 2},
		{"not from zero", []Shard{open(0, Key{Lo: 1}, half.Prev()), open(1, half, MaxKey)}, 2},
		{"not to the end", []Shard{open(0, Key{}, half.Prev()), open(1, half, MaxKey.Prev())}, 2},
		{"start after end", []Shard{open(0, Key{}, half.Prev()), open(1, MaxKey, half)}, 2},
		{"ids out of order", []Shard{good[1], good[0]}, 2},
		{"duplicate ids", []Shard{good[0], func() Shard { s := good[1]; s.ID = 0; return s }()}, 2},
		{"id not below next id", good, 1},
		{"next id too large", good, MaxShardID + 2},
		{"id above MaxShardID", []Shard{good[0], func() Shard { s := good[1]; s.ID = MaxShardID + 1; return s }()}, NoParent},
		{"parent not below child", []Shard{closed(good[0]), child(good[1], 1, NoParent), open(2, Key{}, half.Prev())}, 3},
		{"parent above child", []Shard{child(good[0], 1, NoParent), closed(good[1])}, 2},
		{"open parent", []Shard{good[0], good[1], child(open(2, half, MaxKey), 1, NoParent)}, 3},
		{"adjacent without parent", []Shard{good[0], child(good[1], NoParent, 0)}, 2},
		{"adjacent equals parent", []Shard{closed(good[0]), child(open(1, Key{}, half.Prev()), 0, 0), good[1]}, 2},
		{"split child outside parent",
			[]Shard{closed(open(0, Key{}, half.Prev())), good[1], child(open(2, Key{}, half), 0, NoParent)}, 3},
		{"merge child not the union", []Shard{closed(good[0]), closed(good[1]), child(open(2, Key{}, MaxKey.Prev()), 0, 1)}, 3},
		{"merge parents inverted", []Shard{closed(good[0]), closed(good[1]), child(open(2, Key{}, MaxKey), 1, 0)}, 3},
		{"merge child not starting with parent", []Shard{closed(good[0]), good[1], child(open(2, Key{Lo: 1}, half), 0, 9)}, 10},
		{"merge child not ending with adjacent", []Shard{good[0], closed(good[1]), child(open(2, half.Prev(), half), 9, 1)}, 10},
	} {
		m := freeze(slices.Clone(c.all), c.nextID)
		if err := m.Validate(); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Validate = %v, want ErrCorrupt\n%v", c.name, err, m)
		}
		// Decode refuses the same map.
		if c.all != nil {
			if _, err := Decode(m.Encode()); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s: Decode = %v, want ErrCorrupt", c.name, err)
			}
		}
	}
	// The derived index must agree with the shards.
	m := mustNew(t, 4)
	broken := *m
	broken.starts = slices.Clone(m.starts)
	broken.starts[2] = broken.starts[2].Next()
	if err := broken.Validate(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("stale routing key: %v", err)
	}
	broken = *m
	broken.byStart = broken.byStart[:3]
	if err := broken.Validate(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short routing index: %v", err)
	}
	broken = *m
	broken.open = broken.open[1:]
	if err := broken.Validate(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("short open index: %v", err)
	}
	broken = *m
	broken.byStart = slices.Clone(m.byStart)
	broken.byStart[1].Parent = 0
	if err := broken.Validate(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("routing entry not a shard: %v", err)
	}
}

func TestRouteNoAlloc(t *testing.T) {
	m := mustNew(t, 1024)
	k := KeyOf([]byte("partition"))
	var sink Shard
	if n := testing.AllocsPerRun(100, func() { sink = m.Route(k) }); n != 0 {
		t.Errorf("Route: %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() { sink, _ = m.Lookup(77) }); n != 0 {
		t.Errorf("Lookup: %v allocations", n)
	}
	_ = sink
}

// TestPointer routes from many goroutines while the owner publishes new maps; run with -race.
func TestPointer(t *testing.T) {
	var p Pointer
	if p.Load() != nil {
		t.Fatal("zero Pointer holds a map")
	}
	m := mustNew(t, 4)
	p.Store(m)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 99))
			for {
				select {
				case <-stop:
					return
				default:
				}
				cur := p.Load()
				k := Key{Hi: r.Uint64(), Lo: r.Uint64()}
				if s := cur.Route(k); !s.Open || !s.Range.Contains(k) {
					t.Errorf("Route(%s) = %v", k, s)
					return
				}
			}
		}()
	}
	r := rand.New(rand.NewPCG(42, 42))
	for range 200 {
		cur := p.Load()
		open := cur.OpenByRange()
		s := open[r.IntN(len(open))]
		next, _, err := cur.UpdateShardCount(max(1, len(open)/2+r.IntN(len(open)+1)))
		if err != nil {
			next, _, err = cur.Split(s.ID, s.Range.Start.Next().Next())
		}
		if err == nil {
			p.Store(next)
		}
	}
	close(stop)
	wg.Wait()
}
