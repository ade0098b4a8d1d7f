package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/internal/crc"
	"github.com/sluice-streams/sluice/internal/golden"
	"github.com/sluice-streams/sluice/internal/vfs"
)

// Golden values: fixed inputs whose encodings are pinned under testdata/golden.
var (
	goldenRecord = Record{
		Seq:   0x0102030405060708,
		Time:  1_700_000_000_123_456_789,
		Flags: frame.FlagEncrypted | 0x8000, // an unknown bit, which must be preserved
		Key:   []byte("partition-key"),
		Data:  []byte("hello, sluice\x00\xff"), // 32+13+15 = 60 bytes, 4 of padding
	}
	goldenSegHeader = segHeader{logID: 0x1122334455667788, segID: 3, base: 1_000_000, created: 1_700_000_000_000_000_000, prevLast: 999_999}
	goldenSlot0     = checkpoint{gen: 2, durable: 8192, first: 1_000_000, last: 1_000_041, ltime: 1_700_000_001_000_000_000, count: 42}
	goldenSlot1     = checkpoint{gen: 3, durable: 12288, first: 1_000_000, last: 1_000_099, ltime: 1_700_000_002_000_000_000, count: 100, sealed: true}
	goldenMeta      = meta{logID: 0x1122334455667788, reserved: 1<<32 + 1_000_100, clean: true, cseg: 3, cend: 12288,
		clast: 1_000_099, ctime: 1_700_000_002_000_000_000, hidden: 1_690_000_000_000_000_000}
)

func goldenHeaderPage() []byte {
	page := make([]byte, DataOffset)
	appendSegHeader(page[:0], goldenSegHeader)
	appendCheckpoint(page[slotOffset(goldenSlot0.gen):][:0], goldenSlot0)
	appendCheckpoint(page[slotOffset(goldenSlot1.gen):][:0], goldenSlot1)
	return page
}

func TestGoldenFrame(t *testing.T) {
	r := goldenRecord
	got := frame.Append(nil, &r)
	golden.Check(t, "frame", SegmentVersion, "AppendFrame of goldenRecord (format_test.go)", got)

	d, n, err := frame.Decode(golden.File(t, "frame", SegmentVersion))
	if err != nil || n != len(got) {
		t.Fatalf("frame.Decode(golden) = n %d, %v; want n %d", n, err, len(got))
	}
	if d.Seq != r.Seq || d.Time != r.Time || d.Flags != r.Flags || !bytes.Equal(d.Key, r.Key) || !bytes.Equal(d.Data, r.Data) {
		t.Fatalf("frame.Decode(golden) = %+v, want %+v", d, r)
	}
}

func TestGoldenSegmentHeader(t *testing.T) {
	golden.Check(t, "header-page", SegmentVersion,
		"segment header page: appendSegHeader(goldenSegHeader), slot 0 goldenSlot0 (gen 2), slot 1 goldenSlot1 (gen 3, sealed)",
		goldenHeaderPage())

	page := golden.File(t, "header-page", SegmentVersion)
	h, err := decodeSegHeader(page)
	if err != nil || h != goldenSegHeader {
		t.Fatalf("decodeSegHeader(golden) = %+v, %v; want %+v", h, err, goldenSegHeader)
	}
	for _, want := range []checkpoint{goldenSlot0, goldenSlot1} {
		off := slotOffset(want.gen)
		if c, ok := decodeCheckpoint(page[off : off+slotSize]); !ok || c != want {
			t.Fatalf("decodeCheckpoint(golden slot at %d) = %+v, %v; want %+v", off, c, ok, want)
		}
	}
	if c, ok := bestCheckpoint(page); !ok || c != goldenSlot1 {
		t.Fatalf("bestCheckpoint(golden) = %+v, %v; want %+v", c, ok, goldenSlot1)
	}
}

func TestGoldenMeta(t *testing.T) {
	golden.Check(t, "log-meta", metaVersion, "log.meta: goldenMeta.encode()", goldenMeta.encode())

	m, err := decodeMeta(golden.File(t, "log-meta", metaVersion))
	if err != nil || m != goldenMeta {
		t.Fatalf("decodeMeta(golden) = %+v, %v; want %+v", m, err, goldenMeta)
	}
}

