package client

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/sluice-streams/sluice/kpl"
	"github.com/sluice-streams/sluice/shardmap"
)

// aggregateOf builds an aggregated record of (key, explicit hash key, data) triples.
func aggregateOf(recs ...[3]string) []byte {
	var b kpl.Builder
	for _, r := range recs {
		b.Add(r[0], r[1], []byte(r[2]))
	}
	return b.AppendTo(nil)
}

func TestDeaggregator(t *testing.T) {
	lower := shardmap.Range{Start: shardmap.Key{}, End: shardmap.Key{Hi: 1 << 63}.Prev()}
	// Keys of each half of the hash-key space.
	var low, high []string
	for i := 0; len(low) < 2 || len(high) < 2; i++ {
		k := fmt.Sprint("key", i)
		if lower.Contains(shardmap.KeyOfString(k)) {
			low = append(low, k)
		} else {
			high = append(high, k)
		}
	}
	inRange := aggregateOf([3]string{low[0], "", "a"}, [3]string{low[1], "", "b"})
	mixed := aggregateOf([3]string{low[0], "", "c"}, [3]string{high[0], "", "d"})
	ehkOut := aggregateOf([3]string{low[0], "", "e"}, [3]string{low[1], "170141183460469231731687303715884105728", "f"})
	badEHK := aggregateOf([3]string{low[0], "", "g"}, [3]string{low[1], "12x", "h"})
	badDigest := bytes.Clone(inRange)
	badDigest[len(badDigest)-1] ^= 1
	in := []Record{
		{Key: []byte("p"), Data: []byte("plain"), Position: 1},
		{Key: []byte(low[0]), Data: inRange, Position: 2},
		{Key: []byte(low[0]), Data: mixed, Position: 3},
		{Key: []byte(low[0]), Data: badDigest, Position: 4},
		{Key: []byte(low[0]), Data: ehkOut, Position: 5},
		{Key: []byte(low[0]), Data: badEHK, Position: 6},
	}
	type user struct {
		pos, sub uint64
		agg      bool
		key      string
		data     []byte
	}
	got := func(rs []Record) []user {
		var out []user
		for _, r := range rs {
			out = append(out, user{r.Position, r.SubSeq, r.Aggregated, string(r.Key), r.Data})
		}
		return out
	}
	var d Deaggregator
	cases := []struct {
		name string
		rng  shardmap.Range
		want []user
	}{
		{"lower half", lower, []user{
			{1, 0, false, "p", []byte("plain")},
			{2, 0, true, low[0], []byte("a")}, {2, 1, true, low[1], []byte("b")},
			// 3: high[0] is outside the range: the whole aggregate is dropped
			{4, 0, false, low[0], badDigest},
			// 5: the explicit hash key 2^127 is outside the range
			{6, 0, false, low[0], badEHK},
		}},
		{"all keys", AllKeys, []user{
			{1, 0, false, "p", []byte("plain")},
			{2, 0, true, low[0], []byte("a")}, {2, 1, true, low[1], []byte("b")},
			{3, 0, true, low[0], []byte("c")}, {3, 1, true, high[0], []byte("d")},
			{4, 0, false, low[0], badDigest},
			{5, 0, true, low[0], []byte("e")}, {5, 1, true, low[1], []byte("f")},
			{6, 0, false, low[0], badEHK},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := got(d.Records(in, c.rng))
			if fmt.Sprintf("%+v", out) != fmt.Sprintf("%+v", c.want) {
				t.Fatalf("got\n%+v\nwant\n%+v", out, c.want)
			}
		})
	}
	plain := in[:1]
	if out := d.Records(plain, lower); &out[0] != &plain[0] {
		t.Fatal("records without aggregates were copied")
	}
}
