package segment

import (
	"fmt"
	"time"

	"github.com/sluice-streams/sluice/index"
)

// Trim applies a retention cutoff (Unix nanoseconds): records that arrived before it are
// hidden from reads at once, and sealed segments whose newest record arrived before it are
// deleted (each file goes when the last View of it is released). The active segment is
// sealed first when its newest record is older than the cutoff or, with Options.SegmentAge,
// when it has been open that long, so that a quiet shard's data is deleted too. The cutoff
// only moves forward. It is stored in log.meta whenever it hides records that were visible,
// so that a crash cannot bring them back; a cutoff that hides nothing new costs no write.
// In replicated mode a segment holding a record above the published tip is kept, and so are
// the ones after it. It returns the number of segments removed.
func (l *Log) Trim(cutoff int64) (removed int, err error) {
	l.ensureHorizon()
	for {
		cur := l.hidden.Load()
		if cutoff <= cur || l.hidden.CompareAndSwap(cur, cutoff) {
			break
		}
	}
	l.applyHidden(l.hidden.Load(), l.tip.Load()+1)

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	if h, hz := l.hidden.Load(), l.horizon.Load(); h > l.meta.hidden && hz > l.storedHorizon && l.corrupt == nil {
		// Persist the cutoff so that a crash cannot bring hidden records back.
		l.storedHorizon = hz
		m := l.meta
		m.hidden = h
		if err := writeMeta(l.fs, l.dir, m); err != nil {
			return 0, fmt.Errorf("segment: store retention cutoff in %s: %w", l.dir, err)
		}
		l.meta = m
	}
	if s := l.active; s != nil && l.apos.count > 0 && l.refusalLocked() == nil {
		aged := l.opts.SegmentAge > 0 && l.opts.Now().Sub(time.Unix(0, l.firstTimeLocked())) >= l.opts.SegmentAge
		if aged || l.apos.ltime < cutoff {
			if err := l.sealActiveLocked(); err != nil {
				return 0, err
			}
		}
	}
	segs := *l.segs.Load()
	n := 0
	for _, s := range segs {
		if s == l.active {
			break
		}
		info, err := s.sealedInfo()
		if err != nil || (info.count > 0 && info.ltime >= cutoff) {
			break // a damaged segment is kept for an operator to look at
		}
		if l.opts.Replicated && info.last > l.tip.Load() {
			break // a replicated log keeps what its owner has not published (applied) yet
		}
		n++
	}
	if n == 0 {
		return 0, nil
	}
	rest := append([]*segment(nil), segs[n:]...)
	l.segs.Store(&rest)
	for _, s := range segs[:n] {
		s.removed.Store(true)
		s.release()
	}
	return n, nil
}

// firstTimeLocked returns the arrival time of the active segment's first record.
func (l *Log) firstTimeLocked() int64 {
	t := l.active.bld.Table()
	if t.Len() == 0 {
		return l.apos.ltime
	}
	return t.At(0).Time
}

// applyHidden moves the read horizon to the first record at or after the hidden time, or to
// none when no record is (the position past the last record the caller knows of).
func (l *Log) applyHidden(hidden int64, none uint64) {
	gen := l.cuts.Load()
	seq, ok, err := l.seqAtTime(hidden)
	if err != nil {
		l.logger.Warn("could not place the retention horizon; damaged segments stay visible", "err", err)
		return
	}
	if !ok {
		seq = none
	}
	l.raiseScanned(seq, gen)
}

