package load

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"testing"
)

// appendEvent appends a message with string headers (name, value pairs) and a payload.
func appendEvent(dst []byte, headers [][2]string, payload []byte) []byte {
	hlen := 0
	for _, h := range headers {
		hlen += 1 + len(h[0]) + 3 + len(h[1])
	}
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(eventMinLen+hlen+len(payload)))
	dst = binary.BigEndian.AppendUint32(dst, uint32(hlen))
	dst = binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start:start+8]))
	for _, h := range headers {
		dst = append(dst, byte(len(h[0])))
		dst = append(dst, h[0]...)
		dst = append(dst, 7)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(h[1])))
		dst = append(dst, h[1]...)
	}
	dst = append(dst, payload...)
	return binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start:]))
}

func TestReadEvent(t *testing.T) {
	var stream []byte
	stream = appendEvent(stream, [][2]string{{":message-type", "event"}, {":event-type", "initial-response"}}, []byte("{}"))
	stream = appendEvent(stream, [][2]string{{":message-type", "event"}, {":event-type", "SubscribeToShardEvent"}, {":content-type", "application/json"}}, []byte(`{"Records":[]}`))
	stream = appendEvent(stream, [][2]string{{":message-type", "exception"}, {":exception-type", "ResourceInUseException"}}, []byte(`{"message":"busy"}`))
	stream = appendEvent(stream, [][2]string{{":message-type", "error"}, {":error-code", "InternalFailure"}, {":error-message", "oops"}}, nil)
	// A message with headers of every other type, skipped by type.
	var h []byte
	for _, v := range []struct {
		typ byte
		val []byte
	}{{0, nil}, {1, nil}, {2, []byte{1}}, {3, []byte{1, 2}}, {4, make([]byte, 4)}, {5, make([]byte, 8)}, {8, make([]byte, 8)}, {9, make([]byte, 16)}, {6, []byte{0, 2, 'h', 'i'}}} {
		h = append(h, 1, 'n', v.typ)
		h = append(h, v.val...)
	}
	stream = append(stream, appendRaw(h, []byte("x"))...)

	r := bufio.NewReader(bytes.NewReader(stream))
	var buf []byte
	want := []struct{ mtype, etype, payload string }{
		{"event", "initial-response", "{}"},
		{"event", "SubscribeToShardEvent", `{"Records":[]}`},
		{"exception", "", `{"message":"busy"}`},
		{"error", "", ""},
		{"", "", "x"},
	}
	for i, w := range want {
		var ev event
		var err error
		ev, buf, err = readEvent(r, buf)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if string(ev.messageType) != w.mtype || string(ev.eventType) != w.etype || string(ev.payload) != w.payload {
			t.Errorf("message %d: %q %q %q", i, ev.messageType, ev.eventType, ev.payload)
		}
		if i == 2 && string(ev.exceptionType) != "ResourceInUseException" {
			t.Errorf("exception type %q", ev.exceptionType)
		}
		if i == 3 && (string(ev.errorCode) != "InternalFailure" || string(ev.errorMessage) != "oops") {
			t.Errorf("error %q %q", ev.errorCode, ev.errorMessage)
		}
	}
	if _, _, err := readEvent(r, buf); err != io.EOF {
		t.Errorf("after the last message: %v, want io.EOF", err)
	}
}

// appendRaw appends a message with raw header bytes.
func appendRaw(headers, payload []byte) []byte {
	var dst []byte
	dst = binary.BigEndian.AppendUint32(dst, uint32(eventMinLen+len(headers)+len(payload)))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(headers)))
	dst = binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[0:8]))
	dst = append(dst, headers...)
	dst = append(dst, payload...)
	return binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst))
}

func TestReadEventDamage(t *testing.T) {
	good := appendEvent(nil, [][2]string{{":message-type", "event"}}, []byte("{}"))
	tests := map[string][]byte{
		"cut prelude":      good[:5],
		"cut body":         good[:len(good)-1],
		"prelude checksum": flip(good, 9),
		"message checksum": flip(good, len(good)-5),
		"length too small": binary.BigEndian.AppendUint32(nil, 3),
		"length too large": binary.BigEndian.AppendUint32(nil, eventMaxLen+1),
		"headers too long": appendRawLen(100, nil),
		"header cut":       appendRaw([]byte{5, 'a'}, nil),
		"header value cut": appendRaw([]byte{1, 'a', 7, 0, 9, 'x'}, nil),
		"unknown type":     appendRaw([]byte{1, 'a', 42}, nil),
		"bytes length cut": appendRaw([]byte{1, 'a', 6, 0}, nil),
		"fixed value cut":  appendRaw([]byte{1, 'a', 5, 0, 0}, nil),
	}
	for name, m := range tests {
		if _, _, err := readEvent(bufio.NewReader(bytes.NewReader(m)), nil); err == nil || err == io.EOF {
			t.Errorf("%s: %v, want an error", name, err)
		} else if name != "cut prelude" && !errors.Is(err, errEvent) {
			t.Errorf("%s: %v, want errEvent", name, err)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

// appendRawLen is a message whose headers' length says hlen, whatever follows.
func appendRawLen(hlen uint32, payload []byte) []byte {
	var dst []byte
	dst = binary.BigEndian.AppendUint32(dst, uint32(eventMinLen+len(payload)))
	dst = binary.BigEndian.AppendUint32(dst, hlen)
	dst = binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[0:8]))
	dst = append(dst, payload...)
	return binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst))
}
