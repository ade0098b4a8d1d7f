package replica

import (
	"path/filepath"

	"github.com/sluice-streams/sluice/internal/vfs"
)

// A replica's vote, kept across its deletion. A node whose replica of a group is removed
// and deleted, and later added to the group again under the same Raft id, starts an empty
// replica; without its old raft.state it would have forgotten the vote it cast in its last
// term and could vote a second time in that term. KeepVote copies the term and vote of a
// replica about to be deleted into a file outside its directory (raft.state's format, commit
// 0), and StartFromVote makes the empty replica created later in that directory start from
// them. A term is never lowered: each keeps the higher of what it finds and what it writes.

// KeepVote writes the term and vote of the closed replica in dir to the file at path
// (crash-safely, synced), unless path already holds a higher term or the replica never
// learned a term. Call it before dir is deleted.
func KeepVote(dir, path string) error {
	st, _, err := readSide(vfs.OS, dir, stateName, decodeState)
	if err != nil {
		return err
	}
	kept, ok, err := readSide(vfs.OS, filepath.Dir(path), filepath.Base(path), decodeState)
	if err != nil {
		return err
	}
	if st.term == 0 || ok && kept.term > st.term {
		return nil // nothing to keep: the replica never learned a term
	}
	return writeSide(vfs.OS, filepath.Dir(path), filepath.Base(path), encodeState(hardState{term: st.term, vote: st.vote}))
}

// StartFromVote makes the replica in dir (created when missing) start from the term and
// vote KeepVote wrote to path: it writes them into the replica's raft.state (synced) when
// that holds a lower term or does not exist. It does nothing when path does not exist.
func StartFromVote(dir, path string) error {
	kept, ok, err := readSide(vfs.OS, filepath.Dir(path), filepath.Base(path), decodeState)
	if err != nil || !ok {
		return err
	}
	st, has, err := readSide(vfs.OS, dir, stateName, decodeState)
	if err != nil || has && st.term >= kept.term {
		return err
	}
	if err := vfs.OS.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := vfs.OS.SyncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	return writeSide(vfs.OS, dir, stateName, encodeState(hardState{term: kept.term, vote: kept.vote, commit: st.commit}))
}

// ReadVote returns the term and vote KeepVote wrote to path; ok is false when path does not
// exist.
func ReadVote(path string) (term, vote uint64, ok bool, err error) {
	kept, ok, err := readSide(vfs.OS, filepath.Dir(path), filepath.Base(path), decodeState)
	return kept.term, kept.vote, ok, err
}
