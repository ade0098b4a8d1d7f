package invariant

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/replica"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// Acked is one record a client was told was stored: the sequence number of the answer (its
// shard and position) and the record's partition key and data. Producers must make every
// attempt's data unique, so that "exactly once" can be decided (a retry of an unacknowledged
// attempt may legitimately store its record twice, as Kinesis may).
//
// A producer that retries a record itself with the same data (the Go client's Producer)
// says how many put requests carried it in Attempts: the record may then be stored up to
// that many times (each request that failed on the way may have been appended), once at
// least at its acknowledged position. 0 and 1 both mean one attempt: stored exactly once.
type Acked struct {
	Seq       stream.SeqNum
	Key, Data []byte
	Attempts  int
}

// Range is the hash key range of an open shard, inclusive at both ends.
type Range struct {
	Shard     shardmap.ShardID
	Low, High shardmap.Key
}

// Input is what Check is given.
type Input struct {
	// Stream is the stream's name.
	Stream string
	// Nodes are the data directories (--data-dir) of every node, stopped.
	Nodes []string
	// Acked are the acknowledged records, in any order.
	Acked []Acked
	// Open are the open shards ListShards reported.
	Open []Range
	// Members, when set, names per shard the nodes (1-based indexes into Nodes) whose
	// replicas are the group's current members, which must hold the committed prefix. A
	// replica found on another node (a node the shard moved away from, or one that opened
	// the shard without being added) is read too, and must agree with the members up to its
	// own commit index, but may lag. A shard absent from Members, or Members nil: every
	// replica found is a member.
	Members map[shardmap.ShardID][]int
	// Endings, when set, are the closed shards' ending positions (the position of the
	// EndingSequenceNumber ListShards reported). No acknowledged record of the shard may lie
	// above its ending. A shard with a record at or below its ending was closed by a seal
	// entry (replica's Seal), a Raft entry without a record: every member must hold the log
	// up to the position after the ending, the same on all, and hold there an entry without
	// a record (the seal entry, or a gap below it).
	Endings map[shardmap.ShardID]uint64
}

// Report is Check's finding. Problems is empty when every invariant holds.
type Report struct {
	Problems []string
	// Shards is the number of shards checked, Replicas the replica directories read (Others
	// of them not members, see Input.Members), Frames the frames compared (counting every
	// replica), Committed the positions checked summed over shards, Retried the acknowledged
	// records stored more than once by their producer's own retries (allowed by
	// Acked.Attempts).
	Shards, Replicas, Others, Frames, Retried int
	Committed                                 uint64
}