// --- segment header ---

func TestSegHeader(t *testing.T) {
	good := appendSegHeader(nil, goldenSegHeader)
	if len(good) != headerSize {
		t.Fatalf("header is %d bytes, want %d", len(good), headerSize)
	}
	// withCRC edits a copy of the header and fixes its CRC.
	withCRC := func(edit func(b []byte)) []byte {
		b := bytes.Clone(good)
		edit(b)
		binary.LittleEndian.PutUint32(b[60:], crc.Checksum(b[:60]))
		return b
	}
	cases := []struct {
		name    string
		b       []byte
		version bool // the error must satisfy errors.Is(err, ErrVersion)
	}{
		{name: "bad magic", b: withCRC(func(b []byte) { copy(b, "SLUICLOG") })},
		{name: "zero magic", b: withCRC(func(b []byte) { clear(b[:8]) })},
		{name: "all zeros", b: make([]byte, headerSize)},
		{name: "version 2", b: withCRC(func(b []byte) { binary.LittleEndian.PutUint16(b[8:], SegmentVersion+1) }), version: true},
		{name: "version 0", b: withCRC(func(b []byte) { binary.LittleEndian.PutUint16(b[8:], 0) }), version: true},
		{name: "version 0xffff", b: withCRC(func(b []byte) { binary.LittleEndian.PutUint16(b[8:], 0xffff) }), version: true},
		{name: "data offset 0", b: withCRC(func(b []byte) { binary.LittleEndian.PutUint32(b[12:], 0) })},
		{name: "data offset 8192", b: withCRC(func(b []byte) { binary.LittleEndian.PutUint32(b[12:], 8192) })},
	}
	for i := range headerSize * 8 {
		b := bytes.Clone(good)
		b[i/8] ^= 1 << (i % 8)
		cases = append(cases, struct {
			name    string
			b       []byte
			version bool
		}{name: fmt.Sprintf("bit %d of byte %d flipped", i%8, i/8), b: b})
	}
	for cut := range headerSize {
		cases = append(cases, struct {
			name    string
			b       []byte
			version bool
		}{name: fmt.Sprintf("cut at %d", cut), b: bytes.Clone(good[:cut])})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := decodeSegHeader(tc.b)
			if err == nil {
				t.Fatalf("decodeSegHeader accepted it: %+v", h)
			}
			if got := errors.Is(err, ErrVersion); got != tc.version {
				t.Fatalf("errors.Is(%v, ErrVersion) = %v, want %v", err, got, tc.version)
			}
		})
	}
	// Trailing bytes (the rest of the header page) are not the header's business.
	if h, err := decodeSegHeader(append(bytes.Clone(good), 0xff, 0xff)); err != nil || h != goldenSegHeader {
		t.Fatalf("decodeSegHeader(header + trailing bytes) = %+v, %v", h, err)
	}
}

// --- checkpoint slots ---

func TestCheckpointRoundTrip(t *testing.T) {
	for _, c := range []checkpoint{
		goldenSlot0, goldenSlot1,
		{gen: 1, durable: DataOffset},
		{gen: math.MaxUint64, durable: math.MaxInt64, first: math.MaxUint64, last: math.MaxUint64, ltime: math.MinInt64, count: math.MaxUint64, sealed: true},
	} {
		b := appendCheckpoint(nil, c)
		if len(b) != slotSize {
			t.Fatalf("checkpoint is %d bytes, want %d", len(b), slotSize)
		}
		if got, ok := decodeCheckpoint(b); !ok || got != c {
			t.Fatalf("decodeCheckpoint(appendCheckpoint(%+v)) = %+v, %v", c, got, ok)
		}
	}
}

