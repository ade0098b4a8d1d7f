package index

import (
	"fmt"
	"os"

	"github.com/edsrzf/mmap-go"

	"github.com/sluice-streams/sluice/internal/crc"
	"github.com/sluice-streams/sluice/internal/vfs"
)

// File is an index file mapped read-only. Its Table is valid until Close.
type File struct {
	m     mmap.MMap
	table Table
	hdr   Header
}

// Table returns the file's entries; valid until Close.
func (f *File) Table() Table { return f.table }

// Header returns the file's header.
func (f *File) Header() Header { return f.hdr }

// Close unmaps the file.
func (f *File) Close() error {
	if f.m == nil {
		return nil
	}
	err := f.m.Unmap()
	f.m = nil
	f.table = Table{}
	return err
}

// Write stores the table t for the segment described by h at path, crash-safely: a
// temporary file, fdatasync, rename, fsync of the directory.
func Write(fsys vfs.FS, path string, h Header, t Table) error {
	h.Count = uint32(t.Len())
	buf := make([]byte, 0, HeaderSize+len(t.b))
	buf = appendHeader(buf, h, crc.Checksum(t.b))
	buf = append(buf, t.b...)
	return vfs.WriteFileAtomic(fsys, path, buf, 0o600)
}

// Open maps the index file at path and validates it against want, the description of the
// segment taken from the segment itself. Any mismatch, short file, bad CRC or out-of-order
// entry returns an error wrapping ErrInvalid; a missing file returns an error satisfying
// errors.Is(err, fs.ErrNotExist). Either way the caller rebuilds.
func Open(fsys vfs.FS, path string, want Header) (*File, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	if size < HeaderSize {
		return nil, fmt.Errorf("%w: %s: %d bytes is shorter than a header", ErrInvalid, path, size)
	}
	m, err := mmap.MapRegion(f.OS(), int(size), mmap.RDONLY, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("index: map %s: %w", path, err)
	}
	h, ecrc, err := decodeHeader(m)
	if err == nil {
		err = validate(m, h, ecrc, want)
	}
	if err != nil {
		m.Unmap()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &File{m: m, table: Table{b: m[HeaderSize:]}, hdr: h}, nil
}

func validate(m []byte, h Header, ecrc uint32, want Header) error {
	if h.SegmentID != want.SegmentID || h.Base != want.Base || h.End != want.End || h.Last != want.Last {
		return fmt.Errorf("%w: stale: describes segment %d base %d end %d last %d, segment is %d base %d end %d last %d",
			ErrInvalid, h.SegmentID, h.Base, h.End, h.Last, want.SegmentID, want.Base, want.End, want.Last)
	}
	if got := int64(len(m)) - HeaderSize; got != int64(h.Count)*EntrySize {
		return fmt.Errorf("%w: %d entry bytes, header says %d entries", ErrInvalid, got, h.Count)
	}
	entries := m[HeaderSize:]
	if got := crc.Checksum(entries); got != ecrc {
		return fmt.Errorf("%w: entries CRC %08x, want %08x", ErrInvalid, got, ecrc)
	}
	return checkOrder(Table{b: entries}, want)
}

// checkOrder verifies that entries are strictly increasing in sequence and offset,
// non-decreasing in time, and inside the segment's frames.
func checkOrder(t Table, want Header) error {
	var prev Entry
	for i := range t.Len() {
		e := t.At(i)
		if e.Seq < want.Base || e.Seq > want.Last || e.Off < 0 || e.Off >= want.End {
			return fmt.Errorf("%w: entry %d (seq %d off %d) outside the segment", ErrInvalid, i, e.Seq, e.Off)
		}
		if i > 0 && (e.Seq <= prev.Seq || e.Off <= prev.Off || e.Time < prev.Time) {
			return fmt.Errorf("%w: entry %d out of order", ErrInvalid, i)
		}
		prev = e
	}
	return nil
}

// EncodeFile returns the bytes Write would store; used by golden tests.
func EncodeFile(h Header, t Table) []byte {
	h.Count = uint32(t.Len())
	buf := appendHeader(nil, h, crc.Checksum(t.b))
	return append(buf, t.b...)
}
