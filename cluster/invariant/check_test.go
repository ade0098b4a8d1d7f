package invariant

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/internal/crc"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// entry is one position of a hand-made replica: a record (key, data) or, when empty, an
// entry without a record (a gap), written in term.
type entry struct {
	pos, term uint64
	key, data string
	empty     bool
}

// writeReplica writes a replica of shard 0 of stream "s" under a node's data directory as
// package replica would: the records by segment.AppendAt in replicated mode, raft.terms with
// a record at each term start and each gap, raft.state with commit.
func writeReplica(t *testing.T, dataDir string, shard shardmap.ShardID, ents []entry, commit uint64) {
	t.Helper()
	dir := filepath.Join(dataDir, "streams", "s@7", fmt.Sprintf("shard-%d", shard))
	l, err := segment.Open(dir, segment.Options{Replicated: true, SegmentSize: segment.MinSegmentSize})
	if err != nil {
		t.Fatal(err)
	}
	var terms []byte
	count := 0
	var prevTerm uint64
	for _, e := range ents {
		if e.empty || e.term != prevTerm {
			kind := byte(1)
			if e.empty {
				kind = 2
			}
			terms = binary.LittleEndian.AppendUint64(terms, e.pos)
			terms = binary.LittleEndian.AppendUint64(terms, e.term)
			terms = append(terms, kind, 0, 0, 0, 0, 0, 0, 0)
			count++
			prevTerm = e.term
		}
		if e.empty {
			continue
		}
		// A fixed arrival time, as the proposer's frame carries one time to every replica.
		if err := l.AppendAt([]segment.Record{{Seq: e.pos, Time: int64(e.pos) * 1000, Key: []byte(e.key), Data: []byte(e.data)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	writeSideFile(t, filepath.Join(dir, "raft.terms"), "SLRTERMS", count, terms)
	var st []byte
	st = binary.LittleEndian.AppendUint64(st, prevTerm)
	st = binary.LittleEndian.AppendUint64(st, 1)
	st = binary.LittleEndian.AppendUint64(st, commit)
	writeSideFile(t, filepath.Join(dir, "raft.state"), "SLRSTATE", 1, st)
}

// writeSideFile writes a side file in the layout of docs/FORMAT.md ("Replicated mode and the
// Raft side files"), encoded here from the document rather than by package replica.
func writeSideFile(t *testing.T, path, magic string, count int, records []byte) {
	t.Helper()
	b := append([]byte(magic), 1, 0, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(count))
	b = append(b, records...)
	b = binary.LittleEndian.AppendUint32(b, crc.Checksum(b))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// history is the agreed log of the tests: two terms, the second leader's empty entry a gap.
func history() []entry {
	return []entry{
		{pos: 1, term: 1, key: "a", data: "rec-1"},
		{pos: 2, term: 1, key: "b", data: "rec-2"},
		{pos: 3, term: 1, key: "c", data: "rec-3"},
		{pos: 4, term: 2, empty: true},
		{pos: 5, term: 2, key: "d", data: "rec-5"},
		{pos: 6, term: 2, key: "e", data: "rec-6"},
	}
}

func ackedOf(ents []entry) []Acked {
	var out []Acked
	for _, e := range ents {
		if !e.empty {
			out = append(out, Acked{Seq: stream.SeqNum{Shard: 0, Pos: e.pos}, Key: []byte(e.key), Data: []byte(e.data)})
		}
	}
	return out
}

func whole() []Range { return []Range{{Shard: 0, Low: shardmap.Key{}, High: shardmap.MaxKey}} }

// TestCheck builds three replicas by hand, each case spoiling them in one way, and checks that
// the checker finds exactly that (and, for the first case, nothing).
func TestCheck(t *testing.T) {
	half := shardmap.Key{Hi: 1 << 63}
	cases := []struct {
		name string
		// nodes returns each node's entries and commit; nil entries: no replica on that node.
		nodes func() ([3][]entry, [3]uint64)
		acked func([]Acked) []Acked
		open  []Range
		want  string // a substring of the one expected problem; empty: none
	}{
		{name: "agree", want: ""},
		{
			name: "a frame differs",
			nodes: func() ([3][]entry, [3]uint64) {
				h := history()
				bad := history()
				bad[4].data = "rec-X"
				return [3][]entry{h, h, bad}, [3]uint64{6, 6, 6}
			},
			want: "position 5: the frames of nodes 1 and 3 differ",
		},
		{
			name: "a replica lags behind an acknowledged record",
			nodes: func() ([3][]entry, [3]uint64) {
				h := history()
				return [3][]entry{h, h, h[:5]}, [3]uint64{6, 6, 5}
			},
			want: "node 3 holds positions up to 5, the committed prefix is 6",
		},
		{
			name: "a gap on one replica is a record on another",
			nodes: func() ([3][]entry, [3]uint64) {
				h := history()
				bad := history()
				bad[3] = entry{pos: 4, term: 2, key: "z", data: "rec-4"}
				return [3][]entry{h, bad, h}, [3]uint64{6, 6, 6}
			},
			want: "position 4: node 2 has a record, node 1 none",
		},
		{
			name: "the same records under another term",
			nodes: func() ([3][]entry, [3]uint64) {
				h := history()
				bad := history()
				for i := range bad[3:] {
					bad[3+i].term = 3
				}
				return [3][]entry{h, h, bad}, [3]uint64{6, 6, 6}
			},
			want: "position 4: term 2 on node 1, 3 on node 3",
		},
		{
			name: "an acknowledged record was lost by every replica",
			nodes: func() ([3][]entry, [3]uint64) {
				h := history()
				h[5] = entry{pos: 6, term: 2, key: "f", data: "other"}
				return [3][]entry{h, h, h}, [3]uint64{6, 6, 6}
			},
			want: `(key "e"): position 6 on node 1 holds key "f"`,
		},
		{
			name: "an acknowledged record stored twice",
			nodes: func() ([3][]entry, [3]uint64) {
				h := append(history(), entry{pos: 7, term: 2, key: "a", data: "rec-1"})
				return [3][]entry{h, h, h}, [3]uint64{7, 7, 7}
			},
			want: `(key "a") is stored 2 times, at [1 7]`,
		},
		{
			name:  "a sequence number acknowledged twice",
			acked: func(a []Acked) []Acked { return append(a, Acked{Seq: a[0].Seq, Key: []byte("q"), Data: []byte("q")}) },
			want:  "acknowledged twice",
		},
		{
			name: "an acknowledged shard with no replica",
			acked: func(a []Acked) []Acked {
				return append(a, Acked{Seq: stream.SeqNum{Shard: 3, Pos: 1}, Key: []byte("q"), Data: []byte("q")})
			},
			want: "shardId-000000000003: 1 acknowledged records, no replica on any node",
		},
		{
			name: "open shards overlap",
			open: []Range{{Shard: 0, High: half}, {Shard: 1, Low: half, High: shardmap.MaxKey}},
			want: "an overlap before shardId-000000000001",
		},
		{
			name: "open shards leave a gap",
			open: []Range{{Shard: 0, High: half}, {Shard: 1, Low: half.Next().Next(), High: shardmap.MaxKey}},
			want: "a gap before shardId-000000000001",
		},
		{
			name: "open shards stop short",
			open: []Range{{Shard: 0, High: half}},
			want: "are in no open shard",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ents, commits := [3][]entry{history(), history(), history()}, [3]uint64{6, 6, 6}
			if c.nodes != nil {
				ents, commits = c.nodes()
			}
			var nodes []string
			for i := range 3 {
				d := t.TempDir()
				writeReplica(t, d, 0, ents[i], commits[i])
				nodes = append(nodes, d)
			}
			acked := ackedOf(history())
			if c.acked != nil {
				acked = c.acked(acked)
			}
			open := whole()
			if c.open != nil {
				open = c.open
			}
			rep, err := Check(Input{Stream: "s", Nodes: nodes, Acked: acked, Open: open})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Shards != 1 || rep.Replicas != 3 {
				t.Fatalf("checked %d shards, %d replicas; want 1, 3", rep.Shards, rep.Replicas)
			}
			switch {
			case c.want == "" && len(rep.Problems) > 0:
				t.Fatalf("problems in agreeing logs: %q", rep.Problems)
			case c.want == "":
				if rep.Frames != 2*5 || rep.Committed != 6 {
					t.Fatalf("compared %d frames up to %d, want 10 up to 6", rep.Frames, rep.Committed)
				}
			case len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], c.want):
				t.Fatalf("problems %q, want one containing %q", rep.Problems, c.want)
			}
		})
	}
}

// TestCheckDamage: a side file that does not decode, and a frame damaged before its segment's
// durable checkpoint, are errors, not silently skipped.
func TestCheckDamage(t *testing.T) {
	for _, name := range []string{"raft.state", "seg"} {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			writeReplica(t, d, 0, history(), 6)
			dir := filepath.Join(d, "streams", "s@7", "shard-0")
			path := filepath.Join(dir, name)
			if name == "seg" {
				m, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
				if len(m) != 1 {
					t.Fatalf("segments %v", m)
				}
				path = m[0]
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			off := 20 // inside raft.state's records
			if name == "seg" {
				off = segment.DataOffset + 40 // inside the first frame's data
			}
			b[off] ^= 0xff
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err = Check(Input{Stream: "s", Nodes: []string{d}, Acked: ackedOf(history()), Open: whole()})
			if err == nil {
				t.Fatal("Check of a damaged replica: no error")
			}
			t.Log(err)
		})
	}
}

// TestCheckMembers: with Input.Members, a replica outside them may lag (a node the shard moved
// away from) but must agree up to its own commit; a member without files is a problem; and a
// record retried by its producer may be stored once per attempt, not more.
func TestCheckMembers(t *testing.T) {
	h := history()
	diverged := history()[:5]
	diverged[1].data = "rec-X"
	retried := append(history(), entry{pos: 7, term: 2, key: "a", data: "rec-1"})
	members := map[shardmap.ShardID][]int{0: {1, 2}}
	cases := []struct {
		name     string
		ents     [3][]entry // nil: no replica on that node
		commits  [3]uint64
		attempts int // of the record at position 1
		want     string
		retried  int
	}{
		{name: "a lagging non-member", ents: [3][]entry{h, h, h[:2]}, commits: [3]uint64{6, 6, 2}},
		{name: "a non-member that disagrees within its commit", ents: [3][]entry{h, h, diverged}, commits: [3]uint64{6, 6, 3},
			want: "position 2: the frames of nodes 1 and 3 differ"},
		{name: "a non-member's uncommitted tail is not compared", ents: [3][]entry{h, h, diverged}, commits: [3]uint64{6, 6, 1}},
		{name: "a member without files", ents: [3][]entry{h, nil, h}, commits: [3]uint64{6, 0, 6},
			want: "node 2 is a member and holds no replica"},
		{name: "stored twice in two attempts", ents: [3][]entry{retried, retried, retried}, commits: [3]uint64{7, 7, 7}, attempts: 2, retried: 1},
		{name: "stored twice in one attempt", ents: [3][]entry{retried, retried, retried}, commits: [3]uint64{7, 7, 7}, attempts: 1,
			want: `(key "a") is stored 2 times, at [1 7] (1 attempts)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var nodes []string
			for i := range 3 {
				d := t.TempDir()
				if c.ents[i] != nil {
					writeReplica(t, d, 0, c.ents[i], c.commits[i])
				}
				nodes = append(nodes, d)
			}
			acked := ackedOf(h)
			acked[0].Attempts = c.attempts
			rep, err := Check(Input{Stream: "s", Nodes: nodes, Acked: acked, Open: whole(), Members: members})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case c.want == "" && len(rep.Problems) > 0:
				t.Fatalf("problems: %q", rep.Problems)
			case c.want != "" && (len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], c.want)):
				t.Fatalf("problems %q, want one containing %q", rep.Problems, c.want)
			case rep.Retried != c.retried:
				t.Fatalf("retried %d, want %d", rep.Retried, c.retried)
			}
			if c.ents[2] != nil && rep.Others != 1 {
				t.Fatalf("others %d, want 1 (node 3)", rep.Others)
			}
		})
	}
}

// TestCheckEndings: no acknowledged record of a closed shard lies after its ending, and a
// shard that took records was closed by a seal: every member holds an entry without a record
// right after the ending.
func TestCheckEndings(t *testing.T) {
	h := history() // records at 1–3, a gap at 4 (the seal after ending 3), records at 5–6
	recordAfter := history()
	recordAfter[3] = entry{pos: 4, term: 2, key: "z", data: "rec-4"}
	empty := []entry{{pos: 1, term: 1, empty: true}}
	cases := []struct {
		name   string
		ents   [3][]entry // nil: history on every node
		acked  []entry
		ending uint64
		want   []string // substrings of the expected problems, in order, one each
	}{
		{name: "sealed after the ending", acked: h[:3], ending: 3},
		{name: "a shard without records closed at its tip", ents: [3][]entry{empty, empty, empty}, ending: 1},
		{name: "an acknowledged record after the ending", acked: h[:5], ending: 3,
			want: []string{`(key "d") lies after the shard's ending 3`}},
		{name: "a record after the ending", ents: [3][]entry{h, h, recordAfter}, acked: h[:3], ending: 3,
			want: []string{"node 3 holds no entry without a record (a seal) at 4", "position 4: node 3 has a record, node 1 none"}},
		{name: "a member short of the seal", ents: [3][]entry{h, h, h[:3]}, acked: h[:3], ending: 3,
			want: []string{"node 3 holds no entry without a record (a seal) at 4", "node 3 holds positions up to 3, the committed prefix is 4"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ents := [3][]entry{h, h, h}
			if c.ents[0] != nil {
				ents = c.ents
			}
			var nodes []string
			for i := range 3 {
				d := t.TempDir()
				writeReplica(t, d, 0, ents[i], 1)
				nodes = append(nodes, d)
			}
			rep, err := Check(Input{Stream: "s", Nodes: nodes, Acked: ackedOf(c.acked), Open: whole(), Endings: map[shardmap.ShardID]uint64{0: c.ending}})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) != len(c.want) {
				t.Fatalf("problems %q, want %d: %q", rep.Problems, len(c.want), c.want)
			}
			for i, w := range c.want {
				if !strings.Contains(rep.Problems[i], w) {
					t.Fatalf("problem %d: %q, want one containing %q", i, rep.Problems[i], w)
				}
			}
		})
	}
}
