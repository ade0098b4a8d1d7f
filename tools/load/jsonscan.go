package load

import (
	"bytes"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner walks a JSON document without building it, for the answers of the Kinesis data
// path (PutRecords, GetRecords, SubscribeToShard events): the decoders pull the members they
// need and skip the others, in any order. It allocates only to unescape a string holding
// escapes, and never panics: the first syntax error stops it and is kept, with its offset.
//
// Why not encoding/json: a GetRecords answer is mostly base64 data that the consumer does
// not need beyond its first 24 characters (the record header), and encoding/json decodes
// all of it into a new slice per record. On an answer of 500 records of 1 KiB the scanner
// reads about 5 GB/s of record data with 4 allocations, encoding/json about 125 MB/s with
// 1,500 (BenchmarkDecodeRecords, BenchmarkDecodeRecordsJSON; 2 cores).
type scanner struct {
	b   []byte
	i   int
	err error
	tmp []byte // unescaped strings; reused
}

// maxDepth bounds the nesting of skipped values.
const maxDepth = 64

type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string {
	return "malformed JSON at offset " + strconv.Itoa(e.off) + ": " + e.msg
}

func (s *scanner) reset(b []byte) { s.b, s.i, s.err = b, 0, nil }

func (s *scanner) fail(msg string) {
	if s.err == nil {
		s.err = &syntaxError{s.i, msg}
	}
}

// ws skips white space and returns the next byte; 0 at the end or after an error.
func (s *scanner) ws() byte {
	if s.err != nil {
		return 0
	}
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return c
		}
	}
	return 0
}

// literal consumes word (true, false, null) if it comes next.
func (s *scanner) literal(word string) bool {
	if s.ws() == word[0] && len(s.b)-s.i >= len(word) && string(s.b[s.i:s.i+len(word)]) == word {
		s.i += len(word)
		return true
	}
	return false
}

// object calls member with each key of the object that comes next; member must consume the
// value. key is valid until the next string is read. A null is an empty object.
func (s *scanner) object(member func(key []byte)) {
	if s.literal("null") {
		return
	}
	if s.ws() != '{' {
		s.fail("expected an object")
		return
	}
	s.i++
	if s.ws() == '}' {
		s.i++
		return
	}
	for s.err == nil {
		key := s.str()
		if s.ws() != ':' {
			s.fail("expected ':'")
			return
		}
		s.i++
		member(key)
		switch s.ws() {
		case ',':
			s.i++
		case '}':
			s.i++
			return
		default:
			s.fail("expected ',' or '}'")
		}
	}
}

// array calls elem for each element of the array that comes next; elem must consume it. A
// null is an empty array.
func (s *scanner) array(elem func()) {
	if s.literal("null") {
		return
	}
	if s.ws() != '[' {
		s.fail("expected an array")
		return
	}
	s.i++
	if s.ws() == ']' {
		s.i++
		return
	}
	for s.err == nil {
		elem()
		switch s.ws() {
		case ',':
			s.i++
		case ']':
			s.i++
			return
		default:
			s.fail("expected ',' or ']'")
		}
	}
}

// str reads a string. The result aliases the document when the string has no escapes, and
// s.tmp otherwise: it is valid until the next call. Control characters inside a string are
// let through: the scanner reads answers, it does not judge them, and finding the closing
// quote with bytes.IndexByte keeps a record's base64 data from being walked byte by byte
// (BenchmarkDecodeRecords).
func (s *scanner) str() []byte {
	if s.ws() != '"' {
		s.fail("expected a string")
		return nil
	}
	s.i++
	start := s.i
	q := bytes.IndexByte(s.b[start:], '"')
	if q < 0 {
		s.fail("unterminated string")
		return nil
	}
	if e := bytes.IndexByte(s.b[start:start+q], '\\'); e >= 0 {
		s.i = start + e
		return s.unescape(start)
	}
	s.i = start + q + 1
	return s.b[start : start+q]
}

// strOrNull reads a string, or a null as an empty string.
func (s *scanner) strOrNull() []byte {
	if s.literal("null") {
		return nil
	}
	return s.str()
}

// unescape reads the rest of a string that started at start and holds an escape at s.i.
func (s *scanner) unescape(start int) []byte {
	s.tmp = append(s.tmp[:0], s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.tmp
		case c != '\\':
			s.tmp = append(s.tmp, c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			break
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			s.tmp = append(s.tmp, e)
		case 'b':
			s.tmp = append(s.tmp, '\b')
		case 'f':
			s.tmp = append(s.tmp, '\f')
		case 'n':
			s.tmp = append(s.tmp, '\n')
		case 'r':
			s.tmp = append(s.tmp, '\r')
		case 't':
			s.tmp = append(s.tmp, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return nil
			}
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					s.i += 2
					if r2, ok = s.hex4(); !ok {
						return nil
					}
				}
				r = utf16.DecodeRune(r, r2)
			}
			s.tmp = utf8.AppendRune(s.tmp, r)
		default:
			s.i -= 2
			s.fail("invalid escape")
			return nil
		}
	}
	s.fail("unterminated string")
	return nil
}

// hex4 reads the four hex digits of a \u escape.
func (s *scanner) hex4() (rune, bool) {
	if len(s.b)-s.i < 4 {
		s.fail("short \\u escape")
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			s.fail("invalid \\u escape")
			return 0, false
		}
	}
	s.i += 4
	return r, true
}

// number reads a number's text.
func (s *scanner) number() []byte {
	if c := s.ws(); c != '-' && (c < '0' || c > '9') {
		s.fail("expected a number")
		return nil
	}
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c >= '0' && c <= '9', c == '-', c == '+', c == '.', c == 'e', c == 'E':
			s.i++
			continue
		}
		break
	}
	return s.b[start:s.i]
}

// int reads an integer (a null is 0); a number with a fraction or exponent, or beyond
// int64, is an error.
func (s *scanner) int() int64 {
	if s.literal("null") {
		return 0
	}
	t := s.number()
	if s.err != nil {
		return 0
	}
	neg := len(t) > 0 && t[0] == '-'
	if neg {
		t = t[1:]
	}
	if len(t) == 0 || len(t) > 18 {
		s.fail("integer out of range")
		return 0
	}
	var v int64
	for _, c := range t {
		if c < '0' || c > '9' {
			s.fail("not an integer")
			return 0
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v
}

// skip consumes any value.
func (s *scanner) skip() { s.skipDepth(0) }

func (s *scanner) skipDepth(depth int) {
	if depth > maxDepth {
		s.fail("nested too deep")
		return
	}
	switch c := s.ws(); {
	case c == '{':
		s.object(func([]byte) { s.skipDepth(depth + 1) })
	case c == '[':
		s.array(func() { s.skipDepth(depth + 1) })
	case c == '"':
		s.str()
	case c == 't':
		if !s.literal("true") {
			s.fail("invalid literal")
		}
	case c == 'f':
		if !s.literal("false") {
			s.fail("invalid literal")
		}
	case c == 'n':
		if !s.literal("null") {
			s.fail("invalid literal")
		}
	default:
		s.number()
	}
}

// end checks that nothing but white space follows the document.
func (s *scanner) end() error {
	if s.ws() != 0 {
		s.fail("data after the document")
	}
	return s.err
}

// appendJSONString appends s as a JSON string. Stream names, partition keys and ARNs the
// tool writes are plain ASCII, but an iterator is the server's text.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
