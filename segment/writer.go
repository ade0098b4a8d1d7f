package segment

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/edsrzf/mmap-go"
	"golang.org/x/sys/unix"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/index"
)

// maxKeptBuffer bounds the encode buffer the writer keeps between appends.
const maxKeptBuffer = 16 << 20

// Append appends a batch of records atomically with respect to other appends: the records get
// consecutive sequence numbers in batch order (written into batch[i].Seq) and one arrival time
// (batch[i].Time). It returns once the batch is as durable as the log's mode promises and
// readable. On error no record of the batch is acknowledged.
//
// Appends from several goroutines are safe; in Sync mode they share fdatasyncs.
func (l *Log) Append(batch []Record) error {
	if len(batch) == 0 {
		return nil
	}
	size, err := batchSize(batch)
	if err != nil {
		return err
	}
	if l.opts.Replicated {
		return fmt.Errorf("%w: Append on a replicated log; its owner assigns positions with AppendAt", ErrReplicated)
	}
	l.mu.Lock()
	ticket, err := l.appendLocked(batch, int64(size), false)
	l.noteSpaceLocked(err)
	l.mu.Unlock()
	if err != nil || l.opts.Durability.Mode != Sync {
		return err
	}
	return l.waitDurable(ticket)
}

// batchSize checks a batch's records against the frame limits and returns the size of their
// frames.
func batchSize(batch []Record) (int, error) {
	size := 0
	for i := range batch {
		r := &batch[i]
		if len(r.Key) > frame.MaxKeyLen || len(r.Data) > frame.MaxDataLen {
			return 0, fmt.Errorf("%w: record %d: key %d bytes (max %d), data %d bytes (max %d)",
				ErrTooLarge, i, len(r.Key), frame.MaxKeyLen, len(r.Data), frame.MaxDataLen)
		}
		size += frame.Size(len(r.Key), len(r.Data))
	}
	return size, nil
}

// appendLocked writes a batch. given tells whether the caller chose the positions and
// arrival times (AppendAt: positions already checked, times raised here to keep them
// monotonic) or the log assigns them (Append). Called with mu held.
func (l *Log) appendLocked(batch []Record, size int64, given bool) (uint64, error) {
	if err := l.refusalLocked(); err != nil {
		return 0, err
	}
	if given {
		if first := batch[0].Seq; first <= l.lastSeq {
			return 0, fmt.Errorf("%w: position %d is not above the log's last, %d", ErrOrder, first, l.lastSeq)
		}
		l.next = batch[0].Seq // the base of a segment rolled for this batch
	}
	// The reservation is renewed before a roll, so that a roll never happens under metadata
	// that still says the log was closed cleanly (an open on a full disk leaves it so).
	if need := l.next + uint64(len(batch)); !given && (need > l.reserved || need < l.next) {
		if err := l.reserveLocked(need); err != nil {
			return 0, err
		}
	}
	if l.active == nil || l.apos.end+size > l.active.capacity {
		if err := l.rollLocked(size); err != nil {
			return 0, err
		}
	}
	now := l.opts.Now().UnixNano()
	if now < l.apos.ltime || given {
		now = l.apos.ltime
	}
	buf := l.wbuf[:0]
	if int64(cap(buf)) < size {
		buf = make([]byte, 0, size)
	}
	seq := l.next
	for i := range batch {
		r := &batch[i]
		if given {
			// Every replica writes the same frames: the time is the proposer's, raised to
			// the previous record's, which all replicas agree on (Raft's log matching).
			now = max(now, r.Time)
			r.Time, seq = now, r.Seq
		} else {
			r.Seq, r.Time = seq, now
		}
		seq++
		buf = frame.Append(buf, r)
	}
	s := l.active
	if _, err := s.f.WriteAt(buf, l.apos.end); err != nil {
		return 0, l.writeErrorLocked(s, err, int64(len(buf)))
	}
	off := l.apos.end
	for i := range batch {
		r := &batch[i]
		s.bld.Observe(index.Entry{Seq: r.Seq, Time: r.Time, Off: off})
		off += int64(frame.Size(len(r.Key), len(r.Data)))
	}
	if l.apos.count == 0 {
		l.apos.first = batch[0].Seq
	}
	l.next = seq
	l.apos.last = seq - 1
	l.lastSeq = seq - 1
	l.apos.count += uint64(len(batch))
	l.apos.ltime = now
	l.apos.end = off
	l.ticket++
	if cap(buf) <= maxKeptBuffer {
		l.wbuf = buf[:0]
	} else {
		l.wbuf = nil
	}
	cp := l.currentPtLocked()
	l.cmu.Lock()
	l.written = cp
	l.cmu.Unlock()
	if l.opts.Durability.Mode != Sync && !l.opts.Replicated {
		l.publish(s, l.apos)
	}
	return l.ticket, nil
}

