package replica

import (
	"encoding/binary"
	"fmt"
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
// last record below it) is the shard's EndingSequenceNumber. Unseal proposes an unseal entry:
// the entries after it are acknowledged and published again.
//
// The seal entry's data, 16 bytes (shorter than any frame, frame.HeaderSize = 32, so it is
// never taken for a record):
//
//	0            8    9         16
//	+------------+----+---------+
//	| "SLRSEAL1" | op | 7 zeros |
//	+------------+----+---------+
//
//	op  sealOp (1) or unsealOp (2)
//
// Persisted like a conf entry: raft.terms records it as kindEmpty (a gap), and the side file
// raft.seal (docs/FORMAT.md) keeps it — index uint64, term uint64, op uint8, 7 zero bytes per
// record, in the side files' common frame (magic "SLRSEALS") — written before raft.terms, so
// Entries gives it to a follower again and a restarted replica knows it. On open, a raft.seal
// record is kept only when raft.terms has a gap at its index in its term (a record left by a
// crash between the two files, or by a cut suffix, is dropped). Records at or below the log's
// snapshot are kept: the state after them stays known when retention removes their entries.
//
// Not covered: a replica that catches up by a snapshot whose index is past a seal it never
// had in its log does not learn it (raft.snap does not carry it).
const (
	sealName     = "raft.seal"
	sealMagic    = "SLRSEAL1"
	sealEntryLen = 16
	sealRecSize  = 24

	sealOp   = 1
	unsealOp = 2
)

// sealRec is one raft.seal record: a seal or unseal entry.
type sealRec struct {
	index, term uint64
	op          uint8
}

// sealEntry returns the data of a seal or unseal entry.
func sealEntry(op uint8) []byte {
	b := make([]byte, sealEntryLen)
	copy(b, sealMagic)
	b[8] = op
	return b
}

// sealOpOf returns the op of a seal or unseal entry's data, 0 for any other entry.
func sealOpOf(data []byte) uint8 {
	if len(data) != sealEntryLen || string(data[:8]) != sealMagic {
		return 0
	}
	if op := data[8]; op == sealOp || op == unsealOp {
		return op
	}
	return 0
}

func encodeSeals(recs []sealRec) []byte {
	b := appendSideHeader(make([]byte, 0, sideHeader+len(recs)*sealRecSize+4), "SLRSEALS", len(recs))
	for _, r := range recs {
		b = binary.LittleEndian.AppendUint64(b, r.index)
		b = binary.LittleEndian.AppendUint64(b, r.term)
		b = append(b, r.op, 0, 0, 0, 0, 0, 0, 0)
	}
	return sealSide(b)
}

func decodeSeals(b []byte) ([]sealRec, error) {
	count, body, err := checkSide(b, "SLRSEALS")
	if err != nil {
		return nil, err
	}
	if len(body) != count*sealRecSize {
		return nil, fmt.Errorf("%d records in %d bytes", count, len(body))
	}
	recs := make([]sealRec, count)
	for i := range recs {
		r := body[i*sealRecSize:]
		recs[i] = sealRec{index: binary.LittleEndian.Uint64(r), term: binary.LittleEndian.Uint64(r[8:]), op: r[16]}
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

// sealedAtLocked returns the index of the seal in force after the entries up to i (the first
// seal entry not followed by an unseal entry up to i), 0 when none is.
func (s *Storage) sealedAtLocked(i uint64) uint64 {
	var at uint64
	for _, r := range s.seals {
		if r.index > i {
			break
		}
		at = nextSeal(at, r.index, r.op)
	}
	return at
}

// publishLimitLocked returns how far the records up to i may be published: i, or the seal in
// force after them.
func (s *Storage) publishLimitLocked(i uint64) uint64 {
	if at := s.sealedAtLocked(i); at != 0 {
		return min(i, at)
	}
	return i
}

// nextSeal returns the seal in force after entry index (of seal op op) given the one before
// (at, 0 for none): a seal starts one unless one is in force; an unseal ends it.
func nextSeal(at, index uint64, op uint8) uint64 {
	switch {
	case op == sealOp && at == 0:
		return index
	case op == unsealOp:
		return 0
	}
	return at
}

// lastRecordBelow returns the position of the last record before entry i: i−1 down over the
// gaps and conf entries; below the first retained entry, that entry's predecessor (at least
// every position retention removed).
func (s *Storage) lastRecordBelow(i uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.firstLocked()
	p := i - 1
	for p >= first {
		if _, gap := s.recAtLocked(p); !gap {
			return p
		}
		p--
	}
	return p
}

// sealState is what Apply last found of the seal: Seal and Unseal wait on it. Guarded by
// Log.mu; written by Apply (and Open).
type sealState struct {
	at      uint64        // the seal in force, 0 if none
	last    uint64        // the last record below it
	unseals uint64        // unseal entries applied since Open
	changed chan struct{} // closed (and replaced) when Apply applies a seal or unseal entry
}

// sealsIn returns the seal in force after committed (the entries given to Apply) given
// the one before them, and how many unseal entries they hold.
func sealsIn(committed []*pb.Entry, before uint64) (after uint64, unseals int) {
	after = before
	for _, e := range committed {
		if op := sealOpOf(e.GetData()); op != 0 {
			after = nextSeal(after, e.GetIndex(), op)
			if op == unsealOp {
				unseals++
			}
		}
	}
	return after, unseals
}

// sealedAt returns the seal in force after the entries up to i (sealedAtLocked).
func (s *Storage) sealedAt(i uint64) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sealedAtLocked(i)
}

// failLocked settles r's proposal with err. Called with l.mu held.
func (l *Log) failLocked(r *pendingRec, err error) {
	if p := r.p; p.left > 0 {
		p.left = 0
		p.done <- err
	}
}

// noteSealsLocked records the seal state after Apply's entries (at: the seal in force, 0
// none; unseals: unseal entries among them) and wakes Seal and Unseal. Called with l.mu held.
func (l *Log) noteSealsLocked(at, last uint64, unseals int) {
	if at == l.seal.at && unseals == 0 {
		return
	}
	l.seal.at, l.seal.last = at, last
	l.seal.unseals += uint64(unseals)
	if l.seal.changed != nil {
		close(l.seal.changed)
	}
	l.seal.changed = make(chan struct{})
}

// sealedError is the error of an Append whose entry at index fell after the seal at at.
func sealedError(index, at uint64) error {
	return fmt.Errorf("%w: position %d is after the seal at %d", stream.ErrLogSealed, index, at)
}

// sealRetry is how long Seal and Unseal wait for their entry to apply before they propose
// it again (a proposal raft dropped, or lost with a leader, is never applied).
const sealRetry = time.Second

// Seal seals the shard's log (stream.SealingLog): on the group's leader, it proposes a seal
// entry and returns once one has applied here, with the position of the last record before
// it. A log already sealed returns the same position at once. Not the leader: a
// *NotLeaderError (nothing proposed). Not applied within Options.Timeout: ErrNotCommitted.
func (l *Log) Seal() (uint64, error) {
	deadline := time.Now().Add(l.opts.Timeout)
	for {
		l.mu.Lock()
		at, last, ch, proposer := l.seal.at, l.seal.last, l.sealChangedLocked(), l.proposer
		l.mu.Unlock()
		if at != 0 {
			return last, nil
		}
		if err := l.proposeSeal(proposer, sealOp, deadline, ch); err != nil {
			return 0, err
		}
	}
}

// Unseal proposes an unseal entry (stream.SealingLog) and returns once an unseal entry
// proposed after the call has applied here; errors as Seal's.
func (l *Log) Unseal() error {
	deadline := time.Now().Add(l.opts.Timeout)
	l.mu.Lock()
	start := l.seal.unseals
	l.mu.Unlock()
	for {
		l.mu.Lock()
		done, ch, proposer := l.seal.unseals > start, l.sealChangedLocked(), l.proposer
		l.mu.Unlock()
		if done {
			return nil
		}
		if err := l.proposeSeal(proposer, unsealOp, deadline, ch); err != nil {
			return err
		}
	}
}

// sealChangedLocked returns the channel Apply closes at the next seal or unseal entry.
func (l *Log) sealChangedLocked() chan struct{} {
	if l.seal.changed == nil {
		l.seal.changed = make(chan struct{})
	}
	return l.seal.changed
}

// proposeSeal proposes one seal or unseal entry and waits until ch closes (an entry of the
// kind applied), sealRetry passes, or the deadline does (ErrNotCommitted).
func (l *Log) proposeSeal(p Proposer, op uint8, deadline time.Time, ch chan struct{}) error {
	left := time.Until(deadline)
	if left <= 0 {
		return fmt.Errorf("%w: the seal entry did not apply within %v", ErrNotCommitted, l.opts.Timeout)
	}
	if p == nil {
		return &NotLeaderError{}
	}
	if err := p.Propose([][]byte{sealEntry(op)}); err != nil {
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
