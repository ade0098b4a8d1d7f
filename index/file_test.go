package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/internal/crc"
	"github.com/sluice-streams/sluice/internal/golden"
	"github.com/sluice-streams/sluice/internal/vfs"
)

// Golden values: fixed inputs whose encoding is pinned under testdata/golden.
var (
	goldenHeader  = Header{Interval: 4096, SegmentID: 3, Base: 1_000_000, End: 20_480, Last: 1_000_099}
	goldenEntries = []Entry{
		{Seq: 1_000_000, Time: 1_700_000_000_000_000_000, Off: 4096},
		{Seq: 1_000_040, Time: 1_700_000_000_000_000_000, Off: 8200},
		{Seq: 1_000_077, Time: 1_700_000_001_500_000_000, Off: 12_320},
	}
)

func TestGoldenFile(t *testing.T) {
	got := EncodeFile(goldenHeader, encodeEntries(goldenEntries))
	golden.Check(t, "index", FileVersion, "EncodeFile(goldenHeader, goldenEntries) (file_test.go)", got)

	// The current reader reads the pinned bytes.
	path := filepath.Join(t.TempDir(), "golden.idx")
	if err := os.WriteFile(path, golden.File(t, "index", FileVersion), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(vfs.OS, path, goldenHeader)
	if err != nil {
		t.Fatalf("Open(golden): %v", err)
	}
	defer f.Close()
	want := goldenHeader
	want.Count = uint32(len(goldenEntries))
	if f.Header() != want || !sameEntries(tableEntries(f.Table()), goldenEntries) {
		t.Fatalf("Open(golden) = %+v %v; want %+v %v", f.Header(), tableEntries(f.Table()), want, goldenEntries)
	}
}

func TestWriteOpenRoundTrip(t *testing.T) {
	many := make([]Entry, 500)
	for i := range many {
		many[i] = Entry{Seq: uint64(10 + 2*i), Time: int64(100 + i/3), Off: int64(4096 + 100*i)}
	}
	for name, tc := range map[string]struct {
		h  Header
		es []Entry
	}{
		"golden":  {goldenHeader, goldenEntries},
		"empty":   {Header{Interval: 4096, SegmentID: 1, Base: 1, End: 4096}, nil},
		"single":  {Header{Interval: 1, SegmentID: 9, Base: 7, End: 4200, Last: 7}, []Entry{{Seq: 7, Time: -5, Off: 4096}}},
		"500":     {Header{Interval: 100, SegmentID: 2, Base: 10, End: 4096 + 100*500, Last: 10 + 2*499}, many},
		"extreme": {Header{Interval: math.MaxUint32, SegmentID: math.MaxUint64, Base: 0, End: math.MaxInt64, Last: math.MaxUint64}, []Entry{{Seq: 0, Time: math.MinInt64, Off: 0}, {Seq: math.MaxUint64, Time: math.MaxInt64, Off: math.MaxInt64 - 1}}},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "seg.idx")
			h := tc.h
			h.Count = 12345 // ignored: Write and EncodeFile count the entries
			tab := encodeEntries(tc.es)
			if err := Write(vfs.OS, path, h, tab); err != nil {
				t.Fatal(err)
			}
			onDisk, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := EncodeFile(h, tab); !bytes.Equal(onDisk, want) {
				t.Fatalf("Write stored %d bytes that differ from EncodeFile's %d", len(onDisk), len(want))
			}
			if len(onDisk) != HeaderSize+len(tc.es)*EntrySize {
				t.Fatalf("file is %d bytes, want %d", len(onDisk), HeaderSize+len(tc.es)*EntrySize)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(left) > 0 {
				t.Fatalf("Write left %v behind", left)
			}
			f, err := Open(vfs.OS, path, tc.h)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			want := tc.h
			want.Count = uint32(len(tc.es))
			if f.Header() != want {
				t.Fatalf("Header() = %+v, want %+v", f.Header(), want)
			}
			checkLookups(t, f.Table(), tc.es)
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if f.Table().Len() != 0 {
				t.Fatal("table still readable after Close")
			}
		})
	}
}

func TestWriteReplaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seg.idx")
	if err := Write(vfs.OS, path, goldenHeader, encodeEntries(goldenEntries)); err != nil {
		t.Fatal(err)
	}
	h := goldenHeader
	h.End, h.Last = 30_000, 1_000_200
	es := append(append([]Entry(nil), goldenEntries...), Entry{Seq: 1_000_150, Time: 1_700_000_002_000_000_000, Off: 25_000})
	if err := Write(vfs.OS, path, h, encodeEntries(es)); err != nil {
		t.Fatal(err)
	}
	f, err := Open(vfs.OS, path, h)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !sameEntries(tableEntries(f.Table()), es) {
		t.Fatalf("after a rewrite: %v, want %v", tableEntries(f.Table()), es)
	}
}

// fixHeaderCRC recomputes the header CRC of an encoded index file.
func fixHeaderCRC(b []byte) []byte {
	binary.LittleEndian.PutUint32(b[60:], crc.Checksum(b[:60]))
	return b
}

func TestOpenRejects(t *testing.T) {
	good := EncodeFile(goldenHeader, encodeEntries(goldenEntries))
	edit := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	// encoded returns a file for h and es with every CRC right.
	encoded := func(h Header, es ...Entry) []byte { return EncodeFile(h, encodeEntries(es)) }
	e0, e1, e2 := goldenEntries[0], goldenEntries[1], goldenEntries[2]
	h := goldenHeader
	with := func(e Entry, f func(e *Entry)) Entry { f(&e); return e }

	type openCase struct {
		name    string
		content []byte  // nil: no file at all
		want    *Header // nil: goldenHeader
	}
	cases := []openCase{
		{name: "empty file", content: []byte{}},
		{name: "1 byte", content: good[:1]},
		{name: "63 bytes", content: good[:HeaderSize-1]},
		{name: "header only, entries missing", content: good[:HeaderSize]},
		{name: "entries cut mid-entry", content: good[:len(good)-1]},
		{name: "last entry missing", content: good[:len(good)-EntrySize]},
		{name: "trailing byte", content: append(bytes.Clone(good), 0)},
		{name: "an extra entry", content: append(bytes.Clone(good), AppendEntry(nil, Entry{Seq: 1_000_090, Time: 1_700_000_002_000_000_000, Off: 16_000})...)},
		{name: "bad magic", content: edit(func(b []byte) { copy(b, "SLUICSEG") })},
		{name: "bad magic, CRC fixed", content: fixHeaderCRC(edit(func(b []byte) { copy(b, "SLUICSEG") }))},
		{name: "version 2, CRC fixed", content: fixHeaderCRC(edit(func(b []byte) { binary.LittleEndian.PutUint16(b[8:], FileVersion+1) }))},
		{name: "version 0, CRC fixed", content: fixHeaderCRC(edit(func(b []byte) { binary.LittleEndian.PutUint16(b[8:], 0) }))},
		{name: "entry size 16, CRC fixed", content: fixHeaderCRC(edit(func(b []byte) { binary.LittleEndian.PutUint16(b[10:], 16) }))},
		{name: "count one more, CRC fixed", content: fixHeaderCRC(edit(func(b []byte) { binary.LittleEndian.PutUint32(b[48:], 4) }))},
		{name: "count one less, CRC fixed", content: fixHeaderCRC(edit(func(b []byte) { binary.LittleEndian.PutUint32(b[48:], 2) }))},
		{name: "count huge, CRC fixed", content: fixHeaderCRC(edit(func(b []byte) { binary.LittleEndian.PutUint32(b[48:], math.MaxUint32) }))},
		{name: "entries CRC field wrong, header CRC fixed", content: fixHeaderCRC(edit(func(b []byte) { b[52] ^= 1 }))},
		{name: "end above MaxInt64, CRC fixed", content: fixHeaderCRC(edit(func(b []byte) { binary.LittleEndian.PutUint64(b[32:], 1<<63) }))},
		{name: "all zeros", content: make([]byte, len(good))},
		// Stale: the file describes another segment, or this one at another length.
		{name: "stale: other segment id", content: good, want: &Header{SegmentID: h.SegmentID + 1, Base: h.Base, End: h.End, Last: h.Last}},
		{name: "stale: other base", content: good, want: &Header{SegmentID: h.SegmentID, Base: h.Base + 1, End: h.End, Last: h.Last}},
		{name: "stale: segment grew", content: good, want: &Header{SegmentID: h.SegmentID, Base: h.Base, End: h.End + 8, Last: h.Last + 1}},
		{name: "stale: other end", content: good, want: &Header{SegmentID: h.SegmentID, Base: h.Base, End: h.End - 8, Last: h.Last}},
		{name: "stale: other last", content: good, want: &Header{SegmentID: h.SegmentID, Base: h.Base, End: h.End, Last: h.Last - 1}},
		// Entries out of order or outside the segment, every CRC right.
		{name: "equal sequence numbers", content: encoded(h, e0, with(e1, func(e *Entry) { e.Seq = e0.Seq }), e2)},
		{name: "decreasing sequence numbers", content: encoded(h, e0, e2, with(e1, func(e *Entry) { e.Off = e2.Off + 8; e.Time = e2.Time }))},
		{name: "equal offsets", content: encoded(h, e0, with(e1, func(e *Entry) { e.Off = e0.Off }), e2)},
		{name: "decreasing offsets", content: encoded(h, e0, with(e1, func(e *Entry) { e.Off = e0.Off - 8 }), e2)},
		{name: "decreasing times", content: encoded(h, e0, e1, with(e2, func(e *Entry) { e.Time = e1.Time - 1 }))},
		{name: "sequence below base", content: encoded(h, with(e0, func(e *Entry) { e.Seq = h.Base - 1 }), e1, e2)},
		{name: "sequence above last", content: encoded(h, e0, e1, with(e2, func(e *Entry) { e.Seq = h.Last + 1 }))},
		{name: "offset at end", content: encoded(h, e0, e1, with(e2, func(e *Entry) { e.Off = h.End }))},
		{name: "offset past end", content: encoded(h, e0, e1, with(e2, func(e *Entry) { e.Off = math.MaxInt64 }))},
		{name: "negative offset", content: encoded(h, with(e0, func(e *Entry) { e.Off = -4096 }), e1, e2)},
	}
	for i := range HeaderSize * 8 {
		cases = append(cases, openCase{name: fmt.Sprintf("header bit %d of byte %d flipped", i%8, i/8),
			content: edit(func(b []byte) { b[i/8] ^= 1 << (i % 8) })})
	}
	for i := HeaderSize; i < len(good); i++ {
		cases = append(cases, openCase{name: fmt.Sprintf("entries byte %d flipped", i),
			content: edit(func(b []byte) { b[i] ^= 0x20 })})
	}
	dir := t.TempDir()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("%d.idx", i))
			if err := os.WriteFile(path, tc.content, 0o644); err != nil {
				t.Fatal(err)
			}
			want := goldenHeader
			if tc.want != nil {
				want = *tc.want
			}
			f, err := Open(vfs.OS, path, want)
			if err == nil {
				f.Close()
				t.Fatalf("Open accepted it: %+v, entries %v", f.Header(), tableEntries(f.Table()))
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Open: %v; want an error wrapping ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("Open: %v does not name the file", err)
			}
		})
	}
}

