package index

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/sluice-streams/sluice/internal/crc"
)

// Entry layout, 24 bytes, little-endian:
//
//	0       8       16      24
//	+-------+-------+-------+
//	|  seq  | time  |  off  |
//	+-------+-------+-------+
//
//	seq   uint64  sequence number of the frame the entry points at
//	time  int64   its arrival time, Unix nanoseconds
//	off   uint64  byte offset of the frame in its segment file
//
// Index file layout: a 64-byte header followed by count entries.
//
//	0      8    10   12        16      24      32      40      48   52      56     60   64
//	+------+----+----+---------+-------+-------+-------+-------+----+-------+------+----+
//	|magic |ver |esz |interval |segid  | base  |  end  | last  |cnt |entCRC | rsvd |hCRC|
//	+------+----+----+---------+-------+-------+-------+-------+----+-------+------+----+
//
//	magic     "SLUICIDX"
//	ver       uint16 FileVersion
//	esz       uint16 EntrySize (24)
//	interval  uint32 bytes of frames between entries when the table was built
//	segid     uint64 id of the segment the index describes
//	base      uint64 that segment's base sequence
//	end       uint64 byte offset just past the segment's last frame
//	last      uint64 sequence number of the segment's last frame
//	cnt       uint32 number of entries
//	entCRC    uint32 CRC32C of the entries
//	hCRC      uint32 CRC32C of header bytes [0, 60)
//
// To change the layout, bump FileVersion: Open rejects other versions as stale and the
// segment package rebuilds the index, so an old index never needs to be read.
const (
	EntrySize   = 24
	HeaderSize  = 64
	FileVersion = 1
	fileMagic   = "SLUICIDX"
)

// Entry is one row of a sparse index.
type Entry struct {
	Seq  uint64
	Time int64
	Off  int64
}

// AppendEntry appends the encoding of e to dst.
func AppendEntry(dst []byte, e Entry) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, e.Seq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(e.Time))
	return binary.LittleEndian.AppendUint64(dst, uint64(e.Off))
}

func decodeEntry(b []byte) Entry {
	return Entry{
		Seq:  binary.LittleEndian.Uint64(b[0:]),
		Time: int64(binary.LittleEndian.Uint64(b[8:])),
		Off:  int64(binary.LittleEndian.Uint64(b[16:])),
	}
}

// Header describes the segment an index file belongs to. Open compares it with the
// segment's own sealed header to detect a stale index.
type Header struct {
	Interval  uint32
	SegmentID uint64
	Base      uint64
	End       int64
	Last      uint64
	Count     uint32
}

func appendHeader(dst []byte, h Header, entriesCRC uint32) []byte {
	start := len(dst)
	dst = append(dst, fileMagic...)
	dst = binary.LittleEndian.AppendUint16(dst, FileVersion)
	dst = binary.LittleEndian.AppendUint16(dst, EntrySize)
	dst = binary.LittleEndian.AppendUint32(dst, h.Interval)
	dst = binary.LittleEndian.AppendUint64(dst, h.SegmentID)
	dst = binary.LittleEndian.AppendUint64(dst, h.Base)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.End))
	dst = binary.LittleEndian.AppendUint64(dst, h.Last)
	dst = binary.LittleEndian.AppendUint32(dst, h.Count)
	dst = binary.LittleEndian.AppendUint32(dst, entriesCRC)
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	return binary.LittleEndian.AppendUint32(dst, crc.Checksum(dst[start:]))
}

// decodeHeader parses and checks an index file header. It returns the header and the CRC
// the entries must have.
func decodeHeader(b []byte) (Header, uint32, error) {
	if len(b) < HeaderSize {
		return Header{}, 0, fmt.Errorf("%w: header is %d bytes, want %d", ErrInvalid, len(b), HeaderSize)
	}
	if string(b[0:8]) != fileMagic {
		return Header{}, 0, fmt.Errorf("%w: bad magic %q", ErrInvalid, b[0:8])
	}
	if got, want := binary.LittleEndian.Uint32(b[60:]), crc.Checksum(b[:60]); got != want {
		return Header{}, 0, fmt.Errorf("%w: header CRC %08x, want %08x", ErrInvalid, got, want)
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != FileVersion {
		return Header{}, 0, fmt.Errorf("%w: version %d, want %d", ErrInvalid, v, FileVersion)
	}
	if es := binary.LittleEndian.Uint16(b[10:]); es != EntrySize {
		return Header{}, 0, fmt.Errorf("%w: entry size %d, want %d", ErrInvalid, es, EntrySize)
	}
	end := binary.LittleEndian.Uint64(b[32:])
	if end > math.MaxInt64 {
		return Header{}, 0, fmt.Errorf("%w: end offset %d out of range", ErrInvalid, end)
	}
	h := Header{
		Interval:  binary.LittleEndian.Uint32(b[12:]),
		SegmentID: binary.LittleEndian.Uint64(b[16:]),
		Base:      binary.LittleEndian.Uint64(b[24:]),
		End:       int64(end),
		Last:      binary.LittleEndian.Uint64(b[40:]),
		Count:     binary.LittleEndian.Uint32(b[48:]),
	}
	return h, binary.LittleEndian.Uint32(b[52:]), nil
}