func (r *Report) problemf(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Check reads every node's replicas of in.Stream and checks the invariants (doc.go). It
// returns an error only when a directory cannot be listed or read at all; damage and
// disagreement are Problems.
func Check(in Input) (Report, error) {
	var rep Report
	checkRanges(&rep, in.Open)

	acked := map[shardmap.ShardID][]Acked{}
	bySeq := map[stream.SeqNum]int{}
	for i, a := range in.Acked {
		if j, dup := bySeq[a.Seq]; dup {
			rep.problemf("sequence number %s acknowledged twice: records %d (key %q) and %d (key %q)", a.Seq, j, in.Acked[j].Key, i, a.Key)
			continue
		}
		bySeq[a.Seq] = i
		acked[a.Seq.Shard] = append(acked[a.Seq.Shard], a)
	}

	shards := map[shardmap.ShardID][]replicaLog{}
	for node, dir := range in.Nodes {
		dirs, err := shardDirs(dir, in.Stream)
		if err != nil {
			return rep, err
		}
		for id, sd := range dirs {
			r, err := readReplica(node+1, sd)
			if err != nil {
				return rep, err
			}
			rep.Replicas++
			shards[id] = append(shards[id], r)
		}
	}
	for id := range acked {
		if _, ok := shards[id]; !ok {
			rep.problemf("%s: %d acknowledged records, no replica on any node", id, len(acked[id]))
		}
	}
	ids := make([]shardmap.ShardID, 0, len(shards))
	for id := range shards {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		members, others := splitMembers(&rep, id, shards[id], in.Members)
		if len(members) == 0 {
			rep.problemf("%s: none of its members %v holds a replica", id, in.Members[id])
			continue
		}
		rep.Others += len(others)
		ending, closed := in.Endings[id]
		checkShard(&rep, id, members, others, acked[id], ending, closed)
	}
	return rep, nil
}

// splitMembers divides a shard's replicas into its members and the others (Input.Members),
// a problem for each member whose node holds no replica.
func splitMembers(rep *Report, id shardmap.ShardID, reps []replicaLog, members map[shardmap.ShardID][]int) (in, out []replicaLog) {
	names, ok := members[id]
	if !ok {
		return reps, nil
	}
	for _, r := range reps {
		if slices.Contains(names, r.node) {
			in = append(in, r)
		} else {
			out = append(out, r)
		}
	}
	for _, n := range names {
		if !slices.ContainsFunc(in, func(r replicaLog) bool { return r.node == n }) {
			rep.problemf("%s: node %d is a member and holds no replica", id, n)
		}
	}
	return in, out
}

// checkRanges checks that the open shards cover [0, MaxKey] once.
func checkRanges(rep *Report, open []Range) {
	if len(open) == 0 {
		rep.problemf("no open shard")
		return
	}
	rs := slices.Clone(open)
	slices.SortFunc(rs, func(a, b Range) int { return a.Low.Compare(b.Low) })
	next := shardmap.Key{}
	for i, r := range rs {
		if r.High.Less(r.Low) {
			rep.problemf("%s: hash key range %s..%s ends before it starts", r.Shard, r.Low, r.High)
			return
		}
		if r.Low != next {
			what := "a gap"
			if r.Low.Less(next) {
				what = "an overlap"
			}
			rep.problemf("open shards: %s before %s (starting at %s, expected %s)", what, r.Shard, r.Low, next)
		}
		if r.High == shardmap.MaxKey {
			if i != len(rs)-1 {
				rep.problemf("open shards: %s ends at the last hash key, %d more after it", r.Shard, len(rs)-1-i)
			}
			return
		}
		next = r.High.Next()
	}
	rep.problemf("open shards: the hash keys from %s up are in no open shard", next)
}

// replicaLog is one node's replica of a shard, read from its files.
type replicaLog struct {
	node   int // 1-based index into Input.Nodes
	dir    string
	frames map[uint64][]byte // position → the frame's bytes, padding excluded
	last   uint64            // the highest position with a frame or a raft.terms record
	side   replica.SideState
}

// shardDirs returns the shard directories of the stream under a node's data directory: the
// newest incarnation's (streams/<name>@<gen>/shard-<id>).
func shardDirs(dataDir, name string) (map[shardmap.ShardID]string, error) {
	incs, err := filepath.Glob(filepath.Join(dataDir, "streams", name+"@*"))
	if err != nil {
		return nil, err
	}
	var newest string
	var newestGen uint64
	for _, p := range incs {
		gen, err := strconv.ParseUint(strings.TrimPrefix(filepath.Base(p), name+"@"), 10, 64)
		if err == nil && (newest == "" || gen > newestGen) {
			newest, newestGen = p, gen
		}
	}
	out := map[shardmap.ShardID]string{}
	if newest == "" {
		return out, nil
	}
	ents, err := os.ReadDir(newest)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), "shard-")
		if !e.IsDir() || !ok {
			continue
		}
		id, err := strconv.ParseUint(n, 10, 32)
		if err != nil {
			continue
		}
		out[shardmap.ShardID(id)] = filepath.Join(newest, e.Name())
	}
	return out, nil
}

// readReplica reads a replica's frames and side files without changing them. Damage before a
// segment's durable checkpoint is an error; a torn tail past it (a process killed mid-write)
// is not, and the frames before it are kept.
func readReplica(node int, dir string) (replicaLog, error) {
	r := replicaLog{node: node, dir: dir, frames: map[uint64][]byte{}}
	reps, err := segment.Verify(dir)
	if err != nil {
		return r, fmt.Errorf("node %d: %w", node, err)
	}
	for _, s := range reps {
		if s.Problem != "" && !strings.Contains(s.Problem, "torn tail") {
			return r, fmt.Errorf("node %d: %s: %s", node, s.Path, s.Problem)
		}
		if s.End <= segment.DataOffset {
			continue
		}
		b, err := os.ReadFile(s.Path)
		if err != nil {
			return r, fmt.Errorf("node %d: %w", node, err)
		}
		b = b[:min(int64(len(b)), s.End)]
		for off := segment.DataOffset; off < len(b); {
			rec, n, err := frame.Decode(b[off:])
			if err != nil || n == 0 {
				break // Verify found the same end
			}
			r.frames[rec.Seq] = b[off : off+frame.HeaderSize+len(rec.Key)+len(rec.Data)]
			r.last = max(r.last, rec.Seq)
			off += n
		}
	}
	if r.side, err = replica.ReadSide(dir); err != nil {
		return r, fmt.Errorf("node %d: %s: %w", node, dir, err)
	}
	if n := len(r.side.Terms); n > 0 {
		r.last = max(r.last, r.side.Terms[n-1].Index)
	}
	return r, nil
}

// recordAtOrBelow reports whether the replica holds a record at or below pos.
func (r replicaLog) recordAtOrBelow(pos uint64) bool {
	for p := range r.frames {
		if p <= pos {
			return true
		}
	}
	return false
}

