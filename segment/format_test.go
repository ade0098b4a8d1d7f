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

	"github.com/sluice-streams/sluice/internal/crc"
	"github.com/sluice-streams/sluice/internal/golden"
	"github.com/sluice-streams/sluice/internal/vfs"
)

// Golden values: fixed inputs whose encodings are pinned under testdata/golden.
var (
	goldenRecord = Record{
		Seq:   0x0102030405060708,
		Time:  1_700_000_000_123_456_789,
		Flags: FlagEncrypted | 0x8000, // an unknown bit, which must be preserved
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
	got := AppendFrame(nil, &r)
	golden.Check(t, "frame", SegmentVersion, "AppendFrame of goldenRecord (format_test.go)", got)

	d, n, err := DecodeFrame(golden.File(t, "frame", SegmentVersion))
	if err != nil || n != len(got) {
		t.Fatalf("DecodeFrame(golden) = n %d, %v; want n %d", n, err, len(got))
	}
	if d.Seq != r.Seq || d.Time != r.Time || d.Flags != r.Flags || !bytes.Equal(d.Key, r.Key) || !bytes.Equal(d.Data, r.Data) {
		t.Fatalf("DecodeFrame(golden) = %+v, want %+v", d, r)
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

// --- frames ---

var frameLens = []int{0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 255, 256, 1023, 1024}

func TestFrameSizesAndPadding(t *testing.T) {
	for _, klen := range frameLens {
		for _, dlen := range append(frameLens, 4095, 4096, 4097) {
			r := Record{Seq: uint64(klen*10000 + dlen + 1), Time: int64(dlen) - 5, Flags: uint16(klen), Key: payload(klen, klen), Data: payload(dlen+1_000_000, dlen)}
			unpadded := FrameHeaderSize + klen + dlen
			size := FrameSize(klen, dlen)
			if size%8 != 0 || size < unpadded || size-unpadded > 7 {
				t.Fatalf("FrameSize(%d, %d) = %d; want the multiple of 8 at or above %d", klen, dlen, size, unpadded)
			}
			prefix := []byte("prefix")
			b := AppendFrame(bytes.Clone(prefix), &r)
			if !bytes.Equal(b[:len(prefix)], prefix) {
				t.Fatalf("k%d d%d: AppendFrame changed dst's existing bytes", klen, dlen)
			}
			f := b[len(prefix):]
			if len(f) != size {
				t.Fatalf("k%d d%d: AppendFrame appended %d bytes, FrameSize says %d", klen, dlen, len(f), size)
			}
			if got := binary.LittleEndian.Uint32(f); got != uint32(unpadded) {
				t.Fatalf("k%d d%d: length word %d, want %d (without padding)", klen, dlen, got, unpadded)
			}
			if !allZero(f[unpadded:]) {
				t.Fatalf("k%d d%d: padding % x is not zero", klen, dlen, f[unpadded:])
			}
			// With following bytes, exactly padded, and cut to the unpadded length.
			for _, buf := range [][]byte{append(bytes.Clone(f), 0xff, 1, 2, 3, 4, 5, 6, 7, 8), f, f[:unpadded]} {
				d, n, err := DecodeFrame(buf)
				want := min(size, len(buf))
				if err != nil || n != want {
					t.Fatalf("k%d d%d buffer %d: DecodeFrame n %d, %v; want n %d", klen, dlen, len(buf), n, err, want)
				}
				if d.Seq != r.Seq || d.Time != r.Time || d.Flags != r.Flags || !bytes.Equal(d.Key, r.Key) || !bytes.Equal(d.Data, r.Data) {
					t.Fatalf("k%d d%d: decoded %+v, want %+v", klen, dlen, d, r)
				}
				if cap(d.Key) != len(d.Key) || cap(d.Data) != len(d.Data) {
					t.Fatalf("k%d d%d: key/data capacities %d/%d reach past their lengths %d/%d", klen, dlen, cap(d.Key), cap(d.Data), len(d.Key), len(d.Data))
				}
			}
		}
	}
}

func TestFrameLargest(t *testing.T) {
	r := Record{Seq: 1, Time: 2, Key: payload(1, MaxKeyLen), Data: bytes.Repeat([]byte{0xa5, 0, 1, 2, 3, 0xff, 7, 9}, MaxDataLen/8)}
	b := AppendFrame(nil, &r)
	if len(b) != MaxFrameSize || FrameSize(MaxKeyLen, MaxDataLen) != MaxFrameSize {
		t.Fatalf("largest frame is %d bytes, FrameSize %d, MaxFrameSize %d", len(b), FrameSize(MaxKeyLen, MaxDataLen), MaxFrameSize)
	}
	d, n, err := DecodeFrame(b)
	if err != nil || n != MaxFrameSize || !bytes.Equal(d.Key, r.Key) || !bytes.Equal(d.Data, r.Data) {
		t.Fatalf("DecodeFrame(largest) = n %d, %v", n, err)
	}
}

// frameWith returns a frame of r whose header fields were then changed by edit, with the CRC
// recomputed over the (possibly inconsistent) claimed length when it fits the buffer.
func frameWith(r Record, extra int, edit func(f []byte)) []byte {
	f := AppendFrame(nil, &r)
	f = append(f, make([]byte, extra)...)
	edit(f)
	if n := int(binary.LittleEndian.Uint32(f)); n >= 8 && n <= len(f) {
		binary.LittleEndian.PutUint32(f[4:], frameCRC(f[:n]))
	}
	return f
}

func TestDecodeFrameRejects(t *testing.T) {
	base := Record{Seq: 42, Time: 1_700_000_000_000_000_000, Flags: 1, Key: []byte("key"), Data: []byte("some data!")} // 45 bytes
	put32 := func(off int, v uint32) func([]byte) {
		return func(f []byte) { binary.LittleEndian.PutUint32(f[off:], v) }
	}
	put16 := func(off int, v uint16) func([]byte) {
		return func(f []byte) { binary.LittleEndian.PutUint16(f[off:], v) }
	}
	both := func(a, b func([]byte)) func([]byte) { return func(f []byte) { a(f); b(f) } }
	cases := []struct {
		name  string
		frame []byte
	}{
		{"length 1", frameWith(base, 64, put32(0, 1))},
		{"length 8", frameWith(base, 64, put32(0, 8))},
		{"length 31", frameWith(base, 64, put32(0, 31))},
		{"length 32, key and data claimed", frameWith(base, 64, put32(0, 32))},
		{"length above max", frameWith(base, 64, put32(0, MaxFrameSize+1))},
		{"length 0xffffffff", frameWith(base, 64, put32(0, math.MaxUint32))},
		{"length one more than key+data", frameWith(base, 64, put32(0, 46))},
		{"length one less than key+data", frameWith(base, 64, put32(0, 44))},
		{"key length one more", frameWith(base, 64, put16(24, 4))},
		{"key length one less", frameWith(base, 64, put16(24, 2))},
		{"data length one more", frameWith(base, 64, put32(28, 11))},
		{"data length one less", frameWith(base, 64, put32(28, 9))},
		{"data length wraps the sum", frameWith(base, 64, put32(28, math.MaxUint32-20))},
		{"key length above max, sum consistent", frameWith(Record{Key: make([]byte, 8)}, MaxKeyLen+64,
			both(put32(0, FrameHeaderSize+MaxKeyLen+1), both(put16(24, MaxKeyLen+1), put32(28, 0))))},
		{"key length 0xffff, sum consistent", frameWith(Record{}, 0x10000+64,
			both(put32(0, FrameHeaderSize+0xffff), put16(24, 0xffff)))},
		{"data length above max, sum consistent", frameWith(Record{}, MaxDataLen+64,
			both(put32(0, FrameHeaderSize+MaxDataLen+1), put32(28, MaxDataLen+1)))},
		{"empty buffer", nil},
		{"3 bytes", []byte{0, 0, 0}},
		{"3 bytes of a length", []byte{45, 0, 0}},
	}
	// A bit flip in every field, with the CRC left as it was.
	good := AppendFrame(nil, &base)
	for _, field := range []struct {
		name string
		off  int
	}{{"len", 0}, {"len high byte", 3}, {"CRC", 4}, {"CRC high byte", 7}, {"seq", 8}, {"seq high byte", 15}, {"time", 16}, {"time high byte", 23},
		{"klen", 24}, {"klen high byte", 25}, {"flags", 26}, {"flags high byte", 27}, {"dlen", 28}, {"dlen high byte", 31},
		{"key", 32}, {"key last byte", 34}, {"data", 35}, {"data last byte", 44}} {
		for bit := range 8 {
			f := bytes.Clone(good)
			f[field.off] ^= 1 << bit
			cases = append(cases, struct {
				name  string
				frame []byte
			}{fmt.Sprintf("bit %d of %s flipped", bit, field.name), f})
		}
	}
	// Every cut short of the unpadded frame.
	for cut := 0; cut < 45; cut++ {
		cases = append(cases, struct {
			name  string
			frame []byte
		}{fmt.Sprintf("cut at %d", cut), bytes.Clone(good[:cut])})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, n, err := DecodeFrame(tc.frame)
			if err == nil {
				t.Fatalf("DecodeFrame accepted it: n %d, record %+v", n, r)
			}
			if n != 0 || r.Key != nil || r.Data != nil {
				t.Fatalf("DecodeFrame returned n %d and a record alongside its error %v", n, err)
			}
		})
	}
}

func TestDecodeFrameEnd(t *testing.T) {
	for _, b := range [][]byte{
		{0, 0, 0, 0},
		make([]byte, 4096),
		append([]byte{0, 0, 0, 0}, []byte("garbage after the end is not looked at")...),
	} {
		r, n, err := DecodeFrame(b)
		if err != nil || n != 0 || r.Seq != 0 || r.Key != nil {
			t.Fatalf("DecodeFrame(% x…) = %+v, n %d, %v; want the end of the log", b[:4], r, n, err)
		}
	}
}

func TestDecodeFrameDoesNotAllocate(t *testing.T) {
	// The paths a healthy read takes: a good frame, the end of the log, a frame cut by the
	// end of the buffer. (Rejecting a damaged frame builds an error message, which allocates.)
	r := goldenRecord
	b := AppendFrame(nil, &r)
	end := make([]byte, 8)
	if a := testing.AllocsPerRun(100, func() {
		DecodeFrame(b)
		DecodeFrame(end)
		DecodeFrame(b[:20])
	}); a != 0 {
		t.Fatalf("DecodeFrame allocates %.1f times per run", a)
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

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
