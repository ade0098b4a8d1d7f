package segment

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/internal/crc"
)

// Segment file layout. All integers are little-endian.
//
//	offset 0      header, 64 bytes (below)
//	offset 512    checkpoint slot 0, 64 bytes
//	offset 1024   checkpoint slot 1, 64 bytes
//	offset 4096   frames, each 8-byte aligned, until the first zero length word
//
// The two checkpoint slots sit in different 512-byte sectors so that a torn write of one
// never damages the other.
//
// Header:
//
//	0        8     10     12       16       24       32       40        48         56     60    64
//	+--------+-----+------+--------+--------+--------+--------+---------+----------+------+-----+
//	| magic  | ver | rsvd | dataOff| logID  | segID  |  base  | created | prevLast | rsvd | CRC |
//	+--------+-----+------+--------+--------+--------+--------+---------+----------+------+-----+
//
//	magic    "SLUICSEG"
//	ver      uint16, SegmentVersion
//	dataOff  uint32, offset of the first frame (4096)
//	logID    uint64, the owner's id for the log (a shard)
//	segID    uint64, 1, 2, 3 … within the log; a gap is a missing segment
//	base     uint64, every frame in the segment has seq >= base, and base > every
//	         sequence number in earlier segments
//	created  int64, Unix nanoseconds
//	prevLast uint64, sequence number of the last record written before this segment was
//	         created (0: none); recovery uses it to tell whether an earlier segment whose
//	         seal a crash interrupted lost records at its end
//	CRC      uint32, CRC32C of bytes [0, 60)
//
// Checkpoint slot:
//
//	0      8        16      24      32      40       48      52     60    64
//	+------+--------+-------+-------+-------+--------+-------+------+-----+
//	| gen  |durable | first | last  | ltime | count  | flags | rsvd | CRC |
//	+------+--------+-------+-------+-------+--------+-------+------+-----+
//
//	gen      uint64, generation; the valid slot with the higher generation wins, and
//	         generation g is written to slot g%2
//	durable  uint64, offset up to which frames were known durable (synced) when the slot
//	         was written; damage before it is corruption, damage after it a torn tail
//	first    uint64, sequence number of the first frame before durable (0: none)
//	last     uint64, sequence number of the last frame before durable (0: none)
//	ltime    int64,  arrival time of that frame, Unix nanoseconds
//	count    uint64, frames before durable
//	flags    uint32, bit 0: sealed (durable is the end of the segment's frames)
//	CRC      uint32, CRC32C of bytes [0, 60)
//
// To change either layout, bump SegmentVersion and keep a reader for the old one: segments
// live for up to a year.
const (
	SegmentVersion = 1
	segmentMagic   = "SLUICSEG"
	headerSize     = 64
	slotSize       = 64
	slot0Off       = 512
	slot1Off       = 1024
	// DataOffset is where the first frame of every segment starts.
	DataOffset = 4096

	flagSealed = 1
)

// Frames start at DataOffset, each 8-byte aligned, in the layout of package frame (its byte
// diagram is in frame/format.go): the bytes on disk are the bytes the native protocol sends.
// A frame layout change bumps SegmentVersion.

// Record is one record: what Append takes (it assigns Seq and Time) and what reads return. In a
// record returned by a read, Key and Data point into the segment mapping and stay valid only
// until the View they came from is released.
type Record = frame.Record

// segHeader is a segment file's header.
type segHeader struct {
	logID    uint64
	segID    uint64
	base     uint64
	created  int64
	prevLast uint64
}

func appendSegHeader(dst []byte, h segHeader) []byte {
	start := len(dst)
	dst = append(dst, segmentMagic...)
	dst = binary.LittleEndian.AppendUint16(dst, SegmentVersion)
	dst = binary.LittleEndian.AppendUint16(dst, 0)
	dst = binary.LittleEndian.AppendUint32(dst, DataOffset)
	dst = binary.LittleEndian.AppendUint64(dst, h.logID)
	dst = binary.LittleEndian.AppendUint64(dst, h.segID)
	dst = binary.LittleEndian.AppendUint64(dst, h.base)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(h.created))
	dst = binary.LittleEndian.AppendUint64(dst, h.prevLast)
	dst = append(dst, make([]byte, 4)...)
	return binary.LittleEndian.AppendUint32(dst, crc.Checksum(dst[start:]))
}

