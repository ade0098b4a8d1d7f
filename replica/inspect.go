package replica

import (
	"github.com/sluice-streams/sluice/internal/vfs"
)

// SideState is what a replica's side files say, read without opening the replica: for
// offline checkers (the cluster fault tests' invariant checker) over a stopped node's
// directory.
type SideState struct {
	// Term, Vote and Commit are raft.state's HardState; zero when the file does not exist.
	Term, Vote, Commit uint64
	// Terms are raft.terms' records in index order.
	Terms []TermStart
}

// TermStart is one raft.terms record: the entry at Index was written in Term; Empty says
// it holds no record (a new leader's empty entry or a configuration change: a gap in the
// positions).
type TermStart struct {
	Index, Term uint64
	Empty       bool
}

// TermAt returns the term of the entry at index i by raft.terms' rule (the term of the last
// record at or below i), and false when no record is at or below i.
func (s *SideState) TermAt(i uint64) (uint64, bool) {
	var term uint64
	found := false
	for _, r := range s.Terms {
		if r.Index > i {
			break
		}
		term, found = r.Term, true
	}
	return term, found
}

// ReadSide reads the side files raft.state and raft.terms of the replica in dir without
// changing anything. A file that exists but does not decode is ErrCorrupt. It does not apply
// Open's rule for records above the segment log's last frame: the caller reads the segment
// log and decides.
func ReadSide(dir string) (SideState, error) {
	var out SideState
	st, _, err := readSide(vfs.OS, dir, stateName, decodeState)
	if err != nil {
		return out, err
	}
	out.Term, out.Vote, out.Commit = st.term, st.vote, st.commit
	recs, _, err := readSide(vfs.OS, dir, termsName, decodeTerms)
	if err != nil {
		return out, err
	}
	out.Terms = make([]TermStart, len(recs))
	for i, r := range recs {
		out.Terms[i] = TermStart{Index: r.index, Term: r.term, Empty: r.kind != kindStart}
	}
	return out, nil
}