func TestCheckpointRejects(t *testing.T) {
	good := appendCheckpoint(nil, goldenSlot0)
	withCRC := func(edit func(b []byte)) []byte {
		b := bytes.Clone(good)
		edit(b)
		binary.LittleEndian.PutUint32(b[60:], crc.Checksum(b[:60]))
		return b
	}
	cases := map[string][]byte{
		"zeros":                     make([]byte, slotSize),
		"generation 0":              withCRC(func(b []byte) { binary.LittleEndian.PutUint64(b, 0) }),
		"durable above MaxInt64":    withCRC(func(b []byte) { binary.LittleEndian.PutUint64(b[8:], math.MaxInt64+1) }),
		"torn: second half zeroed":  append(bytes.Clone(good[:32]), make([]byte, 32)...),
		"torn: first sector of old": append(appendCheckpoint(nil, goldenSlot1)[:32], good[32:]...),
	}
	for i := range slotSize * 8 {
		b := bytes.Clone(good)
		b[i/8] ^= 1 << (i % 8)
		cases[fmt.Sprintf("bit %d of byte %d flipped", i%8, i/8)] = b
	}
	for cut := range slotSize {
		cases[fmt.Sprintf("cut at %d", cut)] = bytes.Clone(good[:cut])
	}
	for name, b := range cases {
		if c, ok := decodeCheckpoint(b); ok {
			t.Errorf("%s: decodeCheckpoint accepted %+v", name, c)
		}
	}
}

