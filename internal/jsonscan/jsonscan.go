// Package jsonscan walks JSON documents without building them, and writes JSON strings: the
// data paths' codec, shared by the server (PutRecords and PutRecord bodies) and the load tool
// (PutRecords, GetRecords and SubscribeToShard answers). A decoder pulls the members it knows
// and skips the rest, in any order. The scanner allocates only to unescape a string holding
// escapes, and never panics on any input: the first error stops it and is kept, with its
// offset. It has no state beyond the document and position, so it can be fuzzed alone.
package jsonscan

import (
	"bytes"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A Scanner walks one JSON document. The zero Scanner is empty; Reset gives it a document.
//
// Why not encoding/json: on a PutRecords body of 500 × 1 KiB records it decodes at about
// 170 MB/s with 1,018 allocations, the scanner with the standard library's base64 at over
// 1 GB/s with none (server's BenchmarkDecodePutRecords); on a GetRecords answer the load
// tool reads only the start of each record's data (tools/load BenchmarkDecodeRecords).
type Scanner struct {
	// AllowControl lets control characters through inside strings, for a reader of answers
	// that need not judge them: the closing quote is then found with a vectorised search
	// alone, and base64 data is never walked byte by byte.
	AllowControl bool
	// RejectLoneSurrogates makes a \uXXXX escape of a UTF-16 surrogate that is not half of a
	// pair an error, for a decoder that must not store U+FFFD in its place.
	RejectLoneSurrogates bool

	b   []byte
	i   int
	err error // the first error; every method is a no-op once it is set
}

// Reset starts s on document b, keeping AllowControl and RejectLoneSurrogates.
func (s *Scanner) Reset(b []byte) { s.b, s.i, s.err = b, 0, nil }

// Err returns the first error met, or nil.
func (s *Scanner) Err() error { return s.err }

// Fail stops the scan with a syntax error at the current offset, unless one is already set.
func (s *Scanner) Fail(msg string) {
	if s.err == nil {
		s.err = &SyntaxError{Offset: s.i, Msg: msg}
	}
}

// FailWith stops the scan with err, for a decoder that finds a value it cannot accept,
// unless an error is already set.
func (s *Scanner) FailWith(err error) {
	if s.err == nil {
		s.err = err
	}
}

// maxDepth bounds nesting in skipped values, so a hostile body cannot exhaust the stack.
const maxDepth = 64

// SyntaxError is a malformed document.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return "malformed JSON at offset " + strconv.Itoa(e.Offset) + ": " + e.Msg
}

// ws skips white space and returns the next byte, or 0 at the end or after an error.
func (s *Scanner) ws() byte {
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
func (s *Scanner) expect(c byte) bool {
	if s.ws() != c {
		s.Fail("expected '" + string(c) + "'")
		return false
	}
	s.i++
	return true
}

// Null consumes a literal null if one comes next.
func (s *Scanner) Null() bool {
	if s.ws() == 'n' && bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return true
	}
	return false
}

// Object walks the members of an object: member is called with each key (valid until the
// next call) and must consume the value. It returns false after an error.
func (s *Scanner) Object(member func(key []byte)) bool {
	if !s.expect('{') {
		return false
	}
	if s.ws() == '}' {
		s.i++
		return true
	}
	for s.err == nil {
		key, _ := s.Str(nil)
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
			s.Fail("expected ',' or '}' in an object")
		}
	}
	return false
}

// Array walks the elements of an array, calling elem to consume each.
func (s *Scanner) Array(elem func()) bool {
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
			s.Fail("expected ',' or ']' in an array")
		}
	}
	return false
}