func TestOpenAccepts(t *testing.T) {
	h := goldenHeader
	e0, e1 := goldenEntries[0], goldenEntries[1]
	cases := map[string][]Entry{
		"no entries":                  nil,
		"equal times":                 {e0, {Seq: e1.Seq, Time: e0.Time, Off: e1.Off}},
		"first at base, last at last": {{Seq: h.Base, Time: 1, Off: 4096}, {Seq: h.Last, Time: 2, Off: h.End - 1}},
	}
	for name, es := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "seg.idx")
			if err := os.WriteFile(path, EncodeFile(h, encodeEntries(es)), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := Open(vfs.OS, path, h)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer f.Close()
			if !sameEntries(tableEntries(f.Table()), es) {
				t.Fatalf("entries %v, want %v", tableEntries(f.Table()), es)
			}
		})
	}
	// The interval is informational: an index built with another spacing is still valid.
	path := filepath.Join(t.TempDir(), "seg.idx")
	other := h
	other.Interval = 64
	if err := os.WriteFile(path, EncodeFile(other, encodeEntries(goldenEntries)), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(vfs.OS, path, h)
	if err != nil {
		t.Fatalf("Open with another interval: %v", err)
	}
	if f.Header().Interval != 64 {
		t.Fatalf("Header().Interval = %d, want 64", f.Header().Interval)
	}
	f.Close()
}

func TestOpenMissing(t *testing.T) {
	_, err := Open(vfs.OS, filepath.Join(t.TempDir(), "nope.idx"), goldenHeader)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of a missing file: %v; want fs.ErrNotExist", err)
	}
}
