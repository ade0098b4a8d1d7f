package segment

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"

	"github.com/edsrzf/mmap-go"

	"github.com/sluice-streams/sluice/frame"
)

// Replicated mode (Options.Replicated). The log stores what a replication protocol decided;
// its owner (one Raft group's storage) drives it:
//
//   - AppendAt writes records at positions the owner chose: strictly increasing, above the
//     log's last, gaps allowed. It returns once they are as durable as the log's mode
//     promises, without making them readable.
//   - Publish(pos) makes the records at or below pos readable (Read, Tip, Changed, SeqAtTime,
//     Oldest), never beyond what is durable here. The published tip never moves back.
//   - Truncate(after) cuts every record above after (a follower's conflicting suffix). It is
//     refused below the published tip and is crash-honest: the cut point is stored in
//     log.meta first, and Open finishes a cut a crash interrupted before reading any segment,
//     so the records it cut never come back. A retention horizon above the cut comes down
//     to it: the records written there next are judged by the next Trim.
//
// Retention (Hide, Trim, the cutoff log.meta stores) places the horizon among every frame
// written, published or not: a reopened log publishes nothing until its owner does, and
// a horizon placed by its published frames alone would hide what it held.
//
// A replicated log opens with nothing readable. The files are a single-node log's (the
// frames carry their positions); sealed segments are read to their end and clipped at the
// published tip, the active one is read up to what Publish moved its read end to.

// AppendAt appends a batch whose positions (batch[i].Seq) the caller chose: strictly
// increasing and above the log's last position. Arrival times (batch[i].Time) are the
// caller's, raised where needed so that they never decrease along the log; the times
// written are stored back into batch[i].Time. It returns once the batch is as durable as
// the log's mode promises (Sync: fdatasync); nothing becomes readable until Publish. On
// error nothing of the batch is acknowledged. Replicated mode only.
func (l *Log) AppendAt(batch []Record) error {
	wait, err := l.AppendAtNoWait(batch)
	if err != nil || wait == nil {
		return err
	}
	return wait()
}

// AppendAtNoWait is AppendAt without waiting for durability: it returns once the batch is
// written, with wait, which returns once the batch is as durable as the log's mode promises
// (Sync: it fdatasyncs, or waits for an fdatasync covering the batch, as AppendAt does). wait
// is nil when there is nothing to wait for (an empty batch, a mode other than Sync). A
// caller writing to several logs calls AppendAtNoWait on each, then the waits, concurrently:
// one fdatasync per file for all of them (multiraft's group commit). Until wait returns nil
// nothing of the batch is acknowledged; a failed wait is sticky, as a failed AppendAt is.
func (l *Log) AppendAtNoWait(batch []Record) (wait func() error, err error) {
	if !l.opts.Replicated {
		return nil, fmt.Errorf("%w: AppendAt on a single-node log", ErrReplicated)
	}
	if len(batch) == 0 {
		return nil, nil
	}
	for i := 1; i < len(batch); i++ {
		if batch[i].Seq <= batch[i-1].Seq {
			return nil, fmt.Errorf("%w: record %d has position %d after %d", ErrOrder, i, batch[i].Seq, batch[i-1].Seq)
		}
	}
	if batch[0].Seq == 0 {
		return nil, fmt.Errorf("%w: position 0", ErrOrder)
	}
	size, err := batchSize(batch)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	ticket, err := l.appendLocked(batch, int64(size), true)
	l.noteSpaceLocked(err)
	l.mu.Unlock()
	if err != nil || l.opts.Durability.Mode != Sync {
		return nil, err
	}
	return func() error { return l.waitDurable(ticket) }, nil
}

// LastPos returns the position of the last record written (published or not), 0 if none.
func (l *Log) LastPos() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastSeq
}

// Publish makes the records at or below pos readable, as far as they are durable here (in
// Sync mode, made durable by an fdatasync; in the other modes, written). The tip becomes the
// last such record; it never moves back. Replicated mode only.
func (l *Log) Publish(pos uint64) error {
	if !l.opts.Replicated {
		return fmt.Errorf("%w: Publish on a single-node log", ErrReplicated)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	limit := l.lastSeq
	if l.opts.Durability.Mode == Sync {
		l.cmu.Lock()
		limit = l.durableLast
		l.cmu.Unlock()
	}
	pos = min(pos, limit)
	if pos <= l.tip.Load() {
		return nil
	}
	segs := *l.segs.Load()
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		if s.base > pos {
			continue
		}
		p, err := l.lastAtOrBelow(s, pos)
		if err != nil {
			return err
		}
		if p.count == 0 {
			continue // pos lies in a gap before this segment's first record
		}
		if p.last > l.tip.Load() {
			l.publish(s, p)
		}
		return nil
	}
	return nil
}

