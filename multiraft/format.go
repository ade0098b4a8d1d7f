package multiraft

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The body of one POST to a peer's RaftPath: every message this node has for that peer
// from every group, gathered over one or more loop iterations. Little-endian, no
// alignment, no padding:
//
//	batch   := version u8 (= batchVersion) record*
//	record  := group u64 | kind u8 | n u32 | body[n]
//
//	kind 1 (kindMessage): body = raftpb.Message in protobuf wire form (proto.Marshal)
//	kind 2 (kindQuiesce): body = from u64 | to u64 | term u64 | commit u64   (n = 32)
//	kind 3 (kindPing):    body = from u64                                    (n = 8, group 0)
//
// Records of one group are in the order raft produced the messages; a quiesce record
// follows the heartbeat of the same tick. A ping says only that node from is alive
// (liveness.go); it is sent at every second tick to a peer whose batch has nothing else, since any
// record from a node says as much. Version 1 had no pings. A batch is decoded whole before anything of it is
// stepped, so a malformed batch changes nothing. An unknown version or kind is an error
// (ErrBadBatch): a change of record layout or a new kind moves batchVersion, and a node
// rejects batches of a version it does not know (its peers' sends then fail, and raft
// treats the node as unreachable until both run the same version). docs/PROTOCOL.md,
// "Raft transport", is the same description.
const (
	batchVersion = 2

	recordHeaderLen = 8 + 1 + 4
	quiesceBodyLen  = 4 * 8
	pingBodyLen     = 8

	kindMessage = 1
	kindQuiesce = 2
	kindPing    = 3
)

// RaftPath is the HTTP path a Host's peers POST batches to.
const RaftPath = "/sluice/v1/raft"

// ContentType is the content type of a batch.
const ContentType = "application/vnd.sluice.raft.v1"

// LivenessHeader is the request header by which a node POSTing a batch says, with the
// value "answers", that it counts a 202 answer as hearing from the peer (liveness.go).
const LivenessHeader = "Sluice-Raft-Liveness"

const livenessAnswers = "answers"

// quiesce is the body of a kindQuiesce record: the leader from, in term, tells follower to
// that the group's log is committed and applied up to commit everywhere and that it stops
// ticking the group. See quiesce.go.
type quiesce struct {
	from, to, term, commit uint64
}

// appendRecordHeader appends a record header for a body of n bytes.
func appendRecordHeader(dst []byte, group GroupID, kind byte, n int) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(group))
	dst = append(dst, kind)
	return binary.LittleEndian.AppendUint32(dst, uint32(n))
}

// appendMessage appends m as a kindMessage record of group.
func appendMessage(dst []byte, group GroupID, m *raftpb.Message) ([]byte, error) {
	n := proto.Size(m)
	dst = appendRecordHeader(dst, group, kindMessage, n)
	return proto.MarshalOptions{}.MarshalAppend(dst, m)
}

// appendQuiesce appends q as a kindQuiesce record of group.
func appendQuiesce(dst []byte, group GroupID, q quiesce) []byte {
	dst = appendRecordHeader(dst, group, kindQuiesce, quiesceBodyLen)
	dst = binary.LittleEndian.AppendUint64(dst, q.from)
	dst = binary.LittleEndian.AppendUint64(dst, q.to)
	dst = binary.LittleEndian.AppendUint64(dst, q.term)
	return binary.LittleEndian.AppendUint64(dst, q.commit)
}

// appendPing appends a kindPing record from node from.
func appendPing(dst []byte, from uint64) []byte {
	dst = appendRecordHeader(dst, 0, kindPing, pingBodyLen)
	return binary.LittleEndian.AppendUint64(dst, from)
}

// inbound is one decoded record: msg for kindMessage, q for kindQuiesce; for kindPing, ping
// is set and q.from is the sender (nothing else of q is).
type inbound struct {
	group GroupID
	msg   *raftpb.Message
	q     quiesce
	ping  bool
}

// from is the node that sent the record.
func (in *inbound) from() uint64 {
	if in.msg != nil {
		return in.msg.GetFrom()
	}
	return in.q.from
}

// decodeBatch decodes a whole batch and appends its records to dst. On error dst is
// returned as given, with nothing of the batch appended. Messages are decoded into
// freshly allocated raftpb.Messages: they do not alias body.
func decodeBatch(dst []inbound, body []byte) ([]inbound, error) {
	if len(body) < 1 {
		return dst, fmt.Errorf("%w: empty body", ErrBadBatch)
	}
	if body[0] != batchVersion {
		return dst, fmt.Errorf("%w: version %d, want %d", ErrBadBatch, body[0], batchVersion)
	}
	start := len(dst)
	for off := 1; off < len(body); {
		if len(body)-off < recordHeaderLen {
			return dst[:start], fmt.Errorf("%w: record header at offset %d cut short", ErrBadBatch, off)
		}
		group := GroupID(binary.LittleEndian.Uint64(body[off:]))
		kind := body[off+8]
		n := binary.LittleEndian.Uint32(body[off+9:])
		off += recordHeaderLen
		if uint64(n) > uint64(len(body)-off) {
			return dst[:start], fmt.Errorf("%w: record at offset %d: length %d past the end of the body", ErrBadBatch, off-recordHeaderLen, n)
		}
		rec := body[off : off+int(n)]
		in := inbound{group: group}
		switch kind {
		case kindMessage:
			m := new(raftpb.Message)
			if err := proto.Unmarshal(rec, m); err != nil {
				return dst[:start], fmt.Errorf("%w: record at offset %d: %v", ErrBadBatch, off-recordHeaderLen, err)
			}
			in.msg = m
		case kindQuiesce:
			if n != quiesceBodyLen {
				return dst[:start], fmt.Errorf("%w: quiesce record at offset %d has length %d, want %d", ErrBadBatch, off-recordHeaderLen, n, quiesceBodyLen)
			}
			in.q = quiesce{
				from:   binary.LittleEndian.Uint64(rec[0:]),
				to:     binary.LittleEndian.Uint64(rec[8:]),
				term:   binary.LittleEndian.Uint64(rec[16:]),
				commit: binary.LittleEndian.Uint64(rec[24:]),
			}
		case kindPing:
			if n != pingBodyLen || group != 0 {
				return dst[:start], fmt.Errorf("%w: ping record at offset %d has group %d and length %d, want 0 and %d", ErrBadBatch, off-recordHeaderLen, group, n, pingBodyLen)
			}
			in.ping = true
			in.q.from = binary.LittleEndian.Uint64(rec)
		default:
			return dst[:start], fmt.Errorf("%w: record at offset %d has kind %d", ErrBadBatch, off-recordHeaderLen, kind)
		}
		dst = append(dst, in)
		off += int(n)
	}
	return dst, nil
}
