package server

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sluice-streams/sluice/server/wire"
)

// CBOR (RFC 8949) for the AWS CBOR protocol, Content-Type application/x-amz-cbor-1.1, which the
// AWS SDK for Java and the Kinesis Client Library send by default. It is AWS JSON 1.1 with CBOR
// in place of JSON: the same operations and members, blobs as byte strings and timestamps under
// tag 1. Rather than a second set of decoders and encoders, the server transcodes: a request
// body to JSON for the operations' decoders (cborToJSON), an answer back to CBOR (jsonToCBOR).
// Both stream through their input once, build no tree and allocate nothing beyond dst.
//
// A data item is an initial byte, an argument, and content:
//
//	initial byte   major type (3 bits) | additional information (5 bits)
//	ai 0..23       the argument is ai itself
//	ai 24..27      the argument follows: 1, 2, 4 or 8 bytes, big-endian
//	ai 31          indefinite length (major 2..5): chunks or items up to a break (0xff)
//
//	major 0  unsigned integer          arg              JSON number
//	major 1  negative integer          -1 - arg         JSON number
//	major 2  byte string               arg bytes        base64 (std) JSON string, as JSON 1.1 carries blobs;
//	                                                    only as the value of a member named Data
//	major 3  text string (UTF-8)       arg bytes        JSON string
//	major 4  array                     arg items        JSON array
//	major 5  map                       arg pairs        JSON object (keys must be text strings)
//	major 6  tag                       one item         1: epoch time; 55799: self-describe, skipped
//	major 7  simple value or float     0xf4 false, 0xf5 true, 0xf6 null, 0xf7 undefined (as null),
//	                                   0xf9/0xfa/0xfb half/single/double float (finite only)
//
// Tag 1 departs from RFC 8949 §3.4.2 the way AWS does: its content counts milliseconds since
// the epoch, not seconds. The AWS SDK for Java writes Instant.toEpochMilli() there and reads the
// same back (its CBOR protocol's default timestamp format is epoch milliseconds), and Kinesis
// answers in kind; JSON 1.1 carries seconds with a fraction. So cborToJSON turns tag 1 into
// seconds and jsonToCBOR turns a timestamp into tag 1 over an integer count of milliseconds.
//
// A request has no schema at hand either, so cborToJSON takes a byte string only where the
// Kinesis input shapes have a blob: the members named Data (PutRecord, PutRecords' records).
// A byte string anywhere else would become base64 text in a string member such as
// PartitionKey; it is a SerializationException instead. A text string in Data is taken as
// base64, as the Jackson CBOR parser reads text where it wants binary (see docs/API.md).
//
// An answer has no schema at hand, so jsonToCBOR types members by name, a rule checked against
// every blob and timestamp member of the Kinesis output shapes (TestCBORMemberKinds): a member
// named Data whose value is a string is a base64 blob; a member whose name ends in Timestamp, or
// is StartedAt, EndedAt or EarliestAllowedEndAt (MinimumThroughputBillingCommitment), whose
// value is a number is a timestamp. No other output member shares those names, and no output
// shape has a map with caller-chosen keys that could collide with them.

const (
	cborContentType = "application/x-amz-cbor-1.1"
	// cborMaxDepth bounds the nesting of arrays, maps and tags in a request (and of arrays and
	// objects in an answer): Kinesis inputs and outputs nest three or four deep.
	cborMaxDepth = 64
)

// Major types, as the top three bits of an initial byte.
const (
	cborMajorUint   = 0
	cborMajorNegInt = 1
	cborMajorBytes  = 2
	cborMajorText   = 3
	cborMajorArray  = 4
	cborMajorMap    = 5
	cborMajorTag    = 6
	cborMajorSimple = 7
)

// Initial bytes and arguments with a fixed meaning.
const (
	cborFalse      = 0xf4
	cborTrue       = 0xf5
	cborNull       = 0xf6
	cborUndefined  = 0xf7
	cborFloat16    = 0xf9
	cborFloat32    = 0xfa
	cborFloat64    = 0xfb
	cborBreak      = 0xff
	cborIndefinite = 31 // additional information: indefinite length (or break, major 7)

	cborTagEpoch        = 1
	cborTagSelfDescribe = 55799
)

