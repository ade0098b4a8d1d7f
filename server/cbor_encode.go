package server

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/sluice-streams/sluice/internal/jsonscan"
)

// Answers to CBOR requests: jsonToCBOR transcodes the JSON an operation answered with, typing
// blobs and timestamps by member name (the rule and the wire format are described in cbor.go).

// jsonKind is how jsonToCBOR types a value by the name of the member holding it.
type jsonKind uint8

const (
	jsonPlain     jsonKind = iota
	jsonBlob               // a string is base64 → byte string
	jsonTimestamp          // a number is epoch seconds → tag 1 over milliseconds
)

// memberKind types a member by its name (see the rule at the top of the file).
func memberKind(name []byte) jsonKind {
	switch {
	case string(name) == "Data":
		return jsonBlob
	case bytes.HasSuffix(name, []byte("Timestamp")),
		string(name) == "StartedAt", string(name) == "EndedAt", string(name) == "EarliestAllowedEndAt":
		return jsonTimestamp
	}
	return jsonPlain
}

// jsonError is a JSON answer jsonToCBOR cannot transcode. Answers are the server's own JSON, so
// this is an internal failure, never the client's.
func jsonError(off int, what string) error {
	return errors.New("transcoding an answer to CBOR: byte " + strconv.Itoa(off) + ": " + what)
}

// jsonToCBOR appends the CBOR form of the JSON value in src to dst, typing blobs and
// timestamps by member name. Objects and arrays become maps and arrays of definite length when
// they have fewer than 24 members (the head is one byte either way, so it is patched in
// place), of indefinite length otherwise. On error the returned slice is dst as passed.
func jsonToCBOR(dst, src []byte) ([]byte, error) {
	r := jsonReader{src: src}
	out, err := r.value(dst, 0, jsonPlain)
	if err != nil {
		return dst, err
	}
	r.skipSpace()
	if r.off != len(src) {
		return dst, jsonError(r.off, "trailing bytes after the value")
	}
	return out, nil
}

// jsonReader is a JSON tokenizer over src, reading from off.
type jsonReader struct {
	src []byte
	off int
}

func (r *jsonReader) skipSpace() {
	for r.off < len(r.src) {
		switch r.src[r.off] {
		case ' ', '\t', '\n', '\r':
			r.off++
		default:
			return
		}
	}
}

// literal consumes word if src continues with it.
func (r *jsonReader) literal(word string) bool {
	if bytes.HasPrefix(r.src[r.off:], []byte(word)) {
		r.off += len(word)
		return true
	}
	return false
}

func (r *jsonReader) value(dst []byte, depth int, kind jsonKind) ([]byte, error) {
	if depth > cborMaxDepth {
		return dst, jsonError(r.off, "nested deeper than "+strconv.Itoa(cborMaxDepth))
	}
	r.skipSpace()
	if r.off >= len(r.src) {
		return dst, jsonError(r.off, "truncated: a value is missing")
	}
	switch c := r.src[r.off]; {
	case c == '{':
		return r.object(dst, depth)
	case c == '[':
		return r.array(dst, depth)
	case c == '"' && kind == jsonBlob:
		return r.blob(dst)
	case c == '"':
		dst, _, err := r.text(dst)
		return dst, err
	case c == '-' || (c >= '0' && c <= '9'):
		return r.number(dst, kind)
	case r.literal("true"):
		return append(dst, cborTrue), nil
	case r.literal("false"):
		return append(dst, cborFalse), nil
	case r.literal("null"):
		return append(dst, cborNull), nil
	}
	return dst, jsonError(r.off, "unexpected byte")
}

// closeContainer finishes a map or array begun with an indefinite-length head at dst[head]:
// fewer than 24 items fit a one-byte definite head, which replaces it; otherwise a break ends it.
func closeContainer(dst []byte, head int, major byte, n int) []byte {
	if n < 24 {
		dst[head] = major<<5 | byte(n)
		return dst
	}
	return append(dst, cborBreak)
}

func (r *jsonReader) object(dst []byte, depth int) ([]byte, error) {
	r.off++ // {
	head := len(dst)
	dst = append(dst, cborMajorMap<<5|cborIndefinite)
	r.skipSpace()
	if r.off < len(r.src) && r.src[r.off] == '}' {
		r.off++
		return closeContainer(dst, head, cborMajorMap, 0), nil
	}
	for n := 1; ; n++ {
		r.skipSpace()
		if r.off >= len(r.src) || r.src[r.off] != '"' {
			return dst, jsonError(r.off, "expected a member name")
		}
		var name int
		var err error
		if dst, name, err = r.text(dst); err != nil {
			return dst, err
		}
		kind := memberKind(dst[name:])
		r.skipSpace()
		if r.off >= len(r.src) || r.src[r.off] != ':' {
			return dst, jsonError(r.off, "expected ':'")
		}
		r.off++
		if dst, err = r.value(dst, depth+1, kind); err != nil {
			return dst, err
		}
		r.skipSpace()
		if r.off >= len(r.src) {
			return dst, jsonError(r.off, "truncated object")
		}
		switch r.src[r.off] {
		case ',':
			r.off++
		case '}':
			r.off++
			return closeContainer(dst, head, cborMajorMap, n), nil
		default:
			return dst, jsonError(r.off, "expected ',' or '}'")
		}
	}
}

