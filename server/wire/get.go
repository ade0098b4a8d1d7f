package wire

import (
	"github.com/sluice-streams/sluice/frame"
)

// get request:
//
//	u16 nameLen | name | u32 shard | u8 start | u8 reserved[3] | u64 value | u32 maxRecords | u32 maxBytes
//
// The answer's body is frames in the segment format (package frame), its metadata in
// headers (HeaderCount, HeaderNext, HeaderMillisBehind, HeaderShardEnd, HeaderChildren).

const getFixed = 24

// GetRequest is a decoded get request. Stream aliases the request bytes.
type GetRequest struct {
	Stream     []byte
	Shard      uint32
	Start      Start
	Value      uint64 // a position (AT_/AFTER_SEQUENCE_NUMBER) or Unix ms (AT_TIMESTAMP)
	MaxRecords int    // 1…MaxGetRecords; 0 on the wire means MaxGetRecords
	MaxBytes   int    // 1…MaxGetBytes; 0 on the wire means MaxGetBytes
}

// AppendGetRequest appends a get request.
func AppendGetRequest(dst []byte, r *GetRequest) []byte {
	dst = le.AppendUint16(dst, uint16(len(r.Stream)))
	dst = append(dst, r.Stream...)
	dst = appendPosition(dst, r.Shard, r.Start, r.Value)
	dst = le.AppendUint32(dst, uint32(r.MaxRecords))
	return le.AppendUint32(dst, uint32(r.MaxBytes))
}

func appendPosition(dst []byte, shard uint32, start Start, value uint64) []byte {
	dst = le.AppendUint32(dst, shard)
	dst = append(dst, byte(start), 0, 0, 0)
	return le.AppendUint64(dst, value)
}

// position decodes shard, start and value (16 bytes).
func position(b []byte) (shard uint32, start Start, value uint64, err error) {
	if len(b) < 16 {
		return 0, 0, 0, ErrShort
	}
	if b[5]|b[6]|b[7] != 0 {
		return 0, 0, 0, ErrReserved
	}
	start = Start(b[4])
	if start >= numStarts {
		return 0, 0, 0, ErrStart
	}
	return le.Uint32(b), start, le.Uint64(b[8:]), nil
}

// ReadGetRequest decodes a get request, filling in the defaults of MaxRecords and MaxBytes.
func ReadGetRequest(b []byte) (GetRequest, error) {
	stream, n, err := name(b)
	if err != nil {
		return GetRequest{}, err
	}
	b = b[n:]
	if len(b) < getFixed {
		return GetRequest{}, ErrShort
	}
	if len(b) > getFixed {
		return GetRequest{}, ErrTrailing
	}
	r := GetRequest{Stream: stream}
	if r.Shard, r.Start, r.Value, err = position(b); err != nil {
		return GetRequest{}, err
	}
	r.MaxRecords, r.MaxBytes = int(le.Uint32(b[16:])), int(le.Uint32(b[20:]))
	if r.MaxRecords == 0 || r.MaxRecords > MaxGetRecords {
		if r.MaxRecords != 0 {
			return GetRequest{}, ErrCount
		}
		r.MaxRecords = MaxGetRecords
	}
	if r.MaxBytes == 0 || r.MaxBytes > MaxGetBytes {
		r.MaxBytes = MaxGetBytes
	}
	return r, nil
}

// Frames walks the frames of a get answer or a records message, checking each frame's CRC.
type Frames struct {
	b   []byte
	err error
	rec frame.Record
}

// NewFrames returns a walker over b.
func NewFrames(b []byte) Frames { return Frames{b: b} }

// Next decodes the next frame; it returns false at the end or on damage (see Err).
func (f *Frames) Next() bool {
	if len(f.b) == 0 || f.err != nil {
		return false
	}
	r, n, err := frame.Decode(f.b)
	if err == nil && n == 0 {
		err = ErrShort // a zero length word inside an answer
	}
	if err != nil {
		f.err = err
		return false
	}
	f.rec, f.b = r, f.b[n:]
	return true
}

// Record returns the current record: Seq is its position, Time its arrival (Unix ns); Key
// and Data alias the answer.
func (f *Frames) Record() frame.Record { return f.rec }

// Err returns the damage that stopped Next, if any.
func (f *Frames) Err() error { return f.err }
