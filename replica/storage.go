package replica

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

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
	// ErrSnapshot reports a snapshot Persist cannot install: its files were not staged by
	// FetchSnapshot, or the staged ones belong to another snapshot.
	ErrSnapshot = errors.New("replica: snapshot not staged")
	// ErrNoSnapshotFile reports a snapshot file this replica does not serve (never named by
	// its snapshots, or removed by retention since).
	ErrNoSnapshotFile = errors.New("replica: no such snapshot file")
	// ErrNotLeader is wrapped by *NotLeaderError: the replica cannot take proposals.
	ErrNotLeader = errors.New("replica: not the leader")
	// ErrSealCancelled reports a Seal whose token was unsealed already: its resharding gave
	// up, and its seal entries hold nothing (seal.go).
	ErrSealCancelled = errors.New("replica: the seal's token was unsealed")
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
	dir     string
	fs      vfs.FS
	segOpts segment.Options // to reopen the segment log after a snapshot install
	cur     atomic.Pointer[segment.Log]

	mu    sync.Mutex
	log   *segment.Log // cur, for the holder of mu
	hs    hardState
	cs    *pb.ConfState // the configuration SetConfState gave (used without a snapshot)
	snap  snapRec       // the snapshot the log starts from (raft.snap); index 0: none
	terms []termRec     // one per term start, empty entry and conf entry, by index
	confs []confRec
	seals []sealRec // raft.seal (seal.go)
	last  uint64    // LastIndex
	// applied is the last index given to Apply (at open: Applied); a snapshot is taken there.
	applied uint64
	buf     []segment.Record
	cache   entryCache // the entries persisted and not yet applied (cache.go)
}

var _ raft.Storage = (*Storage)(nil)

// openStorage loads the side files beside an opened replicated segment log. Records in the
// side files above what is durable are dropped: entries with a frame past the log's last
// position (the side file is written first), and the records after them.
func openStorage(log *segment.Log, dir string, so segment.Options) (*Storage, error) {
	fsys := so.FS
	if fsys == nil {
		fsys = vfs.OS
	}
	s := &Storage{dir: dir, fs: fsys, segOpts: so, log: log, cs: &pb.ConfState{}}
	s.cur.Store(log)
	snap, _, err := readSide(fsys, dir, snapName, decodeSnap)
	if err != nil {
		return nil, err
	}
	s.snap = snap
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
	s.dropUpToLocked(snap.index)
	// The last index: the log's last frame (or the snapshot's index), then every following
	// entry that has no frame (a gap or a conf change recorded in the side files) is durable
	// with its record.
	last := max(log.LastPos(), snap.index)
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
	if err := s.loadSealsLocked(); err != nil {
		return nil, err
	}
	s.applied = s.appliedLocked()
	return s, nil
}

// dropUpToLocked forgets side-file records at or below index i (in memory): a snapshot at i
// covers them.
func (s *Storage) dropUpToLocked(i uint64) {
	s.terms = s.terms[sort.Search(len(s.terms), func(k int) bool { return s.terms[k].index > i }):]
	s.confs = s.confs[sort.Search(len(s.confs), func(k int) bool { return s.confs[k].index > i }):]
}

// dropAboveLocked forgets side-file records above index i (in memory).
func (s *Storage) dropAboveLocked(i uint64) {
	s.terms = s.terms[:sort.Search(len(s.terms), func(k int) bool { return s.terms[k].index > i })]
	s.confs = s.confs[:sort.Search(len(s.confs), func(k int) bool { return s.confs[k].index > i })]
}

// InitialState implements raft.Storage. The commit index is the one stored in raft.state
// (within the log, and at least FirstIndex−1); the configuration is the one as of that
// index, rebuilt from raft.snap's and the conf entries of raft.conf up to it: the group must
// start with that index as applied (Applied, multiraft.GroupOptions.Applied), so that raft
// applies each later conf entry once.
func (s *Storage) InitialState() (*pb.HardState, *pb.ConfState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	commit := s.appliedLocked()
	cs, err := s.confAtLocked(commit)
	if err != nil {
		return nil, nil, err
	}
	hs := &pb.HardState{Term: proto.Uint64(s.hs.term), Vote: proto.Uint64(s.hs.vote), Commit: proto.Uint64(commit)}
	return hs, cs, nil
}

// Applied is the index a restarted group has applied: the commit index InitialState
// returns. Records up to it are readable from Open on.
func (s *Storage) Applied() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appliedLocked()
}

func (s *Storage) appliedLocked() uint64 {
	return max(min(s.hs.commit, s.last), s.firstLocked()-1)
}

