package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// The forwarded-write format (POST /sluice/v1/forward, signed as every peer request). All
// integers are unsigned varints (encoding/binary's Uvarint) unless a width is given.
//
// Request:
//
//	version  1 byte  = forwardVersion
//	stream   uvarint length, then the name's bytes
//	shard    uvarint: the shard the sender routed the records to (informational: the
//	         leader routes them again on its own shard map)
//	count    uvarint: records that follow, 1 … stream.MaxPutRecords
//	per record:
//	  key    uvarint length, then the partition key's bytes
//	  flags  1 byte: bit 0 set = an explicit hash key follows
//	  hash   16 bytes big-endian (128-bit hash key), only with flags bit 0
//	  data   uvarint length, then the data
//
// Answer (200):
//
//	version  1 byte  = forwardVersion
//	count    uvarint: one result per record, in request order
//	per result:
//	  status 1 byte: 0 appended, 1 failed, 2 another node leads the shard
//	  shard  uvarint
//	  0:     pos uvarint (the record's position; its sequence number is {shard, pos})
//	  1:     kind 1 byte (stream.Kind), message uvarint length + bytes
//	  2:     leader uvarint (Raft id, 0 unknown)
//
// A new field or meaning takes a new version; a receiver refuses a version it does not
// know (400), and the sender treats it as a leader that did not answer.
const forwardVersion = 1

// forward is a decoded forwarded-write request.
type forward struct {
	stream  string
	shard   stream.ShardID
	entries []stream.PutEntry
}

func appendBytes(dst, b []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(b))), b...)
}

func appendForward(dst []byte, streamName string, shard stream.ShardID, entries []stream.PutEntry) []byte {
	dst = append(dst, forwardVersion)
	dst = appendBytes(dst, []byte(streamName))
	dst = binary.AppendUvarint(dst, uint64(shard))
	dst = binary.AppendUvarint(dst, uint64(len(entries)))
	for i := range entries {
		en := &entries[i]
		dst = appendBytes(dst, []byte(en.PartitionKey))
		if en.ExplicitHashKey != nil {
			dst = append(dst, 1)
			dst = binary.BigEndian.AppendUint64(dst, en.ExplicitHashKey.Hi)
			dst = binary.BigEndian.AppendUint64(dst, en.ExplicitHashKey.Lo)
		} else {
			dst = append(dst, 0)
		}
		dst = appendBytes(dst, en.Data)
	}
	return dst
}

var errShortForward = errors.New("truncated")

// reader reads the format's fields, bounds-checked.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShortForward
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errShortForward
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte() byte {
	if b := r.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

// decodeForward decodes a request; the entries' data are views of body.
func decodeForward(body []byte) (forward, error) {
	r := &reader{b: body}
	if v := r.byte(); r.err == nil && v != forwardVersion {
		return forward{}, fmt.Errorf("version %d", v)
	}
	fw := forward{stream: string(r.bytes(r.uvarint()))}
	shard := r.uvarint()
	count := r.uvarint()
	if r.err != nil {
		return forward{}, r.err
	}
	if shard > 1<<32-1 || count < 1 || count > stream.MaxPutRecords {
		return forward{}, fmt.Errorf("shard %d, %d records", shard, count)
	}
	fw.shard = stream.ShardID(shard)
	fw.entries = make([]stream.PutEntry, count)
	for i := range fw.entries {
		en := &fw.entries[i]
		en.PartitionKey = string(r.bytes(r.uvarint()))
		if r.byte()&1 != 0 {
			h := r.bytes(16)
			if r.err == nil {
				en.ExplicitHashKey = &shardmap.Key{Hi: binary.BigEndian.Uint64(h[:8]), Lo: binary.BigEndian.Uint64(h[8:])}
			}
		}
		en.Data = r.bytes(r.uvarint())
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("trailing bytes")
	}
	return fw, r.err
}

func appendForwardResults(dst []byte, res []stream.PutResult) []byte {
	dst = append(dst, forwardVersion)
	dst = binary.AppendUvarint(dst, uint64(len(res)))
	for i := range res {
		pr := &res[i]
		var nl *stream.NotLeaderError
		switch {
		case pr.Err == nil:
			dst = append(dst, 0)
			dst = binary.AppendUvarint(dst, uint64(pr.Shard))
			dst = binary.AppendUvarint(dst, pr.Seq.Pos)
		case errors.As(pr.Err, &nl):
			dst = append(dst, 2)
			dst = binary.AppendUvarint(dst, uint64(pr.Shard))
			dst = binary.AppendUvarint(dst, nl.Leader)
		default:
			dst = append(dst, 1)
			dst = binary.AppendUvarint(dst, uint64(pr.Shard))
			kind, msg := stream.KindOf(pr.Err), "the record failed on the shard's leader"
			var se *stream.Error
			if errors.As(pr.Err, &se) {
				msg = se.Msg // the client's message; the cause stays in the leader's log
			}
			if kind == 0 {
				kind = stream.KindInternalFailure
			}
			dst = append(dst, byte(kind))
			dst = appendBytes(dst, []byte(msg))
		}
	}
	return dst
}

// decodeForwardResults decodes an answer of want results.
func decodeForwardResults(body []byte, want int) ([]stream.PutResult, error) {
	r := &reader{b: body}
	if v := r.byte(); r.err == nil && v != forwardVersion {
		return nil, fmt.Errorf("version %d", v)
	}
	if n := r.uvarint(); r.err == nil && n != uint64(want) {
		return nil, fmt.Errorf("%d results for %d records", n, want)
	}
	out := make([]stream.PutResult, want)
	for i := range out {
		status := r.byte()
		shard := stream.ShardID(r.uvarint())
		out[i].Shard = shard
		switch status {
		case 0:
			out[i].Seq = stream.SeqNum{Shard: shard, Pos: r.uvarint()}
		case 1:
			kind := stream.Kind(r.byte())
			out[i].Err = &stream.Error{Kind: kind, Msg: string(r.bytes(r.uvarint()))}
		case 2:
			out[i].Err = &stream.Error{Kind: stream.KindInternalFailure, Msg: "the shard's leader is another node; retry",
				Err: &stream.NotLeaderError{Leader: r.uvarint()}}
		default:
			if r.err == nil {
				r.err = fmt.Errorf("status %d", status)
			}
		}
		if r.err != nil {
			return nil, r.err
		}
	}
	if len(r.b) != 0 {
		return nil, errors.New("trailing bytes")
	}
	return out, nil
}
