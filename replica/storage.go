package replica

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/internal/vfs"
	"github.com/sluice-streams/sluice/segment"
)

// Errors of the package; test with errors.Is.
var (
	// ErrCorrupt reports a side file that exists but does not decode.
	ErrCorrupt = errors.New("replica: corrupt raft state")
	// ErrSnapshot reports a snapshot to install: shipping sealed segments to a follower that
	// is too far behind is not implemented yet.
	ErrSnapshot = errors.New("replica: snapshot installation not implemented")
	// ErrNotLeader is wrapped by *NotLeaderError: the replica cannot take proposals.
	ErrNotLeader = errors.New("replica: not the leader")
	// ErrNotCommitted reports proposals that were not committed in the term they were
	// proposed in (leadership lost, timeout, log cut): not acknowledged; a retry may
	// duplicate records.
	ErrNotCommitted = errors.New("replica: not committed in its term; retry")
)

// NotLeaderError reports that this replica is not its group's leader; Leader is the leader's
// node id, 0 if unknown.
type NotLeaderError struct{ Leader uint64 }

func (e *NotLeaderError) Error() string {
	return fmt.Sprintf("replica: not the leader (leader: node %d)", e.Leader)
}

func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

type hardState struct{ term, vote, commit uint64 }

// Storage is one Raft group's log on this replica: raft.Storage over the shard's segment log
// (replicated mode) and the side files raft.terms, raft.conf and raft.state.
//
// Concurrency: the group's driving loop calls Persist and the raft.Storage methods; mu guards
// everything below it, so other goroutines may read too.
type Storage struct {
	dir string
	fs  vfs.FS
	log *segment.Log

	mu    sync.Mutex
	hs    hardState
	cs    *pb.ConfState
	terms []termRec // one per term start, empty entry and conf entry, by index
	confs []confRec
	last  uint64 // LastIndex
	buf   []segment.Record
}

var _ raft.Storage = (*Storage)(nil)

// openStorage loads the side files beside an opened replicated segment log. Records in the
// side files above what is durable are dropped: entries with a frame past the log's last
// position (the side file is written first), and the records after them.
func openStorage(log *segment.Log, dir string, fsys vfs.FS) (*Storage, error) {
	if fsys == nil {
		fsys = vfs.OS
	}
	s := &Storage{dir: dir, fs: fsys, log: log, cs: &pb.ConfState{}}
	hs, _, err := readSide(fsys, dir, stateName, decodeState)
	if err != nil {
		return nil, err
	}
	terms, _, err := readSide(fsys, dir, termsName, decodeTerms)
	if err != nil {
		return nil, err
	}
	confs, _, err := readSide(fsys, dir, confName, decodeConfs)
	if err != nil {
		return nil, err
	}
	s.hs, s.terms, s.confs = hs, terms, confs
	// The last index: the log's last frame, then every following entry that has no frame
	// (a gap or a conf change recorded in the side files) is durable with its record.
	last := log.LastPos()
	for _, r := range s.terms {
		if r.index <= last {
			continue
		}
		if r.index == last+1 && r.kind != kindStart {
			last++
			continue
		}
		break
	}
	s.dropAboveLocked(last)
	s.last = last
	return s, nil
}

// dropAboveLocked forgets side-file records above index i (in memory).
func (s *Storage) dropAboveLocked(i uint64) {
	s.terms = s.terms[:sort.Search(len(s.terms), func(k int) bool { return s.terms[k].index > i })]
	s.confs = s.confs[:sort.Search(len(s.confs), func(k int) bool { return s.confs[k].index > i })]
}

// InitialState implements raft.Storage.
func (s *Storage) InitialState() (*pb.HardState, *pb.ConfState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hs := &pb.HardState{Term: proto.Uint64(s.hs.term), Vote: proto.Uint64(s.hs.vote), Commit: proto.Uint64(min(s.hs.commit, s.last))}
	return hs, proto.Clone(s.cs).(*pb.ConfState), nil
}

// SetConfState records the group's configuration (the peers it was created with, or the
// result of applying a conf change), returned by InitialState and Snapshot.
func (s *Storage) SetConfState(cs *pb.ConfState) {
	s.mu.Lock()
	s.cs = proto.Clone(cs).(*pb.ConfState)
	s.mu.Unlock()
}

// FirstIndex implements raft.Storage: the first retained position. Retention does not move it
// yet: entries are served from 1 (a trimmed frame reads as ErrCompacted from Entries).
func (s *Storage) FirstIndex() (uint64, error) { return 1, nil }

// LastIndex implements raft.Storage.
func (s *Storage) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, nil
}

// Term implements raft.Storage.
func (s *Storage) Term(i uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i > s.last {
		return 0, raft.ErrUnavailable
	}
	return s.termLocked(i), nil
}

func (s *Storage) termLocked(i uint64) uint64 {
	k := sort.Search(len(s.terms), func(k int) bool { return s.terms[k].index > i })
	if k == 0 {
		return 0
	}
	return s.terms[k-1].term
}

// kindLocked returns the side-file record at index i, if any.
func (s *Storage) recAtLocked(i uint64) (termRec, bool) {
	k := sort.Search(len(s.terms), func(k int) bool { return s.terms[k].index >= i })
	if k < len(s.terms) && s.terms[k].index == i {
		return s.terms[k], true
	}
	return termRec{}, false
}

