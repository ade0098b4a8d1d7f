package server

import (
	"bytes"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A jsonScanner walks a JSON document without building it: the data-path decoders
// (PutRecords, PutRecord) pull the members they know and skip the rest. It never allocates
// except to unescape a string that holds escapes, and it never panics on any input; every
// error is a syntax error reported with its offset.
//
// Why not encoding/json: on a PutRecords body of 500 × 1 KiB records it decodes at about
// 50 MB/s, a hand scanner with the standard library's base64 at over 1 GB/s
// (BenchmarkDecodePutRecords).
type jsonScanner struct {
	b   []byte
	i   int
	err error // the first error; every method is a no-op once it is set
}

// maxJSONDepth bounds nesting in skipped values, so a hostile body cannot exhaust the stack.
const maxJSONDepth = 64

type jsonSyntaxError struct {
	off int
	msg string
}

func (e *jsonSyntaxError) Error() string {
	return "malformed JSON at offset " + strconv.Itoa(e.off) + ": " + e.msg
}

func (s *jsonScanner) fail(msg string) {
	if s.err == nil {
		s.err = &jsonSyntaxError{s.i, msg}
	}
}

// ws skips white space and returns the next byte, or 0 at the end or after an error.
func (s *jsonScanner) ws() byte {
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

// expect consumes c after white space.
func (s *jsonScanner) expect(c byte) bool {
	if s.ws() != c {
		s.fail("expected '" + string(c) + "'")
		return false
	}
	s.i++
	return true
}

// null consumes a literal null if one comes next.
func (s *jsonScanner) null() bool {
	if s.ws() == 'n' && bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return true
	}
	return false
}

// object walks the members of an object: member is called with each key (valid until the
// next call) and must consume the value. It returns false after an error.
func (s *jsonScanner) object(member func(key []byte)) bool {
	if !s.expect('{') {
		return false
	}
	if s.ws() == '}' {
		s.i++
		return true
	}
	for s.err == nil {
		key, _ := s.str(nil)
		if !s.expect(':') {
			return false
		}
		member(key)
		switch s.ws() {
		case ',':
			s.i++
		case '}':
			s.i++
			return s.err == nil
		default:
			s.fail("expected ',' or '}' in an object")
		}
	}
	return false
}

// array walks the elements of an array, calling elem to consume each.
func (s *jsonScanner) array(elem func()) bool {
	if !s.expect('[') {
		return false
	}
	if s.ws() == ']' {
		s.i++
		return true
	}
	for s.err == nil {
		elem()
		switch s.ws() {
		case ',':
			s.i++
		case ']':
			s.i++
			return s.err == nil
		default:
			s.fail("expected ',' or ']' in an array")
		}
	}
	return false
}

// str consumes a string and returns its contents. Without escapes the result is a slice of
// the input; with them (escaped is true) it is unescaped into scratch[:0], grown as needed.
func (s *jsonScanner) str(scratch []byte) (v []byte, escaped bool) {
	if !s.expect('"') {
		return nil, false
	}
	start := s.i
	// Strings in PutRecords bodies are mostly base64; finding the closing quote with
	// IndexByte (vectorised) and then checking for escapes is much faster than a byte loop.
	q := bytes.IndexByte(s.b[s.i:], '"')
	if q < 0 {
		s.i = len(s.b)
		s.fail("unterminated string")
		return nil, false
	}
	if raw := s.b[start : s.i+q]; bytes.IndexByte(raw, '\\') < 0 {
		if hasControl(raw) {
			s.fail("control character in a string")
			return nil, false
		}
		s.i += q + 1
		return raw, false
	}
	return s.unescape(start, scratch[:0]), true
}

// hasControl reports whether b holds a byte below 0x20, which JSON forbids unescaped.
func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 {
			return true
		}
	}
	return false
}

// unescape decodes the string that starts at start (after its quote) into dst.
func (s *jsonScanner) unescape(start int, dst []byte) []byte {
	s.i = start
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return dst
		case c < 0x20:
			s.fail("control character in a string")
			return nil
		case c != '\\':
			dst = append(dst, c)
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
			dst = append(dst, e)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := s.hex4()
			if !ok {
				return nil
			}
			if utf16.IsSurrogate(r) {
				// A high surrogate pairs with a following \uXXXX low surrogate; alone it is
				// replaced, as encoding/json does.
				save := s.i
				r2 := utf8.RuneError
				if s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
					s.i += 2
					if x, ok := s.hex4(); ok {
						r2 = x
					} else {
						return nil
					}
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
				} else {
					s.i = save
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			s.i -= 2
			s.fail("invalid escape in a string")
			return nil
		}
	}
	s.fail("unterminated string")
	return nil
}

func (s *jsonScanner) hex4() (rune, bool) {
	if s.i+4 > len(s.b) {
		s.fail("short \\u escape")
		return 0, false
	}
	var r rune
	for _, c := range s.b[s.i : s.i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			s.fail("invalid \\u escape")
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	s.i += 4
	return r, true
}

// number consumes a number and returns its text.
func (s *jsonScanner) number() []byte {
	s.ws()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	digits := func() int {
		n := 0
		for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++ // a leading zero stands alone
	} else if digits() == 0 {
		s.fail("expected a number")
		return nil
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			s.fail("expected digits after '.'")
			return nil
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			s.fail("expected digits in an exponent")
			return nil
		}
	}
	return s.b[start:s.i]
}

// skip consumes any value.
func (s *jsonScanner) skip(depth int) {
	if depth > maxJSONDepth {
		s.fail("nested too deeply")
		return
	}
	switch c := s.ws(); {
	case c == '{':
		s.object(func([]byte) { s.skip(depth + 1) })
	case c == '[':
		s.array(func() { s.skip(depth + 1) })
	case c == '"':
		s.str(nil)
	case c == '-' || '0' <= c && c <= '9':
		s.number()
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
				s.i += len(lit)
				return
			}
		}
		s.fail("expected a value")
	}
}

// end checks that only white space follows the document.
func (s *jsonScanner) end() {
	if s.ws(); s.err == nil && s.i < len(s.b) {
		s.fail("data after the end of the document")
	}
}

// appendJSONString appends s as a JSON string, escaping what JSON requires and, like
// encoding/json, <, > and & (so answers are safe to embed) and replacing invalid UTF-8.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
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
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"
