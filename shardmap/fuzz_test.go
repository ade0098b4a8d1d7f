package shardmap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// fuzzBytes hands out fuzz input a few bytes at a time; past the end it returns zeros.
type fuzzBytes struct{ b []byte }

func (f *fuzzBytes) byte() byte {
	if len(f.b) == 0 {
		return 0
	}
	c := f.b[0]
	f.b = f.b[1:]
	return c
}

func (f *fuzzBytes) uint64() uint64 {
	var buf [8]byte
	n := copy(buf[:], f.b)
	f.b = f.b[n:]
	return binary.LittleEndian.Uint64(buf[:])
}

// key returns a key from the input: random-looking, or near a boundary of the open shard the
// random key falls in, so that both valid and edge-case arguments come up.
func (f *fuzzBytes) key(m *Map) Key {
	mode := f.byte()
	k := Key{Hi: f.uint64(), Lo: uint64(mode) << 56}
	s := m.Route(k)
	d := Key{Lo: uint64(mode>>2) & 7}
	switch mode & 3 {
	case 1:
		k = Key{Hi: s.Range.Start.Hi, Lo: s.Range.Start.Lo + d.Lo} // may wrap into the range's neighbours
	case 2:
		k = Key{Hi: s.Range.End.Hi, Lo: s.Range.End.Lo - d.Lo}
	}
	return k
}

// fuzzOpen bounds the open shards and operations of FuzzShardMap so that every execution
// stays fast (the checks are linear in the shards for every probed key).
const (
	fuzzOpen  = 32
	fuzzOps   = 32
	fuzzAll   = 96
	fuzzInput = 384
)

