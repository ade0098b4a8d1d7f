package segment

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/sluice-streams/sluice/index"
	"github.com/sluice-streams/sluice/internal/vfs"
)

// Log is one shard's log: an ordered set of segment files in a directory.
//
// Appends are serialised by mu; reads take no lock (they load the immutable segment list and
// each segment's published end with atomics).
type Log struct {
	_      noCopy
	dir    string
	opts   Options
	fs     vfs.FS
	logger *slog.Logger

	// segs is the current segment list, oldest first; the active segment, if any, is last.
	// Replaced (never modified) under mu; read by anyone.
	segs atomic.Pointer[[]*segment]

	mu     sync.Mutex // the writer lock: guards every field down to cmu
	active *segment   // nil until the first append after open or after a retention roll
	// apos is the active segment's frames as written (not necessarily durable or readable
	// yet), except apos.ltime: the arrival time of the last record appended to the log, which
	// lies in an earlier segment while the active one is empty. Arrival times never go below it.
	apos      position
	next      uint64 // next sequence number to hand out
	lastSeq   uint64 // last sequence number written (0: none), recorded in new segments' headers
	reserved  uint64 // no number at or above it was handed out before; renewed in meta
	nextSegID uint64
	ticket    uint64 // counts appended batches
	wbuf      []byte
	corrupt   error // corruption found at open: appends are refused
	closed    bool
	meta      meta
	// storedHorizon is the read horizon when the retention cutoff was last stored in
	// log.meta: Trim stores the cutoff again only when it hides more records than that.
	storedHorizon uint64
	stop          chan struct{} // closes the interval syncer and the sealer
	syncDone      chan struct{}
	sealKick      chan struct{} // wakes the sealer (Interval and None modes)
	sealDone      chan struct{}

	cmu     sync.Mutex // the commit lock, taken after mu when both are held
	ccond   *sync.Cond // signals changes of syncing, durable and failed
	syncing bool       // the sync token: whoever set it owns fsyncs and checkpoint writes
	written commitPt   // last batch written (set by the writer under mu and cmu)
	pending []sealJob  // seals whose disk work is not done yet (Interval and None modes)
	durable uint64     // tickets up to this one are durable (sync mode)
	failed  error      // sticky write or sync failure

	failedFlag atomic.Bool                   // mirrors failed != nil for a lock-free check
	tip        atomic.Uint64                 // last readable sequence number, 0 if none
	tipTime    atomic.Int64                  // arrival time of that record (Unix ns), 0 if none
	horizon    atomic.Uint64                 // reads start at or above this number (retention)
	hidden     atomic.Int64                  // records that arrived before this time are hidden
	notify     atomic.Pointer[chan struct{}] // closed when new records become readable
}

// commitPt describes the log after a batch was written: the active segment, its frames up to
// and including the batch, and the batch's ticket.
type commitPt struct {
	seg *segment
	position
	ticket uint64
}

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// Tip returns the sequence number of the last readable record, 0 if the log is empty.
func (l *Log) Tip() uint64 { return l.tip.Load() }

// TipTime returns the arrival time (Unix nanoseconds) of the last readable record, 0 if the
// log is empty. Readers compute how far behind they are from it (MillisBehindLatest).
func (l *Log) TipTime() int64 { return l.tipTime.Load() }

// Changed returns a channel that is closed when records appended after the call become
// readable. Take the channel before checking Tip, so that no append is missed. It does not
// allocate unless no channel is pending.
func (l *Log) Changed() <-chan struct{} {
	for {
		if p := l.notify.Load(); p != nil {
			return *p
		}
		ch := make(chan struct{})
		if l.notify.CompareAndSwap(nil, &ch) {
			return ch
		}
	}
}

// publishLocked makes frames of seg up to end (last sequence number last) readable and wakes
// waiters. Called by the goroutine that owns publication: the writer under mu in the Interval
// and None modes, the sync token holder in Sync mode.
func (l *Log) publish(seg *segment, p position) {
	for {
		cur := seg.readEnd.Load()
		if p.end <= cur || seg.readEnd.CompareAndSwap(cur, p.end) {
			break
		}
	}
	for {
		cur := l.tip.Load()
		if p.last <= cur || l.tip.CompareAndSwap(cur, p.last) {
			break
		}
	}
	for {
		cur := l.tipTime.Load()
		if p.ltime <= cur || l.tipTime.CompareAndSwap(cur, p.ltime) {
			break
		}
	}
	if p := l.notify.Swap(nil); p != nil {
		close(*p)
	}
}

// fail records a sticky failure. Called with cmu held.
func (l *Log) failLocked(err error) {
	if l.failed == nil {
		l.failed = fmt.Errorf("%w: %w", ErrFailed, err)
		l.failedFlag.Store(true)
		l.logger.Error("log failed; appends refused until reopened", "dir", l.dir, "err", err)
	}
	l.ccond.Broadcast()
}

// Err returns why the log refuses appends: corruption found when it was opened, or a sticky
// write or sync failure. nil when it accepts them.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refusalLocked()
}

func (l *Log) refusalLocked() error {
	if l.closed {
		return ErrClosed
	}
	if l.corrupt != nil {
		return l.corrupt
	}
	if l.failedFlag.Load() {
		l.cmu.Lock()
		defer l.cmu.Unlock()
		return l.failed
	}
	return nil
}