// cborEmptyMap is {} in CBOR, the payload of a CBOR stream's initial-response event.
var cborEmptyMap = []byte{cborMajorMap << 5}

// isCBOR reports whether a request's Content-Type selects the CBOR protocol.
func isCBOR(contentType []byte) bool {
	return bytes.HasPrefix(contentType, []byte("application/x-amz-cbor"))
}

// cborErr is a request body that is not acceptable CBOR, reported as AWS reports a body it
// cannot parse.
func cborErr(off int, what string) error {
	return apiError{code: wire.Serialization, msg: "CBOR at byte " + strconv.Itoa(off) + ": " + what}
}

// cborToJSON appends the JSON form of the one CBOR data item in src to dst. Errors are
// SerializationExceptions (apiError, status 400). On error the returned slice is dst as passed.
func cborToJSON(dst, src []byte) ([]byte, error) {
	d := cborDecoder{src: src}
	out, err := d.value(dst, 0)
	if err != nil {
		return dst, err
	}
	if d.off != len(src) {
		return dst, cborErr(d.off, "trailing bytes after the data item")
	}
	return out, nil
}

// cborDecoder reads src from off. Every length is checked against what is left of src before
// anything is sliced, so a declared length never drives an allocation or a long loop.
type cborDecoder struct {
	src  []byte
	off  int
	blob bool // the next value is a blob member's: set by member, consumed by value
}

// head reads an initial byte and its argument. For ai 31 it returns ai 31 and arg 0; the
// caller decides whether indefinite length is allowed for the major type.
func (d *cborDecoder) head() (major, ai byte, arg uint64, err error) {
	if d.off >= len(d.src) {
		return 0, 0, 0, cborErr(d.off, "truncated: a data item is missing")
	}
	b := d.src[d.off]
	major, ai = b>>5, b&0x1f
	d.off++
	var n int
	switch {
	case ai < 24:
		return major, ai, uint64(ai), nil
	case ai == cborIndefinite:
		return major, ai, 0, nil
	case ai > 27:
		return 0, 0, 0, cborErr(d.off-1, "reserved additional information "+strconv.Itoa(int(ai)))
	default:
		n = 1 << (ai - 24)
	}
	if len(d.src)-d.off < n {
		return 0, 0, 0, cborErr(d.off, "truncated: the argument of a data item is cut short")
	}
	p := d.src[d.off : d.off+n]
	d.off += n
	switch n {
	case 1:
		arg = uint64(p[0])
	case 2:
		arg = uint64(binary.BigEndian.Uint16(p))
	case 4:
		arg = uint64(binary.BigEndian.Uint32(p))
	default:
		arg = binary.BigEndian.Uint64(p)
	}
	return major, ai, arg, nil
}

// left is the number of bytes not yet read.
func (d *cborDecoder) left() uint64 { return uint64(len(d.src) - d.off) }

// atBreak consumes a break byte if one is next.
func (d *cborDecoder) atBreak() bool {
	if d.off < len(d.src) && d.src[d.off] == cborBreak {
		d.off++
		return true
	}
	return false
}

// take returns the next n bytes, a slice of src.
func (d *cborDecoder) take(n uint64) ([]byte, error) {
	if n > d.left() {
		return nil, cborErr(d.off, "truncated: a string of "+strconv.FormatUint(n, 10)+" bytes runs past the end")
	}
	p := d.src[d.off : d.off+int(n)]
	d.off += int(n)
	return p, nil
}