func TestBestCheckpoint(t *testing.T) {
	at := func(gen uint64, durable int64) checkpoint {
		return checkpoint{gen: gen, durable: durable, first: 10, last: 10 + gen, count: gen + 1}
	}
	torn := func(slot []byte) { slot[33] ^= 0x40 }
	cases := []struct {
		name   string
		slot0  *checkpoint // nil: zeros
		slot1  *checkpoint
		damage func(page []byte)
		cut    int // page length, 0 for a whole page
		want   *checkpoint
	}{
		{name: "new segment: slot 1 only", slot1: &checkpoint{gen: 1, durable: DataOffset}, want: &checkpoint{gen: 1, durable: DataOffset}},
		{name: "both valid, slot 0 newer", slot0: ptr(at(4, 9000)), slot1: ptr(at(3, 8000)), want: ptr(at(4, 9000))},
		{name: "both valid, slot 1 newer", slot0: ptr(at(2, 8000)), slot1: ptr(at(3, 9000)), want: ptr(at(3, 9000))},
		{name: "newer is higher even when it records less", slot0: ptr(at(6, 5000)), slot1: ptr(at(5, 9000)), want: ptr(at(6, 5000))},
		{name: "generations far apart", slot0: ptr(at(1<<40, 5000)), slot1: ptr(at(3, 9000)), want: ptr(at(1<<40, 5000))},
		{name: "slot 0 torn", slot0: ptr(at(4, 9000)), slot1: ptr(at(3, 8000)),
			damage: func(p []byte) { torn(p[slot0Off:]) }, want: ptr(at(3, 8000))},
		{name: "slot 1 torn", slot0: ptr(at(2, 8000)), slot1: ptr(at(3, 9000)),
			damage: func(p []byte) { torn(p[slot1Off:]) }, want: ptr(at(2, 8000))},
		{name: "slot 1 zeroed", slot0: ptr(at(2, 8000)), slot1: ptr(at(3, 9000)),
			damage: func(p []byte) { clear(p[slot1Off : slot1Off+slotSize]) }, want: ptr(at(2, 8000))},
		{name: "both torn", slot0: ptr(at(2, 8000)), slot1: ptr(at(3, 9000)),
			damage: func(p []byte) { torn(p[slot0Off:]); torn(p[slot1Off:]) }},
		{name: "both zero"},
		{name: "damage between the slots is ignored", slot0: ptr(at(2, 8000)), slot1: ptr(at(3, 9000)),
			damage: func(p []byte) { p[slot0Off+slotSize] = 0xff; p[slot1Off-1] = 0xff; p[slot1Off+slotSize] = 0xff }, want: ptr(at(3, 9000))},
		{name: "page cut inside slot 1", slot0: ptr(at(2, 8000)), slot1: ptr(at(3, 9000)), cut: slot1Off + slotSize - 1, want: ptr(at(2, 8000))},
		{name: "page cut inside slot 0", slot0: ptr(at(2, 8000)), slot1: ptr(at(3, 9000)), cut: slot0Off + 10},
		{name: "page cut before slot 0", slot0: ptr(at(2, 8000)), slot1: ptr(at(3, 9000)), cut: headerSize},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			page := make([]byte, DataOffset)
			appendSegHeader(page[:0], goldenSegHeader)
			if tc.slot0 != nil {
				appendCheckpoint(page[slot0Off:slot0Off], *tc.slot0)
			}
			if tc.slot1 != nil {
				appendCheckpoint(page[slot1Off:slot1Off], *tc.slot1)
			}
			if tc.damage != nil {
				tc.damage(page)
			}
			if tc.cut > 0 {
				page = page[:tc.cut]
			}
			c, ok := bestCheckpoint(page)
			switch {
			case tc.want == nil && ok:
				t.Fatalf("bestCheckpoint found %+v, want none", c)
			case tc.want != nil && (!ok || c != *tc.want):
				t.Fatalf("bestCheckpoint = %+v, %v; want %+v", c, ok, *tc.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestSlotOffset(t *testing.T) {
	for gen, want := range map[uint64]int64{1: slot1Off, 2: slot0Off, 3: slot1Off, 1 << 40: slot0Off, math.MaxUint64: slot1Off} {
		if got := slotOffset(gen); got != want {
			t.Errorf("slotOffset(%d) = %d, want %d", gen, got, want)
		}
	}
	// The slots must sit in different 512-byte sectors, inside the header page, clear of
	// the header and of each other.
	if slot0Off/512 == slot1Off/512 || slot0Off < headerSize || slot1Off < slot0Off+slotSize || slot1Off+slotSize > DataOffset {
		t.Fatalf("slot layout: header %d, slot 0 at %d, slot 1 at %d, data at %d", headerSize, slot0Off, slot1Off, DataOffset)
	}
}

// --- log.meta ---

func TestMetaRoundTrip(t *testing.T) {
	for _, m := range []meta{
		goldenMeta,
		{},
		{logID: 1, reserved: 1 << 32},
		{logID: 2, reserved: 9, cutPending: true, cut: 7, hidden: 3},
		{cutPending: true},
		{logID: math.MaxUint64, reserved: math.MaxUint64, clean: true, cseg: math.MaxUint64, cend: math.MaxInt64, clast: math.MaxUint64, ctime: math.MinInt64, hidden: math.MaxInt64},
	} {
		b := m.encode()
		if len(b) != metaSize {
			t.Fatalf("meta is %d bytes, want %d", len(b), metaSize)
		}
		if got, err := decodeMeta(b); err != nil || got != m {
			t.Fatalf("decodeMeta(encode(%+v)) = %+v, %v", m, got, err)
		}
	}
}

func TestMetaRejects(t *testing.T) {
	good := goldenMeta.encode()
	withCRC := func(edit func(b []byte)) []byte {
		b := bytes.Clone(good)
		edit(b)
		binary.LittleEndian.PutUint32(b[76:], crc.Checksum(b[:76]))
		return b
	}
	type metaCase struct {
		name    string
		b       []byte
		version bool
	}
	cases := []metaCase{
		{name: "empty"},
		{name: "zeros", b: make([]byte, metaSize)},
		{name: "one byte short", b: bytes.Clone(good[:metaSize-1])},
		{name: "one byte long", b: append(bytes.Clone(good), 0)},
		{name: "bad magic", b: withCRC(func(b []byte) { copy(b, segmentMagic) })},
		{name: "version 2", b: withCRC(func(b []byte) { binary.LittleEndian.PutUint16(b[8:], metaVersion+1) }), version: true},
		{name: "version 0", b: withCRC(func(b []byte) { binary.LittleEndian.PutUint16(b[8:], 0) }), version: true},
		{name: "clean and cut pending", b: withCRC(func(b []byte) { binary.LittleEndian.PutUint16(b[10:], metaClean|metaCut) })},
	}
	for i := range metaSize * 8 {
		b := bytes.Clone(good)
		b[i/8] ^= 1 << (i % 8)
		cases = append(cases, metaCase{name: fmt.Sprintf("bit %d of byte %d flipped", i%8, i/8), b: b})
	}
	for cut := range metaSize {
		cases = append(cases, metaCase{name: fmt.Sprintf("cut at %d", cut), b: bytes.Clone(good[:cut])})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := decodeMeta(tc.b)
			if err == nil {
				t.Fatalf("decodeMeta accepted it: %+v", m)
			}
			if got := errors.Is(err, ErrVersion); got != tc.version {
				t.Fatalf("errors.Is(%v, ErrVersion) = %v, want %v", err, got, tc.version)
			}
		})
	}
}

func TestReadMetaFile(t *testing.T) {
	good := goldenMeta.encode()
	cases := []struct {
		name      string
		content   []byte // nil: no file
		found     bool
		errIs     error
		wantValid bool
	}{
		{name: "missing"},
		{name: "valid", content: good, found: true, wantValid: true},
		{name: "empty", content: []byte{}, errIs: ErrCorrupt},
		{name: "short", content: good[:40], errIs: ErrCorrupt},
		{name: "long", content: append(bytes.Clone(good), 0), errIs: ErrCorrupt},
		{name: "bad CRC", content: append(bytes.Clone(good[:79]), good[79]^1), errIs: ErrCorrupt},
		{name: "version 2", content: func() []byte {
			b := bytes.Clone(good)
			binary.LittleEndian.PutUint16(b[8:], metaVersion+1)
			binary.LittleEndian.PutUint32(b[76:], crc.Checksum(b[:76]))
			return b
		}(), errIs: ErrVersion},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.content != nil {
				if err := os.WriteFile(filepath.Join(dir, metaName), tc.content, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m, found, err := readMeta(vfs.OS, dir)
			if found != tc.found {
				t.Fatalf("found = %v, want %v (err %v)", found, tc.found, err)
			}
			if tc.errIs == nil && err != nil || tc.errIs != nil && !errors.Is(err, tc.errIs) {
				t.Fatalf("err = %v, want %v", err, tc.errIs)
			}
			if tc.wantValid && m != goldenMeta {
				t.Fatalf("meta = %+v, want %+v", m, goldenMeta)
			}
		})
	}
}

// Open must refuse files written by an unknown format version rather than treat them as
// damage: the records in them may be intact.
func TestOpenRejectsUnknownVersions(t *testing.T) {
	t.Run("log.meta", func(t *testing.T) {
		dir := t.TempDir()
		b := goldenMeta.encode()
		binary.LittleEndian.PutUint16(b[8:], metaVersion+1)
		binary.LittleEndian.PutUint32(b[76:], crc.Checksum(b[:76]))
		if err := os.WriteFile(filepath.Join(dir, metaName), b, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Open(dir, testOpts(newClock(), Sync))
		if err == nil {
			lerr := l.Err()
			l.Close()
			t.Fatalf("Open succeeded on a log.meta of version %d (Err: %v); want an error satisfying errors.Is(err, ErrVersion)", metaVersion+1, lerr)
		}
		if !errors.Is(err, ErrVersion) {
			t.Fatalf("Open: %v; want an error satisfying errors.Is(err, ErrVersion)", err)
		}
	})
	t.Run("newest segment header", func(t *testing.T) {
		dir := t.TempDir()
		c := newClock()
		l := mustOpen(t, dir, testOpts(c, Sync))
		appendN(t, l, 0, 5, 100, 2)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		paths, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
		if err != nil || len(paths) != 1 {
			t.Fatalf("segment files %v, %v; want one", paths, err)
		}
		f, err := os.OpenFile(paths[0], os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		h := make([]byte, headerSize)
		if _, err := f.ReadAt(h, 0); err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint16(h[8:], SegmentVersion+1)
		binary.LittleEndian.PutUint32(h[60:], crc.Checksum(h[:60]))
		if _, err := f.WriteAt(h, 0); err != nil {
			t.Fatal(err)
		}
		f.Close()
		l, err = Open(dir, testOpts(c, Sync))
		if err == nil {
			l.Close()
			t.Fatalf("Open succeeded on a segment of version %d; want an error satisfying errors.Is(err, ErrVersion)", SegmentVersion+1)
		}
		if !errors.Is(err, ErrVersion) {
			t.Fatalf("Open: %v; want an error satisfying errors.Is(err, ErrVersion)", err)
		}
	})
}