func decodeSegHeader(b []byte) (segHeader, error) {
	var h segHeader
	if len(b) < headerSize {
		return h, fmt.Errorf("header cut at %d bytes", len(b))
	}
	if string(b[:8]) != segmentMagic {
		return h, fmt.Errorf("bad magic %q", b[:8])
	}
	if got, want := binary.LittleEndian.Uint32(b[60:]), crc.Checksum(b[:60]); got != want {
		return h, fmt.Errorf("header CRC %08x, want %08x", got, want)
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != SegmentVersion {
		return h, fmt.Errorf("%w %d", ErrVersion, v)
	}
	if d := binary.LittleEndian.Uint32(b[12:]); d != DataOffset {
		return h, fmt.Errorf("data offset %d, want %d", d, DataOffset)
	}
	h.logID = binary.LittleEndian.Uint64(b[16:])
	h.segID = binary.LittleEndian.Uint64(b[24:])
	h.base = binary.LittleEndian.Uint64(b[32:])
	h.created = int64(binary.LittleEndian.Uint64(b[40:]))
	h.prevLast = binary.LittleEndian.Uint64(b[48:])
	return h, nil
}

// checkpoint is one checkpoint slot.
type checkpoint struct {
	gen     uint64
	durable int64
	first   uint64
	last    uint64
	ltime   int64
	count   uint64
	sealed  bool
}

func appendCheckpoint(dst []byte, c checkpoint) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint64(dst, c.gen)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(c.durable))
	dst = binary.LittleEndian.AppendUint64(dst, c.first)
	dst = binary.LittleEndian.AppendUint64(dst, c.last)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(c.ltime))
	dst = binary.LittleEndian.AppendUint64(dst, c.count)
	var flags uint32
	if c.sealed {
		flags |= flagSealed
	}
	dst = binary.LittleEndian.AppendUint32(dst, flags)
	dst = binary.LittleEndian.AppendUint64(dst, 0)
	return binary.LittleEndian.AppendUint32(dst, crc.Checksum(dst[start:]))
}

func decodeCheckpoint(b []byte) (checkpoint, bool) {
	var c checkpoint
	if len(b) < slotSize || binary.LittleEndian.Uint32(b[60:]) != crc.Checksum(b[:60]) {
		return c, false
	}
	c.gen = binary.LittleEndian.Uint64(b[0:])
	d := binary.LittleEndian.Uint64(b[8:])
	if d > math.MaxInt64 || c.gen == 0 {
		return c, false
	}
	c.durable = int64(d)
	c.first = binary.LittleEndian.Uint64(b[16:])
	c.last = binary.LittleEndian.Uint64(b[24:])
	c.ltime = int64(binary.LittleEndian.Uint64(b[32:]))
	c.count = binary.LittleEndian.Uint64(b[40:])
	c.sealed = binary.LittleEndian.Uint32(b[48:])&flagSealed != 0
	return c, true
}

// bestCheckpoint returns the valid slot with the higher generation from a header page.
func bestCheckpoint(page []byte) (checkpoint, bool) {
	var best checkpoint
	found := false
	for _, off := range [2]int{slot0Off, slot1Off} {
		if len(page) < off+slotSize {
			continue
		}
		if c, ok := decodeCheckpoint(page[off : off+slotSize]); ok && (!found || c.gen > best.gen) {
			best, found = c, true
		}
	}
	return best, found
}

func slotOffset(gen uint64) int64 {
	if gen%2 == 0 {
		return slot0Off
	}
	return slot1Off
}
