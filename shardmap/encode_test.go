package shardmap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/sluice-streams/sluice/internal/crc"
	"github.com/sluice-streams/sluice/internal/golden"
)

func goldenMap(t testing.TB) *Map {
	t.Helper()
	m := mustNew(t, 3)
	m, _, err := m.Split(0, Key{Hi: 1})
	if err != nil {
		t.Fatal(err)
	}
	m, _, err = m.Merge(4, 1)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err = m.Split(2, MaxKey.Prev())
	if err != nil {
		t.Fatal(err)
	}
	return m.Prune(1)
}

// testMaps returns maps of several shapes for the encoding tests.
func testMaps(t testing.TB) []*Map {
	t.Helper()
	maps := []*Map{mustNew(t, 1), mustNew(t, 2), mustNew(t, 7), goldenMap(t)}
	m, _, err := mustNew(t, 5).UpdateShardCount(9)
	if err != nil {
		t.Fatal(err)
	}
	maps = append(maps, m, exhaustedFixture(t, 0))
	return maps
}

func TestGoldenEncoding(t *testing.T) {
	m := goldenMap(t)
	got := m.Encode()
	golden.Check(t, "shardmap", EncodingVersion, "goldenMap(t).Encode() (encode_test.go): "+m.String(), got)

	// The current decoder reads the pinned bytes.
	dec, err := Decode(golden.File(t, "shardmap", EncodingVersion))
	if err != nil {
		t.Fatalf("Decode(golden): %v", err)
	}
	if dec.String() != m.String() {
		t.Fatalf("Decode(golden) = %v, want %v", dec, m)
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, m := range testMaps(t) {
		b := m.Encode()
		if want := headerSize + RecordSize*len(m.All()) + trailerSize; len(b) != want {
			t.Fatalf("Encode: %d bytes, want %d", len(b), want)
		}
		dec, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(Encode(%v)): %v", m, err)
		}
		if err := dec.Validate(); err != nil {
			t.Fatal(err)
		}
		if dec.NextID() != m.NextID() || len(dec.All()) != len(m.All()) {
			t.Fatalf("Decode = %v, want %v", dec, m)
		}
		for i, s := range m.All() {
			if dec.All()[i] != s {
				t.Fatalf("shard %d: %+v, want %+v", i, dec.All()[i], s)
			}
		}
		if !bytes.Equal(dec.Encode(), b) {
			t.Fatal("re-encoding differs")
		}
		// Append appends.
		if got := m.Append([]byte("prefix")); string(got[:6]) != "prefix" || !bytes.Equal(got[6:], b) {
			t.Fatal("Append does not append the encoding")
		}
		// The decoded map does not share the input.
		clear(b)
		checkMap(t, dec, rand.New(rand.NewPCG(1, 1)), 20)
	}
}

// TestDecodeDamage truncates, extends and flips every bit of every test encoding: Decode must
// reject each one without panicking, or, with the CRC recomputed after a flip, either reject
// it or return a map that validates and encodes back to the same bytes.
func TestDecodeDamage(t *testing.T) {
	for _, m := range testMaps(t) {
		b := m.Encode()
		for n := range len(b) {
			if _, err := Decode(b[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode of %d of %d bytes: %v", n, len(b), err)
			}
		}
		for _, tail := range [][]byte{{0}, {0, 0, 0, 0}, make([]byte, RecordSize), b} {
			if _, err := Decode(append(bytes.Clone(b), tail...)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Decode with %d bytes appended: %v", len(tail), err)
			}
		}
		accepted := 0
		for i := range 8 * len(b) {
			bad := bytes.Clone(b)
			bad[i/8] ^= 1 << (i % 8)
			if _, err := Decode(bad); err == nil {
				t.Fatalf("Decode accepted bit %d flipped", i)
			} else if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
				t.Fatalf("bit %d: %v", i, err)
			}
			if i/8 >= len(b)-trailerSize {
				continue
			}
			fixCRC(bad)
			dec, err := Decode(bad)
			if err != nil {
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) {
					t.Fatalf("bit %d with its CRC fixed: %v", i, err)
				}
				continue
			}
			accepted++
			if err := dec.Validate(); err != nil {
				t.Fatalf("bit %d: decoded map does not validate: %v", i, err)
			}
			if !bytes.Equal(dec.Encode(), bad) {
				t.Fatalf("bit %d: decoded map encodes differently", i)
			}
		}
		t.Logf("%d shards: %d of %d bit flips with a fixed CRC still decode (e.g. the next id)", len(m.All()), accepted, 8*(len(b)-trailerSize))
	}
}

// fixCRC rewrites the trailer of an encoding to match its body.
func fixCRC(b []byte) {
	if len(b) < trailerSize {
		return
	}
	body := b[:len(b)-trailerSize]
	binary.LittleEndian.PutUint32(b[len(body):], crc.Checksum(body))
}

func TestDecodeRejects(t *testing.T) {
	good := mustNew(t, 2).Encode()
	edit := func(f func(b []byte) []byte) []byte {
		b := f(bytes.Clone(good))
		fixCRC(b)
		return b
	}
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"header only", good[:headerSize], ErrCorrupt},
		{"magic", edit(func(b []byte) []byte { b[0] = 'X'; return b }), ErrCorrupt},
		{"version 0", edit(func(b []byte) []byte { b[8] = 0; return b }), ErrVersion},
		{"version 2", edit(func(b []byte) []byte { b[8] = 2; return b }), ErrVersion},
		{"record size", edit(func(b []byte) []byte { b[10] = 40; return b }), ErrCorrupt},
		{"no shards", edit(func(b []byte) []byte {
			b = append(b[:headerSize], 0, 0, 0, 0)
			binary.LittleEndian.PutUint32(b[16:], 0)
			return b
		}), ErrCorrupt},
		{"count too large", edit(func(b []byte) []byte { b[16] = 3; return b }), ErrCorrupt},
		{"count huge", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[16:], ^uint32(0)); return b }), ErrCorrupt},
		{"count too small", edit(func(b []byte) []byte { b[16] = 1; return b }), ErrCorrupt},
		{"unknown flag", edit(func(b []byte) []byte { b[headerSize+12] |= 2; return b }), ErrCorrupt},
		{"closed: no cover", edit(func(b []byte) []byte { b[headerSize+12] = 0; return b }), ErrCorrupt},
		{"next id too small", edit(func(b []byte) []byte { b[12] = 1; return b }), ErrCorrupt},
		{"next id too large", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], uint32(MaxShardID)+2); return b }), ErrCorrupt},
		{"parent out of range", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[headerSize+RecordSize+4:], uint32(MaxShardID)+1)
			return b
		}), ErrCorrupt},
		{"adjacent out of range", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[headerSize+RecordSize+8:], uint32(MaxShardID)+1)
			return b
		}), ErrCorrupt},
		{"gap", edit(func(b []byte) []byte { b[headerSize+RecordSize+16] ^= 1; return b }), ErrCorrupt},
		{"crc", func() []byte { b := bytes.Clone(good); b[len(b)-1] ^= 0x80; return b }(), ErrCorrupt},
	} {
		if m, err := Decode(c.b); !errors.Is(err, c.want) || m != nil {
			t.Errorf("%s: Decode = %v, %v; want %v", c.name, m, err, c.want)
		}
	}
	// next id above every shard id is fine: ids of pruned shards are never reused.
	b := edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 1000); return b })
	if m, err := Decode(b); err != nil || m.NextID() != 1000 {
		t.Errorf("Decode with next id 1000: %v, %v", m, err)
	}
}
