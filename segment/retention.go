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
	seq, ok, err := l.seqAtTime(hidden)
	if err != nil {
		l.logger.Warn("could not place the retention horizon; damaged segments stay visible", "err", err)
		return
	}
	if !ok {
		seq = none
	}
	for {
		cur := l.horizon.Load()
		if seq <= cur || l.horizon.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// Oldest returns the sequence number of the oldest readable record (the trim horizon); ok is
// false when no record is readable.
func (l *Log) Oldest() (seq uint64, ok bool, err error) {
	v, err := l.Read(0, 1, 0)
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
