package load

import (
	"cmp"
	"hash/fnv"
	"math/bits"
	"slices"
)

// recID names one record: the shard it was appended to and its position there. With sluice
// the position is the record's own (the Kinesis sequence number 10^55 + shard·2^64 +
// position decodes to it exactly). A sequence number of another form (another server's)
// is reduced to its 64-bit FNV-1a hash: two records of a shard then share an id with a
// probability of about n²/2^65 for n records, and positions no longer sort in read order.
type recID struct {
	shard uint32
	pos   uint64
}

// seqDigits is the length of a sluice sequence number in its Kinesis form: "1", 26 zeros,
// then shard·2^64 + position in 29 digits.
const (
	seqDigits = 56
	seqLow    = 29
)

// positionOf returns the position of the record whose Kinesis sequence number is seq, read
// from the shard shard.
func positionOf(shard uint32, seq []byte) uint64 {
	if s, pos, ok := parseSluiceSeq(seq); ok && s == shard {
		return pos
	}
	h := fnv.New64a()
	h.Write(seq)
	return h.Sum64()
}

// parseSluiceSeq decodes a sluice sequence number's Kinesis form, without allocating.
func parseSluiceSeq(seq []byte) (shard uint32, pos uint64, ok bool) {
	if len(seq) != seqDigits || seq[0] != '1' {
		return 0, 0, false
	}
	for _, c := range seq[1 : seqDigits-seqLow] {
		if c != '0' {
			return 0, 0, false
		}
	}
	var hi, lo uint64
	for _, c := range seq[seqDigits-seqLow:] {
		if c < '0' || c > '9' {
			return 0, 0, false
		}
		// (hi, lo) = (hi, lo)·10 + digit: 29 digits stay below 2^97, so hi cannot overflow.
		h1, l1 := bits.Mul64(lo, 10)
		var carry uint64
		lo, carry = bits.Add64(l1, uint64(c-'0'), 0)
		hi = hi*10 + h1 + carry
	}
	if hi > 1<<32-1 {
		return 0, 0, false
	}
	return uint32(hi), lo, true
}

// shardOf returns the index of a shard named as Kinesis names shards
// (shardId-000000000007 is 7), or the 32-bit FNV-1a hash of another name.
func shardOf(name []byte) uint32 {
	const prefix = "shardId-"
	if len(name) > len(prefix) && len(name) <= len(prefix)+12 && string(name[:len(prefix)]) == prefix {
		var v uint64
		ok := true
		for _, c := range name[len(prefix):] {
			if c < '0' || c > '9' {
				ok = false
				break
			}
			v = v*10 + uint64(c-'0')
		}
		if ok && v <= 1<<32-1 {
			return uint32(v)
		}
	}
	h := fnv.New32a()
	h.Write(name)
	return h.Sum32()
}

// Verdict compares what a consumer group read with what the producers had acknowledged.
type Verdict struct {
	// Missing counts acknowledged records the group did not read.
	Missing uint64 `json:"missing"`
	// Duplicated counts the extra reads of acknowledged records read more than once.
	Duplicated uint64 `json:"duplicated"`
	// Unexpected counts reads of records no producer of the run acknowledged: records of an
	// earlier run still in the stream, or a put the server appended but whose answer was
	// lost (a network failure), which the producer then sent again. Not an error.
	Unexpected uint64 `json:"unexpected"`
}

// acked is every acknowledged record of a run by shard, each shard's positions sorted.
type acked map[uint32][]uint64

// newAcked sorts the ids of every producer's log by shard and position.
func newAcked(logs [][]recID) acked {
	a := acked{}
	for _, l := range logs {
		for _, id := range l {
			a[id.shard] = append(a[id.shard], id.pos)
		}
	}
	for _, ps := range a {
		slices.Sort(ps)
	}
	return a
}

// count returns the number of acknowledged records.
func (a acked) count() uint64 {
	n := 0
	for _, ps := range a {
		n += len(ps)
	}
	return uint64(n)
}

// ShardMissing tells which acknowledged records of one shard a consumer group did not read.
type ShardMissing struct {
	Shard        uint32 `json:"shard"`
	Missing      uint64 `json:"missing"`
	Acknowledged uint64 `json:"acknowledged"` // on the shard
	Read         uint64 `json:"read"`         // reads of the shard, unexpected ones included
	// First and Last are the first and the last position missing.
	First uint64 `json:"first"`
	Last  uint64 `json:"last"`
}

// verify compares the positions a group read, by shard, with a, and lists the shards with
// records missing by shard number. seen is not modified: a shard's positions are sorted in
// a copy when they are not in order already (they are whenever positions are sluice's,
// since each shard is read in order).
func (a acked) verify(seen map[uint32][]uint64) (Verdict, []ShardMissing) {
	var v Verdict
	var missing []ShardMissing
	for shard, want := range a {
		got := seen[shard]
		if !slices.IsSorted(got) {
			got = slices.Clone(got)
			slices.Sort(got)
		}
		w, first, last := compareSorted(want, got)
		v.add(w)
		if w.Missing > 0 {
			missing = append(missing, ShardMissing{Shard: shard, Missing: w.Missing, Acknowledged: uint64(len(want)),
				Read: uint64(len(got)), First: first, Last: last})
		}
	}
	for shard, got := range seen {
		if _, ok := a[shard]; !ok {
			v.Unexpected += uint64(len(got))
		}
	}
	slices.SortFunc(missing, func(x, y ShardMissing) int { return cmp.Compare(x.Shard, y.Shard) })
	return v, missing
}

func (v *Verdict) add(w Verdict) {
	v.Missing += w.Missing
	v.Duplicated += w.Duplicated
	v.Unexpected += w.Unexpected
}

// compareSorted merges the sorted positions acknowledged (want) and read (got), and returns
// the first and the last position missing when one is. A position acknowledged twice
// (which a correct server never does) is expected twice.
func compareSorted(want, got []uint64) (v Verdict, first, last uint64) {
	i, j := 0, 0
	for i < len(want) {
		w := want[i]
		nw := 0
		for i < len(want) && want[i] == w {
			i, nw = i+1, nw+1
		}
		for j < len(got) && got[j] < w {
			j, v.Unexpected = j+1, v.Unexpected+1
		}
		ng := 0
		for j < len(got) && got[j] == w {
			j, ng = j+1, ng+1
		}
		if ng < nw {
			if v.Missing == 0 {
				first = w
			}
			v.Missing += uint64(nw - ng)
			last = w
		} else {
			v.Duplicated += uint64(ng - nw)
		}
	}
	v.Unexpected += uint64(len(got) - j)
	return v, first, last
}
