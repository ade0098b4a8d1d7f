package shardmap

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/internal/crc"
)

// updateGolden writes golden files that do not exist yet. It never changes the bytes of an
// existing one: a golden file pins the encoding of one format version, so new bytes need a
// new version (and a new file). Delete a file by hand only when the test's fixed inputs, not
// the format, changed.
var updateGolden = flag.Bool("update", false, "write missing golden files under testdata/golden")

// goldenMap is New(3), shard 0 split at 2^64, shards 4 and 1 merged, and shard 3 pruned: open
// and closed shards, both kinds of lineage and a pruned parent.
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
	checkGoldenHex(t, "shardmap", EncodingVersion, "goldenMap(t).Encode() (encode_test.go): "+m.String(), got)

	// The current decoder reads the pinned bytes.
	dec, err := Decode(goldenFile(t, "shardmap", EncodingVersion))
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
		{"next id too large", edit(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], MaxShardID+2); return b }), ErrCorrupt},
		{"parent out of range", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[headerSize+RecordSize+4:], MaxShardID+1)
			return b
		}), ErrCorrupt},
		{"adjacent out of range", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[headerSize+RecordSize+8:], MaxShardID+1)
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

func goldenPath(name string, version int) string {
	return filepath.Join("testdata", "golden", fmt.Sprintf("%s.v%d.hex", name, version))
}

func goldenFile(t *testing.T, name string, version int) []byte {
	t.Helper()
	text, err := os.ReadFile(goldenPath(name, version))
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseGoldenHex(text)
	if err != nil {
		t.Fatalf("%s: %v", goldenPath(name, version), err)
	}
	return b
}

// checkGoldenHex compares got with the golden file for name at version. With -update it
// writes the file if it is missing, and refuses to change the bytes of an existing one.
func checkGoldenHex(t *testing.T, name string, version int, comment string, got []byte) {
	t.Helper()
	path := goldenPath(name, version)
	text := "# " + comment + "\n# Generated by `go test -run Golden -update`; never edited by hand.\n" + hex.Dump(got)
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if *updateGolden {
		if err == nil {
			if want, perr := parseGoldenHex(old); perr == nil && !bytes.Equal(want, got) {
				t.Fatalf("%s: refusing to change the pinned bytes of format version %d: bump the version "+
					"(the new golden file is then written), or delete the file if only the test's inputs changed", path, version)
			}
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%v: a new format version needs its golden file: go test -run Golden -update", err)
	}
	want, err := parseGoldenHex(old)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Errorf("%s: the encoding changed (%d bytes, golden %d; first difference at byte %d).\n"+
			"A format change must bump EncodingVersion.\ngot:\n%s", path, len(got), len(want), i, hex.Dump(got))
	}
}

// parseGoldenHex reads back a hex dump in the format of hex.Dump, skipping '#' lines.
func parseGoldenHex(text []byte) ([]byte, error) {
	var out []byte
	for i, line := range strings.Split(string(text), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if bar := strings.IndexByte(line, '|'); bar >= 0 {
			line = line[:bar]
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			return nil, fmt.Errorf("line %d: no bytes", i+1)
		}
		if off, err := strconv.ParseUint(fields[0], 16, 64); err != nil || int(off) != len(out) {
			return nil, fmt.Errorf("line %d: offset %q, want %08x", i+1, fields[0], len(out))
		}
		for _, f := range fields[1:] {
			v, err := strconv.ParseUint(f, 16, 8)
			if err != nil || len(f) != 2 {
				return nil, fmt.Errorf("line %d: bad byte %q", i+1, f)
			}
			out = append(out, byte(v))
		}
	}
	return out, nil
}
