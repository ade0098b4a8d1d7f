package load

import (
	"slices"
	"testing"

	"github.com/sluice-streams/sluice/client"
)

func TestCompareSorted(t *testing.T) {
	tests := []struct {
		name        string
		want, got   []uint64
		v           Verdict
		first, last uint64
	}{
		{"equal", []uint64{1, 2, 3}, []uint64{1, 2, 3}, Verdict{}, 0, 0},
		{"nothing read", []uint64{1, 2, 3}, nil, Verdict{Missing: 3}, 1, 3},
		{"one missing", []uint64{1, 2, 3}, []uint64{1, 3}, Verdict{Missing: 1}, 2, 2},
		{"duplicates", []uint64{1, 2, 3}, []uint64{1, 1, 2, 3, 3, 3}, Verdict{Duplicated: 3}, 0, 0},
		{"unexpected before, between, after", []uint64{5, 10}, []uint64{1, 5, 7, 10, 12}, Verdict{Unexpected: 3}, 0, 0},
		{"all at once", []uint64{2, 4, 6}, []uint64{1, 2, 2, 6, 9}, Verdict{Missing: 1, Duplicated: 1, Unexpected: 2}, 4, 4},
		{"acknowledged twice, read once", []uint64{4, 4}, []uint64{4}, Verdict{Missing: 1}, 4, 4},
		{"nothing acknowledged", nil, []uint64{1, 2}, Verdict{Unexpected: 2}, 0, 0},
		{"missing at both ends", []uint64{3, 4, 5, 6, 7}, []uint64{5, 6}, Verdict{Missing: 3}, 3, 7},
	}
	for _, tt := range tests {
		if v, first, last := compareSorted(tt.want, tt.got); v != tt.v || first != tt.first || last != tt.last {
			t.Errorf("%s: %+v, missing %d to %d; want %+v, %d to %d", tt.name, v, first, last, tt.v, tt.first, tt.last)
		}
	}
}

func TestVerify(t *testing.T) {
	a := newAcked([][]recID{
		{{0, 3}, {1, 1}, {0, 1}, {2, 1}},
		{{0, 2}, {1, 2}, {2, 2}},
	})
	if a.count() != 7 {
		t.Fatalf("count %d, want 7", a.count())
	}
	seen := map[uint32][]uint64{
		0: {3, 1, 2, 2}, // out of order (hashed positions): sorted in a copy
		1: {1},
		7: {1, 2}, // a shard nothing was acknowledged on
	}
	v, missing := a.verify(seen)
	if want := (Verdict{Missing: 3, Duplicated: 1, Unexpected: 2}); v != want {
		t.Errorf("verify: %+v, want %+v", v, want)
	}
	want := []ShardMissing{
		{Shard: 1, Missing: 1, Acknowledged: 2, Read: 1, First: 2, Last: 2},
		{Shard: 2, Missing: 2, Acknowledged: 2, Read: 0, First: 1, Last: 2},
	}
	if !slices.Equal(missing, want) {
		t.Errorf("missing %+v, want %+v", missing, want)
	}
	if seen[0][0] != 3 {
		t.Error("verify sorted the caller's slice")
	}
}

// TestPositionOf checks the decoding of sluice sequence numbers against the client's
// encoding, and that other forms are hashed consistently.
func TestPositionOf(t *testing.T) {
	for _, s := range []client.SeqNum{
		{Shard: 0, Position: 0}, {Shard: 0, Position: 1}, {Shard: 7, Position: 42},
		{Shard: 1<<32 - 1, Position: 1<<64 - 1}, {Shard: 3, Position: 1 << 40},
	} {
		str := s.String()
		shard, pos, ok := parseSluiceSeq([]byte(str))
		if !ok || shard != s.Shard || pos != s.Position {
			t.Errorf("parseSluiceSeq(%s) = %d, %d, %v; want %d, %d", str, shard, pos, ok, s.Shard, s.Position)
		}
		if got := positionOf(s.Shard, []byte(str)); got != s.Position {
			t.Errorf("positionOf(%d, %s) = %d, want %d", s.Shard, str, got, s.Position)
		}
	}
	// Another server's form (too long, other leading digits, another shard): hashed, the
	// same way every time.
	for _, str := range []string{
		"49590338271490256608559692538361571095921575989136588898",
		"100000000000000000000000000000000000000000000000000000042",
		"12",
		"1000000000000000000000000000x000000000000000000000000042",
	} {
		a, b := positionOf(1, []byte(str)), positionOf(1, []byte(str))
		if a != b {
			t.Errorf("positionOf(%s) differs between calls", str)
		}
		if _, _, ok := parseSluiceSeq([]byte(str)); ok {
			t.Errorf("parseSluiceSeq(%s) accepted it", str)
		}
	}
	seven := client.SeqNum{Shard: 7, Position: 42}.String()
	if positionOf(8, []byte(seven)) == 42 {
		t.Error("a sequence number of shard 7 read from shard 8 kept its position")
	}
}

func TestShardOf(t *testing.T) {
	tests := []struct {
		in   string
		want uint32
	}{
		{"shardId-000000000000", 0},
		{"shardId-000000000007", 7},
		{"shardId-004294967295", 1<<32 - 1},
	}
	for _, tt := range tests {
		if got := shardOf([]byte(tt.in)); got != tt.want {
			t.Errorf("shardOf(%s) = %d, want %d", tt.in, got, tt.want)
		}
	}
	for _, in := range []string{"shardId-004294967296", "shardId-", "shard-1", "shardId-00000000000x"} {
		if a, b := shardOf([]byte(in)), shardOf([]byte(in)); a != b {
			t.Errorf("shardOf(%s) differs between calls", in)
		}
	}
}

func TestJudge(t *testing.T) {
	r := &Report{Put: PutReport{Acknowledged: 10}, Groups: []GroupReport{
		{Name: "1", Complete: true},
		{Name: "2", Verdict: Verdict{Missing: 2, Duplicated: 1}},
		{Name: "3", Error: "boom", Verdict: Verdict{Missing: 10}, MissingShards: []ShardMissing{
			{Shard: 0, Missing: 1, Acknowledged: 1, First: 7, Last: 7}, {Shard: 1, Missing: 2, Acknowledged: 3, Read: 1, First: 1, Last: 3},
			{Shard: 2, Missing: 1, Acknowledged: 1, First: 1, Last: 1}, {Shard: 3, Missing: 3, Acknowledged: 3, First: 1, Last: 3},
			{Shard: 4, Missing: 3, Acknowledged: 3, First: 1, Last: 3},
		}},
	}}
	r.judge()
	want := []string{
		"group 2: 2 of 10 acknowledged records missing",
		"group 2: 1 duplicate reads of acknowledged records",
		"group 3 failed: boom",
		"group 3: 10 of 10 acknowledged records missing; shard 0: 1 of 1 (positions 7 to 7), 0 read; " +
			"shard 1: 2 of 3 (positions 1 to 3), 1 read; shard 2: 1 of 1 (positions 1 to 1), 0 read; and 2 more shards",
	}
	if len(r.Problems) != len(want) {
		t.Fatalf("problems %q, want %q", r.Problems, want)
	}
	for i := range want {
		if r.Problems[i] != want[i] {
			t.Errorf("problem %d: %q, want %q", i, r.Problems[i], want[i])
		}
	}
	empty := &Report{}
	empty.judge()
	if empty.Passed() {
		t.Error("a run with nothing acknowledged passed")
	}
}
