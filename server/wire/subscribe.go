package wire

import (
	"bufio"
	"io"
)

// subscribe request:
//
//	u16 arnLen | consumer ARN | u32 shard | u8 start | u8 reserved[3] | u64 value
//
// subscribe answer, a stream of messages:
//
//	u32 len | u8 type | u8 reserved[3] | payload (len − 8 bytes)
//	records: u64 continuation | i64 millisBehind | u32 count | u32 reserved | frames
//	end:     u32 nChildren | nChildren × u32 child shard
//	error:   u16 code | u16 reserved | message

// SubscribeRequest is a decoded subscribe request; ConsumerARN aliases the request bytes.
type SubscribeRequest struct {
	ConsumerARN []byte
	Shard       uint32
	Start       Start
	Value       uint64
}

// AppendSubscribeRequest appends a subscribe request.
func AppendSubscribeRequest(dst []byte, r *SubscribeRequest) []byte {
	dst = le.AppendUint16(dst, uint16(len(r.ConsumerARN)))
	dst = append(dst, r.ConsumerARN...)
	return appendPosition(dst, r.Shard, r.Start, r.Value)
}

// ReadSubscribeRequest decodes a subscribe request.
func ReadSubscribeRequest(b []byte) (SubscribeRequest, error) {
	arn, n, err := name(b)
	if err != nil {
		return SubscribeRequest{}, err
	}
	b = b[n:]
	if len(b) > 16 {
		return SubscribeRequest{}, ErrTrailing
	}
	r := SubscribeRequest{ConsumerARN: arn}
	r.Shard, r.Start, r.Value, err = position(b)
	if err != nil {
		return SubscribeRequest{}, err
	}
	return r, nil
}

// MessageType is the type of a subscription message.
type MessageType uint8

// The message types. A reader skips types it does not know.
const (
	MsgRecords MessageType = 1
	MsgEnd     MessageType = 2
	MsgError   MessageType = 3
)

const (
	msgHeader     = 8
	recordsHeader = 24 // continuation, millisBehind, count, reserved
)

// AppendRecordsHead appends the head of a records message whose frames (framesLen bytes,
// count records) the caller writes right after it.
func AppendRecordsHead(dst []byte, continuation uint64, millisBehind int64, count, framesLen int) []byte {
	dst = le.AppendUint32(dst, uint32(msgHeader+recordsHeader+framesLen))
	dst = append(dst, byte(MsgRecords), 0, 0, 0)
	dst = le.AppendUint64(dst, continuation)
	dst = le.AppendUint64(dst, uint64(millisBehind))
	dst = le.AppendUint32(dst, uint32(count))
	return le.AppendUint32(dst, 0)
}

// AppendEnd appends an end message naming the closed shard's children.
func AppendEnd(dst []byte, children []uint32) []byte {
	dst = le.AppendUint32(dst, uint32(msgHeader+4+4*len(children)))
	dst = append(dst, byte(MsgEnd), 0, 0, 0)
	dst = le.AppendUint32(dst, uint32(len(children)))
	for _, c := range children {
		dst = le.AppendUint32(dst, c)
	}
	return dst
}

// AppendError appends an error message.
func AppendError(dst []byte, code Code, msg string) []byte {
	dst = le.AppendUint32(dst, uint32(msgHeader+4+len(msg)))
	dst = append(dst, byte(MsgError), 0, 0, 0)
	dst = le.AppendUint16(dst, uint16(code))
	dst = le.AppendUint16(dst, 0)
	return append(dst, msg...)
}

// Message is a decoded subscription message. Its slices alias the buffer it was read into.
type Message struct {
	Type MessageType
	// records
	Continuation uint64
	MillisBehind int64
	Count        int
	Frames       []byte
	// end
	Children []uint32
	// error
	Code    Code
	Message string
}

// ReadMessage reads the next message from r into buf (grown as needed, at most
// MaxMessageSize) and decodes it. It returns io.EOF at a clean end of the stream, between
// messages. Messages of unknown types are skipped.
func ReadMessage(r *bufio.Reader, buf []byte) (Message, []byte, error) {
	for {
		var head [msgHeader]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			if err == io.ErrUnexpectedEOF {
				return Message{}, buf, ErrShort
			}
			return Message{}, buf, err
		}
		n := int(le.Uint32(head[:]))
		if n < msgHeader {
			return Message{}, buf, ErrShort
		}
		if n > MaxMessageSize {
			return Message{}, buf, ErrTooLarge
		}
		if cap(buf) < n-msgHeader {
			buf = make([]byte, n-msgHeader)
		}
		buf = buf[:n-msgHeader]
		if _, err := io.ReadFull(r, buf); err != nil {
			return Message{}, buf, ErrShort
		}
		m, err := DecodeMessage(MessageType(head[4]), buf)
		if err == ErrType {
			continue
		}
		return m, buf, err
	}
}

// DecodeMessage decodes the payload of a message of type t.
func DecodeMessage(t MessageType, p []byte) (Message, error) {
	m := Message{Type: t}
	switch t {
	case MsgRecords:
		if len(p) < recordsHeader {
			return Message{}, ErrShort
		}
		m.Continuation = le.Uint64(p)
		m.MillisBehind = int64(le.Uint64(p[8:]))
		m.Count = int(le.Uint32(p[16:]))
		m.Frames = p[recordsHeader:]
		if m.Count > MaxGetRecords || m.Count > len(m.Frames)/32 {
			return Message{}, ErrCount
		}
	case MsgEnd:
		if len(p) < 4 {
			return Message{}, ErrShort
		}
		n := int(le.Uint32(p))
		if n > (len(p)-4)/4 {
			return Message{}, ErrShort
		}
		if len(p) != 4+4*n {
			return Message{}, ErrTrailing
		}
		m.Children = make([]uint32, n)
		for i := range m.Children {
			m.Children[i] = le.Uint32(p[4+4*i:])
		}
	case MsgError:
		if len(p) < 4 {
			return Message{}, ErrShort
		}
		m.Code = Code(le.Uint16(p))
		m.Message = string(p[4:])
	default:
		return Message{}, ErrType
	}
	return m, nil
}