func (r *jsonReader) array(dst []byte, depth int) ([]byte, error) {
	r.off++ // [
	head := len(dst)
	dst = append(dst, cborMajorArray<<5|cborIndefinite)
	r.skipSpace()
	if r.off < len(r.src) && r.src[r.off] == ']' {
		r.off++
		return closeContainer(dst, head, cborMajorArray, 0), nil
	}
	for n := 1; ; n++ {
		var err error
		if dst, err = r.value(dst, depth+1, jsonPlain); err != nil {
			return dst, err
		}
		r.skipSpace()
		if r.off >= len(r.src) {
			return dst, jsonError(r.off, "truncated array")
		}
		switch r.src[r.off] {
		case ',':
			r.off++
		case ']':
			r.off++
			return closeContainer(dst, head, cborMajorArray, n), nil
		default:
			return dst, jsonError(r.off, "expected ',' or ']'")
		}
	}
}

// plainString returns the content of the string at off if it has no escapes, and the offset
// after its closing quote; ok is false when it has escapes or is cut short.
func (r *jsonReader) plainString() (s []byte, end int, ok bool) {
	i := r.off + 1
	for j := i; j < len(r.src); j++ {
		switch c := r.src[j]; {
		case c == '"':
			return r.src[i:j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// text appends the string at off as a CBOR text string and returns where its content starts
// in dst.
func (r *jsonReader) text(dst []byte) ([]byte, int, error) {
	if s, end, ok := r.plainString(); ok {
		if !utf8.Valid(s) {
			return dst, 0, jsonError(r.off, "string is not valid UTF-8")
		}
		dst = appendCBORHead(dst, cborMajorText, uint64(len(s)))
		r.off = end
		return append(dst, s...), len(dst), nil
	}
	// With escapes the length is known only once unescaped: unescape after room for the
	// longest head, then move the content down behind the real head.
	var room [9]byte
	gap := len(dst)
	dst = append(dst, room[:]...)
	dst, err := r.unescape(dst)
	if err != nil {
		return dst[:gap], 0, err
	}
	content := dst[gap+9:]
	if !utf8.Valid(content) {
		return dst[:gap], 0, jsonError(r.off, "string is not valid UTF-8")
	}
	var h [9]byte
	head := appendCBORHead(h[:0], cborMajorText, uint64(len(content)))
	copy(dst[gap:], head)
	n := copy(dst[gap+len(head):], content)
	return dst[:gap+len(head)+n], gap + len(head), nil
}

// unescape appends the content of the string at off with its escapes resolved, and moves off
// past it.
func (r *jsonReader) unescape(dst []byte) ([]byte, error) {
	out, end, err := jsonscan.AppendUnescaped(dst, r.src, r.off+1, false)
	if err != nil {
		var se *jsonscan.SyntaxError
		errors.As(err, &se)
		return dst, jsonError(se.Offset, se.Msg)
	}
	r.off = end
	return out, nil
}

// blob appends the base64 string at off, decoded, as a byte string.
func (r *jsonReader) blob(dst []byte) ([]byte, error) {
	s, end, ok := r.plainString()
	if !ok || len(s)%4 != 0 {
		return dst, jsonError(r.off, "Data is not a base64 string")
	}
	n := len(s) / 4 * 3
	if len(s) > 0 && s[len(s)-1] == '=' {
		n--
		if s[len(s)-2] == '=' {
			n--
		}
	}
	out := appendCBORHead(dst, cborMajorBytes, uint64(n))
	start := len(out)
	out, err := base64.StdEncoding.AppendDecode(out, s)
	if err != nil || len(out)-start != n {
		return dst, jsonError(r.off, "Data is not a base64 string")
	}
	r.off = end
	return out, nil
}

// number appends the number at off: an integer that fits 64 bits as an integer, anything
// else as a double; a timestamp (seconds) as tag 1 over integer milliseconds.
func (r *jsonReader) number(dst []byte, kind jsonKind) ([]byte, error) {
	start := r.off
	src := r.src
	i := start
	neg := src[i] == '-'
	if neg {
		i++
	}
	digits := func() int {
		j := i
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
		}
		return i - j
	}
	switch {
	case i < len(src) && src[i] == '0':
		i++
	case digits() == 0:
		return dst, jsonError(i, "bad number")
	}
	integer := true
	if i < len(src) && src[i] == '.' {
		integer = false
		i++
		if digits() == 0 {
			return dst, jsonError(i, "bad number")
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		integer = false
		i++
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		if digits() == 0 {
			return dst, jsonError(i, "bad number")
		}
	}
	r.off = i
	num := src[start:i]
	digitCount := len(num)
	if neg {
		digitCount--
	}
	if kind != jsonTimestamp && integer {
		mag, ok := parseUint(num[len(num)-digitCount:])
		switch {
		case ok && !neg:
			return appendCBORHead(dst, cborMajorUint, mag), nil
		case ok && mag == 0: // -0
			return append(dst, 0), nil
		case ok:
			return appendCBORHead(dst, cborMajorNegInt, mag-1), nil
		}
	}
	f, err := strconv.ParseFloat(string(num), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return dst, jsonError(start, "bad number")
	}
	if kind == jsonTimestamp {
		ms := math.Round(f * 1000)
		if math.Abs(ms) > 1<<53 {
			return dst, jsonError(start, "timestamp out of range")
		}
		dst = appendCBORHead(dst, cborMajorTag, cborTagEpoch)
		if ms < 0 {
			return appendCBORHead(dst, cborMajorNegInt, uint64(-ms)-1), nil
		}
		return appendCBORHead(dst, cborMajorUint, uint64(ms)), nil
	}
	if math.IsInf(f, 0) {
		return dst, jsonError(start, "number out of range")
	}
	return binary.BigEndian.AppendUint64(append(dst, cborFloat64), math.Float64bits(f)), nil
}

// parseUint parses decimal digits; ok is false on overflow.
func parseUint(digits []byte) (v uint64, ok bool) {
	for _, c := range digits {
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}
