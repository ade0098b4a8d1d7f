package shardmap

import (
	"crypto/md5"
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
)

// Key is a 128-bit unsigned hash key: Hi holds the high 64 bits, Lo the low 64 bits. Kinesis
// routes a record by the MD5 of its partition key read as such an integer (KeyOf), or by an
// explicit hash key given in decimal (ParseKey). The zero Key is 0.
type Key struct {
	Hi, Lo uint64
}

// MaxKey is 2^128−1, the last hash key.
var MaxKey = Key{Hi: ^uint64(0), Lo: ^uint64(0)}

// KeyOf returns the hash key of a partition key: the MD5 digest of its bytes read as a
// big-endian 128-bit integer, exactly as Kinesis computes it. It does not allocate: md5.Sum
// keeps the digest state and the sum on the stack (BenchmarkKeyOf).
func KeyOf(partitionKey []byte) Key {
	sum := md5.Sum(partitionKey)
	return Key{Hi: binary.BigEndian.Uint64(sum[0:8]), Lo: binary.BigEndian.Uint64(sum[8:16])}
}

// keyOfStringBuf is the largest partition key KeyOfString hashes without allocating: AWS
// bounds a partition key to 256 Unicode characters, at most 1,024 bytes of UTF-8.
const keyOfStringBuf = 1024

// KeyOfString is KeyOf for a string. It does not allocate for keys of up to 1,024 bytes (any
// partition key Kinesis accepts): the bytes are copied to a stack buffer, which costs little
// next to the MD5 itself. Keys of up to 64 bytes use a 64-byte buffer, so that short keys do
// not pay for zeroing a 1 KiB one (BenchmarkKeyOf/string/bytes=8: from ~118 to ~104 ns, the
// cost of KeyOf on the same bytes).
func KeyOfString(partitionKey string) Key {
	switch {
	case len(partitionKey) <= 64:
		var buf [64]byte
		return KeyOf(buf[:copy(buf[:], partitionKey)])
	case len(partitionKey) <= keyOfStringBuf:
		var buf [keyOfStringBuf]byte
		return KeyOf(buf[:copy(buf[:], partitionKey)])
	}
	return KeyOf([]byte(partitionKey))
}

// Compare returns -1, 0 or +1 as k is less than, equal to or greater than o.
func (k Key) Compare(o Key) int {
	switch {
	case k.Hi < o.Hi:
		return -1
	case k.Hi > o.Hi:
		return 1
	case k.Lo < o.Lo:
		return -1
	case k.Lo > o.Lo:
		return 1
	}
	return 0
}

// Less reports whether k < o.
func (k Key) Less(o Key) bool {
	return k.Hi < o.Hi || (k.Hi == o.Hi && k.Lo < o.Lo)
}

// Next returns k+1, wrapping MaxKey to 0. Callers that must not wrap check k != MaxKey.
func (k Key) Next() Key {
	lo, carry := bits.Add64(k.Lo, 1, 0)
	return Key{Hi: k.Hi + carry, Lo: lo}
}

// Prev returns k−1, wrapping 0 to MaxKey. Callers that must not wrap check k != Key{}.
func (k Key) Prev() Key {
	lo, borrow := bits.Sub64(k.Lo, 1, 0)
	return Key{Hi: k.Hi - borrow, Lo: lo}
}

// mul returns k*m and whether the product overflowed 128 bits.
func (k Key) mul(m uint64) (Key, bool) {
	hh, hl := bits.Mul64(k.Hi, m)
	lh, ll := bits.Mul64(k.Lo, m)
	hi, carry := bits.Add64(hl, lh, 0)
	return Key{Hi: hi, Lo: ll}, hh != 0 || carry != 0
}

// divmod returns k/d and k%d. d must not be 0.
func (k Key) divmod(d uint64) (Key, uint64) {
	qHi, r := bits.Div64(0, k.Hi, d)
	qLo, r := bits.Div64(r, k.Lo, d)
	return Key{Hi: qHi, Lo: qLo}, r
}

// pow19 is 10^19, the largest power of ten below 2^64: a Key has at most three base-10^19
// digits.
const pow19 = 10_000_000_000_000_000_000

// AppendDecimal appends the decimal form of k to dst, as Kinesis prints StartingHashKey and
// EndingHashKey: no sign, no leading zeros.
func (k Key) AppendDecimal(dst []byte) []byte {
	if k.Hi == 0 {
		return strconv.AppendUint(dst, k.Lo, 10)
	}
	q, c := k.divmod(pow19)
	if q.Hi == 0 {
		dst = strconv.AppendUint(dst, q.Lo, 10)
		return appendPadded19(dst, c)
	}
	a, b := q.divmod(pow19) // a ≤ 3
	dst = strconv.AppendUint(dst, a.Lo, 10)
	dst = appendPadded19(dst, b)
	return appendPadded19(dst, c)
}

// appendPadded19 appends v < 10^19 as exactly 19 decimal digits.
func appendPadded19(dst []byte, v uint64) []byte {
	var buf [19]byte
	for i := len(buf) - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:]...)
}

// String returns the decimal form of k.
func (k Key) String() string {
	var buf [39]byte
	return string(k.AppendDecimal(buf[:0]))
}

// maxKeyDigits is the number of decimal digits of 2^128−1.
const maxKeyDigits = 39

// ParseKey parses a decimal hash key. It accepts exactly what AWS's HashKey pattern
// 0|([1-9]\d{0,38}) accepts and what fits in 128 bits: "0" … "340282366920938463463374607431768211455".
// It rejects the empty string, signs, spaces, leading zeros, non-digits and values ≥ 2^128
// with an error wrapping ErrInvalidKey.
func ParseKey(s string) (Key, error) {
	switch {
	case s == "":
		return Key{}, fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(s) > maxKeyDigits:
		return Key{}, fmt.Errorf("%w: %s: more than %d digits", ErrInvalidKey, quoteShort(s), maxKeyDigits)
	case s[0] == '0' && len(s) > 1:
		return Key{}, fmt.Errorf("%w: %s: leading zero", ErrInvalidKey, quoteShort(s))
	}
	var k Key
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return Key{}, fmt.Errorf("%w: %s: not a decimal number", ErrInvalidKey, quoteShort(s))
		}
		var over bool
		k, over = k.mul(10)
		var carry uint64
		k.Lo, carry = bits.Add64(k.Lo, uint64(c-'0'), 0)
		k.Hi, carry = bits.Add64(k.Hi, 0, carry)
		if over || carry != 0 {
			return Key{}, fmt.Errorf("%w: %s: above 2^128-1", ErrInvalidKey, quoteShort(s))
		}
	}
	return k, nil
}

// quoteShort quotes s for an error message, cut to a bounded length so that no input makes an
// error allocate without bound.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}

// Range is an inclusive range of hash keys, as Kinesis prints a shard's HashKeyRange:
// StartingHashKey = Start and EndingHashKey = End, with Start ≤ End.
type Range struct {
	Start, End Key
}

// Contains reports whether Start ≤ k ≤ End.
func (r Range) Contains(k Key) bool {
	return !k.Less(r.Start) && !r.End.Less(k)
}
