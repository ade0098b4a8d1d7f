package client

import (
	"fmt"
	"math/bits"
)

// SeqNum is a sequence number in the native protocol's form: the shard's index and the
// record's position in the shard's log. Its Kinesis form (String) is the 56-digit decimal
// 10^55 + Shard·2^64 + Position (docs/FORMAT.md, Sequence numbers); the two convert without
// asking the server, and both orders agree.
type SeqNum struct {
	Shard    uint32
	Position uint64
}

// seqDigits is the length of the Kinesis form; the value Shard·2^64 + Position takes the last
// seqLow digits (2^96 < 10^29), after a "1" and 26 zeros.
const (
	seqDigits = 56
	seqLow    = 29
	tenPow19  = 10_000_000_000_000_000_000
)

// Less reports whether s comes before o.
func (s SeqNum) Less(o SeqNum) bool {
	return s.Shard < o.Shard || s.Shard == o.Shard && s.Position < o.Position
}

// String returns the 56-digit Kinesis form.
func (s SeqNum) String() string {
	var buf [seqDigits]byte
	return string(s.AppendKinesis(buf[:0]))
}

// AppendKinesis appends the 56-digit Kinesis form to dst.
func (s SeqNum) AppendKinesis(dst []byte) []byte {
	// The value hi·2^64 + lo, hi = Shard, is below 2^96 < 10^29. Split it as q·10^19 + r:
	// r gives the last 19 digits and q (< 2^96/10^19 < 10^10) the 10 before them.
	q, r := bits.Div64(uint64(s.Shard), s.Position, tenPow19)
	var low [seqLow]byte
	for i := seqLow - 1; i >= 0; i-- {
		if i >= seqLow-19 {
			low[i] = '0' + byte(r%10)
			r /= 10
		} else {
			low[i] = '0' + byte(q%10)
			q /= 10
		}
	}
	dst = append(dst, '1')
	for range seqDigits - 1 - seqLow {
		dst = append(dst, '0')
	}
	return append(dst, low[:]...)
}

// ParseSeqNum decodes the 56-digit Kinesis form of a sluice sequence number.
func ParseSeqNum(str string) (SeqNum, error) {
	bad := func(why string) (SeqNum, error) {
		if len(str) > 64 {
			str = str[:64] + "…"
		}
		return SeqNum{}, fmt.Errorf("sluice: sequence number %q: %s", str, why)
	}
	if len(str) != seqDigits || str[0] != '1' {
		return bad("not 56 digits starting with 1")
	}
	for i := 1; i < seqDigits-seqLow; i++ {
		if str[i] != '0' {
			return bad("not a sluice sequence number")
		}
	}
	var hi, lo uint64 // the value, 128 bits
	for i := seqDigits - seqLow; i < seqDigits; i++ {
		c := str[i]
		if c < '0' || c > '9' {
			return bad("not a decimal number")
		}
		// (hi, lo) = (hi, lo)·10 + digit; no overflow: 29 digits stay below 2^97.
		h1, l1 := bits.Mul64(lo, 10)
		hi = hi*10 + h1
		var carry uint64
		lo, carry = bits.Add64(l1, uint64(c-'0'), 0)
		hi += carry
	}
	if hi > 1<<32-1 {
		return bad("shard index out of range")
	}
	return SeqNum{Shard: uint32(hi), Position: lo}, nil
}