// lastAtOrBelow finds, in segment s, the last frame at or below pos: p.end is the offset
// past it, p.last and p.ltime its position and time, p.count 1 (0: none). Called with mu
// held, which keeps the active segment's frames still and sealed mappings in place.
func (l *Log) lastAtOrBelow(s *segment, pos uint64) (p position, err error) {
	var m []byte
	var limit, off int64
	if s == l.active {
		m, limit = s.m, l.apos.end
		off = max(s.readEnd.Load(), DataOffset) // published frames are at or below the tip
		if e, ok := s.bld.Table().Prefix(limit).SeekSeq(pos); ok && e.Off > off {
			off = e.Off
		}
	} else {
		mm, table, err := s.view()
		if err != nil {
			return p, err
		}
		m, limit = mm, min(s.readEnd.Load(), int64(len(mm)))
		off = DataOffset
		if e, ok := table.Prefix(limit).SeekSeq(pos); ok {
			off = e.Off
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: memory fault at %d: %v", ErrCorrupt, s.path, off, r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	for off < limit {
		h, err := s.frameAt(m, off, limit)
		if err != nil {
			return p, s.damage(off, limit, err)
		}
		if h.Len == 0 || h.Seq > pos {
			break
		}
		off += int64(frame.Align(h.Len))
		p = position{end: off, last: h.Seq, ltime: h.Time, count: 1}
	}
	return p, nil
}

// clipTo drops the records above last from the view (a replicated log's unpublished
// frames), releasing it if none is left.
func (v *View) clipTo(last uint64) {
	b := v.b
	var off, lastOff, payload, count int
	for off+frame.HeaderSize <= len(b) {
		h, err := frame.DecodeHeader(b[off:])
		if err != nil || h.Len == 0 || h.Seq > last {
			break
		}
		lastOff = off
		count++
		payload += h.Len - frame.HeaderSize
		off += min(frame.Align(h.Len), len(b)-off)
	}
	if count == 0 {
		v.Release()
		return
	}
	h, _ := frame.DecodeHeader(b[lastOff:])
	v.b, v.Count, v.Last, v.LastTime, v.Next, v.Payload = b[:off:off], count, h.Seq, h.Time, h.Seq+1, payload
}

// Truncate cuts every record above after: a follower's uncommitted suffix that conflicts
// with its leader's log. It is refused (ErrBelowTip) when after is below the published tip:
// published records are never cut. Crash-honest: the cut point is made durable in log.meta
// before any file changes, segments wholly above it are removed and the segment holding it is
// cut (frames zeroed, a new checkpoint at the cut, synced), and only then is the pending cut
// cleared; Open finishes a cut a crash interrupted. A failure on the way is sticky (ErrFailed):
// reopen the log, which finishes the cut. Truncate must not run concurrently with an AppendAt
// of records it cuts (the owner calls both from one goroutine). Replicated mode only.
func (l *Log) Truncate(after uint64) error {
	if !l.opts.Replicated {
		return fmt.Errorf("%w: Truncate on a single-node log", ErrReplicated)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.refusalLocked(); err != nil {
		return err
	}
	if tip := l.tip.Load(); after < tip {
		return fmt.Errorf("%w: cut after %d, published tip %d", ErrBelowTip, after, tip)
	}
	if after >= l.lastSeq {
		return nil
	}
	// A horizon placed among the frames being cut (a retention cutoff applied to frames not
	// published yet) must not hide what is written at their positions next. Nothing above
	// the tip was readable, so nothing hidden reappears; the next Trim applies the cutoff to
	// the new frames. A scan that began before the cut no longer raises it (raiseScanned).
	l.cuts.Add(1)
	for {
		cur := l.horizon.Load()
		if cur <= after+1 || l.horizon.CompareAndSwap(cur, after+1) {
			break
		}
	}
	l.acquireSync()
	err := l.truncateLocked(after)
	l.cmu.Lock()
	defer l.cmu.Unlock()
	if err != nil {
		return l.releaseSyncLocked("truncate", commitPt{seg: &segment{path: l.dir}}, err)
	}
	// Everything left on disk was synced by the cut: the batches written so far are durable.
	l.ticket++
	cp := l.currentPtLocked()
	l.written = cp
	l.durableLast = l.lastSeq
	return l.releaseSyncLocked("truncate", cp, nil)
}

// truncateLocked does Truncate's work. Called with mu and the sync token held.
func (l *Log) truncateLocked(after uint64) error {
	if err := l.sealPending(); err != nil {
		return err
	}
	m := l.meta
	m.clean, m.cseg, m.cend, m.clast, m.ctime = false, 0, 0, 0, 0
	m.cutPending, m.cut = true, after
	if err := writeMeta(l.fs, l.dir, m); err != nil {
		return err
	}
	l.meta = m
	// Take the segments above the cut out of the list. Readers still holding them find no
	// published frame there; their files are removed by the cut, not when the last
	// reference goes (a new segment may soon take the same name). The newest segment kept
	// stays listed, so that its published frames stay readable, until it is reopened from
	// disk after the cut.
	old := *l.segs.Load()
	keep := make([]*segment, 0, len(old))
	for _, s := range old {
		if s.base <= after {
			keep = append(keep, s)
		}
	}
	l.segs.Store(&keep)
	for _, s := range old[len(keep):] {
		s.release()
	}
	l.active, l.apos = nil, position{}
	if err := cutFiles(l, after); err != nil {
		return err
	}
	m.cutPending, m.cut = false, 0
	if err := writeMeta(l.fs, l.dir, m); err != nil {
		return err
	}
	l.meta = m
	return l.reopenNewest(keep)
}

// reopenNewest rebuilds the writer's state after a cut. listed is the segment list; its
// newest segment is opened again from disk and replaces the old one in a new list, and the
// old one is released. On failure the list is left as it is. Called with mu and the sync
// token held.
func (l *Log) reopenNewest(listed []*segment) (err error) {
	keep := slices.Clone(listed)
	l.nextSegID, l.lastSeq = 1, 0
	n := len(keep)
	if n > 0 {
		s := keep[n-1]
		fresh := &segment{fs: l.fs, path: s.path, id: s.id, base: s.base, truncated: -1}
		fresh.refs.Store(1)
		keep[n-1] = fresh
		defer func() {
			if err != nil {
				l.active = nil
				fresh.release()
			}
		}()
		if ok, err := l.recoverNewest(fresh, false); err != nil || !ok {
			return fmt.Errorf("segment: reopen %s after a cut: %v", s.path, err)
		}
		l.nextSegID = s.id + 1
	}
	if l.active != nil && l.apos.count > 0 {
		l.lastSeq = l.apos.last
	}
	for i := n - 1; i >= 0 && l.lastSeq == 0; i-- {
		if keep[i] == l.active {
			continue
		}
		info, err := keep[i].sealedInfo()
		if err != nil {
			return err
		}
		if info.count > 0 {
			l.lastSeq = info.last
			l.apos.ltime = info.ltime
		}
	}
	l.next = l.lastSeq + 1
	if s := l.active; s != nil {
		// The reopened active segment is readable up to the published tip, as before.
		s.readEnd.Store(DataOffset)
		p, err := l.lastAtOrBelow(s, l.tip.Load())
		if err != nil {
			return err
		}
		if p.count > 0 {
			s.readEnd.Store(p.end)
		}
	}
	l.segs.Store(&keep)
	if n > 0 {
		listed[n-1].release()
	}
	return nil
}

// finishCut finishes a cut recorded in log.meta (a crash interrupted Truncate). Called by
// Open before it reads any segment.
func (l *Log) finishCut() error {
	l.logger.Warn("finishing a cut a crash interrupted", "after", l.meta.cut)
	if err := cutFiles(l, l.meta.cut); err != nil {
		return err
	}
	m := l.meta
	m.cutPending, m.cut = false, 0
	if err := writeMeta(l.fs, l.dir, m); err != nil {
		return err
	}
	l.meta = m
	return nil
}

// cutFiles removes every record above after from the segment files in l.dir: segment files
// whose base is above it go (newest first, so that a crash leaves consecutive ids), and the
// newest one left is cut by cutSegmentFile. It works on the files alone and may be repeated:
// a cut already done changes nothing.
func cutFiles(l *Log, after uint64) error {
	entries, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return err
	}
	type segName struct{ base, id uint64 }
	var names []segName
	for _, e := range entries {
		if base, id, ok := parseSegName(e.Name()); ok {
			names = append(names, segName{base, id})
		}
	}
	slices.SortFunc(names, func(a, b segName) int {
		if a.base != b.base {
			return cmpU64(a.base, b.base)
		}
		return cmpU64(a.id, b.id)
	})
	removed := false
	for len(names) > 0 && names[len(names)-1].base > after {
		n := names[len(names)-1]
		path := l.segPath(n.base, n.id)
		if err := l.fs.Remove(path); err != nil && !isNotExist(err) {
			return err
		}
		if err := l.fs.Remove(idxPath(path)); err != nil && !isNotExist(err) {
			return err
		}
		names, removed = names[:len(names)-1], true
	}
	if removed {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return err
		}
	}
	if len(names) == 0 {
		return nil
	}
	n := names[len(names)-1]
	return l.cutSegmentFile(l.segPath(n.base, n.id), after)
}

