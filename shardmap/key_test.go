package shardmap

import (
	"crypto/md5"
	"errors"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

// bigOf returns k as a big.Int: the reference the tests compare the 128-bit arithmetic with.
func bigOf(k Key) *big.Int {
	b := new(big.Int).SetUint64(k.Hi)
	b.Lsh(b, 64)
	return b.Or(b, new(big.Int).SetUint64(k.Lo))
}

// keyOfBig returns the Key of b, which must be in [0, 2^128).
func keyOfBig(t testing.TB, b *big.Int) Key {
	t.Helper()
	if b.Sign() < 0 || b.BitLen() > 128 {
		t.Fatalf("keyOfBig(%s): out of range", b)
	}
	lo := new(big.Int).And(b, new(big.Int).SetUint64(^uint64(0)))
	hi := new(big.Int).Rsh(b, 64)
	return Key{Hi: hi.Uint64(), Lo: lo.Uint64()}
}

var two128 = new(big.Int).Lsh(big.NewInt(1), 128)

func TestParseKey(t *testing.T) {
	const max = "340282366920938463463374607431768211455"
	for _, c := range []struct {
		in   string
		want Key
		ok   bool
	}{
		{"0", Key{}, true},
		{"1", Key{Lo: 1}, true},
		{"9", Key{Lo: 9}, true},
		{"10", Key{Lo: 10}, true},
		{"18446744073709551615", Key{Lo: ^uint64(0)}, true}, // 2^64−1
		{"18446744073709551616", Key{Hi: 1}, true},          // 2^64
		{"170141183460469231731687303715884105728", Key{Hi: 1 << 63}, true},
		{"340282366920938463463374607431768211454", Key{Hi: ^uint64(0), Lo: ^uint64(0) - 1}, true},
		{max, MaxKey, true},
		{"100000000000000000000000000000000000000", keyOfBigStr("100000000000000000000000000000000000000"), true}, // 10^38, 39 digits

		{"", Key{}, false},
		{"-0", Key{}, false},
		{"-1", Key{}, false},
		{"+1", Key{}, false},
		{" 1", Key{}, false},
		{"1 ", Key{}, false},
		{"1\n", Key{}, false},
		{"00", Key{}, false},
		{"01", Key{}, false},
		{"0" + max, Key{}, false},
		{"1a", Key{}, false},
		{"a", Key{}, false},
		{"0x10", Key{}, false},
		{"1e5", Key{}, false},
		{"1.0", Key{}, false},
		{"1_000", Key{}, false},
		{"١", Key{}, false}, // Arabic-Indic digit one
		{"１", Key{}, false}, // fullwidth digit one
		{"1\x00", Key{}, false},
		{"340282366920938463463374607431768211456", Key{}, false}, // 2^128
		{"340282366920938463463374607431768211465", Key{}, false},
		{"400000000000000000000000000000000000000", Key{}, false},
		{"999999999999999999999999999999999999999", Key{}, false},  // 39 nines
		{"1000000000000000000000000000000000000000", Key{}, false}, // 40 digits
		{strings.Repeat("9", 10_000), Key{}, false},
	} {
		got, err := ParseKey(c.in)
		if c.ok {
			if err != nil || got != c.want {
				t.Errorf("ParseKey(%q) = %v, %v; want %v", c.in, got, err, c.want)
			}
			if s := got.String(); s != c.in {
				t.Errorf("ParseKey(%q).String() = %q", c.in, s)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParseKey(%q) = %v, %v; want ErrInvalidKey", shortForLog(c.in), got, err)
		}
		if err != nil && len(err.Error()) > 200 {
			t.Errorf("ParseKey(%q): error of %d bytes", shortForLog(c.in), len(err.Error()))
		}
	}
}

func shortForLog(s string) string {
	if len(s) > 50 {
		return s[:50] + "…"
	}
	return s
}

// keyOfBigStr is keyOfBig of a decimal literal, for tables built outside a test.
func keyOfBigStr(s string) Key {
	b, _ := new(big.Int).SetString(s, 10)
	lo := new(big.Int).And(b, new(big.Int).SetUint64(^uint64(0)))
	return Key{Hi: new(big.Int).Rsh(b, 64).Uint64(), Lo: lo.Uint64()}
}

// TestKeyDecimalRandom checks String and ParseKey against math/big for random keys of every
// size and around the powers of ten and two.
func TestKeyDecimalRandom(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	var keys []Key
	for range 5000 {
		k := Key{Hi: r.Uint64(), Lo: r.Uint64()}
		switch r.IntN(4) { // vary the magnitude
		case 0:
			k.Hi = 0
		case 1:
			k.Hi >>= r.UintN(64)
		case 2:
			k.Hi, k.Lo = 0, k.Lo>>r.UintN(64)
		}
		keys = append(keys, k)
	}
	p := big.NewInt(1)
	for p.Cmp(two128) < 0 {
		k := keyOfBig(t, p)
		keys = append(keys, k, k.Prev(), k.Next())
		p.Mul(p, big.NewInt(10))
	}
	for i := range 128 {
		k := keyOfBig(t, new(big.Int).Lsh(big.NewInt(1), uint(i)))
		keys = append(keys, k, k.Prev(), k.Next())
	}
	for _, k := range keys {
		want := bigOf(k).String()
		if got := k.String(); got != want {
			t.Fatalf("%#v.String() = %s, want %s", k, got, want)
		}
		if got, err := ParseKey(want); err != nil || got != k {
			t.Fatalf("ParseKey(%s) = %#v, %v; want %#v", want, got, err, k)
		}
	}
}

func TestKeyCompare(t *testing.T) {
	keys := []Key{{}, {Lo: 1}, {Lo: ^uint64(0)}, {Hi: 1}, {Hi: 1, Lo: 1}, {Hi: 1 << 63}, MaxKey.Prev(), MaxKey}
	for i, a := range keys {
		for j, b := range keys {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("%v.Compare(%v) = %d, want %d", a, b, got, want)
			}
			if got := a.Less(b); got != (i < j) {
				t.Errorf("%v.Less(%v) = %v", a, b, got)
			}
			if want := bigOf(a).Cmp(bigOf(b)); a.Compare(b) != want {
				t.Errorf("%v.Compare(%v) disagrees with math/big", a, b)
			}
		}
	}
}

func TestKeyNextPrev(t *testing.T) {
	for _, c := range []struct{ k, next Key }{
		{Key{}, Key{Lo: 1}},
		{Key{Lo: 41}, Key{Lo: 42}},
		{Key{Lo: ^uint64(0)}, Key{Hi: 1}},
		{Key{Hi: 7, Lo: ^uint64(0)}, Key{Hi: 8}},
		{MaxKey.Prev(), MaxKey},
		{MaxKey, Key{}}, // wraps
	} {
		if got := c.k.Next(); got != c.next {
			t.Errorf("%#v.Next() = %#v, want %#v", c.k, got, c.next)
		}
		if got := c.next.Prev(); got != c.k {
			t.Errorf("%#v.Prev() = %#v, want %#v", c.next, got, c.k)
		}
	}
}

func TestKeyOf(t *testing.T) {
	// MD5 digests from RFC 1321's test suite and of Kinesis-style partition keys, and the
	// hash keys Kinesis derives from them (the digest as a big-endian integer), computed with
	// math/big.
	for _, c := range []struct{ in, md5hex string }{
		{"", "d41d8cd98f00b204e9800998ecf8427e"},
		{"a", "0cc175b9c0f1b6a831c399e269772661"},
		{"abc", "900150983cd24fb0d6963f7d28e17f72"},
		{"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
		{"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
		{"12345678901234567890123456789012345678901234567890123456789012345678901234567890", "57edf4a22be3c955ac49da2e2107b67a"},
	} {
		want, ok := new(big.Int).SetString(c.md5hex, 16)
		if !ok {
			t.Fatal(c.md5hex)
		}
		if got := KeyOf([]byte(c.in)); bigOf(got).Cmp(want) != 0 {
			t.Errorf("KeyOf(%q) = %s, want %s", c.in, got, want)
		}
		if got := KeyOfString(c.in); bigOf(got).Cmp(want) != 0 {
			t.Errorf("KeyOfString(%q) = %s, want %s", c.in, got, want)
		}
	}
	// Random keys of every length up to past the stack buffer of KeyOfString.
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	for _, n := range []int{0, 1, 15, 16, 17, 63, 64, 65, 255, 256, 1023, 1024, 1025, 5000} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		sum := md5.Sum(b)
		want := new(big.Int).SetBytes(sum[:])
		if got := KeyOf(b); bigOf(got).Cmp(want) != 0 {
			t.Errorf("KeyOf(%d bytes) = %s, want %s", n, got, want)
		}
		if got := KeyOfString(string(b)); bigOf(got).Cmp(want) != 0 {
			t.Errorf("KeyOfString(%d bytes) = %s, want %s", n, got, want)
		}
	}
}

func TestKeyOfNoAlloc(t *testing.T) {
	pk := []byte("user-42/session-7")
	spk := strings.Repeat("x", 1024)
	var sink Key
	if n := testing.AllocsPerRun(100, func() { sink = KeyOf(pk) }); n != 0 {
		t.Errorf("KeyOf: %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() { sink = KeyOfString(spk) }); n != 0 {
		t.Errorf("KeyOfString(1024 bytes): %v allocations", n)
	}
	var buf [64]byte
	if n := testing.AllocsPerRun(100, func() { _ = MaxKey.AppendDecimal(buf[:0]) }); n != 0 {
		t.Errorf("AppendDecimal: %v allocations", n)
	}
	_ = sink
}

func TestRangeContains(t *testing.T) {
	r := Range{Start: Key{Lo: 10}, End: Key{Hi: 1, Lo: 5}}
	for _, c := range []struct {
		k    Key
		want bool
	}{
		{Key{}, false}, {Key{Lo: 9}, false}, {Key{Lo: 10}, true}, {Key{Lo: ^uint64(0)}, true},
		{Key{Hi: 1}, true}, {Key{Hi: 1, Lo: 5}, true}, {Key{Hi: 1, Lo: 6}, false}, {MaxKey, false},
	} {
		if got := r.Contains(c.k); got != c.want {
			t.Errorf("Contains(%v) = %v", c.k, got)
		}
	}
	if !(Range{End: MaxKey}).Contains(MaxKey) || !(Range{End: MaxKey}).Contains(Key{}) {
		t.Error("the full range does not contain its ends")
	}
}

func TestShardName(t *testing.T) {
	for _, c := range []struct {
		id   ShardID
		want string
	}{
		{0, "shardId-000000000000"},
		{7, "shardId-000000000007"},
		{123456, "shardId-000000123456"},
		{MaxShardID, "shardId-002147483647"},
		{NoParent, "shardId-004294967295"},
	} {
		if got := c.id.String(); got != c.want {
			t.Errorf("ShardID(%d).String() = %q, want %q", c.id, got, c.want)
		}
		if got := string(c.id.Append([]byte("x"))); got != "x"+c.want {
			t.Errorf("ShardID(%d).Append = %q", c.id, got)
		}
	}
}

func TestParseShardID(t *testing.T) {
	for _, c := range []struct {
		in   string
		want ShardID
		ok   bool
	}{
		{"shardId-000000000000", 0, true},
		{"shardId-000000000007", 7, true},
		{"shardId-002147483647", MaxShardID, true},
		{"shardId-7", 7, true},                 // AWS: "shardId-5" names shardId-000000000005
		{"shard-0", 0, true},                   // any prefix
		{"Xy_z.9-12", 12, true},                // prefix of ShardId characters
		{"a-00002147483647", MaxShardID, true}, // leading zeros, short prefix
		{"-00002147483647", MaxShardID, true},  // no prefix
		{"2147483647", MaxShardID, true},       // bare index
		{"0", 0, true},
		{"000000000000", 0, true},
		{"shardId-" + strings.Repeat("0", 119) + "1", 1, true}, // 128 bytes

		{"", 0, false},
		{"shardId-", 0, false},
		{"shardId", 0, false},
		{"-", 0, false},
		{"2147483648", 0, false},           // AWS: too big
		{"shardId-002147483648", 0, false}, // AWS: too big
		{"shardId-99999999999999999999999", 0, false},
		{"ABKLFD8", 0, false}, // AWS: string shard id
		{"2.14E4", 0, false},  // AWS: exponent
		{"shardId-1-2", 0, false},
		{"shardId--1", 0, false},
		{"shardId-+1", 0, false},
		{"shardId- 1", 0, false},
		{"shard Id-1", 0, false},
		{"shard/Id-1", 0, false},
		{"shardId-0x1", 0, false},
		{"shardId-１", 0, false},
		{"shardId-" + strings.Repeat("0", 120) + "1", 0, false}, // 129 bytes
		{strings.Repeat("1", 100_000), 0, false},
	} {
		got, err := ParseShardID(c.in)
		if c.ok {
			if err != nil || got != c.want {
				t.Errorf("ParseShardID(%q) = %d, %v; want %d", c.in, got, err, c.want)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("ParseShardID(%q) = %d, %v; want ErrInvalidName", shortForLog(c.in), got, err)
		}
	}
	for _, id := range []ShardID{0, 1, 99, 1 << 20, MaxShardID} {
		if got, err := ParseShardID(id.String()); err != nil || got != id {
			t.Errorf("ParseShardID(ShardName(%d)) = %d, %v", id, got, err)
		}
	}
}