// writeErrorLocked handles a failed write of n bytes at the write offset. A full disk is
// not sticky: nothing was acknowledged and the write offset has not moved, so the next append
// overwrites whatever part of the batch reached the file. Anything else is.
func (l *Log) writeErrorLocked(s *segment, err error, n int64) error {
	if errors.Is(err, unix.ENOSPC) {
		s.f.ZeroRange(l.apos.end, n)
		return fmt.Errorf("%w: %s offset %d: %v", ErrNoSpace, s.path, l.apos.end, err)
	}
	l.cmu.Lock()
	l.failLocked(fmt.Errorf("write %s offset %d: %w", s.path, l.apos.end, err))
	failed := l.failed
	l.cmu.Unlock()
	return failed
}

// reserveLocked renews the sequence reservation so that numbers below need may be handed out.
func (l *Log) reserveLocked(need uint64) error {
	m := l.meta
	m.reserved = need + l.opts.reserveSpan
	if m.reserved < need {
		return fmt.Errorf("%w: sequence numbers exhausted", ErrFailed)
	}
	m.clean = false
	if err := writeMeta(l.fs, l.dir, m); err != nil {
		if errors.Is(err, unix.ENOSPC) {
			return fmt.Errorf("%w: %s: %v", ErrNoSpace, l.dir, err)
		}
		return fmt.Errorf("segment: renew sequence reservation in %s: %w", l.dir, err)
	}
	l.meta = m
	l.reserved = m.reserved
	return nil
}

// waitDurable returns when the batch with the given ticket is durable: group commit. The
// first waiter to find no sync in progress takes the sync token and syncs everything written
// so far; waiters that arrive meanwhile wait for it, and if their batch came after its
// snapshot, one of them syncs next.
func (l *Log) waitDurable(ticket uint64) error {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	for l.durable < ticket {
		if l.failed != nil {
			return l.failed
		}
		if l.syncing {
			l.ccond.Wait()
			continue
		}
		l.syncing = true // the sync token, released below
		cp := l.written
		l.cmu.Unlock()
		err := l.syncPoint(cp)
		l.cmu.Lock()
		if err := l.releaseSyncLocked("fdatasync", cp, err); err != nil {
			return err
		}
	}
	return nil
}

// intervalSyncer syncs the active segment every period (Interval mode).
func (l *Log) intervalSyncer(period time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		l.acquireSync()
		l.cmu.Lock()
		cp := l.written
		failed := l.failed != nil
		l.cmu.Unlock()
		var done commitPt
		var err error
		if !failed && cp.seg != nil && cp.end > cp.seg.synced.end {
			done, err = cp, l.syncPoint(cp)
		}
		l.releaseSync("fdatasync", done, err)
	}
}

// rollLocked makes room for a batch of size bytes: it creates a new segment first (so that a
// full disk leaves the current one active and unchanged) and then seals the current one.
// When the disk has no room for a segment of the configured size, it tries smaller ones,
// halving down to what the batch needs (at least MinSegmentSize), before it gives up with
// ErrNoSpace: a nearly full disk still takes records, in smaller files.
func (l *Log) rollLocked(size int64) error {
	need := max(MinSegmentSize, alignUp(DataOffset+size))
	capacity := max(l.opts.SegmentSize, need)
	ns, err := l.createSegment(l.nextSegID, l.next, capacity, l.lastSeq)
	for err != nil && errors.Is(err, ErrNoSpace) && capacity > need {
		capacity = max(alignUp(capacity/2), need)
		ns, err = l.createSegment(l.nextSegID, l.next, capacity, l.lastSeq)
	}
	if err != nil {
		return err
	}
	l.noteShrinkLocked(capacity)
	if l.active != nil {
		if err := l.sealActiveLocked(); err != nil {
			ns.release()
			l.fs.Remove(ns.path)
			return err
		}
	}
	l.nextSegID++
	l.active = ns
	l.apos = position{end: DataOffset, ltime: l.apos.ltime}
	old := *l.segs.Load()
	segs := make([]*segment, len(old), len(old)+1)
	copy(segs, old)
	segs = append(segs, ns)
	l.segs.Store(&segs)
	return nil
}

// createSegment creates, preallocates and maps a new active segment crash-safely: the file is
// built under a temporary name, synced, renamed and its directory synced.
func (l *Log) createSegment(id, base uint64, capacity int64, prevLast uint64) (*segment, error) {
	path := l.segPath(base, id)
	tmp := path + tmpSuffix
	f, err := l.fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, l.createError(path, err)
	}
	fail := func(err error) (*segment, error) {
		f.Close()
		l.fs.Remove(tmp)
		return nil, l.createError(path, err)
	}
	if err := f.Allocate(0, capacity); err != nil {
		return fail(err)
	}
	page := make([]byte, DataOffset)
	appendSegHeader(page[:0], segHeader{logID: l.opts.LogID, segID: id, base: base, created: l.opts.Now().UnixNano(), prevLast: prevLast})
	appendCheckpoint(page[slot1Off:slot1Off], checkpoint{gen: 1, durable: DataOffset})
	if _, err := f.WriteAt(page, 0); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := l.fs.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		f.Close()
		return nil, l.createError(path, err)
	}
	m, err := mmap.MapRegion(f.OS(), int(capacity), mmap.RDONLY, 0, 0)
	if err != nil {
		f.Close()
		return nil, l.createError(path, err)
	}
	s := &segment{fs: l.fs, path: path, id: id, base: base, f: f, m: m, capacity: capacity,
		bld: index.NewBuilder(l.opts.IndexInterval, capacity), gen: 1, ckptOff: DataOffset, truncated: -1,
		trustLo: DataOffset, trustHi: capacity} // every frame in it is written by this process
	s.synced = position{end: DataOffset}
	s.readEnd.Store(DataOffset)
	s.live.Store(true)
	s.refs.Store(1)
	return s, nil
}

