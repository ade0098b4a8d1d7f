package replica

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"slices"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/internal/faultfs"
	"github.com/sluice-streams/sluice/segment"
)

var t0 = time.Unix(1_700_000_000, 0)

func testOpts(fs *faultfs.FS) Options {
	so := segment.Options{SegmentSize: segment.MinSegmentSize, Durability: segment.Durability{Mode: segment.Sync},
		Now: func() time.Time { return t0 }}
	if fs != nil {
		so.FS = fs
	}
	return Options{NodeID: 1, Segment: so}
}

func mustOpenLog(t testing.TB, dir string, o Options) *Log {
	t.Helper()
	l, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// frameEntries makes n entries from index from in term, each a record of size bytes that
// arrived at at.
func frameEntries(from, n, term uint64, size int, at time.Time) []*pb.Entry {
	ents := make([]*pb.Entry, n)
	for k := range ents {
		i := from + uint64(k)
		data := frame.Append(nil, &frame.Record{Seq: i, Time: at.UnixNano(), Key: fmt.Appendf(nil, "k%d", i),
			Data: bytes.Repeat([]byte{byte(i)}, size)})
		ents[k] = &pb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(term), Type: pb.EntryNormal.Enum(), Data: data}
	}
	return ents
}

func confEntry(i, term uint64, typ pb.ConfChangeType, node uint64) *pb.Entry {
	cc := &pb.ConfChange{Type: typ.Enum(), NodeId: proto.Uint64(node)}
	data, err := proto.Marshal(cc)
	if err != nil {
		panic(err)
	}
	return &pb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(term), Type: pb.EntryConfChange.Enum(), Data: data}
}

func hs(term, vote, commit uint64) *pb.HardState {
	return &pb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(vote), Commit: proto.Uint64(commit)}
}

