package replica

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/sluice-streams/sluice/stream"
)

// Sealing (stream.SealingLog). A resharding closes a shard at a position every replica
// agrees on: Seal, on the group's leader, proposes a seal entry — a Raft entry without a
// record, a gap in the positions like a new leader's empty entry — and returns once it has
// applied here. Every replica that applies it publishes nothing above it, and an Append any
// of whose entries fall after it is not acknowledged (an error wrapping stream.ErrLogSealed);
// so every acknowledged record lies below the seal entry, and the position Seal returns (the
// last record below it) is the shard's EndingSequenceNumber.
//
// Holders. Each entry carries the token of the resharding that proposed it (random, one per
// resharding: stream.SealingLog). The seal in force starts at the first seal entry applied
// while none is in force, and lasts while some token whose seal entry applied has no unseal
// entry applied after it: two reshardings (on two nodes) that seal the same shard share one
// seal, at one position, and the one whose catalog change lost unseals only its own hold,
// never the winner's.
//
// Cancelled tokens. An unseal entry cancels its token for good: a seal entry of a cancelled
// token, applied later, holds nothing. A resharding that gave up unseals; a seal entry of
// its that applies after the unseal (a proposal its Seal retried, or one the group's leader
// kept proposing for a caller that had stopped waiting) would otherwise seal the shard until
// another resharding closed it. So the order in which a token's seal and unseal entries
// apply does not matter: once its unseal applied, the token holds nothing, which is what
// its resharding decided. Seal with a cancelled token fails (ErrSealCancelled).
//
// The entry's data, 24 bytes (shorter than any frame, frame.HeaderSize = 32, so it is never
// taken for a record):
//
//	0            8    9         16        24
//	+------------+----+---------+---------+
//	| "SLRSEAL1" | op | 7 zeros |  token  |
//	+------------+----+---------+---------+
//
//	op     sealOp (1) or unsealOp (2)
//	token  uint64, little-endian: the resharding's
//
// Persisted like a conf entry: raft.terms records it as kindEmpty (a gap), and the side file
// raft.seal (docs/FORMAT.md) keeps it — index uint64, term uint64, token uint64, op uint8,
// 7 zero bytes per record, in the side files' common frame (magic "SLRSEALS") — written
// before raft.terms, so Entries gives it to a follower again and a restarted replica knows
// it. On open, a raft.seal record is kept only when raft.terms has a gap at its index in its
// term (a record left by a crash between the two files, or by a cut suffix, is dropped).
// Records at or below the log's snapshot are kept: the seal in force stays known when
// retention removes their entries.
//
// Snapshots carry the seal (snapshot.go): the raft.seal records at or below the snapshot's
// index and the position of the last record below the seal in force there. A replica that
// installs a snapshot past seal entries it never had takes them as its raft.seal, so it
// publishes nothing above the seal and Seal answers the same ending as on the leader.
const (
	sealName     = "raft.seal"
	sealMagic    = "SLRSEAL1"
	sealEntryLen = 24
	sealRecSize  = 32

	sealOp   = 1
	unsealOp = 2
)

// sealRec is one raft.seal record: a seal or unseal entry.
type sealRec struct {
	index, term uint64
	op          uint8
	token       uint64
}

// sealEntry returns the data of a seal or unseal entry.
func sealEntry(op uint8, token uint64) []byte {
	b := make([]byte, sealEntryLen)
	copy(b, sealMagic)
	b[8] = op
	binary.LittleEndian.PutUint64(b[16:], token)
	return b
}

// isSealEntry reports whether an entry's data is a seal or unseal entry's.
func isSealEntry(data []byte) bool {
	op, _ := sealOpOf(data)
	return op != 0
}

// sealOpOf returns the op and token of a seal or unseal entry's data; op 0 for any other entry.
func sealOpOf(data []byte) (op uint8, token uint64) {
	if len(data) != sealEntryLen || string(data[:8]) != sealMagic {
		return 0, 0
	}
	if op := data[8]; op == sealOp || op == unsealOp {
		return op, binary.LittleEndian.Uint64(data[16:])
	}
	return 0, 0
}

func encodeSeals(recs []sealRec) []byte {
	b := appendSideHeader(make([]byte, 0, sideHeader+len(recs)*sealRecSize+4), "SLRSEALS", len(recs))
	return sealSide(appendSealRecs(b, recs))
}