// FuzzShardMap interprets the input as a sequence of operations on a map of 1 to 16 shards:
// splits and merges with arguments valid or not, scalings within and beyond the limits, and
// prunes. A failed operation must fail with one of the package's errors and leave the map
// unchanged; after each successful one the map validates, Route agrees with a linear scan,
// Encode/Decode round-trips and the operation's changes replay onto the previous map.
func FuzzShardMap(f *testing.F) {
	f.Add(uint8(0), []byte{})
	f.Add(uint8(0), []byte{0, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(uint8(2), []byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0x80, 1, 0, 0, 2, 5})
	f.Add(uint8(3), []byte{2, 6, 2, 1, 2, 3, 1, 1, 0, 3, 0xff, 0xff})
	f.Add(uint8(7), []byte{2, 20, 2, 3, 2, 15, 1, 0, 1, 1, 1, 2, 4, 5, 9, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(uint8(1), []byte{0, 0, 5, 0, 0, 0, 0, 0, 0, 0x40, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0xc0, 1, 0, 0x80, 3, 0xff})
	f.Add(uint8(15), []byte{2, 200, 2, 100, 2, 7, 3, 0xaa, 1, 3, 1})
	f.Fuzz(fuzzShardMapOps)
}

// fuzzShardMapOps is the body of FuzzShardMap.
func fuzzShardMapOps(t *testing.T, n uint8, data []byte) {
	// Longer inputs only add steps past fuzzOps; cutting them keeps minimisation quick.
	if len(data) > fuzzInput {
		data = data[:fuzzInput]
	}
	m, err := New(1 + int(n%16))
	if err != nil {
		t.Fatal(err)
	}
	in := &fuzzBytes{b: data}
	for step := 0; step < fuzzOps && len(in.b) > 0; step++ {
		before := m.Encode()
		open := m.OpenByRange()
		var next *Map
		var changes []Change
		var err error
		op := in.byte()
		switch op % 5 {
		case 0: // split the shard a key falls in, at that key
			k := in.key(m)
			var c Change
			next, c, err = m.Split(m.Route(k).ID, k)
			changes = []Change{c}
			if len(open) >= fuzzOpen && err == nil {
				next = nil // keep executions small
			}
		case 1: // merge neighbours, in order or inverted
			i := int(in.byte()) % len(open)
			j := min(i+1, len(open)-1)
			if op&0x80 != 0 {
				i, j = j, i
			}
			var c Change
			next, c, err = m.Merge(open[i].ID, open[j].ID)
			changes = []Change{c}
		case 2: // scale, sometimes beyond the limits
			target := int(in.byte()) % (2*len(open) + 3)
			if target > fuzzOpen {
				target = len(open)
			}
			next, changes, err = m.UpdateShardCount(target)
		case 3: // prune a few ids, open, closed or unknown
			var ids []ShardID
			for range int(in.byte() % 4) {
				ids = append(ids, ShardID(in.byte())%(m.NextID()+2))
			}
			next = m.Prune(ids...)
		case 4: // split or merge arbitrary ids: closed, unknown or not adjacent
			a, b := ShardID(in.byte())%(m.NextID()+2), ShardID(in.byte())%(m.NextID()+2)
			var c Change
			if op&0x80 != 0 {
				next, c, err = m.Merge(a, b)
			} else {
				next, c, err = m.Split(a, in.key(m))
			}
			changes = []Change{c}
			if next != nil && len(next.Open()) > fuzzOpen {
				next = nil
			}
		}
		if !bytes.Equal(before, m.Encode()) {
			t.Fatalf("step %d: operation %d modified its receiver", step, op)
		}
		if err != nil {
			if next != nil {
				t.Fatalf("step %d: operation %d returned a map and %v", step, op, err)
			}
			if !isPackageError(err) {
				t.Fatalf("step %d: operation %d: unexpected error %v", step, op, err)
			}
			continue
		}
		if next == nil {
			continue
		}
		checkFuzzMap(t, next, data)
		if op%5 != 3 {
			replayed, err := m.Apply(changes...)
			if err != nil || !bytes.Equal(replayed.Encode(), next.Encode()) {
				t.Fatalf("step %d: replaying %v: %v", step, changes, err)
			}
		}
		m = next
		if len(m.All()) > fuzzAll {
			// Retention: drop the older half of the shards (Prune keeps the open ones), so
			// that histories stay small and lineage with pruned parents comes up.
			var ids []ShardID
			for _, s := range m.All()[:len(m.All())/2] {
				ids = append(ids, s.ID)
			}
			m = m.Prune(ids...)
			checkFuzzMap(t, m, nil)
		}
	}
}

func isPackageError(err error) bool {
	for _, e := range []error{ErrInvalidKey, ErrNotFound, ErrNotOpen, ErrNotAdjacent, ErrInvalidCount, ErrLimit} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// checkFuzzMap validates m, checks Route against a linear scan around every boundary and for
// keys taken from the input, and round-trips m through Encode/Decode.
func checkFuzzMap(t *testing.T, m *Map, data []byte) {
	t.Helper()
	if err := m.Validate(); err != nil {
		t.Fatalf("Validate: %v\n%v", err, m)
	}
	keys := probeKeys(m)
	for i := 0; i+16 <= len(data) && i < 256; i += 16 {
		keys = append(keys, Key{Hi: binary.LittleEndian.Uint64(data[i:]), Lo: binary.LittleEndian.Uint64(data[i+8:])})
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
	b := m.Encode()
	dec, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode(Encode(m)): %v\n%v", err, m)
	}
	if !bytes.Equal(dec.Encode(), b) {
		t.Fatalf("Encode/Decode round trip differs\n%v\n%v", m, dec)
	}
}

// FuzzDecode feeds arbitrary bytes to Decode: it must never panic, and a map it accepts must
// validate and encode back to exactly the input. With fixCRC the target first writes the right
// CRC into the trailer, so that the fuzzer explores the checks behind the CRC too.
func FuzzDecode(f *testing.F) {
	for _, m := range testMaps(f) {
		b := m.Encode()
		f.Add(b, false)
		f.Add(b[:len(b)/2], false)
		bad := bytes.Clone(b)
		bad[len(bad)/2] ^= 0x10
		f.Add(bad, false)
		f.Add(bad, true)
	}
	f.Add([]byte{}, false)
	f.Add([]byte("SLUICSMP"), true)
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix {
			b = bytes.Clone(b)
			fixCRC(b)
		}
		m, err := Decode(b)
		if err != nil {
			if m != nil || (!errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion)) {
				t.Fatalf("Decode = %v, %v", m, err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("decoded map does not validate: %v", err)
		}
		if !bytes.Equal(m.Encode(), b) {
			t.Fatalf("decoded map encodes differently")
		}
		for _, k := range probeKeys(m) {
			if want, _ := linearRoute(m, k); m.Route(k) != want {
				t.Fatalf("Route(%s) disagrees with a linear scan", k)
			}
		}
	})
}