// persistApply persists ents with hs (Readies of a follower, 20 entries each, as raft sends
// them: a segment rolls between batches) and applies them when apply is set.
func persistApply(t testing.TB, l *Log, ents []*pb.Entry, hs *pb.HardState, apply bool) {
	t.Helper()
	for chunk := range slices.Chunk(ents, 20) {
		if err := l.Persist(&raft.Ready{Entries: chunk, HardState: hs}); err != nil {
			t.Fatal(err)
		}
		if apply {
			if err := l.Apply(chunk); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// frames returns the frames l holds at positions from to to, as "seq/time/key/data;" text.
func framesOf(t testing.TB, l *Log, from, to uint64) []byte {
	t.Helper()
	var out []byte
	err := walkFrames(l.Segment(), from, to, func(b []byte, _, _ uint64) error {
		for len(b) > 0 {
			r, n, err := frame.Decode(b)
			if err != nil || n == 0 {
				return fmt.Errorf("frame: %v", err)
			}
			out = fmt.Appendf(out, "%d/%d/%q/%x;", r.Seq, r.Time, r.Key, r.Data)
			b = b[n:]
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// leaderLog builds a replica holding 1..n (bootstrap conf entries 1 to 3, then records of
// 700 bytes) applied, so that it has several sealed segments and an active one.
func leaderLog(t testing.TB, dir string, n uint64) *Log {
	t.Helper()
	l := mustOpenLog(t, dir, testOpts(nil))
	ents := []*pb.Entry{confEntry(1, 1, pb.ConfChangeType_ConfChangeAddNode, 1), confEntry(2, 1, pb.ConfChangeType_ConfChangeAddNode, 2),
		confEntry(3, 1, pb.ConfChangeType_ConfChangeAddNode, 3)}
	ents = append(ents, frameEntries(4, n-3, 1, 700, t0)...)
	persistApply(t, l, ents, hs(1, 1, n), true)
	return l
}

// snapshotOf returns l's snapshot and its decoded Data.
func snapshotOf(t testing.TB, l *Log) (*pb.Snapshot, snapRec) {
	t.Helper()
	snap, err := l.Storage().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	rec, err := decodeSnap(snap.GetData())
	if err != nil {
		t.Fatal(err)
	}
	return snap, rec
}

// stagedFrom fetches snap's files from leader into l's staging directory.
func stagedFrom(l, leader *Log, snap *pb.Snapshot) error {
	return l.FetchSnapshot(context.Background(), snap, func(name string) (io.ReadCloser, error) {
		r, _, err := leader.OpenSnapshotFile(name)
		return r, err
	})
}

// TestInstallCrash stops a snapshot's fetch and install after each of its syncs in turn
// (every later sync fails) and cuts the power: after a restart the replica holds its old log
// (only when the install failed) or the snapshot's, never a mix, and takes entries after it.
func TestInstallCrash(t *testing.T) {
	leader := leaderLog(t, t.TempDir(), 500)
	defer leader.Close()
	snap, rec := snapshotOf(t, leader)
	if rec.index != 500 || len(rec.files) < 3 || rec.tail.size == 0 {
		t.Fatalf("snapshot at %d with %d files and a tail of %d bytes; want 500, several files and a tail", rec.index, len(rec.files), rec.tail.size)
	}
	lo := rec.files[0].First
	want := framesOf(t, leader, lo, 500)
	sawOld, sawNew := false, false
	for n := 0; ; n++ {
		fs := faultfs.New()
		dir := t.TempDir()
		l := mustOpenLog(t, dir, testOpts(fs))
		persistApply(t, l, frameEntries(1, 40, 1, 300, t0.Add(-time.Hour)), hs(1, 2, 40), true)
		old := framesOf(t, l, 1, 40)
		fs.FailSyncsAfter(n, errors.New("injected sync failure"))
		ierr := stagedFrom(l, leader, snap)
		if ierr == nil {
			ierr = l.Persist(&raft.Ready{Snapshot: snap, HardState: hs(1, 2, 500)})
		}
		if err := fs.PowerCut(nil); err != nil {
			t.Fatal(err)
		}
		l.Close()
		fs.Revive()
		l = mustOpenLog(t, dir, testOpts(fs))
		first, _ := l.Storage().FirstIndex()
		last, _ := l.Storage().LastIndex()
		switch {
		case first == 501 && last == 500:
			sawNew = true
			if got := framesOf(t, l, lo, 500); !bytes.Equal(got, want) {
				t.Fatalf("syncs allowed %d: the installed frames differ from the leader's", n)
			}
			if term, err := l.Storage().Term(500); err != nil || term != 1 {
				t.Fatalf("syncs allowed %d: Term(500) = %d, %v", n, term, err)
			}
		case ierr != nil && first == 1 && last == 40:
			sawOld = true
			if got := framesOf(t, l, 1, 40); !bytes.Equal(got, old) {
				t.Fatalf("syncs allowed %d: the old frames changed", n)
			}
		default:
			t.Fatalf("syncs allowed %d (install: %v): FirstIndex %d, LastIndex %d: neither the old log nor the snapshot's", n, ierr, first, last)
		}
		if first == 501 {
			persistApply(t, l, frameEntries(501, 5, 2, 100, t0), hs(2, 1, 505), true)
			if l.Tip() != 505 {
				t.Fatalf("syncs allowed %d: tip %d after appending 501 to 505 on the snapshot", n, l.Tip())
			}
		}
		l.Close()
		if ierr == nil {
			if !sawOld || !sawNew || n < 10 {
				t.Fatalf("after %d runs: old log seen %v, snapshot seen %v; the crash points were not exercised", n+1, sawOld, sawNew)
			}
			break
		}
		if n > 200 {
			t.Fatalf("install still failing after %d syncs: %v", n, ierr)
		}
	}
}

// TestConfStateAcrossRestart: the configuration is rebuilt from raft.conf after a restart.
// A conf change written and committed but not applied when the power went (the crash between
// writing the entry and applying it) is in the configuration InitialState returns, with
// Applied at its index, so raft applies it exactly once; one written but not known to be
// committed is not, and stays in the log for raft to apply when it commits.
func TestConfStateAcrossRestart(t *testing.T) {
	fs := faultfs.New()
	dir := t.TempDir()
	l := mustOpenLog(t, dir, testOpts(fs))
	boot := []*pb.Entry{confEntry(1, 1, pb.ConfChangeType_ConfChangeAddNode, 1), confEntry(2, 1, pb.ConfChangeType_ConfChangeAddNode, 2),
		confEntry(3, 1, pb.ConfChangeType_ConfChangeAddNode, 3)}
	persistApply(t, l, boot, hs(1, 0, 3), true)
	ents := append([]*pb.Entry{{Index: proto.Uint64(4), Term: proto.Uint64(2), Type: pb.EntryNormal.Enum()}},
		frameEntries(5, 5, 2, 50, t0)...)
	ents = append(ents, confEntry(10, 2, pb.ConfChangeType_ConfChangeAddNode, 4))
	persistApply(t, l, ents, hs(2, 1, 10), false) // written, committed, not applied
	persistApply(t, l, []*pb.Entry{confEntry(11, 2, pb.ConfChangeType_ConfChangeRemoveNode, 2)}, hs(2, 1, 10), false)
	if err := fs.PowerCut(nil); err != nil {
		t.Fatal(err)
	}
	l.Close()
	fs.Revive()

	l = mustOpenLog(t, dir, testOpts(fs))
	defer l.Close()
	hs, cs, err := l.Storage().InitialState()
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(slices.Values(cs.GetVoters())); !slices.Equal(got, []uint64{1, 2, 3, 4}) || hs.GetCommit() != 10 || l.Applied() != 10 {
		t.Fatalf("after the restart: voters %v, commit %d, applied %d; want [1 2 3 4], 10, 10", got, hs.GetCommit(), l.Applied())
	}
	if l.Tip() != 9 {
		t.Fatalf("tip %d after the restart, want 9 (the committed records)", l.Tip())
	}
	ents11, err := l.Storage().Entries(11, 12, 1<<20)
	if err != nil || len(ents11) != 1 || ents11[0].GetType() != pb.EntryConfChange {
		t.Fatalf("entry 11 after the restart: %v, %v; want the conf change", ents11, err)
	}
	rn, err := raft.NewRawNode(&raft.Config{ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: l.Storage(),
		Applied: l.Applied(), MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 64, Logger: &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)}})
	if err != nil {
		t.Fatal(err)
	}
	if got := rn.Status().Config.Voters.IDs(); len(got) != 4 {
		t.Fatalf("raft restarted with voters %v, want 4 of them", got)
	}
	if rn.HasReady() {
		if rd := rn.Ready(); len(rd.CommittedEntries) > 0 {
			t.Fatalf("raft hands %d applied entries over again from %d", len(rd.CommittedEntries), rd.CommittedEntries[0].GetIndex())
		}
	}
}

// TestFirstIndexFollowsTrim: retention moves FirstIndex past the removed segments; below it
// Entries and Term answer ErrCompacted, Term(FirstIndex−1) answers; a snapshot names the
// remaining sealed files and the tail; all of it holds after a restart.
func TestFirstIndexFollowsTrim(t *testing.T) {
	dir := t.TempDir()
	l := mustOpenLog(t, dir, testOpts(nil))
	persistApply(t, l, frameEntries(1, 300, 1, 700, t0.Add(-2*time.Hour)), hs(1, 1, 300), true)
	persistApply(t, l, frameEntries(301, 200, 2, 700, t0), hs(2, 1, 500), true)
	if n, err := l.Trim(t0.Add(-time.Hour).UnixNano()); err != nil || n == 0 {
		t.Fatalf("Trim: %d, %v", n, err)
	}
	check := func(l *Log) uint64 {
		t.Helper()
		st := l.Storage()
		first, _ := st.FirstIndex()
		if first <= 1 || first > 301 {
			t.Fatalf("FirstIndex %d after retention, want within (1, 301]", first)
		}
		if _, err := st.Entries(first-1, first, 1<<20); !errors.Is(err, raft.ErrCompacted) {
			t.Fatalf("Entries(%d): %v, want ErrCompacted", first-1, err)
		}
		if _, err := st.Term(first - 2); !errors.Is(err, raft.ErrCompacted) {
			t.Fatalf("Term(%d): %v, want ErrCompacted", first-2, err)
		}
		if term, err := st.Term(first - 1); err != nil || term != 1 {
			t.Fatalf("Term(%d) = %d, %v; want 1", first-1, term, err)
		}
		if ents, err := st.Entries(first, 501, 1<<30); err != nil || len(ents) != int(501-first) {
			t.Fatalf("Entries(%d, 501): %d, %v", first, len(ents), err)
		}
		return first
	}
	first := check(l)
	_, rec := snapshotOf(t, l)
	if rec.index != 500 || rec.term != 2 || len(rec.files) == 0 || rec.files[0].First != first {
		t.Fatalf("snapshot %+v; want at 500, term 2, from the first retained file", rec)
	}
	l.Close()
	l = mustOpenLog(t, dir, testOpts(nil))
	defer l.Close()
	if again := check(l); again != first {
		t.Fatalf("FirstIndex %d after the restart, %d before", again, first)
	}
}

// TestFetchSnapshotRefuses: a snapshot whose Data names a path outside the replica or
// disagrees with its metadata, or whose file arrives short or long, is refused, stages
// nothing that Persist would install, and leaves the log as it was.
func TestFetchSnapshotRefuses(t *testing.T) {
	leader := leaderLog(t, t.TempDir(), 500)
	defer leader.Close()
	snap, rec := snapshotOf(t, leader)
	l := mustOpenLog(t, t.TempDir(), testOpts(nil))
	defer l.Close()
	persistApply(t, l, frameEntries(1, 40, 1, 300, t0), hs(1, 2, 40), true)
	before := framesOf(t, l, 1, 40)
	fromLeader := func(name string) (io.ReadCloser, error) {
		r, _, err := leader.OpenSnapshotFile(name)
		return r, err
	}
	withData := func(r snapRec) *pb.Snapshot {
		b, err := encodeSnap(r)
		if err != nil {
			t.Fatal(err)
		}
		c := proto.Clone(snap).(*pb.Snapshot)
		c.Data = b
		return c
	}
	outside := rec
	outside.files = slices.Clone(rec.files)
	outside.files[0].Name = "../" + rec.files[0].Name
	otherIndex := rec
	otherIndex.index--
	short := rec
	short.files = slices.Clone(rec.files)
	short.files[0].Size++
	long := rec
	long.files = slices.Clone(rec.files)
	long.files[0].Size--
	for name, s := range map[string]*pb.Snapshot{"path outside": withData(outside), "index differs": withData(otherIndex),
		"file short": withData(short), "file long": withData(long)} {
		if err := l.FetchSnapshot(context.Background(), s, fromLeader); err == nil {
			t.Fatalf("%s: FetchSnapshot accepted it", name)
		}
		if err := l.Persist(&raft.Ready{Snapshot: s}); !errors.Is(err, ErrSnapshot) {
			t.Fatalf("%s: Persist after a refused fetch: %v, want ErrSnapshot", name, err)
		}
		if first, _ := l.Storage().FirstIndex(); first != 1 || !bytes.Equal(framesOf(t, l, 1, 40), before) {
			t.Fatalf("%s: the log changed (FirstIndex %d)", name, first)
		}
	}
	if _, _, err := leader.OpenSnapshotFile("../raft.state"); !errors.Is(err, ErrNoSnapshotFile) {
		t.Fatalf("OpenSnapshotFile(../raft.state): %v, want ErrNoSnapshotFile", err)
	}
	if _, _, err := leader.OpenSnapshotFile("frames-1-99999"); !errors.Is(err, ErrNoSnapshotFile) {
		t.Fatalf("OpenSnapshotFile of frames not applied: %v, want ErrNoSnapshotFile", err)
	}
}
