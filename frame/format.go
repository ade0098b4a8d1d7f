package frame

import (
	"encoding/binary"

	"github.com/sluice-streams/sluice/internal/crc"
)

// Frame layout, 8-byte aligned; a frame is padded with zeros to the next multiple of 8. All
// integers are little-endian.
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
//	flags  uint16, record flags (FlagEncrypted, FlagSealed); unknown bits are preserved
//	dlen   uint32, data length, at most MaxDataLen
//
// These are the bytes segment files store (docs/FORMAT.md) and the native protocol sends to
// consumers (docs/PROTOCOL.md): a read is a slice of a segment's mapping, never re-encoded.
// The layout carries no version of its own: to change it, bump segment.SegmentVersion and
// the protocol version together.
const (
	HeaderSize = 32
	// MaxKeyLen bounds a partition key in bytes: Kinesis allows 256 Unicode characters,
	// which take up to 1,024 bytes of UTF-8.
	MaxKeyLen = 1024
	// MaxDataLen bounds a record's data: 10 MiB, the largest record Kinesis accepts.
	MaxDataLen = 10 << 20
	// MaxSize is the largest frame, padding included.
	MaxSize = HeaderSize + MaxKeyLen + MaxDataLen

	// FlagEncrypted marks a record written while the stream had server-side encryption on.
	FlagEncrypted = 1 << 0
	// FlagSealed marks a record whose data is sealed (AES-256-GCM under a data key of its
	// stream, docs/FORMAT.md "Encryption at rest"). It is set on disk only: a server opens
	// sealed records before it serves them and clears the flag, keeping FlagEncrypted. A
	// record with FlagEncrypted alone was written before sluice sealed data: plaintext.
	FlagSealed = 1 << 1
)

// Record is the record one frame holds. In a decoded record, Key and Data alias the decoded
// bytes (see Decode).
type Record struct {
	Seq   uint64
	Time  int64 // arrival time, Unix nanoseconds
	Flags uint16
	Key   []byte
	Data  []byte
}

// Size returns the size of a record's frame including padding.
func Size(keyLen, dataLen int) int { return Align(HeaderSize + keyLen + dataLen) }

// Align returns n rounded up to the frame alignment, 8: the padded size of a frame whose length
// word is n, and the distance from its start to the next frame.
func Align(n int) int { return (n + 7) &^ 7 }

// Append appends the frame of r to dst. It does not check r against MaxKeyLen and MaxDataLen:
// the caller does, with its own error.
func Append(dst []byte, r *Record) []byte {
	start := len(dst)
	n := HeaderSize + len(r.Key) + len(r.Data)
	total := Align(n)
	dst = grow(dst, total)
	f := dst[start : start+total]
	binary.LittleEndian.PutUint32(f[0:], uint32(n))
	binary.LittleEndian.PutUint64(f[8:], r.Seq)
	binary.LittleEndian.PutUint64(f[16:], uint64(r.Time))
	binary.LittleEndian.PutUint16(f[24:], uint16(len(r.Key)))
	binary.LittleEndian.PutUint16(f[26:], r.Flags)
	binary.LittleEndian.PutUint32(f[28:], uint32(len(r.Data)))
	copy(f[HeaderSize:], r.Key)
	copy(f[HeaderSize+len(r.Key):], r.Data)
	clear(f[n:])
	binary.LittleEndian.PutUint32(f[4:], checksum(f[:n]))
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

// checksum is the CRC of the unpadded frame f: bytes [0, 4) followed by bytes [8, len).
func checksum(f []byte) uint32 {
	return crc.Update(crc.Checksum(f[0:4]), f[8:])
}

// Header is the fixed part of a frame.
type Header struct {
	Len     int // the length word: the frame without padding; 0 at the end of the log
	Seq     uint64
	Time    int64
	KeyLen  int
	Flags   uint16
	DataLen int
}

// DecodeHeader decodes and bounds-checks the fixed header of the frame at the start of b
// without checking its CRC: for frames already checked, or checked next with CheckCRC. It
// returns Len == 0 and a nil error at the end of the log (a zero length word). On success
// b[:Len] holds the whole unpadded frame. It never allocates.
func DecodeHeader(b []byte) (h Header, err error) {
	if len(b) < 4 {
		return h, ErrShort
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 {
		return h, nil
	}
	if n < HeaderSize || n > HeaderSize+MaxKeyLen+MaxDataLen {
		return h, ErrLen
	}
	if int(n) > len(b) || len(b) < HeaderSize {
		return h, ErrShort
	}
	h.Len = int(n)
	h.Seq = binary.LittleEndian.Uint64(b[8:])
	h.Time = int64(binary.LittleEndian.Uint64(b[16:]))
	h.KeyLen = int(binary.LittleEndian.Uint16(b[24:]))
	h.Flags = binary.LittleEndian.Uint16(b[26:])
	h.DataLen = int(binary.LittleEndian.Uint32(b[28:]))
	if h.KeyLen > MaxKeyLen || h.DataLen > MaxDataLen || HeaderSize+h.KeyLen+h.DataLen != h.Len {
		return h, ErrLens
	}
	return h, nil
}

// CheckCRC checks the CRC of the unpadded frame f (f[:h.Len] after DecodeHeader) and returns
// ErrCRC on a mismatch. f must hold at least 8 bytes, which DecodeHeader guarantees.
func CheckCRC(f []byte) error {
	if checksum(f) != binary.LittleEndian.Uint32(f[4:]) {
		return ErrCRC
	}
	return nil
}

// Decode decodes the frame at the start of b and checks its CRC. It returns the record (Key
// and Data alias b, with their capacities cut to their lengths) and the frame's size including
// padding. At the end of the log (a zero length word) it returns n == 0 and a nil error. It
// never allocates, not even to reject.
func Decode(b []byte) (r Record, n int, err error) {
	h, err := DecodeHeader(b)
	if err != nil || h.Len == 0 {
		return r, 0, err
	}
	if checksum(b[:h.Len]) != binary.LittleEndian.Uint32(b[4:]) {
		return r, 0, ErrCRC
	}
	n = Align(h.Len)
	if n > len(b) {
		n = h.Len // the last frame of a buffer may come without its padding
	}
	r.Seq, r.Time, r.Flags = h.Seq, h.Time, h.Flags
	r.Key = b[HeaderSize : HeaderSize+h.KeyLen : HeaderSize+h.KeyLen]
	r.Data = b[HeaderSize+h.KeyLen : h.Len : h.Len]
	return r, n, nil
}