// SetConfState records the group's initial configuration (the peers it was created with),
// the base InitialState and Snapshot apply raft.conf's entries to while the log starts from
// no snapshot. A group bootstrapped through raft (conf entries in its log) needs none.
func (s *Storage) SetConfState(cs *pb.ConfState) {
	s.mu.Lock()
	s.cs = proto.Clone(cs).(*pb.ConfState)
	s.mu.Unlock()
}

// FirstIndex implements raft.Storage: the first entry retained, after the snapshot the log
// starts from and the segments retention removed.
func (s *Storage) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstLocked(), nil
}

// firstLocked returns FirstIndex. Entries after the snapshot up to the oldest segment's base
// b are retained only if none of them had a frame (they are gaps and conf entries, all in
// the side files); otherwise retention removed frames below b, and b is the first.
func (s *Storage) firstLocked() uint64 {
	f := s.snap.index + 1
	b := s.log.FirstPos()
	if b == 0 { // no segment left: every frame written is gone
		b = s.log.LastPos() + 1
	}
	if b <= f {
		return f
	}
	lo := sort.Search(len(s.terms), func(k int) bool { return s.terms[k].index >= f })
	marked := uint64(0)
	for _, r := range s.terms[lo:] {
		if r.index >= b {
			break
		}
		if r.kind != kindStart {
			marked++
		}
	}
	if marked == b-f {
		return f
	}
	return b
}

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
	if i+1 < s.firstLocked() {
		return 0, raft.ErrCompacted
	}
	if i > s.last {
		return 0, raft.ErrUnavailable
	}
	return s.termLocked(i), nil
}