// appendSealRecs appends recs as raft.seal records (also the records a snapshot carries).
func appendSealRecs(b []byte, recs []sealRec) []byte {
	for _, r := range recs {
		b = binary.LittleEndian.AppendUint64(b, r.index)
		b = binary.LittleEndian.AppendUint64(b, r.term)
		b = binary.LittleEndian.AppendUint64(b, r.token)
		b = append(b, r.op, 0, 0, 0, 0, 0, 0, 0)
	}
	return b
}

func decodeSeals(b []byte) ([]sealRec, error) {
	count, body, err := checkSide(b, "SLRSEALS")
	if err != nil {
		return nil, err
	}
	if len(body) != count*sealRecSize {
		return nil, fmt.Errorf("%d records in %d bytes", count, len(body))
	}
	return decodeSealRecs(body, count)
}

// decodeSealRecs decodes count raft.seal records from body, which holds exactly them.
func decodeSealRecs(body []byte, count int) ([]sealRec, error) {
	recs := make([]sealRec, count)
	for i := range recs {
		r := body[i*sealRecSize:]
		recs[i] = sealRec{index: binary.LittleEndian.Uint64(r), term: binary.LittleEndian.Uint64(r[8:]),
			token: binary.LittleEndian.Uint64(r[16:]), op: r[24]}
		if op := recs[i].op; op != sealOp && op != unsealOp {
			return nil, fmt.Errorf("record %d: op %d", i, op)
		}
		if i > 0 && recs[i].index <= recs[i-1].index {
			return nil, fmt.Errorf("record %d: index %d after %d", i, recs[i].index, recs[i-1].index)
		}
	}
	return recs, nil
}

// loadSealsLocked reads raft.seal and keeps the records raft.terms confirms (see above).
// Called by openStorage once the side files are loaded and cut to the durable log.
func (s *Storage) loadSealsLocked() error {
	recs, _, err := readSide(s.fs, s.dir, sealName, decodeSeals)
	if err != nil {
		return err
	}
	s.seals = recs[:0]
	for _, r := range recs {
		if r.index <= s.snap.index {
			s.seals = append(s.seals, r)
			continue
		}
		if t, ok := s.recAtLocked(r.index); ok && t.kind == kindEmpty && t.term == r.term && r.index <= s.last {
			s.seals = append(s.seals, r)
		}
	}
	return nil
}

// dropSealsAboveLocked forgets seal records above index i (a cut suffix) and reports
// whether any went.
func (s *Storage) dropSealsAboveLocked(i uint64) bool {
	k := sort.Search(len(s.seals), func(k int) bool { return s.seals[k].index > i })
	cut := k < len(s.seals)
	s.seals = s.seals[:k]
	return cut
}

// sealAtLocked returns the seal record at index i, if any.
func (s *Storage) sealAtLocked(i uint64) (sealRec, bool) {
	k := sort.Search(len(s.seals), func(k int) bool { return s.seals[k].index >= i })
	if k < len(s.seals) && s.seals[k].index == i {
		return s.seals[k], true
	}
	return sealRec{}, false
}

// sealHold is the seal in force after some entries: at, the index of the seal entry that
// started it (0: none), holders, the tokens holding it, and cancelled, the tokens whose
// unseal entry applied (see above). A value: next returns another, never changing a slice
// in place.
type sealHold struct {
	at        uint64
	holders   []uint64
	cancelled []uint64
}

// apply returns the seal in force after an entry at index of seal op op with token.
func (h sealHold) apply(index uint64, op uint8, token uint64) sealHold {
	if slices.Contains(h.cancelled, token) {
		return h // unsealed already: its seal entries hold nothing, its unseal entries did all
	}
	i := slices.Index(h.holders, token)
	switch {
	case op == sealOp && i < 0:
		if h.at == 0 {
			h.at = index
		}
		h.holders = append(slices.Clip(h.holders), token)
	case op == unsealOp:
		h.cancelled = append(slices.Clip(h.cancelled), token)
		if i >= 0 {
			h.holders = slices.Delete(slices.Clone(h.holders), i, i+1)
			if len(h.holders) == 0 {
				h.at = 0
			}
		}
	}
	return h
}