// Snapshot implements raft.Storage: metadata only (index FirstIndex−1 = 0, term 0, the
// ConfState). Shipping segments to a far-behind follower is not implemented.
func (s *Storage) Snapshot() (*pb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: proto.Uint64(0), Term: proto.Uint64(0),
		ConfState: proto.Clone(s.cs).(*pb.ConfState)}}, nil
}

// Entries implements raft.Storage. Entries with a record are read from the segment log and
// copied (the views are released before it returns); entries without one are synthesized
// (empty normal entries) or come from raft.conf.
func (s *Storage) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lo < 1 {
		return nil, raft.ErrCompacted
	}
	if hi > s.last+1 {
		return nil, raft.ErrUnavailable
	}
	var out []*pb.Entry
	var size uint64
	var view segment.View
	defer func() { view.Release() }()
	var it segment.Iter
	var cur segment.Record
	have := false
	for i := lo; i < hi; i++ {
		term := s.termLocked(i)
		e := &pb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(term), Type: pb.EntryNormal.Enum()}
		rec, marked := s.recAtLocked(i)
		switch {
		case marked && rec.kind == kindEmpty:
		case marked && rec.kind == kindConf:
			k := sort.Search(len(s.confs), func(k int) bool { return s.confs[k].index >= i })
			if k == len(s.confs) || s.confs[k].index != i {
				return nil, fmt.Errorf("%w: conf entry %d missing from %s", ErrCorrupt, i, confName)
			}
			e.Type = pb.EntryType(s.confs[k].typ).Enum()
			e.Data = slices.Clone(s.confs[k].data)
		default:
			for !have || cur.Seq < i {
				if have = it.Next(); have {
					cur = it.Record()
					continue
				}
				view.Release()
				v, err := s.log.ReadWritten(i, int(hi-i), 1<<20)
				if err != nil {
					return nil, err
				}
				if v.Count == 0 {
					return nil, fmt.Errorf("%w: frame %d missing from the segment log", ErrCorrupt, i)
				}
				view, it = v, v.Records()
			}
			if cur.Seq != i {
				return nil, fmt.Errorf("%w: frame %d missing from the segment log (found %d)", ErrCorrupt, i, cur.Seq)
			}
			e.Data = frame.Append(nil, &frame.Record{Seq: cur.Seq, Time: cur.Time, Flags: cur.Flags, Key: cur.Key, Data: cur.Data})
		}
		size += uint64(len(e.Data))
		if len(out) > 0 && size > maxSize {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

// persist makes rd's entries and HardState durable, in this order: a conflicting suffix is
// cut from the segment log (Truncate: durable before anything else), raft.conf and
// raft.terms are replaced when they change, the frames are appended (AppendAt, durable per
// the log's mode), and raft.state is replaced when term or vote changed. It returns the
// tokens of the frames (their seq as proposed) with the index and term each got.
func (s *Storage) persist(rd *raft.Ready, seen func(token, index, term uint64)) error {
	if rd.Snapshot != nil && rd.Snapshot.GetMetadata().GetIndex() > 0 {
		return ErrSnapshot
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(rd.Entries) > 0 {
		if err := s.persistEntriesLocked(rd.Entries, seen); err != nil {
			return err
		}
	}
	if hs := rd.HardState; hs != nil {
		next := hardState{hs.GetTerm(), hs.GetVote(), hs.GetCommit()}
		if next.term != s.hs.term || next.vote != s.hs.vote {
			if err := writeSide(s.fs, s.dir, stateName, encodeState(next)); err != nil {
				return err
			}
		}
		s.hs = next
	}
	return nil
}

func (s *Storage) persistEntriesLocked(ents []*pb.Entry, seen func(token, index, term uint64)) error {
	first := ents[0].GetIndex()
	changed := false
	if first <= s.last {
		// A conflicting suffix from an earlier term: cut it, durably, first.
		if err := s.log.Truncate(first - 1); err != nil {
			return err
		}
		s.dropAboveLocked(first - 1)
		s.last = first - 1
		changed = true
	}
	prev := s.termLocked(first - 1)
	confChanged := false
	batch := s.buf[:0]
	for _, e := range ents {
		i, term := e.GetIndex(), e.GetTerm()
		switch {
		case e.GetType() != pb.EntryNormal:
			s.terms = append(s.terms, termRec{i, term, kindConf})
			s.confs = append(s.confs, confRec{i, term, uint32(e.GetType()), slices.Clone(e.GetData())})
			changed, confChanged = true, true
		case len(e.GetData()) == 0:
			s.terms = append(s.terms, termRec{i, term, kindEmpty})
			changed = true
		default:
			r, _, err := frame.Decode(e.GetData())
			if err != nil {
				return fmt.Errorf("replica: entry %d: %w", i, err)
			}
			if term != prev {
				s.terms = append(s.terms, termRec{i, term, kindStart})
				changed = true
			}
			if seen != nil && r.Seq != i {
				seen(r.Seq, i, term)
			}
			batch = append(batch, segment.Record{Seq: i, Time: r.Time, Flags: r.Flags, Key: r.Key, Data: r.Data})
		}
		prev = term
	}
	if confChanged {
		if err := writeSide(s.fs, s.dir, confName, encodeConfs(s.confs)); err != nil {
			return err
		}
	}
	if changed {
		if err := writeSide(s.fs, s.dir, termsName, encodeTerms(s.terms)); err != nil {
			return err
		}
	}
	if err := s.log.AppendAt(batch); err != nil {
		return err
	}
	clear(batch)
	s.buf = batch[:0]
	s.last = ents[len(ents)-1].GetIndex()
	return nil
}