func (d *cborDecoder) value(dst []byte, depth int) ([]byte, error) {
	if depth > cborMaxDepth {
		return dst, cborErr(d.off, "nested deeper than "+strconv.Itoa(cborMaxDepth))
	}
	at := d.off
	blob := d.blob
	d.blob = false
	major, ai, arg, err := d.head()
	if err != nil {
		return dst, err
	}
	if ai == cborIndefinite && (major == cborMajorUint || major == cborMajorNegInt || major == cborMajorTag) {
		return dst, cborErr(at, "indefinite length on a major type that has none")
	}
	switch major {
	case cborMajorUint:
		return strconv.AppendUint(dst, arg, 10), nil
	case cborMajorNegInt:
		return appendNegInt(dst, arg), nil
	case cborMajorBytes:
		if !blob {
			return dst, cborErr(at, "a byte string where the member is not a blob (only Data is)")
		}
		return d.byteString(dst, ai, arg)
	case cborMajorText:
		dst = append(dst, '"')
		dst, err = d.textString(dst, ai, arg)
		return append(dst, '"'), err
	case cborMajorArray:
		return d.array(dst, ai, arg, depth)
	case cborMajorMap:
		return d.object(dst, ai, arg, depth)
	case cborMajorTag:
		switch arg {
		case cborTagSelfDescribe:
			d.blob = blob
			return d.value(dst, depth+1)
		case cborTagEpoch:
			return d.epoch(dst)
		}
		return dst, cborErr(at, "unsupported tag "+strconv.FormatUint(arg, 10))
	}
	return d.simple(dst, at, ai, arg)
}

// appendNegInt appends -1-arg, which for arg = 2^64-1 is -2^64, beyond int64 and uint64.
func appendNegInt(dst []byte, arg uint64) []byte {
	dst = append(dst, '-')
	if arg == math.MaxUint64 {
		return append(dst, "18446744073709551616"...)
	}
	return strconv.AppendUint(dst, arg+1, 10)
}

func (d *cborDecoder) simple(dst []byte, at int, ai byte, arg uint64) ([]byte, error) {
	switch ai {
	case cborFalse & 0x1f:
		return append(dst, "false"...), nil
	case cborTrue & 0x1f:
		return append(dst, "true"...), nil
	case cborNull & 0x1f, cborUndefined & 0x1f:
		return append(dst, "null"...), nil
	case cborFloat16 & 0x1f, cborFloat32 & 0x1f, cborFloat64 & 0x1f:
		f := cborFloat(ai, arg)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return dst, cborErr(at, "NaN or infinity has no JSON form")
		}
		return appendJSONFloat(dst, f), nil
	case cborIndefinite:
		return dst, cborErr(at, "break outside an indefinite-length item")
	}
	return dst, cborErr(at, "unsupported simple value")
}

// cborFloat converts the argument of a float (ai 25, 26 or 27) to a float64, exactly.
func cborFloat(ai byte, arg uint64) float64 {
	switch ai {
	case cborFloat16 & 0x1f:
		return halfToFloat(uint16(arg))
	case cborFloat32 & 0x1f:
		return float64(math.Float32frombits(uint32(arg)))
	}
	return math.Float64frombits(arg)
}

// halfToFloat converts an IEEE 754 binary16 value.
func halfToFloat(h uint16) float64 {
	exp, frac := int(h>>10)&0x1f, float64(h&0x3ff)
	var f float64
	switch exp {
	case 0: // zero or subnormal
		f = math.Ldexp(frac, -24)
	case 0x1f:
		if frac != 0 {
			return math.NaN()
		}
		f = math.Inf(1)
	default:
		f = math.Ldexp(frac+1024, exp-25)
	}
	if h&0x8000 != 0 {
		f = -f
	}
	return f
}

// appendJSONFloat formats f as encoding/json does: plain decimals in [1e-6, 1e21), exponent
// form outside, with the fewest digits that parse back to the same float64 (half and single
// floats too: JSON readers parse into doubles).
func appendJSONFloat(dst []byte, f float64) []byte {
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(dst, f, format, -1, 64)
}