// cutSegmentFile cuts the frames above after from one segment file: they are zeroed, the file
// synced, and a new checkpoint generation (sealed if the segment was) records the frames
// left, then the file is synced again and its index file, now stale, removed. A file that
// holds nothing above after is left as it is. Damage before the durable checkpoint, below the
// cut, is corruption: the file is left alone and the error wraps ErrCorrupt.
func (l *Log) cutSegmentFile(path string, after uint64) (err error) {
	f, err := l.fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return err
	}
	page, err := readHeaderPage(f)
	if err != nil {
		return err
	}
	ckpt, ok := bestCheckpoint(page)
	if !ok || size < DataOffset {
		return fmt.Errorf("%w: %s: no valid checkpoint; cannot cut after %d", ErrCorrupt, path, after)
	}
	m, err := mmap.MapRegion(f.OS(), int(size), mmap.RDONLY, 0, 0)
	if err != nil {
		return fmt.Errorf("segment: map %s: %w", path, err)
	}
	defer m.Unmap()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: memory fault while cutting: %v", ErrCorrupt, path, r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	p := position{end: DataOffset}
	for p.end < size {
		r, n, err := frame.Decode(m[p.end:size])
		if err != nil && p.end < ckpt.durable {
			return fmt.Errorf("%w: %s offset %d: %v before the durable checkpoint at %d", ErrCorrupt, path, p.end, err, ckpt.durable)
		}
		if err != nil || n == 0 || r.Seq > after {
			break
		}
		if p.count == 0 {
			p.first = r.Seq
		}
		p.last, p.ltime = r.Seq, r.Time
		p.count++
		p.end += int64(n)
	}
	dirty := lastNonZero(m, p.end)
	if dirty <= p.end && ckpt.durable <= p.end {
		return nil // nothing above the cut
	}
	if dirty > p.end {
		if err := f.ZeroRange(p.end, (dirty-p.end+7)&^7); err != nil {
			return err
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	c := p.checkpointAt(ckpt.gen+1, ckpt.sealed)
	if _, err := f.WriteAt(appendCheckpoint(nil, c), slotOffset(c.gen)); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := l.fs.Remove(idxPath(path)); err != nil && !isNotExist(err) {
		return err
	}
	l.logger.Warn("cut a replicated log's unpublished suffix", "file", filepath.Base(path), "after", after, "records kept", p.count)
	return nil
}

// ReadWritten is Read over every record written, published or not: what a replication
// protocol sends to followers and reads back for itself (Raft's entries). It takes the
// writer lock, so it is for the owner's loop, not for consumers. The view pins its segment
// until Release like any View; the frames above the published tip may be cut by Truncate
// later, so copy what must outlive the next Truncate. Replicated mode only.
func (l *Log) ReadWritten(from uint64, maxRecords, maxBytes int) (View, error) {
	if !l.opts.Replicated {
		return View{}, fmt.Errorf("%w: ReadWritten on a single-node log", ErrReplicated)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return View{}, ErrClosed
	}
	if maxRecords <= 0 {
		maxRecords = 1
	}
	segs := *l.segs.Load()
	i := max(sort.Search(len(segs), func(i int) bool { return segs[i].base > from })-1, 0)
	for ; i < len(segs); i++ {
		s := segs[i]
		end := s.readEnd.Load()
		if s == l.active {
			end = l.apos.end
		}
		if !s.acquire() {
			continue
		}
		v, err := s.read(from, maxRecords, maxBytes, end)
		if err != nil || v.Count > 0 {
			if v.Count == 0 {
				s.release()
			}
			return v, err
		}
		s.release()
	}
	return View{Next: max(from, l.lastSeq+1)}, nil
}
