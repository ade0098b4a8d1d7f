package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/stream"
)

// The peer read format (POST /sluice/v1/read, signed as every peer request): a node that
// holds no replica of a shard asks a replica for what the engine asks its ShardLog (remote.go).
// Integers are unsigned varints (encoding/binary's Uvarint) unless a width is given; fixed
// widths are little-endian.
//
// Request:
//
//	version  1 byte  = readVersion
//	op       1 byte: 0 read, 1 the first position at or after a time, 2 the oldest position
//	stream   uvarint length (1 … 128), then the name's bytes
//	gen      uvarint: the stream's incarnation (with stream and shard: the Raft group)
//	shard    uvarint (< 2^32)
//	op 0:    from     uvarint: the first position wanted
//	         records  uvarint: at most this many records, 0 … stream.MaxGetRecordsLimit
//	                  (0: none, only the answer's header: the tip and the leader)
//	         bytes    uvarint: about this many bytes of frames, 0 … stream.MaxGetRecordsBytes
//	         wait     uvarint: milliseconds, 0 … maxReadWait: before answering, wait until
//	                  the replica's tip is above after (a long poll), or the time is up
//	         after    uvarint
//	op 1:    time     8 bytes, int64 Unix nanoseconds
//
// Answer (200):
//
//	version  1 byte  = readVersion
//	leader   uvarint: the Raft id of the group's leader as the replica knows it (0: none)
//	tip      uvarint: the replica's last readable position, taken after the read
//	tipTime  8 bytes, int64: the arrival time of the tip's record (Unix ns)
//	op 0:    count, first, last, next  uvarints (segment.View's fields)
//	         lastTime  8 bytes, int64
//	         payload   uvarint
//	         frames    uvarint length, then the frames exactly as the replica stores them
//	ops 1-2: found  1 byte (0 or 1), then seq uvarint
//
// Other statuses: 404 the node holds no replica of the group (ask another), 503 the node is
// starting or stopping, 400 a malformed request, 500 the replica's log failed. A new field or
// meaning takes a new version; a receiver refuses a version it does not know (400).
const readVersion = 1

// Operations of a peer read.
const (
	opRead      = 0
	opSeqAtTime = 1
	opOldest    = 2
)

// maxReadWait bounds a long poll: the replica answers within it, so that a request's
// timeout (remoteTimeout + wait) tells a stopped replica from a quiet shard.
const maxReadWait = 5 * time.Second

// maxStreamName bounds a stream's name in a peer read (Kinesis names are 1 … 128 bytes).
const maxStreamName = 128

// readRequest is a decoded peer read.
type readRequest struct {
	op      byte
	stream  string
	gen     uint64
	shard   stream.ShardID
	from    uint64
	records int
	bytes   int
	wait    time.Duration
	after   uint64
	at      int64 // opSeqAtTime's time
}

func appendReadRequest(dst []byte, q *readRequest) []byte {
	dst = append(dst, readVersion, q.op)
	dst = appendBytes(dst, []byte(q.stream))
	dst = binary.AppendUvarint(dst, q.gen)
	dst = binary.AppendUvarint(dst, uint64(q.shard))
	switch q.op {
	case opRead:
		dst = binary.AppendUvarint(dst, q.from)
		dst = binary.AppendUvarint(dst, uint64(q.records))
		dst = binary.AppendUvarint(dst, uint64(q.bytes))
		dst = binary.AppendUvarint(dst, uint64(q.wait/time.Millisecond))
		dst = binary.AppendUvarint(dst, q.after)
	case opSeqAtTime:
		dst = binary.LittleEndian.AppendUint64(dst, uint64(q.at))
	}
	return dst
}

func (r *reader) int64() int64 {
	if b := r.bytes(8); b != nil {
		return int64(binary.LittleEndian.Uint64(b))
	}
	return 0
}

// decodeReadRequest decodes and bounds-checks a peer read.
func decodeReadRequest(body []byte) (readRequest, error) {
	r := &reader{b: body}
	if v := r.byte(); r.err == nil && v != readVersion {
		return readRequest{}, fmt.Errorf("version %d", v)
	}
	q := readRequest{op: r.byte()}
	n := r.uvarint()
	if r.err == nil && (n < 1 || n > maxStreamName) {
		return readRequest{}, fmt.Errorf("stream name of %d bytes", n)
	}
	q.stream = string(r.bytes(n))
	q.gen = r.uvarint()
	shard := r.uvarint()
	switch q.op {
	case opRead:
		q.from = r.uvarint()
		records, bytes, wait := r.uvarint(), r.uvarint(), r.uvarint()
		q.after = r.uvarint()
		if r.err == nil && (records > stream.MaxGetRecordsLimit || bytes > stream.MaxGetRecordsBytes || wait > uint64(maxReadWait/time.Millisecond)) {
			return readRequest{}, fmt.Errorf("%d records, %d bytes, wait %d ms", records, bytes, wait)
		}
		q.records, q.bytes, q.wait = int(records), int(bytes), time.Duration(wait)*time.Millisecond
	case opSeqAtTime:
		q.at = r.int64()
	case opOldest:
	default:
		if r.err == nil {
			return readRequest{}, fmt.Errorf("op %d", q.op)
		}
	}
	if r.err == nil && shard > 1<<32-1 {
		return readRequest{}, fmt.Errorf("shard %d", shard)
	}
	q.shard = stream.ShardID(shard)
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("trailing bytes")
	}
	return q, r.err
}