// checkShard checks one shard's member replicas against each other and against its
// acknowledged records, and its other replicas against the members up to their own commit
// index. A closed shard's ending is checked too.
func checkShard(rep *Report, id shardmap.ShardID, reps, others []replicaLog, acked []Acked, ending uint64, closed bool) {
	rep.Shards++
	// The committed prefix: every acknowledged position, what every replica's HardState says
	// is committed, and a sealed shard's seal (Input.Endings).
	var prefix uint64
	minCommit := reps[0].side.Commit
	for _, r := range reps {
		minCommit = min(minCommit, r.side.Commit)
	}
	prefix = minCommit
	for _, a := range acked {
		prefix = max(prefix, a.Seq.Pos)
		if closed && a.Seq.Pos > ending {
			rep.problemf("%s: acknowledged record %s (key %q) lies after the shard's ending %d", id, a.Seq, a.Key, ending)
		}
	}
	if closed && slices.ContainsFunc(reps, func(r replicaLog) bool { return r.recordAtOrBelow(ending) }) {
		prefix = max(prefix, ending+1)
		for _, r := range reps {
			if !slices.ContainsFunc(r.side.Terms, func(ts replica.TermStart) bool { return ts.Index == ending+1 && ts.Empty }) {
				rep.problemf("%s: node %d holds no entry without a record (a seal) at %d, after the shard's ending %d", id, r.node, ending+1, ending)
			}
		}
	}
	rep.Committed += prefix
	for _, r := range reps {
		if r.last < prefix {
			rep.problemf("%s: node %d holds positions up to %d, the committed prefix is %d", id, r.node, r.last, prefix)
		}
	}

	// Byte for byte, gap for gap, term for term, against the replica that holds the most.
	ref := slices.MaxFunc(reps, func(a, b replicaLog) int { return cmp.Compare(a.last, b.last) })
	for i, r := range slices.Concat(reps, others) {
		if r.node == ref.node {
			continue
		}
		upTo := min(prefix, r.last)
		if i >= len(reps) {
			upTo = min(upTo, r.side.Commit) // not a member: what it has committed only
		}
		for pos, f := range ref.frames {
			if pos > upTo {
				continue
			}
			rep.Frames++
			g, ok := r.frames[pos]
			switch {
			case !ok:
				rep.problemf("%s position %d: node %d has a record, node %d none", id, pos, ref.node, r.node)
			case !bytes.Equal(f, g):
				rep.problemf("%s position %d: the frames of nodes %d and %d differ", id, pos, ref.node, r.node)
			}
		}
		for pos := range r.frames {
			if _, ok := ref.frames[pos]; !ok && pos <= upTo {
				rep.problemf("%s position %d: node %d has a record, node %d none", id, pos, r.node, ref.node)
			}
		}
		// Term(i) changes only at a raft.terms record of one of the two.
		starts := map[uint64]bool{}
		for _, ts := range slices.Concat(ref.side.Terms, r.side.Terms) {
			if ts.Index > upTo || starts[ts.Index] {
				continue
			}
			starts[ts.Index] = true
			a, _ := ref.side.TermAt(ts.Index)
			b, _ := r.side.TermAt(ts.Index)
			if a != b {
				rep.problemf("%s position %d: term %d on node %d, %d on node %d", id, ts.Index, a, ref.node, b, r.node)
			}
		}
	}

	// Every acknowledged record exactly once, where its sequence number says.
	where := map[string][]uint64{}
	for pos, f := range ref.frames {
		if pos > prefix {
			continue
		}
		rec, _, err := frame.Decode(f)
		if err != nil {
			rep.problemf("%s position %d on node %d: %v", id, pos, ref.node, err)
			continue
		}
		where[string(rec.Data)] = append(where[string(rec.Data)], pos)
	}
	for _, a := range acked {
		f, ok := ref.frames[a.Seq.Pos]
		if !ok {
			rep.problemf("%s: acknowledged record %s (key %q) is not on node %d", id, a.Seq, a.Key, ref.node)
			continue
		}
		rec, _, err := frame.Decode(f)
		if err != nil || !bytes.Equal(rec.Key, a.Key) || !bytes.Equal(rec.Data, a.Data) {
			rep.problemf("%s: acknowledged record %s (key %q): position %d on node %d holds key %q", id, a.Seq, a.Key, a.Seq.Pos, ref.node, rec.Key)
			continue
		}
		at := where[string(a.Data)]
		if len(at) > 1 && len(at) <= a.Attempts {
			rep.Retried++
			continue
		}
		if len(at) != 1 {
			slices.Sort(at)
			rep.problemf("%s: acknowledged record %s (key %q) is stored %d times, at %v (%d attempts)", id, a.Seq, a.Key, len(at), at, max(a.Attempts, 1))
		}
	}
}
