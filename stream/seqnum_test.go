package stream

import (
	"errors"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

// bigSeq computes the documented formula with math/big, independently of Append.
func bigSeq(a SeqNum) string {
	x := new(big.Int).Exp(big.NewInt(10), big.NewInt(55), nil)
	v := new(big.Int).Lsh(new(big.Int).SetUint64(uint64(a.Shard)), 64)
	v.Add(v, new(big.Int).SetUint64(a.Pos))
	return x.Add(x, v).String()
}

func TestSeqNumRoundTrip(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	cases := []SeqNum{{0, 0}, {0, 1}, {1, 0}, {0, 1<<64 - 1}, {1<<32 - 1, 1<<64 - 1}, {7, 123456789}}
	for range 2000 {
		cases = append(cases, SeqNum{Shard: ShardID(r.Uint32() >> r.UintN(32)), Pos: r.Uint64() >> r.UintN(64)})
	}
	for _, c := range cases {
		s := c.String()
		if want := bigSeq(c); s != want {
			t.Fatalf("%+v: %s, want %s", c, s, want)
		}
		if len(s) != 56 {
			t.Fatalf("%+v: %d digits", c, len(s))
		}
		got, err := ParseSeqNum(s)
		if err != nil || got != c {
			t.Fatalf("ParseSeqNum(%s) = %+v, %v; want %+v", s, got, err, c)
		}
	}
}

func TestSeqNumOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	for range 5000 {
		a := SeqNum{Shard: ShardID(r.Uint32N(4)), Pos: r.Uint64N(1 << 40)}
		b := SeqNum{Shard: ShardID(r.Uint32N(4)), Pos: r.Uint64N(1 << 40)}
		as, bs := a.String(), b.String()
		ai, _ := new(big.Int).SetString(as, 10)
		bi, _ := new(big.Int).SetString(bs, 10)
		if a.Less(b) != (ai.Cmp(bi) < 0) || a.Less(b) != (as < bs) {
			t.Fatalf("order of %+v and %+v disagrees between Less, the integers and the strings", a, b)
		}
	}
	// A child shard (higher index) sorts after every number of its parents.
	parent := SeqNum{Shard: 3, Pos: 1<<64 - 1}
	child := SeqNum{Shard: 4, Pos: 0}
	if !parent.Less(child) || parent.String() >= child.String() {
		t.Fatal("child shard numbers do not exceed the parent's")
	}
}

func TestParseSeqNumRejects(t *testing.T) {
	good := SeqNum{Shard: 2, Pos: 99}.String()
	for _, s := range []string{
		"", "0", "1", "49590338271490256608559692538361571095921575989136588898",
		good[:55], good + "0", "2" + good[1:], strings.Replace(good, "0", "1", 1),
		good[:40] + "+" + good[41:], good[:50] + "x" + good[51:],
		"1" + strings.Repeat("0", 26) + strings.Repeat("9", 29), // shard ≥ 2^32
	} {
		if _, err := ParseSeqNum(s); !errors.Is(err, ErrInvalidArgument) || KindOf(err) != KindInvalidArgument {
			t.Fatalf("ParseSeqNum(%q): %v, want an InvalidArgumentException", s, err)
		}
	}
}

func BenchmarkSeqNumAppend(b *testing.B) {
	buf := make([]byte, 0, 64)
	a := SeqNum{Shard: 12, Pos: 1 << 40}
	b.ReportAllocs()
	b.SetBytes(seqDigits)
	for b.Loop() {
		buf = a.Append(buf[:0])
	}
}

func BenchmarkParseSeqNum(b *testing.B) {
	s := SeqNum{Shard: 12, Pos: 1 << 40}.String()
	b.ReportAllocs()
	b.SetBytes(seqDigits)
	for b.Loop() {
		if _, err := ParseSeqNum(s); err != nil {
			b.Fatal(err)
		}
	}
}
