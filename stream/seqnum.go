package stream

import (
	"math/bits"
	"strconv"

	"github.com/sluice-streams/sluice/shardmap"
)

// Sequence numbers as clients see them. Kinesis prints them as 56-digit decimal strings and
// compares them as integers; sluice's are the integer
//
//	10^55 + shard·2^64 + position
//
// where shard is the shard's index within its stream (shardId-000000000007 is 7) and position
// is the record's sequence number in the shard's log (segment.Log, a uint64 ≥ 1). The leading
// 10^55 makes every number exactly 56 digits, so numeric and lexicographic order agree, and
// a number decodes back to its shard and position with no lookup. A child shard always has a
// higher index than its parents, so its numbers are greater than theirs, as Kinesis promises.
//
// Layout of the 56 digits: "1", then 26 zeros, then shard·2^64 + position as 29 digits
// (2^96 < 10^29). To change it, keep accepting the old form: numbers live in consumers'
// checkpoints for as long as the data does.
const (
	seqDigits   = 56
	seqLowWidth = 29                         // digits of shard·2^64 + position
	pow19       = 10_000_000_000_000_000_000 // 10^19
)

// SeqNum is a decoded sequence number.
type SeqNum struct {
	Shard ShardID
	Pos   uint64
}

// Less reports whether a sorts before b.
func (a SeqNum) Less(b SeqNum) bool {
	return a.Shard < b.Shard || (a.Shard == b.Shard && a.Pos < b.Pos)
}

// String returns the 56-digit decimal form.
func (a SeqNum) String() string { return string(a.Append(make([]byte, 0, seqDigits))) }

// Append appends the 56-digit decimal form to dst without allocating beyond dst's growth.
//
// The 29 low digits are written two at a time from a table, in 32-bit pieces of at most
// eight digits, into a copy of the constant prefix: in about half the time of the
// digit-at-a-time loop over 64-bit values it replaced (BenchmarkSeqNumAppend); every
// PutRecords answer writes one per record.
func (a SeqNum) Append(dst []byte) []byte {
	// x = shard·2^64 + pos, split as q·10^19 + r; q < 2^96/10^19 < 10^10.
	q, r := bits.Div64(uint64(a.Shard), a.Pos, pow19)
	var b [seqDigits]byte
	copy(b[:], seqPrefix)
	// r is 3 + 8 + 8 digits at b[37:56], q is 2 + 8 digits at b[27:37].
	put8(b[48:56], uint32(r%1e8))
	r /= 1e8
	put8(b[40:48], uint32(r%1e8))
	r /= 1e8
	b[37] = byte('0' + r/100)
	put2(b[38:40], uint32(r%100))
	put8(b[29:37], uint32(q%1e8))
	put2(b[27:29], uint32(q/1e8))
	return append(dst, b[:]...)
}

// seqPrefix is the digits every sequence number starts with: "1" and 26 zeros.
const seqPrefix = "100000000000000000000000000"

// digitPairs holds "00" to "99".
const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// put2 writes v < 100 as two digits.
func put2(b []byte, v uint32) {
	_ = b[1]
	b[0], b[1] = digitPairs[2*v], digitPairs[2*v+1]
}

// put8 writes v < 10^8 as eight digits.
func put8(b []byte, v uint32) {
	_ = b[7]
	hi, lo := v/10000, v%10000
	put2(b[0:2], hi/100)
	put2(b[2:4], hi%100)
	put2(b[4:6], lo/100)
	put2(b[6:8], lo%100)
}

// ParseSeqNum decodes a sequence number. It accepts only the 56-digit form sluice issues;
// anything else, even a valid Kinesis-looking number, is an InvalidArgument error.
func ParseSeqNum(s string) (SeqNum, error) {
	if len(s) != seqDigits || s[0] != '1' {
		return SeqNum{}, badSeqNum(s)
	}
	for i := 1; i < seqDigits-seqLowWidth; i++ {
		if s[i] != '0' {
			return SeqNum{}, badSeqNum(s)
		}
	}
	low := s[seqDigits-seqLowWidth:]
	q, err1 := strconv.ParseUint(low[:seqLowWidth-19], 10, 64)
	r, err2 := strconv.ParseUint(low[seqLowWidth-19:], 10, 64)
	if err1 != nil || err2 != nil || low[0] == '+' || low[seqLowWidth-19] == '+' {
		return SeqNum{}, badSeqNum(s)
	}
	hi, lo := bits.Mul64(q, pow19)
	lo, carry := bits.Add64(lo, r, 0)
	hi += carry
	if hi > 1<<32-1 {
		return SeqNum{}, badSeqNum(s)
	}
	return SeqNum{Shard: ShardID(hi), Pos: lo}, nil
}

func badSeqNum(s string) error {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return errorf(KindInvalidArgument, "sequence number %q was not issued by this server", s)
}

// ShardID is a shard's index within its stream (shardmap.ShardID): the engine's shard
// identifier. Its Kinesis text form exists only at the protocol edges.
type ShardID = shardmap.ShardID
