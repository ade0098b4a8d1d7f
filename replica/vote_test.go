package replica

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-streams/sluice/internal/vfs"
	"github.com/sluice-streams/sluice/segment"
)

// TestVoteKeptAcrossDeletion: the term and vote of a replica are kept before its directory
// is deleted; an empty replica created in that directory later starts from them (raft reads
// them as its HardState); a kept term is never lowered, by KeepVote or by StartFromVote.
func TestVoteKeptAcrossDeletion(t *testing.T) {
	base := t.TempDir()
	dir, vote := filepath.Join(base, "shard-0"), filepath.Join(base, ".vote-shard-0")
	if err := StartFromVote(dir, vote); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("StartFromVote without a kept vote made the directory: %v", err)
	}
	setState(t, dir, 7, 3)
	if err := KeepVote(dir, vote); err != nil {
		t.Fatal(err)
	}
	if term, v, ok, err := ReadVote(vote); err != nil || !ok || term != 7 || v != 3 {
		t.Fatalf("kept term %d vote %d (%v, %v), want 7 and 3", term, v, ok, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}

	if err := StartFromVote(dir, vote); err != nil {
		t.Fatal(err)
	}
	if hs := initialState(t, dir); hs.GetTerm() != 7 || hs.GetVote() != 3 || hs.GetCommit() != 0 {
		t.Fatalf("the new replica starts from %v, want term 7 vote 3", hs)
	}

	// A replica that reached a higher term keeps it: StartFromVote does not lower it, and
	// KeepVote of a replica at a lower term does not lower what is kept.
	setState(t, dir, 9, 5)
	if err := StartFromVote(dir, vote); err != nil {
		t.Fatal(err)
	}
	if hs := initialState(t, dir); hs.GetTerm() != 9 || hs.GetVote() != 5 {
		t.Fatalf("StartFromVote changed a later HardState to %v", hs)
	}
	setState(t, dir, 2, 1)
	if err := KeepVote(dir, vote); err != nil {
		t.Fatal(err)
	}
	if term, v, _, err := ReadVote(vote); err != nil || term != 7 || v != 3 {
		t.Fatalf("kept term %d vote %d (%v), want 7 and 3 still", term, v, err)
	}
}

// setState writes raft.state in dir (made when missing) with term and vote.
func setState(t *testing.T, dir string, term, vote uint64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeSide(vfs.OS, dir, stateName, encodeState(hardState{term: term, vote: vote})); err != nil {
		t.Fatal(err)
	}
}

// initialState opens the replica in dir and returns the HardState raft would start from.
func initialState(t *testing.T, dir string) *raftpb.HardState {
	t.Helper()
	l, err := Open(dir, Options{Segment: segment.Options{}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	hs, _, err := l.Storage().InitialState()
	if err != nil {
		t.Fatal(err)
	}
	return proto.Clone(hs).(*raftpb.HardState)
}