// termLocked is the term of entry i, at or above the snapshot's index.
func (s *Storage) termLocked(i uint64) uint64 {
	k := sort.Search(len(s.terms), func(k int) bool { return s.terms[k].index > i })
	if k == 0 {
		return s.snap.term
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

// Snapshot implements raft.Storage: a snapshot at S, the applied index (the configuration
// raft has applied is the one at S, so it names the member the snapshot is for); its term,
// the configuration at S, and in Data (raft.snap's encoding) the sealed segment files up to
// S and the tail of frames after them up to S, which the receiver fetches (FetchSnapshot,
// OpenSnapshotFile), and the seal up to S (seal.go).
func (s *Storage) Snapshot() (*pb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.firstLocked()
	rec := snapRec{index: max(first-1, s.applied)}
	files, err := s.log.SealedUpTo(rec.index)
	if err != nil {
		return nil, err
	}
	rec.files = files
	from := first
	if n := len(files); n > 0 {
		from = max(from, files[n-1].Last+1)
	}
	if rec.tail, err = s.tailLocked(from, rec.index); err != nil {
		return nil, err
	}
	rec.term = s.termLocked(rec.index)
	if rec.cs, err = s.confAtLocked(rec.index); err != nil {
		return nil, err
	}
	rec = s.withSealsLocked(rec)
	data, err := encodeSnap(rec)
	if err != nil {
		return nil, err
	}
	return &pb.Snapshot{Data: data, Metadata: &pb.SnapshotMetadata{Index: proto.Uint64(rec.index), Term: proto.Uint64(rec.term),
		ConfState: rec.cs}}, nil
}

// Entries implements raft.Storage. The entries persisted and not yet applied come from
// memory (cache.go); older entries with a record are read from the segment log and copied
// (the views are released before it returns); entries without one are synthesized (empty
// normal entries) or come from raft.conf.
func (s *Storage) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lo < s.firstLocked() {
		return nil, raft.ErrCompacted
	}
	if hi > s.last+1 {
		return nil, raft.ErrUnavailable
	}
	if out, ok := s.cache.get(lo, hi, maxSize); ok {
		return out, nil
	}
	mid := hi // the entries from mid on are in the cache
	if c := s.cache.first(); len(s.cache.ents) > 0 && lo < c && c < hi && hi <= s.cache.last()+1 {
		mid = c
	}
	out, size, err := s.readEntriesLocked(lo, mid, maxSize)
	if err != nil || mid == hi || uint64(len(out)) < mid-lo {
		return out, err
	}
	rest, _ := s.cache.get(mid, hi, maxSize-min(size, maxSize))
	for _, e := range rest {
		if size += uint64(len(e.GetData())); size > maxSize {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

// readEntriesLocked reads the entries [lo, hi) from the segment log and the side files,
// within maxSize (at least one), and returns them with the sum of their data's lengths.
// Called with s.mu held.
func (s *Storage) readEntriesLocked(lo, hi, maxSize uint64) ([]*pb.Entry, uint64, error) {
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
			if sr, ok := s.sealAtLocked(i); ok && sr.term == term {
				e.Data = sealEntry(sr.op, sr.token)
			}
		case marked && rec.kind == kindConf:
			k := sort.Search(len(s.confs), func(k int) bool { return s.confs[k].index >= i })
			if k == len(s.confs) || s.confs[k].index != i {
				return nil, 0, fmt.Errorf("%w: conf entry %d missing from %s", ErrCorrupt, i, confName)
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
					return nil, 0, err
				}
				if v.Count == 0 {
					return nil, 0, fmt.Errorf("%w: frame %d missing from the segment log", ErrCorrupt, i)
				}
				view, it = v, v.Records()
			}
			if cur.Seq != i {
				return nil, 0, fmt.Errorf("%w: frame %d missing from the segment log (found %d)", ErrCorrupt, i, cur.Seq)
			}
			e.Data = frame.Append(nil, &frame.Record{Seq: cur.Seq, Time: cur.Time, Flags: cur.Flags, Key: cur.Key, Data: cur.Data})
		}
		if len(out) > 0 && size+uint64(len(e.Data)) > maxSize {
			break
		}
		size += uint64(len(e.Data))
		out = append(out, e)
	}
	return out, size, nil
}

// persist writes rd's entries and HardState, in this order: a conflicting suffix is cut
// from the segment log (Truncate: durable before anything else), raft.conf and raft.terms
// are replaced when they change (durably), the frames are appended (AppendAtNoWait: written,
// durable once wait returns nil), and raft.state is replaced (durably) when term or vote
// changed. So everything but the frames is durable when persist returns; wait (nil when
// there is nothing to wait for) makes the frames durable. It hands seen each frame whose seq
// is a proposal token (the record as proposed) with the index and term it got.
func (s *Storage) persist(rd *raft.Ready, seen func(r *frame.Record, index, term uint64)) (wait func() error, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rd.Snapshot != nil && rd.Snapshot.GetMetadata().GetIndex() > 0 {
		if err := s.installLocked(rd.Snapshot); err != nil {
			return nil, err
		}
	}
	if len(rd.Entries) > 0 {
		if wait, err = s.persistEntriesLocked(rd.Entries, seen); err != nil {
			return nil, err
		}
	}
	if hs := rd.HardState; hs != nil {
		next := hardState{hs.GetTerm(), hs.GetVote(), hs.GetCommit()}
		if next.term != s.hs.term || next.vote != s.hs.vote {
			if err := writeSide(s.fs, s.dir, stateName, encodeState(next)); err != nil {
				return nil, err
			}
		}
		s.hs = next
	}
	return wait, nil
}

func (s *Storage) persistEntriesLocked(ents []*pb.Entry, seen func(r *frame.Record, index, term uint64)) (wait func() error, err error) {
	first := ents[0].GetIndex()
	changed, sealsChanged := false, false
	if first <= s.last {
		// A conflicting suffix from an earlier term: cut it, durably, first.
		if err := s.log.Truncate(first - 1); err != nil {
			return nil, err
		}
		s.cache.cutFrom(first)
		s.dropAboveLocked(first - 1)
		sealsChanged = s.dropSealsAboveLocked(first - 1)
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
		case isSealEntry(e.GetData()): // a gap, kept in raft.seal too (seal.go)
			s.terms = append(s.terms, termRec{i, term, kindEmpty})
			op, token := sealOpOf(e.GetData())
			s.seals = append(s.seals, sealRec{index: i, term: term, op: op, token: token})
			changed, sealsChanged = true, true
		default:
			r, _, err := frame.Decode(e.GetData())
			if err != nil {
				return nil, fmt.Errorf("replica: entry %d: %w", i, err)
			}
			if term != prev {
				s.terms = append(s.terms, termRec{i, term, kindStart})
				changed = true
			}
			if seen != nil && r.Seq != i {
				seen(&r, i, term)
			}
			batch = append(batch, segment.Record{Seq: i, Time: r.Time, Flags: r.Flags, Key: r.Key, Data: r.Data})
		}
		prev = term
	}
	if sealsChanged {
		if err := writeSide(s.fs, s.dir, sealName, encodeSeals(s.seals)); err != nil {
			return nil, err
		}
	}
	if confChanged {
		if err := writeSide(s.fs, s.dir, confName, encodeConfs(s.confs)); err != nil {
			return nil, err
		}
	}
	if changed {
		if err := writeSide(s.fs, s.dir, termsName, encodeTerms(s.terms)); err != nil {
			return nil, err
		}
	}
	if wait, err = s.log.AppendAtNoWait(batch); err != nil {
		return nil, err
	}
	clear(batch)
	s.buf = batch[:0]
	s.cache.add(ents)
	s.last = ents[len(ents)-1].GetIndex()
	return wait, nil
}