// next returns the seal in force after entry e (unchanged unless e is a seal or unseal entry).
func (h sealHold) next(e *pb.Entry) sealHold {
	if op, token := sealOpOf(e.GetData()); op != 0 {
		return h.apply(e.GetIndex(), op, token)
	}
	return h
}

// limit returns how far the records up to i may be published under h: i, or the seal entry.
func (h sealHold) limit(i uint64) uint64 {
	if h.at != 0 {
		return min(i, h.at)
	}
	return i
}

// sealsAtLocked returns the seal in force after the entries up to i.
func (s *Storage) sealsAtLocked(i uint64) sealHold {
	var h sealHold
	for _, r := range s.seals {
		if r.index > i {
			break
		}
		h = h.apply(r.index, r.op, r.token)
	}
	return h
}

// sealsAt is sealsAtLocked for a caller that does not hold s.mu.
func (s *Storage) sealsAt(i uint64) sealHold {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sealsAtLocked(i)
}

// sealLast returns the position of the last record before the seal entry at at (the
// ending Seal answers).
func (s *Storage) sealLast(at uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sealLastLocked(at)
}

// sealLastLocked is sealLast with s.mu held: the ending raft.snap carries when at is the
// seal in force at its index (a snapshot installed past the seal entry: what lies below it
// is not here to look at); otherwise at−1 down over the gaps and conf entries raft.terms
// records above the snapshot (their frames may be gone to retention: raft.terms still says
// which positions held records), and the snapshot's index below them.
func (s *Storage) sealLastLocked(at uint64) uint64 {
	if sn := &s.snap; sn.hasSeals && at <= sn.index && s.sealsAtLocked(sn.index).at == at {
		return sn.sealLast
	}
	p := at - 1
	for p > s.snap.index {
		if r, ok := s.recAtLocked(p); !ok || r.kind == kindStart {
			return p
		}
		p--
	}
	return p
}

// withSealsLocked returns rec, a snapshot at rec.index, carrying the seal: the raft.seal
// records up to its index and the ending of the seal in force there. Called with s.mu held.
func (s *Storage) withSealsLocked(rec snapRec) snapRec {
	k := sort.Search(len(s.seals), func(k int) bool { return s.seals[k].index > rec.index })
	rec.seals, rec.hasSeals, rec.sealLast = slices.Clone(s.seals[:k]), true, 0
	if h := s.sealsAtLocked(rec.index); h.at != 0 {
		rec.sealLast = s.sealLastLocked(h.at)
	}
	return rec
}

// sealState is what Apply (or a snapshot's install) last found of the seal: Seal and Unseal
// wait on it. Guarded by Log.mu; written by Apply, PersistAsync installing a snapshot
// (noteInstalled) and Open.
type sealState struct {
	hold    sealHold
	last    uint64               // the last record below hold.at
	since   map[uint64]time.Time // each holder of hold: when this replica first found it holding (StaleSeals)
	changed chan struct{}        // closed (and replaced) when Apply applies a seal or unseal entry, or a snapshot is installed
}

// noteSealsLocked records the seal in force after Apply's entries committed (hold, and the
// last record below it) when a seal or unseal entry is among them, and wakes Seal and
// Unseal. Called with l.mu held.
func (l *Log) noteSealsLocked(committed []*pb.Entry, hold sealHold, last uint64) {
	if slices.ContainsFunc(committed, func(e *pb.Entry) bool { return isSealEntry(e.GetData()) }) {
		l.setSealLocked(hold, last)
	}
}

// setSealLocked makes hold (ending at last) the seal in force and wakes Seal and Unseal.
// Called with l.mu held.
func (l *Log) setSealLocked(hold sealHold, last uint64) {
	since := make(map[uint64]time.Time, len(hold.holders))
	for _, token := range hold.holders {
		t, ok := l.seal.since[token]
		if !ok {
			t = time.Now()
		}
		since[token] = t
	}
	l.seal.hold, l.seal.last, l.seal.since = hold, last, since
	if l.seal.changed != nil {
		close(l.seal.changed)
	}
	l.seal.changed = make(chan struct{})
}