func (l *Log) createError(path string, err error) error {
	if errors.Is(err, unix.ENOSPC) {
		return fmt.Errorf("%w: create %s: %v", ErrNoSpace, path, err)
	}
	return fmt.Errorf("segment: create %s: %w", path, err)
}

// sealActiveLocked makes the active segment immutable and starts a new one at the next
// append. Its summary is known at once (readers and retention use it); the disk work — sync,
// sealed checkpoint, truncation of the unused tail, index file — is done by sealFile:
//
//   - in Sync mode here, under mu: the data is already synced by group commit, so this costs
//     two small fdatasyncs, and the appenders waiting on the segment are acknowledged (and
//     its last records published) when it gives the sync token back;
//   - in Interval and None modes by whoever next holds the sync token (the sealer goroutine,
//     the interval syncer before it syncs the new segment, or Close), so that appends are not
//     stalled by the fdatasync of a whole segment of unsynced data. A crash before that
//     leaves the segment unsealed on disk; recovery seals it, and if its tail was torn it
//     drops the later segments too, so that the loss stays a suffix.
//
// Called with mu held.
func (l *Log) sealActiveLocked() error {
	s := l.active
	cp := l.currentPtLocked()
	if l.opts.Durability.Mode == Sync {
		l.acquireSync()
		if err := l.releaseSync("seal", cp, l.sealFile(s, cp.position)); err != nil {
			return err
		}
	} else {
		s.acquire() // held by the job until the disk work is done
		l.cmu.Lock()
		l.pending = append(l.pending, sealJob{s: s, p: cp.position})
		l.cmu.Unlock()
		select {
		case l.sealKick <- struct{}{}:
		default:
		}
	}
	// The segment is now read like any sealed one, through its summary; the mapping and the
	// builder's table stay valid for readers holding references.
	s.mu.Lock()
	s.info = cp.position
	s.infoLoaded = true
	s.table = s.bld.Table()
	s.used.Store(true) // just written: consumers close behind are about to read it
	s.live.Store(false)
	if l.opts.Replicated {
		// A sealed segment of a replicated log is readable to its end; Read and SeqAtTime
		// stop at the published tip (clipTo), which the owner moves with Publish.
		s.readEnd.Store(cp.end)
	}
	s.mu.Unlock()
	// Nothing to publish: in Sync mode the release of the token above, or an earlier one,
	// published cp; in the other modes the writer did after each write.
	l.active = nil
	return nil
}

// sealJob is a segment waiting for the disk work of its seal, and its frames.
type sealJob struct {
	s *segment
	p position
}

// sealFile does the disk work of sealing s with frames p: fdatasync of the data, the sealed
// checkpoint, truncation of the preallocated tail, fdatasync, and the index file. The caller
// holds the sync token.
func (l *Log) sealFile(s *segment, p position) error {
	err := s.f.Sync()
	if err == nil {
		s.synced = p
		err = s.writeCheckpoint(p, true)
	}
	if err == nil {
		err = s.f.Truncate((p.end + DataOffset - 1) &^ (DataOffset - 1))
	}
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		return err
	}
	h := indexHeader(s, p, l.opts.IndexInterval)
	if err := index.Write(l.fs, idxPath(s.path), h, s.bld.Table()); err != nil {
		l.logger.Warn("could not store a sealed segment's index; it is rebuilt when read", "file", s.path, "err", err)
	}
	return nil
}

// sealPending does the disk work of every pending seal, oldest first. The caller holds the
// sync token. A failure is sticky, and the remaining jobs are dropped (their segments stay
// unsealed on disk, which recovery handles).
func (l *Log) sealPending() error {
	for {
		l.cmu.Lock()
		if len(l.pending) == 0 {
			l.cmu.Unlock()
			return nil
		}
		job := l.pending[0]
		failed := l.failed
		l.cmu.Unlock()
		var err error
		if failed == nil {
			err = l.sealFile(job.s, job.p)
		}
		l.cmu.Lock()
		l.pending = l.pending[1:]
		if err != nil {
			l.failLocked(fmt.Errorf("seal %s: %w", job.s.path, err))
		}
		l.cmu.Unlock()
		job.s.release()
		if err != nil {
			return err
		}
	}
}

// sealer does pending seals in the background (Interval and None modes).
func (l *Log) sealer(kick <-chan struct{}, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-stop:
			return
		case <-kick:
		}
		l.acquireSync()
		l.sealPending() // a failure is recorded by sealPending itself
		l.releaseSync("", commitPt{}, nil)
	}
}