// readAnswer is a decoded answer to a peer read.
type readAnswer struct {
	leader  uint64
	tip     uint64
	tipTime int64
	// op 0: the view's fields and its frames (a view of the answer's body)
	count             int
	first, last, next uint64
	lastTime          int64
	payload           int
	frames            []byte
	// ops 1-2
	found bool
	seq   uint64
}

// appendReadAnswer appends the answer to op; with op 0, v is the view read (nil: none).
func appendReadAnswer(dst []byte, op byte, a *readAnswer, v *segment.View) []byte {
	dst = append(dst, readVersion)
	dst = binary.AppendUvarint(dst, a.leader)
	dst = binary.AppendUvarint(dst, a.tip)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(a.tipTime))
	switch op {
	case opRead:
		if v == nil {
			v = &segment.View{Next: a.next}
		}
		dst = binary.AppendUvarint(dst, uint64(v.Count))
		dst = binary.AppendUvarint(dst, v.First)
		dst = binary.AppendUvarint(dst, v.Last)
		dst = binary.AppendUvarint(dst, v.Next)
		dst = binary.LittleEndian.AppendUint64(dst, uint64(v.LastTime))
		dst = binary.AppendUvarint(dst, uint64(v.Payload))
		dst = appendBytes(dst, v.Bytes())
	default:
		found := byte(0)
		if a.found {
			found = 1
		}
		dst = append(dst, found)
		dst = binary.AppendUvarint(dst, a.seq)
	}
	return dst
}

// decodeReadAnswer decodes the answer to a request q. The frames of a read are checked
// (each one's bounds and CRC, positions increasing, and the view's fields against them), so
// that the engine's View, which trusts its bytes, is never given a frame it cannot walk.
func decodeReadAnswer(body []byte, q *readRequest) (readAnswer, error) {
	r := &reader{b: body}
	if v := r.byte(); r.err == nil && v != readVersion {
		return readAnswer{}, fmt.Errorf("version %d", v)
	}
	a := readAnswer{leader: r.uvarint(), tip: r.uvarint(), tipTime: r.int64()}
	switch q.op {
	case opRead:
		count := r.uvarint()
		a.first, a.last, a.next = r.uvarint(), r.uvarint(), r.uvarint()
		a.lastTime = r.int64()
		payload := r.uvarint()
		a.frames = r.bytes(r.uvarint())
		if r.err != nil {
			break
		}
		if count > uint64(max(q.records, 0)) || payload > uint64(len(a.frames)) {
			return readAnswer{}, fmt.Errorf("%d records of %d payload bytes for a read of %d", count, payload, q.records)
		}
		a.count, a.payload = int(count), int(payload)
		if err := checkFrames(&a, q.from); err != nil {
			return readAnswer{}, err
		}
	default:
		a.found = r.byte() == 1
		a.seq = r.uvarint()
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("trailing bytes")
	}
	return a, r.err
}

// checkFrames checks a read's frames against its fields: count frames, each whole with a
// good CRC, positions strictly increasing from first (≥ from) to last, the last's time
// lastTime, the keys and data payload bytes, and next past last (≥ from when empty).
func checkFrames(a *readAnswer, from uint64) error {
	b, n, payload := a.frames, 0, 0
	var prev uint64
	var lastTime int64
	for len(b) > 0 {
		rec, size, err := frame.Decode(b)
		if err != nil || size == 0 {
			return fmt.Errorf("frame %d: %v", n, err)
		}
		if n == 0 && rec.Seq != a.first || n > 0 && rec.Seq <= prev {
			return fmt.Errorf("frame %d at position %d after %d", n, rec.Seq, prev)
		}
		prev, lastTime = rec.Seq, rec.Time
		payload += len(rec.Key) + len(rec.Data)
		b = b[size:]
		n++
	}
	switch {
	case n != a.count || payload != a.payload:
		return fmt.Errorf("%d frames of %d payload bytes; the answer says %d of %d", n, payload, a.count, a.payload)
	case n > 0 && (a.first < from || prev != a.last || lastTime != a.lastTime || a.next <= a.last):
		return fmt.Errorf("records %d … %d, next %d, for a read from %d", a.first, a.last, a.next, from)
	case n == 0 && a.next < from:
		return fmt.Errorf("an empty read from %d goes on at %d", from, a.next)
	}
	return nil
}