// noteInstalled takes the seal in force from the snapshot just installed, as of its index.
func (l *Log) noteInstalled(index uint64) {
	hold := l.storage.sealsAt(index)
	var last uint64
	if hold.at != 0 {
		last = l.storage.sealLast(hold.at)
	}
	l.mu.Lock()
	l.setSealLocked(hold, last)
	l.mu.Unlock()
}

// sealedError is the error of an Append whose entry at index fell after the seal at at.
func sealedError(index, at uint64) error {
	return fmt.Errorf("%w: position %d is after the seal at %d", stream.ErrLogSealed, index, at)
}

// failLocked settles r's proposal with err. Called with l.mu held.
func (l *Log) failLocked(r *pendingRec, err error) {
	if p := r.p; p.left > 0 {
		p.left = 0
		p.done <- err
	}
}

// sealRetry is how long Seal and Unseal wait for their entry to apply before they propose
// it again (a proposal raft dropped, or lost with a leader, is never applied).
const sealRetry = time.Second

// Seal seals the shard's log for the resharding token names (stream.SealingLog): on the
// group's leader, it proposes a seal entry and returns once token holds the seal in force
// here, with the position of the last record before it. A log already sealed keeps its
// seal (the same position): token becomes one more holder. Not the leader: a
// *NotLeaderError (nothing proposed). Not applied within Options.Timeout: ErrNotCommitted.
// token unsealed already: ErrSealCancelled (its seal entries hold nothing).
func (l *Log) Seal(token uint64) (uint64, error) {
	deadline := time.Now().Add(l.opts.Timeout)
	for {
		l.mu.Lock()
		held, last, ch, proposer := slices.Contains(l.seal.hold.holders, token), l.seal.last, l.sealChangedLocked(), l.proposer
		cancelled := slices.Contains(l.seal.hold.cancelled, token)
		l.mu.Unlock()
		if held {
			return last, nil
		}
		if cancelled {
			return 0, fmt.Errorf("%w: token %x", ErrSealCancelled, token)
		}
		if err := l.proposeSeal(proposer, sealEntry(sealOp, token), deadline, ch); err != nil {
			return 0, err
		}
	}
}

// Unseal ends token's hold on the seal and cancels token (stream.SealingLog): it proposes an
// unseal entry and returns once one with token has applied here (at once if one had); the
// seal ends with its last holder, and a seal entry of token applied later holds nothing.
// Errors as Seal's.
func (l *Log) Unseal(token uint64) error {
	deadline := time.Now().Add(l.opts.Timeout)
	for {
		l.mu.Lock()
		done := slices.Contains(l.seal.hold.cancelled, token)
		ch, proposer := l.sealChangedLocked(), l.proposer
		l.mu.Unlock()
		if done {
			return nil
		}
		if err := l.proposeSeal(proposer, sealEntry(unsealOp, token), deadline, ch); err != nil {
			return err
		}
	}
}

// StaleSeals returns the tokens that have held the seal in force for at least age, as this
// replica saw them: from when it applied their seal entry, or learned them (opened with the
// seal in force, installed a snapshot carrying it). A resharding that sealed a shard and
// whose node died before its catalog change was saved leaves such a hold, which nothing else
// ends (stream.StaleSealLog).
func (l *Log) StaleSeals(age time.Duration) []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []uint64
	for _, token := range l.seal.hold.holders {
		if t, ok := l.seal.since[token]; ok && time.Since(t) >= age {
			out = append(out, token)
		}
	}
	return out
}

// sealChangedLocked returns the channel Apply closes at the next seal or unseal entry.
func (l *Log) sealChangedLocked() chan struct{} {
	if l.seal.changed == nil {
		l.seal.changed = make(chan struct{})
	}
	return l.seal.changed
}

// proposeSeal proposes one seal or unseal entry (data) and waits until ch closes (such an
// entry applied), sealRetry passes, or the deadline does (ErrNotCommitted).
func (l *Log) proposeSeal(p Proposer, data []byte, deadline time.Time, ch chan struct{}) error {
	left := time.Until(deadline)
	if left <= 0 {
		return fmt.Errorf("%w: the seal entry did not apply within %v", ErrNotCommitted, l.opts.Timeout)
	}
	if p == nil {
		return &NotLeaderError{}
	}
	if err := p.Propose([][]byte{data}); err != nil {
		return err
	}
	t := time.NewTimer(min(left, sealRetry))
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
	return nil
}