// Str consumes a string and returns its contents. Without escapes the result is a slice of
// the input; with them (escaped is true) it is unescaped into scratch[:0], grown as needed.
func (s *Scanner) Str(scratch []byte) (v []byte, escaped bool) {
	if !s.expect('"') {
		return nil, false
	}
	start := s.i
	// Strings in PutRecords bodies are mostly base64; finding the closing quote with
	// IndexByte (vectorised) and then checking for escapes is much faster than a byte loop.
	q := bytes.IndexByte(s.b[s.i:], '"')
	if q < 0 {
		s.i = len(s.b)
		s.Fail("unterminated string")
		return nil, false
	}
	if raw := s.b[start : s.i+q]; bytes.IndexByte(raw, '\\') < 0 {
		if !s.AllowControl && hasControl(raw) {
			s.Fail("control character in a string")
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
func (s *Scanner) unescape(start int, dst []byte) []byte {
	out, end, err := appendUnescaped(dst, s.b, start, s.AllowControl, s.RejectLoneSurrogates)
	if err != nil {
		s.FailWith(err)
		return nil
	}
	s.i = end
	return out
}

// AppendUnescaped appends the content of the JSON string whose content starts at b[i] (just
// after its opening quote) to dst with its escapes resolved, and returns the index just past
// its closing quote. A lone surrogate becomes U+FFFD, as encoding/json decodes it. Control
// characters are an error unless allowControl is set. Errors are *SyntaxError.
func AppendUnescaped(dst, b []byte, i int, allowControl bool) ([]byte, int, error) {
	return appendUnescaped(dst, b, i, allowControl, false)
}

// loneSurrogate is the message of a lone surrogate refused.
const loneSurrogate = "a \\u escape holds a lone UTF-16 surrogate: strings must be valid Unicode"

// appendUnescaped is AppendUnescaped, with a lone surrogate an error when rejectLone is set.
func appendUnescaped(dst, b []byte, i int, allowControl, rejectLone bool) ([]byte, int, error) {
	fail := func(off int, msg string) ([]byte, int, error) { return dst, off, &SyntaxError{Offset: off, Msg: msg} }
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			return dst, i + 1, nil
		case c < 0x20 && !allowControl:
			return fail(i, "control character in a string")
		case c != '\\':
			dst = append(dst, c)
			i++
			continue
		}
		if i+1 >= len(b) {
			break
		}
		switch e := b[i+1]; e {
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
			r, ok := hex4(b, i+2)
			if !ok {
				return fail(i, "invalid \\u escape")
			}
			i += 6
			if utf16.IsSurrogate(r) {
				// A high surrogate pairs with a following \uXXXX low surrogate; alone it is
				// replaced, as encoding/json does.
				r2 := utf8.RuneError
				if i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
					if x, ok := hex4(b, i+2); ok {
						r2 = x
					}
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
					i += 6
				} else if rejectLone {
					return fail(i-6, loneSurrogate)
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			return fail(i, "invalid escape in a string")
		}
		i += 2
	}
	return fail(i, "unterminated string")
}

// CheckSurrogates returns a *SyntaxError at the first \uXXXX escape in b of a UTF-16
// surrogate that is not half of a pair, or nil if there is none: for a decoder that cannot be
// told to refuse them (encoding/json stores U+FFFD in their place). It looks only at escapes,
// found with a vectorised search, and does not check the rest of the document.
func CheckSurrogates(b []byte) error {
	for i := bytes.IndexByte(b, '\\'); i >= 0 && i+1 < len(b); {
		next := i + 2 // past the escaped character: \\u is no escape of a code unit
		if b[i+1] == 'u' {
			if r, ok := hex4(b, i+2); ok && utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if i+7 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
					if x, ok := hex4(b, i+8); ok {
						r2 = x
					}
				}
				if utf16.DecodeRune(r, r2) == utf8.RuneError {
					return &SyntaxError{Offset: i, Msg: loneSurrogate}
				}
				next = i + 12
			}
		}
		j := bytes.IndexByte(b[min(next, len(b)):], '\\')
		if j < 0 {
			break
		}
		i = next + j
	}
	return nil
}

// hex4 decodes the four hex digits at b[i:].
func hex4(b []byte, i int) (rune, bool) {
	if i < 0 || len(b)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// Number consumes a number and returns its text.
func (s *Scanner) Number() []byte {
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
		s.Fail("expected a number")
		return nil
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			s.Fail("expected digits after '.'")
			return nil
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			s.Fail("expected digits in an exponent")
			return nil
		}
	}
	return s.b[start:s.i]
}

// Int consumes an integer (a null is 0); a fraction, an exponent or a value beyond 18
// digits is an error.
func (s *Scanner) Int() int64 {
	if s.Null() {
		return 0
	}
	t := s.Number()
	if s.err != nil {
		return 0
	}
	neg := t[0] == '-'
	if neg {
		t = t[1:]
	}
	if len(t) > 18 {
		s.Fail("integer out of range")
		return 0
	}
	var v int64
	for _, c := range t {
		if c < '0' || c > '9' {
			s.Fail("not an integer")
			return 0
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v
}

// Skip consumes any value.
func (s *Scanner) Skip() { s.skip(0) }

func (s *Scanner) skip(depth int) {
	if depth > maxDepth {
		s.Fail("nested too deeply")
		return
	}
	switch c := s.ws(); {
	case c == '{':
		s.Object(func([]byte) { s.skip(depth + 1) })
	case c == '[':
		s.Array(func() { s.skip(depth + 1) })
	case c == '"':
		s.Str(nil)
	case c == '-' || '0' <= c && c <= '9':
		s.Number()
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
				s.i += len(lit)
				return
			}
		}
		s.Fail("expected a value")
	}
}

// End checks that only white space follows the document.
func (s *Scanner) End() {
	if s.ws(); s.err == nil && s.i < len(s.b) {
		s.Fail("data after the end of the document")
	}
}

// AppendString appends s as a JSON string, escaping what JSON requires and, like
// encoding/json, <, > and & (so answers are safe to embed) and replacing invalid UTF-8.
func AppendString(dst []byte, s string) []byte {
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