// acquireSync takes the sync token, waiting for a sync in progress. The holder gives it back
// by clearing syncing and broadcasting ccond under cmu, together with what its sync achieved.
func (l *Log) acquireSync() {
	l.cmu.Lock()
	for l.syncing {
		l.ccond.Wait()
	}
	l.syncing = true
	l.cmu.Unlock()
}

// syncPoint makes cp durable: it writes seg's checkpoint (recording the previous durable
// point, which is certain) and fdatasyncs the file. The caller holds the sync token.
//
// The checkpoint lags one sync behind on purpose: a checkpoint written together with data
// cannot claim that data durable, because the disk may persist the checkpoint's page and not
// the data's. Recovery treats damage before the checkpoint as corruption and damage after it
// as a torn tail.
func (l *Log) syncPoint(cp commitPt) error {
	// Older segments are sealed (made durable) before the newer one claims anything.
	if err := l.sealPending(); err != nil {
		return err
	}
	s := cp.seg
	if s == nil || s.f == nil {
		return nil
	}
	if s.synced.end > 0 && s.synced.end != s.lastCkpt() {
		if err := s.writeCheckpoint(s.synced, false); err != nil {
			return err
		}
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	if cp.end > s.synced.end {
		s.synced = cp.position
	}
	return nil
}

// lastCkpt is the durable offset of the checkpoint last written. Sync token held.
func (s *segment) lastCkpt() int64 { return s.ckptOff }

// writeCheckpoint writes the next checkpoint generation for point p. Sync token held.
func (s *segment) writeCheckpoint(p position, sealed bool) error {
	s.gen++
	c := p.checkpointAt(s.gen, sealed)
	b := appendCheckpoint(s.ckptBuf[:0], c)
	if _, err := s.f.WriteAt(b, slotOffset(s.gen)); err != nil {
		return err
	}
	s.ckptOff = c.durable
	return nil
}

// Close syncs the log, records a clean shutdown and releases the log's references. Views
// still held stay valid; their segments are unmapped when the last one is released.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	stop, done, sealDone := l.stop, l.syncDone, l.sealDone
	l.mu.Unlock()
	if stop != nil {
		close(stop)
		if done != nil {
			<-done
		}
		<-sealDone
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.closeActiveLocked()
	segs := l.segs.Swap(&[]*segment{})
	for _, s := range *segs {
		s.release()
	}
	if p := l.notify.Swap(nil); p != nil {
		close(*p)
	}
	return err
}

// closeActiveLocked syncs the active segment, stores its index and writes the clean marker.
// Nothing is marked clean after a failure or corruption: the next open then scans.
func (l *Log) closeActiveLocked() error {
	l.acquireSync()
	err := l.sealPending()
	l.cmu.Lock()
	l.syncing = false
	l.ccond.Broadcast()
	l.dropPendingLocked() // left by a failure: released, not sealed
	failed := l.failed
	l.cmu.Unlock()
	if failed != nil || l.corrupt != nil || err != nil {
		return failed
	}
	m := l.meta
	m.clean = true
	m.hidden = l.hidden.Load()
	m.cseg = 0
	if s := l.active; s != nil {
		l.acquireSync()
		cp := l.currentPtLocked()
		err := s.f.Sync()
		if err == nil {
			s.synced = cp.position
			err = s.writeCheckpoint(cp.position, false)
		}
		if err == nil {
			err = s.f.Sync()
		}
		l.cmu.Lock()
		l.syncing = false
		if err != nil {
			l.failLocked(fmt.Errorf("close %s: %w", s.path, err))
		} else if cp.ticket > l.durable {
			l.durable = cp.ticket // appenders still waiting are acknowledged by this sync
			l.publish(s, cp.position)
		}
		l.ccond.Broadcast()
		l.cmu.Unlock()
		if err != nil {
			return fmt.Errorf("segment: close %s: %w", s.path, err)
		}
		h := indexHeader(s, cp.position, l.opts.IndexInterval)
		if err := index.Write(l.fs, idxPath(s.path), h, s.bld.Table()); err != nil {
			l.logger.Warn("could not store the active segment's index; the next open scans", "file", s.path, "err", err)
		}
		m.cseg, m.cend, m.clast, m.ctime = s.id, cp.end, cp.last, cp.ltime
	}
	if err := writeMeta(l.fs, l.dir, m); err != nil {
		return fmt.Errorf("segment: close %s: %w", l.dir, err)
	}
	return nil
}

// dropPendingLocked forgets pending seals without doing them, releasing their segments.
// Called with cmu held.
func (l *Log) dropPendingLocked() {
	for _, job := range l.pending {
		job.s.release()
	}
	l.pending = nil
}

// currentPtLocked describes the active segment now. Called with mu held.
func (l *Log) currentPtLocked() commitPt {
	return commitPt{seg: l.active, position: l.apos, ticket: l.ticket}
}

func (l *Log) segPath(base, id uint64) string { return filepath.Join(l.dir, segName(base, id)) }

func errorsIs(err, target error) bool { return errors.Is(err, target) }