// byteString appends a byte string (definite or chunked) as a base64 JSON string. Chunk
// boundaries need not fall on 3-byte groups, so up to two bytes carry over between chunks.
func (d *cborDecoder) byteString(dst []byte, ai byte, arg uint64) ([]byte, error) {
	dst = append(dst, '"')
	if ai != cborIndefinite {
		p, err := d.take(arg)
		if err != nil {
			return dst, err
		}
		return append(base64.StdEncoding.AppendEncode(dst, p), '"'), nil
	}
	var carry [3]byte
	nc := 0
	for !d.atBreak() {
		at := d.off
		major, cai, n, err := d.head()
		if err != nil {
			return dst, err
		}
		if major != cborMajorBytes || cai == cborIndefinite {
			return dst, cborErr(at, "a chunk of an indefinite-length byte string is not a definite byte string")
		}
		p, err := d.take(n)
		if err != nil {
			return dst, err
		}
		if nc > 0 {
			k := copy(carry[nc:], p)
			nc += k
			p = p[k:]
			if nc < 3 {
				continue
			}
			dst = base64.StdEncoding.AppendEncode(dst, carry[:])
			nc = 0
		}
		whole := len(p) / 3 * 3
		dst = base64.StdEncoding.AppendEncode(dst, p[:whole])
		nc = copy(carry[:], p[whole:])
	}
	dst = base64.StdEncoding.AppendEncode(dst, carry[:nc])
	return append(dst, '"'), nil
}

