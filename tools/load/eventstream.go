package load

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// The AWS event stream encoding (application/vnd.amazon.eventstream) that carries
// SubscribeToShard's events over HTTP/1.1. It is AWS's format: checksums are CRC-32 (IEEE)
// and integers big-endian.
//
//	0        4        8          12                 12+hlen     total-4   total
//	+--------+--------+----------+------------------+-----------+---------+
//	| total  | hlen   | preCRC   | headers          | payload   | msgCRC  |
//	+--------+--------+----------+------------------+-----------+---------+
//
//	total   uint32, the whole message's length
//	hlen    uint32, the headers' length
//	preCRC  CRC-32 of bytes [0, 8)
//	header  name length (uint8), name, value type (uint8), value (by type: 0 true and 1
//	        false have none; 2 a byte; 3 int16; 4 int32; 5 int64 and 8 a timestamp, 8 bytes;
//	        6 bytes and 7 string, a uint16 length then the bytes; 9 a 16-byte UUID)
//	msgCRC  CRC-32 of bytes [0, total-4)
const (
	eventPrelude = 12
	eventMinLen  = eventPrelude + 4
	// eventMaxLen bounds a message: a SubscribeToShard event carries at most 10 MiB of
	// records, which base64 and JSON take to under 16 MiB.
	eventMaxLen = 24 << 20
)

// errEvent reports a damaged event stream message.
var errEvent = errors.New("malformed event stream message")

// event is one decoded message; its slices alias the buffer it was read into.
type event struct {
	messageType   []byte // :message-type: event, exception or error
	eventType     []byte // :event-type
	exceptionType []byte // :exception-type
	errorCode     []byte // :error-code, for an error message
	errorMessage  []byte // :error-message
	payload       []byte
}

// readEvent reads one message from r into buf (grown as needed) and decodes it. io.EOF
// means the stream ended between messages.
func readEvent(r *bufio.Reader, buf []byte) (event, []byte, error) {
	var pre [eventPrelude]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = fmt.Errorf("%w: cut in its prelude", errEvent)
		}
		return event{}, buf, err
	}
	total := binary.BigEndian.Uint32(pre[0:4])
	if total < eventMinLen || total > eventMaxLen {
		return event{}, buf, fmt.Errorf("%w: length %d", errEvent, total)
	}
	if cap(buf) < int(total) {
		buf = make([]byte, total)
	}
	buf = buf[:total]
	copy(buf, pre[:])
	if _, err := io.ReadFull(r, buf[eventPrelude:]); err != nil {
		return event{}, buf, fmt.Errorf("%w: cut: %v", errEvent, err)
	}
	ev, err := decodeEvent(buf)
	return ev, buf, err
}

// decodeEvent decodes one whole message.
func decodeEvent(m []byte) (event, error) {
	var ev event
	if len(m) < eventMinLen {
		return ev, fmt.Errorf("%w: %d bytes", errEvent, len(m))
	}
	total := binary.BigEndian.Uint32(m[0:4])
	hlen := binary.BigEndian.Uint32(m[4:8])
	if uint64(total) != uint64(len(m)) || uint64(hlen) > uint64(total)-eventMinLen {
		return ev, fmt.Errorf("%w: lengths %d and %d in %d bytes", errEvent, total, hlen, len(m))
	}
	if crc32.ChecksumIEEE(m[0:8]) != binary.BigEndian.Uint32(m[8:12]) {
		return ev, fmt.Errorf("%w: prelude checksum", errEvent)
	}
	if crc32.ChecksumIEEE(m[:total-4]) != binary.BigEndian.Uint32(m[total-4:]) {
		return ev, fmt.Errorf("%w: message checksum", errEvent)
	}
	h := m[eventPrelude : eventPrelude+hlen]
	for len(h) > 0 {
		nl := int(h[0])
		if len(h) < 1+nl+1 {
			return ev, fmt.Errorf("%w: header cut", errEvent)
		}
		name, typ := h[1:1+nl], h[1+nl]
		h = h[2+nl:]
		var n int
		switch typ {
		case 0, 1:
		case 2:
			n = 1
		case 3:
			n = 2
		case 4:
			n = 4
		case 5, 8:
			n = 8
		case 9:
			n = 16
		case 6, 7:
			if len(h) < 2 {
				return ev, fmt.Errorf("%w: header cut", errEvent)
			}
			n = int(binary.BigEndian.Uint16(h))
			h = h[2:]
		default:
			return ev, fmt.Errorf("%w: header value type %d", errEvent, typ)
		}
		if len(h) < n {
			return ev, fmt.Errorf("%w: header cut", errEvent)
		}
		v := h[:n]
		h = h[n:]
		if typ != 7 {
			continue
		}
		switch string(name) {
		case ":message-type":
			ev.messageType = v
		case ":event-type":
			ev.eventType = v
		case ":exception-type":
			ev.exceptionType = v
		case ":error-code":
			ev.errorCode = v
		case ":error-message":
			ev.errorMessage = v
		}
	}
	ev.payload = m[eventPrelude+hlen : total-4]
	return ev, nil
}
