package shardmap

import (
	"encoding/binary"
	"fmt"

	"github.com/sluice-streams/sluice/internal/crc"
)

// Encoding of a Map, version 1: a 20-byte header, count shard records in ascending id order,
// and a CRC32C. Every integer is little-endian; a hash key is its 16-byte little-endian
// integer (low 64 bits first). Nothing is aligned beyond the field sizes.
//
// Header:
//
//	0       8     10    12       16       20
//	+-------+-----+-----+--------+--------+
//	| magic | ver | rsz | nextID | count  |
//	+-------+-----+-----+--------+--------+
//
//	magic   "SLUICSMP"
//	ver     uint16 EncodingVersion
//	rsz     uint16 RecordSize (48)
//	nextID  uint32 the id the next created shard gets (Map.NextID)
//	count   uint32 number of shard records, ≥ 1
//
// Shard record, RecordSize bytes:
//
//	0     4        8       12      16              32              48
//	+-----+--------+-------+-------+---------------+---------------+
//	| id  | parent |  adj  | flags |     start     |      end      |
//	+-----+--------+-------+-------+---------------+---------------+
//
//	id      uint32 shard index
//	parent  uint32 Parent, 0xffffffff (NoParent) for none
//	adj     uint32 AdjacentParent, 0xffffffff for none
//	flags   uint32 bit 0: open; every other bit is zero
//	start   128-bit Range.Start
//	end     128-bit Range.End
//
// Trailer: crc uint32, the CRC32C (internal/crc) of every byte before it.
//
// The encoding is canonical: Decode accepts only what Encode produces for some valid map, so
// a decoded map encodes back to the same bytes. To change the layout, bump EncodingVersion
// and keep a decoder for every version still on disk; Decode rejects unknown versions with
// ErrVersion.
const (
	EncodingVersion = 1
	RecordSize      = 48
	headerSize      = 20
	trailerSize     = 4
	encodingMagic   = "SLUICSMP"
	flagOpen        = 1
)

// Encode returns the encoding of m.
func (m *Map) Encode() []byte {
	return m.Append(make([]byte, 0, headerSize+len(m.all)*RecordSize+trailerSize))
}

// Append appends the encoding of m to dst.
func (m *Map) Append(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, encodingMagic...)
	dst = binary.LittleEndian.AppendUint16(dst, EncodingVersion)
	dst = binary.LittleEndian.AppendUint16(dst, RecordSize)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(m.nextID))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(m.all)))
	for _, s := range m.all {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(s.ID))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(s.Parent))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(s.AdjacentParent))
		var flags uint32
		if s.Open {
			flags |= flagOpen
		}
		dst = binary.LittleEndian.AppendUint32(dst, flags)
		dst = appendKey(dst, s.Range.Start)
		dst = appendKey(dst, s.Range.End)
	}
	return binary.LittleEndian.AppendUint32(dst, crc.Checksum(dst[start:]))
}

func appendKey(dst []byte, k Key) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, k.Lo)
	return binary.LittleEndian.AppendUint64(dst, k.Hi)
}

func decodeKey(b []byte) Key {
	return Key{Lo: binary.LittleEndian.Uint64(b[0:8]), Hi: binary.LittleEndian.Uint64(b[8:16])}
}

// Decode parses an encoding made by Encode and returns the map, which it has validated (see
// Validate). Any other input fails with an error wrapping ErrCorrupt (or ErrVersion for an
// unknown version); Decode never panics and allocates in proportion to len(b) at most. The
// map does not refer to b.
func Decode(b []byte) (*Map, error) {
	if len(b) < headerSize+trailerSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than header and trailer (%d)", ErrCorrupt, len(b), headerSize+trailerSize)
	}
	if string(b[0:8]) != encodingMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrCorrupt, b[0:8])
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != EncodingVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrVersion, v, EncodingVersion)
	}
	if rs := binary.LittleEndian.Uint16(b[10:]); rs != RecordSize {
		return nil, fmt.Errorf("%w: record size %d, want %d", ErrCorrupt, rs, RecordSize)
	}
	nextID := binary.LittleEndian.Uint32(b[12:])
	count := binary.LittleEndian.Uint32(b[16:])
	if want := uint64(headerSize) + uint64(count)*RecordSize + trailerSize; uint64(len(b)) != want {
		return nil, fmt.Errorf("%w: %d bytes, want %d for %d shards", ErrCorrupt, len(b), want, count)
	}
	body := b[:len(b)-trailerSize]
	if got, want := binary.LittleEndian.Uint32(b[len(body):]), crc.Checksum(body); got != want {
		return nil, fmt.Errorf("%w: CRC %08x, want %08x", ErrCorrupt, got, want)
	}
	if count == 0 {
		return nil, fmt.Errorf("%w: no shards", ErrCorrupt)
	}
	all := make([]Shard, count) // count·RecordSize < len(b): bounded by the input
	for i := range all {
		r := body[headerSize+i*RecordSize : headerSize+(i+1)*RecordSize]
		flags := binary.LittleEndian.Uint32(r[12:])
		if flags&^flagOpen != 0 {
			return nil, fmt.Errorf("%w: record %d: unknown flags %#x", ErrCorrupt, i, flags)
		}
		all[i] = Shard{
			ID:             ShardID(binary.LittleEndian.Uint32(r[0:])),
			Parent:         ShardID(binary.LittleEndian.Uint32(r[4:])),
			AdjacentParent: ShardID(binary.LittleEndian.Uint32(r[8:])),
			Open:           flags&flagOpen != 0,
			Range:          Range{Start: decodeKey(r[16:32]), End: decodeKey(r[32:48])},
		}
		if p := all[i].Parent; p != NoParent && p > MaxShardID {
			return nil, fmt.Errorf("%w: record %d: parent %d above %d", ErrCorrupt, i, p, MaxShardID)
		}
		if a := all[i].AdjacentParent; a != NoParent && a > MaxShardID {
			return nil, fmt.Errorf("%w: record %d: adjacent parent %d above %d", ErrCorrupt, i, a, MaxShardID)
		}
	}
	if err := validateShards(all, ShardID(nextID)); err != nil {
		return nil, err
	}
	m := freeze(all, ShardID(nextID))
	if err := checkCover(m.byStart); err != nil {
		return nil, err
	}
	return m, nil
}