// raiseScanned raises the horizon to seq, found by a scan of the frames that began when
// l.cuts was gen. In a replicated log a Truncate since then may have cut the frames the
// scan saw (Truncate lowers a horizon above its cut): the raise is then dropped, and the
// next Trim places the horizon again.
func (l *Log) raiseScanned(seq, gen uint64) {
	if !l.opts.Replicated {
		l.raiseHorizon(seq)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cuts.Load() == gen {
		l.raiseHorizon(seq)
	}
}

// raiseHorizon moves the read horizon up to seq; it never moves down (but see Truncate).
func (l *Log) raiseHorizon(seq uint64) {
	for {
		cur := l.horizon.Load()
		if seq <= cur || l.horizon.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// ensureHorizon places the horizon of the cutoff stored in log.meta if that is not done yet;
// every path that reads the horizon or moves the cutoff calls it first. Its fast path is one
// atomic load.
func (l *Log) ensureHorizon() {
	if l.horizonPending.Load() {
		l.placeOnce.Do(l.placeHorizon)
	}
}

// Hide hides the records that arrived before cutoff (Unix nanoseconds) from reads, as Trim
// does, but touches no file: right after open it only records the cutoff, which the first
// read or Trim applies; the next Trim stores it and deletes what it expired. The engine
// calls it when it opens a shard, so that retention applies from the first moment without
// start-up reading sealed segments. The cutoff only moves forward.
func (l *Log) Hide(cutoff int64) {
	for {
		cur := l.hidden.Load()
		if cutoff <= cur || l.hidden.CompareAndSwap(cur, cutoff) {
			break
		}
	}
	if l.horizonPending.Load() {
		return // placeHorizon applies it: it loads hidden after clearing horizonPending
	}
	l.applyHidden(l.hidden.Load(), l.tip.Load()+1)
}

// placeHorizon does, once, what open leaves to the first use of the horizon: it places the
// horizon of the cutoff log.meta stored and sets storedHorizon, both as they would have been
// at open, then applies a later cutoff that Hide recorded. Records appended since open are
// not taken into account: a record at or after openNone did not exist at open, so these
// cutoffs move the horizon to openNone at most (the next Trim applies its cutoff to the
// records after it), and the stored horizon is at most openTip + 1.
func (l *Log) placeHorizon() {
	l.placeCutoff(l.openHidden)
	// Nothing below the oldest record can be hidden: a horizon up to it hides nothing.
	stored := l.horizon.Load()
	if first, ok, err := l.oldest(); err == nil && ok && first <= l.openTip {
		stored = max(stored, first)
	} else if err == nil {
		stored = max(stored, l.openTip+1)
	}
	l.storedHorizon = stored
	h := l.hidden.Load()
	if h > l.openHidden {
		l.placeCutoff(h)
	}
	l.horizonPending.Store(false)
	// A Hide that raised hidden after the load above saw horizonPending still set and left
	// its cutoff to this function.
	if h2 := l.hidden.Load(); h2 != h {
		l.applyHidden(h2, l.tip.Load()+1)
	}
}

// placeCutoff moves the horizon to the first record at or after cutoff among those that
// existed at open, or past them (openNone) when none is; a zero cutoff hides nothing.
func (l *Log) placeCutoff(cutoff int64) {
	if cutoff == 0 {
		return
	}
	gen := l.cuts.Load()
	seq, ok, err := l.seqAtTime(cutoff)
	switch {
	case err != nil:
		l.logger.Warn("could not place the retention horizon; damaged segments stay visible", "err", err)
	case ok:
		l.raiseScanned(min(seq, l.openNone), gen)
	default:
		l.raiseScanned(l.openNone, gen)
	}
}

// Oldest returns the sequence number of the oldest readable record (the trim horizon); ok is
// false when no record is readable.
func (l *Log) Oldest() (seq uint64, ok bool, err error) {
	l.ensureHorizon()
	return l.oldest()
}

// oldest is Oldest under a horizon already placed (or being placed by placeHorizon).
func (l *Log) oldest() (seq uint64, ok bool, err error) {
	v, err := l.readFrom(0, 1, 0)
	if err != nil {
		return 0, false, err
	}
	defer v.Release()
	return v.First, v.Count > 0, nil
}

// UnmapIdle unmaps the sealed segments that no View holds and that no read touched since the
// previous call (a second-chance mark), and returns how many it unmapped. A later read maps
// the segment again, with its index file, and checks the CRCs of its frames from then on.
// Mappings cost no anonymous memory, but each takes a kernel map entry (vm.max_map_count)
// and address space: the owner calls this periodically, next to Trim, so that a long
// retention of many segments keeps only the segments being read mapped.
func (l *Log) UnmapIdle() int {
	l.mu.Lock() // holds the segment list still: refs == 1 is then the list's reference alone
	defer l.mu.Unlock()
	n := 0
	for _, s := range *l.segs.Load() {
		if s.live.Load() || s.used.Swap(false) {
			continue
		}
		s.mu.Lock()
		if s.m != nil && s.refs.Load() == 1 {
			if s.idx != nil {
				s.idx.Close()
				s.idx = nil
			}
			s.m.Unmap()
			s.m, s.bld, s.table = nil, nil, index.Table{}
			s.trustLo, s.trustHi = 0, 0 // re-read from the disk: check CRCs again
			n++
		}
		s.mu.Unlock()
	}
	return n
}
