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
// Locks, in the order they are taken (never the reverse):
//
//  1. mu, the writer lock. It serialises Append, the roll and seal of the active segment,
//     Trim, UnmapIdle, Err and Close, and guards the fields from active to sealDone: the
//     writer's state (active, apos, next, lastSeq, reserved, nextSegID, ticket, wbuf), the
//     metadata, corrupt and closed. The segment list is replaced only under it.
//  2. The sync token (syncing; see acquireSync), held across fdatasyncs, checkpoint writes
//     and seals. It is not a mutex: it is taken and given back under cmu, and its holder
//     runs without cmu. mu may be held while taking it; its holder never takes mu.
//  3. cmu, the commit lock, guarding the fields from ccond to failed: the token itself, the
//     last commit point written, pending seals, the durable ticket and the sticky failure.
//     The writer takes it under mu to record each batch (written); group commit waits on
//     ccond under it.
//
// A segment's own mu (lazily loaded state of a sealed segment) is a leaf: taken under any of
// the above, and nothing is taken while holding it.
//
// Publication: the readable end of the active segment (segment.readEnd), tip and tipTime are
// moved forward only by publish, called by one goroutine at a time: in Interval and None
// modes the writer, under mu, after each write; in Sync mode the holder of the sync token
// when it gives the token back after a sync (releaseSyncLocked, under cmu). Open sets them
// before the log is shared. A sealed segment's readEnd is set once, when its summary is
// loaded. The retention fields (hidden, horizon) only move forward, by compare-and-swap (a
// replicated log's Truncate lowers a horizon above its cut to the first position cut, never
// to the tip or below).
//
// Reads take no lock: they load the immutable segment list, the tip and each segment's
// readEnd with atomics. publish stores readEnd before tip, and a roll stores the new list
// before anything in the new segment is published, so a reader that loads tip first sees
// every record up to it.
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
	// full is the current full-disk episode: appends refused with ErrNoSpace since the
	// first one, counted so that only the first and the recovery are logged (space.go).
	full fullEpisode
	meta meta
	// storedHorizon is the read horizon when the retention cutoff was last stored in
	// log.meta: Trim stores the cutoff again only when it hides more records than that.
	// Written by placeHorizon (inside placeOnce, which Trim enters before it reads this),
	// then by Trim under mu.
	storedHorizon uint64
	stop          chan struct{} // closes the interval syncer and the sealer
	syncDone      chan struct{}
	sealKick      chan struct{} // wakes the sealer (Interval and None modes)
	sealDone      chan struct{}

	cmu     sync.Mutex // the commit lock, taken after mu when both are held
	ccond   *sync.Cond // signals changes of syncing, durable and failed
	syncing bool       // the sync token (see acquireSync): whoever set it owns syncs and seals
	written commitPt   // last batch written (set by the writer under mu and cmu)
	pending []sealJob  // seals whose disk work is not done yet (Interval and None modes)
	durable uint64     // tickets up to this one are durable (sync mode)
	// durableLast is the last position known durable (sync mode): what Publish may make
	// readable in replicated mode. Raised with durable; lowered only by Truncate.
	durableLast uint64
	failed      error // sticky write or sync failure

	failedFlag atomic.Bool                   // mirrors failed != nil for a lock-free check
	tip        atomic.Uint64                 // last readable sequence number, 0 if none
	tipTime    atomic.Int64                  // arrival time of that record (Unix ns), 0 if none
	horizon    atomic.Uint64                 // reads start at or above this number (retention)
	cuts       atomic.Uint64                 // Truncates so far (replicated), to drop raises of older scans
	hidden     atomic.Int64                  // records that arrived before this time are hidden
	notify     atomic.Pointer[chan struct{}] // closed when new records become readable

	// The read horizon of the retention cutoff log.meta stored is placed lazily: open only
	// records the cutoff and the log's end (openHidden, openTip, openNone, written before
	// the log is shared, then read-only) and sets horizonPending; the first Read, SeqAtTime,
	// Oldest or Trim places it, with the cutoff Hide raised meanwhile (placeHorizon, run
	// once by placeOnce; the others wait for it) and clears horizonPending. Placing it looks up the cutoff among the sealed segments
	// and reads the oldest record, which start-up would otherwise do for every shard
	// (TestOpenReadsOnlyActiveSegments).
	horizonPending atomic.Bool
	placeOnce      sync.Once
	openHidden     int64
	openTip        uint64
	openNone       uint64
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

