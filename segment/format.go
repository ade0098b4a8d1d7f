package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

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

// Frame layout, 8-byte aligned; a frame is padded with zeros to the next multiple of 8:
//
//	0      4      8        16       24     26      28       32
//	+------+------+--------+--------+------+-------+--------+-----+------+-----+
//	| len  | CRC  |  seq   |  time  | klen | flags | dlen   | key | data | pad |
//	+------+------+--------+--------+------+-------+--------+-----+------+-----+
//
//	len    uint32, 32 + klen + dlen: the frame without padding; 0 means end of log
//	CRC    uint32, CRC32C of bytes [0, 4) followed by bytes [8, len)
//	seq    uint64, sequence number
//	time   int64,  arrival time, Unix nanoseconds
//	klen   uint16, partition key length, at most MaxKeyLen
//	flags  uint16, record flags (FlagEncrypted …); unknown bits are preserved
//	dlen   uint32, data length, at most MaxDataLen
//
// These are the bytes the native protocol sends to consumers (docs/PROTOCOL.md): a read is a
// slice of the mapping, never re-encoded. To change the layout, bump SegmentVersion and the
// protocol version together.
const (
	FrameHeaderSize = 32
	// MaxKeyLen bounds a partition key in bytes: Kinesis allows 256 Unicode characters,
	// which take up to 1,024 bytes of UTF-8.
	MaxKeyLen = 1024
	// MaxDataLen bounds a record's data: 10 MiB, the largest record Kinesis accepts.
	MaxDataLen = 10 << 20
	// MaxFrameSize is the largest frame, padding included.
	MaxFrameSize = FrameHeaderSize + MaxKeyLen + MaxDataLen

	// FlagEncrypted marks a record written while the stream had server-side encryption on.
	FlagEncrypted = 1 << 0
)

// Record is one record: what Append takes and what reads return. In a record returned by a
// read, Key and Data point into the segment mapping and stay valid only until the View they
// came from is released.
type Record struct {
	Seq   uint64 // assigned by Append
	Time  int64  // arrival time, Unix nanoseconds; assigned by Append
	Flags uint16
	Key   []byte
	Data  []byte
}

// FrameSize returns the size of a record's frame including padding.
func FrameSize(keyLen, dataLen int) int { return align8(FrameHeaderSize + keyLen + dataLen) }

func align8(n int) int { return (n + 7) &^ 7 }

// AppendFrame appends the frame of r (with r.Seq and r.Time) to dst.
func AppendFrame(dst []byte, r *Record) []byte {
	start := len(dst)
	n := FrameHeaderSize + len(r.Key) + len(r.Data)
	total := align8(n)
	dst = grow(dst, total)
	f := dst[start : start+total]
	binary.LittleEndian.PutUint32(f[0:], uint32(n))
	binary.LittleEndian.PutUint64(f[8:], r.Seq)
	binary.LittleEndian.PutUint64(f[16:], uint64(r.Time))
	binary.LittleEndian.PutUint16(f[24:], uint16(len(r.Key)))
	binary.LittleEndian.PutUint16(f[26:], r.Flags)
	binary.LittleEndian.PutUint32(f[28:], uint32(len(r.Data)))
	copy(f[FrameHeaderSize:], r.Key)
	copy(f[FrameHeaderSize+len(r.Key):], r.Data)
	clear(f[n:])
	binary.LittleEndian.PutUint32(f[4:], frameCRC(f[:n]))
	return dst
}

// grow extends dst by n bytes (contents of the new bytes unspecified).
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) >= n {
		return dst[:len(dst)+n]
	}
	nb := make([]byte, len(dst)+n, 2*cap(dst)+n)
	copy(nb, dst)
	return nb
}

func frameCRC(f []byte) uint32 {
	return crc.Update(crc.Checksum(f[0:4]), f[8:])
}

// frameHeader is the fixed part of a frame.
type frameHeader struct {
	n     int // unpadded length
	seq   uint64
	time  int64
	klen  int
	flags uint16
	dlen  int
}

// peekFrame decodes and bounds-checks the fixed header of the frame at the start of b
// without checking its CRC. It returns n == 0 at the end of the log (a zero length word).
func peekFrame(b []byte) (h frameHeader, err error) {
	if len(b) < 4 {
		return h, errShort
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 {
		return h, nil
	}
	if n < FrameHeaderSize || n > FrameHeaderSize+MaxKeyLen+MaxDataLen {
		return h, errFrameLen
	}
	if int(n) > len(b) || len(b) < FrameHeaderSize {
		return h, errShort
	}
	h.n = int(n)
	h.seq = binary.LittleEndian.Uint64(b[8:])
	h.time = int64(binary.LittleEndian.Uint64(b[16:]))
	h.klen = int(binary.LittleEndian.Uint16(b[24:]))
	h.flags = binary.LittleEndian.Uint16(b[26:])
	h.dlen = int(binary.LittleEndian.Uint32(b[28:]))
	if h.klen > MaxKeyLen || h.dlen > MaxDataLen || FrameHeaderSize+h.klen+h.dlen != h.n {
		return h, errFrameLens
	}
	return h, nil
}

// Frame decoding errors are static so that rejecting a frame does not allocate; callers wrap
// them with the file and offset.
var (
	errShort     = errors.New("frame runs past the end of the buffer")
	errFrameLen  = errors.New("frame length out of range")
	errFrameLens = errors.New("frame length disagrees with its key and data lengths")
	errFrameCRC  = errors.New("frame CRC mismatch")
)

// DecodeFrame decodes the frame at the start of b and checks its CRC. It returns the record
// (Key and Data alias b) and the frame's size including padding. At the end of the log (a zero
// length word) it returns n == 0 and a nil error. It never allocates, not even to reject.
func DecodeFrame(b []byte) (r Record, n int, err error) {
	h, err := peekFrame(b)
	if err != nil || h.n == 0 {
		return r, 0, err
	}
	if frameCRC(b[:h.n]) != binary.LittleEndian.Uint32(b[4:]) {
		return r, 0, errFrameCRC
	}
	n = align8(h.n)
	if n > len(b) {
		n = h.n // the last frame of a buffer may come without its padding
	}
	r.Seq, r.Time, r.Flags = h.seq, h.time, h.flags
	r.Key = b[FrameHeaderSize : FrameHeaderSize+h.klen : FrameHeaderSize+h.klen]
	r.Data = b[FrameHeaderSize+h.klen : h.n : h.n]
	return r, n, nil
}

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
