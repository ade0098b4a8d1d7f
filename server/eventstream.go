package server

import (
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
)

// AWS event stream message encoding (application/vnd.amazon.eventstream), used by
// SubscribeToShard. It is AWS's format, not sluice's: its checksums are CRC-32 (IEEE), not
// the CRC32C of sluice's own formats, so they do not go through internal/crc.
//
//	0        4        8          12                 12+h        total-4   total
//	+--------+--------+----------+------------------+-----------+---------+
//	| total  | hlen   | preCRC   | headers          | payload   | msgCRC  |
//	+--------+--------+----------+------------------+-----------+---------+
//
//	total   uint32 big-endian, the whole message
//	hlen    uint32 big-endian, the headers' length
//	preCRC  CRC-32 of bytes [0, 8)
//	header  name length (uint8), name, value type (uint8, 7 = string), value length (uint16
//	        big-endian), value
//	msgCRC  CRC-32 of bytes [0, total-4)
const eventStringType = 7

type eventHeader struct{ name, value string }

// appendEventMessage appends one event stream message to dst.
func appendEventMessage(dst []byte, headers []eventHeader, payload []byte) []byte {
	hlen := 0
	for _, h := range headers {
		hlen += 1 + len(h.name) + 1 + 2 + len(h.value)
	}
	total := 12 + hlen + len(payload) + 4
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(total))
	dst = binary.BigEndian.AppendUint32(dst, uint32(hlen))
	dst = binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start:start+8]))
	for _, h := range headers {
		dst = append(dst, byte(len(h.name)))
		dst = append(dst, h.name...)
		dst = append(dst, eventStringType)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(h.value)))
		dst = append(dst, h.value...)
	}
	dst = append(dst, payload...)
	return binary.BigEndian.AppendUint32(dst, crc32.ChecksumIEEE(dst[start:]))
}

// event returns an event message of the given event type with a JSON payload.
func event(eventType string, payload []byte) []byte {
	return appendEventMessage(nil, []eventHeader{
		{":message-type", "event"}, {":event-type", eventType}, {":content-type", jsonContentType},
	}, payload)
}

// exceptionEvent returns an exception message, as an error inside an open event stream.
func exceptionEvent(name, message string) []byte {
	payload, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{message})
	return appendEventMessage(nil, []eventHeader{
		{":message-type", "exception"}, {":exception-type", name}, {":content-type", jsonContentType},
	}, payload)
}