// textString appends the escaped content of a text string (definite or chunked), without
// quotes. Each chunk must be valid UTF-8 on its own, as RFC 8949 requires.
func (d *cborDecoder) textString(dst []byte, ai byte, arg uint64) ([]byte, error) {
	if ai != cborIndefinite {
		at := d.off
		p, err := d.take(arg)
		if err != nil {
			return dst, err
		}
		if !utf8.Valid(p) {
			return dst, cborErr(at, "text string is not valid UTF-8")
		}
		return appendJSONEscaped(dst, p), nil
	}
	for !d.atBreak() {
		at := d.off
		major, cai, n, err := d.head()
		if err != nil {
			return dst, err
		}
		if major != cborMajorText || cai == cborIndefinite {
			return dst, cborErr(at, "a chunk of an indefinite-length text string is not a definite text string")
		}
		if dst, err = d.textString(dst, cai, n); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// appendJSONEscaped appends s, valid UTF-8, escaped for the inside of a JSON string.
func appendJSONEscaped(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i, c := range s {
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	return append(dst, s[start:]...)
}

func (d *cborDecoder) array(dst []byte, ai byte, n uint64, depth int) ([]byte, error) {
	dst = append(dst, '[')
	var err error
	if ai == cborIndefinite {
		for i := 0; !d.atBreak(); i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = d.value(dst, depth+1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	}
	if n > d.left() { // every item takes at least a byte
		return dst, cborErr(d.off, "array of "+strconv.FormatUint(n, 10)+" items runs past the end")
	}
	for i := uint64(0); i < n; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, err = d.value(dst, depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, ']'), nil
}

func (d *cborDecoder) object(dst []byte, ai byte, n uint64, depth int) ([]byte, error) {
	dst = append(dst, '{')
	var err error
	if ai == cborIndefinite {
		for i := 0; !d.atBreak(); i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, err = d.member(dst, depth); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	}
	if n > d.left()/2 { // every pair takes at least two bytes
		return dst, cborErr(d.off, "map of "+strconv.FormatUint(n, 10)+" pairs runs past the end")
	}
	for i := uint64(0); i < n; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		if dst, err = d.member(dst, depth); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// member appends one key (a text string) and its value.
func (d *cborDecoder) member(dst []byte, depth int) ([]byte, error) {
	at := d.off
	major, ai, arg, err := d.head()
	if err != nil {
		return dst, err
	}
	if major != cborMajorText {
		return dst, cborErr(at, "map key is not a text string")
	}
	dst = append(dst, '"')
	key := len(dst)
	if dst, err = d.textString(dst, ai, arg); err != nil {
		return dst, err
	}
	d.blob = string(dst[key:]) == "Data"
	dst = append(dst, '"', ':')
	return d.value(dst, depth+1)
}

// epoch appends the content of tag 1, milliseconds since the epoch, as JSON seconds.
// Integers convert exactly; a float is divided by 1000.
func (d *cborDecoder) epoch(dst []byte) ([]byte, error) {
	at := d.off
	major, ai, arg, err := d.head()
	if err != nil {
		return dst, err
	}
	switch {
	case major == cborMajorUint:
		return appendMillis(dst, false, arg/1000, arg%1000), nil
	case major == cborMajorNegInt:
		q, r := arg/1000, arg%1000+1 // magnitude arg+1, without overflowing at 2^64-1
		if r == 1000 {
			q, r = q+1, 0
		}
		return appendMillis(dst, true, q, r), nil
	case major == cborMajorSimple && (ai == cborFloat16&0x1f || ai == cborFloat32&0x1f || ai == cborFloat64&0x1f):
		f := cborFloat(ai, arg)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return dst, cborErr(at, "timestamp is NaN or infinite")
		}
		return appendJSONFloat(dst, f/1000), nil
	}
	return dst, cborErr(at, "tag 1 (epoch time) does not hold a number")
}

// appendMillis appends sec.mmm, leaving out the fraction when it is zero.
func appendMillis(dst []byte, neg bool, sec, ms uint64) []byte {
	if neg && (sec != 0 || ms != 0) {
		dst = append(dst, '-')
	}
	dst = strconv.AppendUint(dst, sec, 10)
	if ms == 0 {
		return dst
	}
	return append(dst, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
}

// appendCBORHead appends an initial byte and argument in preferred (shortest) form.
func appendCBORHead(dst []byte, major byte, arg uint64) []byte {
	m := major << 5
	switch {
	case arg < 24:
		return append(dst, m|byte(arg))
	case arg <= math.MaxUint8:
		return append(dst, m|24, byte(arg))
	case arg <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, m|25), uint16(arg))
	case arg <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, m|26), uint32(arg))
	}
	return binary.BigEndian.AppendUint64(append(dst, m|27), arg)
}

// appendCBORError appends the body of an error answer: {"__type": name, "message": msg},
// without the message when it is empty. The AWS SDK for Java reads the error code from the
// X-Amzn-ErrorType header first and from __type second, and the message from message.
func appendCBORError(dst []byte, name, msg string) []byte {
	n := uint64(1)
	if msg != "" {
		n = 2
	}
	dst = appendCBORHead(dst, cborMajorMap, n)
	dst = appendCBORText(dst, "__type")
	dst = appendCBORText(dst, name)
	if msg != "" {
		dst = appendCBORText(dst, "message")
		dst = appendCBORText(dst, msg)
	}
	return dst
}

// appendCBORText appends s, which must be valid UTF-8, as a text string. Invalid bytes are
// replaced with U+FFFD, as encoding/json does, so the item is always well-formed.
func appendCBORText(dst []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return append(appendCBORHead(dst, cborMajorText, uint64(len(s))), s...)
}

// cborEvent is event (eventstream.go) for a CBOR subscription: the payload is CBOR.
func cborEvent(eventType string, payload []byte) []byte {
	return appendEventMessage(nil, []eventHeader{
		{":message-type", "event"}, {":event-type", eventType}, {":content-type", cborContentType},
	}, payload)
}

// cborExceptionEvent is exceptionEvent (eventstream.go) for a CBOR subscription.
func cborExceptionEvent(name, message string) []byte {
	payload := appendCBORHead(nil, cborMajorMap, 1)
	payload = appendCBORText(payload, "message")
	payload = appendCBORText(payload, message)
	return appendEventMessage(nil, []eventHeader{
		{":message-type", "exception"}, {":exception-type", name}, {":content-type", cborContentType},
	}, payload)
}

// cborAnswer encodes an operation's answer (nil for {}, a rawJSON, or a value for
// encoding/json) as CBOR into a buffer from getBodyBuf, which the caller hands to the response.
// A rawJSON's buffer goes back to the pool once transcoded.
func cborAnswer(out any) ([]byte, error) {
	var js []byte
	switch v := out.(type) {
	case nil:
		return append(getBodyBuf(len(cborEmptyMap)), cborEmptyMap...), nil
	case rawJSON:
		js = v
		defer putBodyBuf(v)
	default:
		var err error
		if js, err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	// CBOR is shorter than its JSON: blobs lose base64, names and numbers their punctuation.
	b, err := jsonToCBOR(getBodyBuf(len(js)), js)
	if err != nil {
		putBodyBuf(b)
		return nil, err
	}
	return b, nil
}
