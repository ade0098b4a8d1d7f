package jsonscan

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
)

// Base64 consumes a string holding standard, padded base64 (the form of blobs in the AWS
// JSON protocols) and appends the bytes it decodes to dst, which must have room for them
// without growing: cap(dst)-len(dst) ≥ base64.StdEncoding.DecodedLen of the string's
// length. A string with escapes is unescaped into scratch (grown as needed; the second
// result is scratch to keep). It accepts and rejects exactly what the standard library's
// base64.StdEncoding.Decode accepts and rejects after Str, and a base64 error is returned
// as the third result (a base64.CorruptInputError, offset into the unescaped string); the
// scanner's own errors are in Err.
//
// Why: a PutRecords body is mostly base64. The common string, the bare alphabet between
// two quotes, is decoded straight from the body by decodeBase64, which checks each 4-byte
// group once through four tables; escapes, control characters and newlines cannot pass it,
// so Str's two passes over the string (for a backslash and for control characters) are
// skipped. Anything it does not accept goes the slow way, Str and then the standard
// library, for the same answer and the same error (BenchmarkBase64, FuzzBase64).
func (s *Scanner) Base64(dst, scratch []byte) (out, scratchOut []byte, err error) {
	if s.ws() == '"' {
		raw := s.b[s.i+1:]
		if q := bytes.IndexByte(raw, '"'); q >= 0 && base64.StdEncoding.DecodedLen(q) <= cap(dst)-len(dst) {
			if out, ok := decodeBase64(dst, raw[:q]); ok {
				s.i += q + 2
				return out, scratch, nil
			}
		}
	}
	raw, escaped := s.Str(scratch)
	if escaped {
		scratch = raw[:0]
	}
	if s.err != nil {
		return dst, scratch, nil
	}
	n := base64.StdEncoding.DecodedLen(len(raw))
	if n > cap(dst)-len(dst) {
		return dst, scratch, errNoRoom
	}
	n, err = base64.StdEncoding.Decode(dst[len(dst):len(dst)+n], raw)
	return dst[:len(dst)+n], scratch, err
}

var errNoRoom = errors.New("jsonscan: no room in dst for the decoded base64")

// b64Tables[k][c] is the 6-bit value of base64 character c shifted to its place in a
// big-endian 24-bit group when c is the group's k-th character, or b64Bad (a bit no valid
// group sets) when c is not in the standard alphabet.
var b64Tables = func() (t [4][256]uint32) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for k := range 4 {
		for c := range 256 {
			t[k][c] = b64Bad
		}
		for v := range len(alphabet) {
			t[k][alphabet[v]] = uint32(v) << (18 - 6*k)
		}
	}
	return t
}()

const b64Bad = 1 << 31

// decodeBase64 appends the decoding of src, standard padded base64 with no newlines, to
// dst, which has room for it. It reports false, with dst's contents past len(dst)
// unspecified, when src is anything else.
func decodeBase64(dst, src []byte) ([]byte, bool) {
	if len(src)%4 != 0 {
		return dst, false
	}
	if len(src) == 0 {
		return dst, true
	}
	n := len(dst)
	out := dst[n : n+len(src)/4*3]
	body, last := src[:len(src)-4], src[len(src)-4:]
	t0, t1, t2, t3 := &b64Tables[0], &b64Tables[1], &b64Tables[2], &b64Tables[3]
	o := 0
	// Two groups a step, stored as one 8-byte word of which 6 bytes count: the last group
	// (decoded below) leaves at least 3 bytes of room after them.
	for len(body) >= 8 {
		v := t0[body[0]] | t1[body[1]] | t2[body[2]] | t3[body[3]]
		w := t0[body[4]] | t1[body[5]] | t2[body[6]] | t3[body[7]]
		if (v|w)&b64Bad != 0 {
			return dst, false
		}
		binary.BigEndian.PutUint64(out[o:], uint64(v)<<40|uint64(w)<<16)
		body, o = body[8:], o+6
	}
	for len(body) >= 4 {
		v := t0[body[0]] | t1[body[1]] | t2[body[2]] | t3[body[3]]
		if v&b64Bad != 0 {
			return dst, false
		}
		_ = out[o+2]
		out[o], out[o+1], out[o+2] = byte(v>>16), byte(v>>8), byte(v)
		body, o = body[4:], o+3
	}
	// The last group may end in one or two '=' of padding.
	switch {
	case last[2] == '=' && last[3] == '=':
		v := t0[last[0]] | t1[last[1]]
		if v&b64Bad != 0 {
			return dst, false
		}
		out[o] = byte(v >> 16)
		return dst[:n+o+1], true
	case last[3] == '=':
		v := t0[last[0]] | t1[last[1]] | t2[last[2]]
		if v&b64Bad != 0 {
			return dst, false
		}
		out[o], out[o+1] = byte(v>>16), byte(v>>8)
		return dst[:n+o+2], true
	}
	v := t0[last[0]] | t1[last[1]] | t2[last[2]] | t3[last[3]]
	if v&b64Bad != 0 {
		return dst, false
	}
	out[o], out[o+1], out[o+2] = byte(v>>16), byte(v>>8), byte(v)
	return dst[:n+o+3], true
}