// publish makes the frames of seg up to p.end readable, moves the tip to p.last (arrival time
// p.ltime) and wakes the waiters on Changed. The values only move forward. It is called by
// one goroutine at a time, the one that owns publication (see Log): in Interval and None
// modes the writer, under mu, after each write (appendLocked); in Sync mode the holder of
// the sync token, under cmu, when a sync it gives back made a batch durable
// (releaseSyncLocked); in replicated mode Publish, under mu.
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

// failLocked records a sticky failure. Called with cmu held.
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

// The sync token (Log.syncing). Its contract:
//
//   - At most one goroutine holds it. It is taken under cmu, by acquireSync or, for group
//     commit, by waitDurable, which already holds cmu; a goroutine that finds it taken waits
//     on ccond.
//   - Only its holder fdatasyncs segment files, writes checkpoint slots, does the disk work
//     of seals (sealFile, sealPending) and touches a segment's sync state (gen, ckptOff,
//     synced, ckptBuf). It does that work without cmu.
//   - Only its holder advances durable and, in Sync mode, publishes: both happen when it
//     gives the token back.
//   - It is given back in exactly one place, releaseSyncLocked, which records what the
//     holder's work achieved (a sticky failure, or the tickets now durable), clears syncing
//     and wakes every waiter, all under cmu, so that a waiter sees the outcome and the free
//     token together. Every path that takes the token reaches releaseSyncLocked.
//   - Lock order: mu may be held while taking it (a Sync-mode seal, Close); cmu is taken
//     after both; the holder never takes mu.

// acquireSync takes the sync token, waiting for a sync in progress.
func (l *Log) acquireSync() {
	l.cmu.Lock()
	for l.syncing {
		l.ccond.Wait()
	}
	l.syncing = true
	l.cmu.Unlock()
}

// releaseSync gives the sync token back; see releaseSyncLocked.
func (l *Log) releaseSync(what string, done commitPt, err error) error {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	return l.releaseSyncLocked(what, done, err)
}

// releaseSyncLocked gives the sync token back, the one place that does. err is the outcome
// of the holder's work on done.seg, described by what ("fdatasync", "seal" …): a failure
// becomes sticky and is returned. On success the batches up to done.ticket are durable and,
// in Sync mode, done is published: appenders are acknowledged only with their records
// readable. done is the zero commitPt when the work made no batch durable. Called with cmu
// held by the holder of the token.
func (l *Log) releaseSyncLocked(what string, done commitPt, err error) error {
	if !l.syncing {
		panic("BUG: sync token released by a goroutine that does not hold it")
	}
	l.syncing = false
	defer l.ccond.Broadcast()
	if err != nil {
		l.failLocked(fmt.Errorf("%s %s: %w", what, done.seg.path, err))
		return l.failed
	}
	if done.ticket > l.durable {
		l.durable = done.ticket
		l.durableLast = max(l.durableLast, done.last)
		// A replicated log is published by its owner (Publish), never here.
		if l.opts.Durability.Mode == Sync && !l.opts.Replicated {
			l.publish(done.seg, done.position)
		}
	}
	return nil
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
	err := l.sealPending() // a failure is recorded, and released below
	l.cmu.Lock()
	l.dropPendingLocked() // left by a failure: released, not sealed
	failed := l.failed
	l.releaseSyncLocked("", commitPt{}, nil)
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
		l.releaseSync("close", cp, err) // appenders still waiting are acknowledged by this sync
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
