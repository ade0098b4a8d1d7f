package segment

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"github.com/edsrzf/mmap-go"

	"github.com/sluice-streams/sluice/index"
	"github.com/sluice-streams/sluice/internal/vfs"
)

// Open opens (creating if needed) the log in dir and recovers it.
//
// Cost: one directory listing, the metadata file, and the newest segment. Sealed segments are
// not read until they are needed. The newest segment is scanned unless the log was closed
// cleanly; a torn tail (damage past the last durable checkpoint) is zeroed and logged, and
// damage before it is corruption: Open still succeeds so that the intact records can be read,
// but Err and every Append report ErrCorrupt with the file and offset.
//
// Open fails on I/O errors and unknown format versions.
func Open(dir string, opts Options) (*Log, error) {
	opts = opts.withDefaults()
	l := &Log{dir: dir, opts: opts, fs: opts.FS, logger: opts.Logger.With("log", dir)}
	l.ccond = sync.NewCond(&l.cmu)
	if err := l.fs.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	m, found, err := readMeta(l.fs, dir)
	if err != nil {
		if errors.Is(err, ErrVersion) {
			return nil, err
		}
		// The reservation is unknown, so numbers could be reused: refuse appends.
		l.corrupt = err
		l.logger.Error("log metadata unreadable; appends refused", "err", err)
	}
	l.meta = m
	if !found && err == nil {
		l.meta = meta{logID: opts.LogID}
	}
	l.hidden.Store(l.meta.hidden)
	if l.meta.cutPending && l.corrupt == nil {
		// A Truncate was decided before a crash: finish it before reading any segment, so
		// that the records it cut never come back.
		if err := l.finishCut(); err != nil {
			return nil, err
		}
	}

	segs, err := l.listSegments(found || l.corrupt != nil)
	if err != nil {
		closeAll(segs)
		return nil, err
	}
	if !l.meta.clean {
		if err := l.syncAfterCrash(segs); err != nil {
			closeAll(segs)
			return nil, err
		}
	}
	var lastSeq uint64
	for len(segs) > 0 {
		n := len(segs)
		prevUnsealed := n >= 2 && !sealedOnDisk(l.fs, segs[n-2].path)
		keep, err := l.recoverNewest(segs[n-1], prevUnsealed)
		if err != nil {
			closeAll(segs)
			return nil, err
		}
		if keep {
			break
		}
		// A roll was torn: the newest segment never held a record and the one before it
		// was not sealed yet, so that one is the active segment.
		segs[n-1].release()
		segs = segs[:n-1]
	}
	// Seals a crash interrupted (Interval and None modes seal in the background): the
	// segments before the newest that lack a sealed checkpoint, oldest first.
	if n := len(segs); n >= 2 {
		first := n - 1
		for first > 0 && !sealedOnDisk(l.fs, segs[first-1].path) {
			first--
		}
		for i := first; i < n-1; i++ {
			torn, err := l.finishSeal(segs[i], prevLastOf(l.fs, segs[i+1].path))
			if err != nil {
				closeAll(segs)
				return nil, err
			}
			if torn {
				segs = l.dropAfter(segs, i)
				break
			}
		}
	}
	l.nextSegID = 1
	if n := len(segs); n > 0 {
		l.nextSegID = segs[n-1].id + 1 // after removals: a removed id is free again
	}
	// The highest sequence number on disk bounds the numbers to come from below, whatever
	// the metadata says.
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		if s == l.active {
			if l.apos.count > 0 {
				lastSeq = l.apos.last
				break
			}
			continue
		}
		info, err := s.sealedInfo()
		if err != nil {
			l.noteCorrupt(err)
			lastSeq = max(lastSeq, s.base) // unknown: start past its base at least
			break
		}
		if info.count > 0 {
			lastSeq = max(lastSeq, info.last)
			break
		}
	}
	l.segs.Store(&segs)

	l.lastSeq = lastSeq
	l.durableLast = lastSeq // what recovery kept is durable
	l.next = max(l.meta.reserved, lastSeq+1, opts.FirstSeq)
	if l.corrupt == nil {
		// Reserve before anything can be acknowledged, and mark the log open (not clean). On a
		// full disk the log opens for reads: the reservation stays below next, so every
		// append renews it first and is refused with ErrNoSpace until space returns, and the
		// metadata, unchanged, still describes the files, which nothing has changed.
		if err := l.reserveLocked(l.next); err != nil {
			if !errors.Is(err, ErrNoSpace) {
				closeAll(segs)
				return nil, err
			}
			l.noteSpaceLocked(err)
		}
	}
	l.published()
	if opts.Durability.Mode != Sync {
		l.stop, l.sealKick, l.sealDone = make(chan struct{}), make(chan struct{}, 1), make(chan struct{})
		if opts.noSealer {
			close(l.sealDone)
		} else {
			go l.sealer(l.sealKick, l.stop, l.sealDone)
		}
	}
	if opts.Durability.Mode == Interval {
		l.syncDone = make(chan struct{})
		go l.intervalSyncer(opts.Durability.Interval, l.stop, l.syncDone)
	}
	return l, nil
}

func closeAll(segs []*segment) {
	for _, s := range segs {
		s.release()
	}
}

// noteCorrupt records corruption found while opening: appends are refused.
func (l *Log) noteCorrupt(err error) {
	if l.corrupt == nil {
		l.corrupt = err
	}
	l.logger.Error("corruption found; appends refused, intact records stay readable", "err", err)
}

// published sets tip and the horizon after recovery. A replicated log publishes nothing:
// its owner does (Publish), once it knows what is committed.
func (l *Log) published() {
	if l.opts.Replicated && l.active != nil {
		l.active.readEnd.Store(DataOffset)
	}
	if l.active != nil && l.apos.count > 0 {
		if !l.opts.Replicated {
			l.tip.Store(l.apos.last)
			l.tipTime.Store(l.apos.ltime)
		}
	} else {
		segs := *l.segs.Load()
		for i := len(segs) - 1; i >= 0; i-- {
			if segs[i] == l.active {
				continue
			}
			if info, err := segs[i].sealedInfo(); err == nil && info.count > 0 {
				if !l.opts.Replicated {
					l.tip.Store(info.last)
					l.tipTime.Store(info.ltime)
				}
				l.apos.ltime = max(l.apos.ltime, info.ltime) // arrival times stay monotonic
				break
			}
		}
	}
	// The horizon of the stored cutoff is placed later, when first needed (placeHorizon):
	// here it would read sealed segments that start-up has no other reason to open.
	l.openHidden = l.hidden.Load()
	l.openTip = l.tip.Load()
	l.openNone = max(l.openTip, l.lastSeq) + 1
	l.horizonPending.Store(true)
}

// listSegments lists the segment files, removes leftover temporary files and checks that
// segment ids are consecutive. A gap is corruption. hasMeta tells whether the log existed.
func (l *Log) listSegments(hasMeta bool) ([]*segment, error) {
	entries, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return nil, err
	}
	var segs []*segment
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, tmpSuffix) {
			l.fs.Remove(l.dir + "/" + name)
			continue
		}
		base, id, ok := parseSegName(name)
		if !ok {
			continue
		}
		s := &segment{fs: l.fs, path: l.segPath(base, id), id: id, base: base, truncated: -1}
		s.refs.Store(1)
		segs = append(segs, s)
	}
	slices.SortFunc(segs, func(a, b *segment) int {
		if a.base != b.base {
			return cmpU64(a.base, b.base)
		}
		return cmpU64(a.id, b.id)
	})
	if len(segs) > 0 && !hasMeta {
		l.noteCorrupt(fmt.Errorf("%w: %s: segment files without %s", ErrCorrupt, l.dir, metaName))
	}
	for i := 1; i < len(segs); i++ {
		if segs[i].id != segs[i-1].id+1 {
			l.noteCorrupt(fmt.Errorf("%w: %s: segment ids jump from %d to %d: segment file(s) missing after %s",
				ErrCorrupt, l.dir, segs[i-1].id, segs[i].id, segs[i-1].path))
			break
		}
	}
	return segs, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// recoverNewest opens the newest segment for appending, or leaves it as it is if it was
// sealed. prevUnsealed tells whether the segment before it lacks its sealed checkpoint, which
// means the crash came in the middle of a roll (a new segment is created before the old one is
// sealed). It returns keep == false after removing a segment that never held a record and
// whose predecessor must become active again.
func (l *Log) recoverNewest(s *segment, prevUnsealed bool) (keep bool, err error) {
	f, err := l.fs.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return false, err
	}
	keepFile := false
	defer func() {
		if !keepFile {
			f.Close()
		}
	}()
	size, err := f.Size()
	if err != nil {
		return false, err
	}
	page, err := readHeaderPage(f)
	if err != nil {
		return false, err
	}
	remove := func(why string) (bool, error) {
		l.logger.Warn("removing a segment left empty by a torn roll", "file", s.path, "reason", why)
		f.Close()
		keepFile = true // closed
		if err := l.fs.Remove(s.path); err != nil {
			return false, err
		}
		return false, l.fs.SyncDir(l.dir)
	}
	h, herr := decodeSegHeader(page)
	if errors.Is(herr, ErrVersion) {
		return false, fmt.Errorf("%s: %w", s.path, herr)
	}
	if herr != nil {
		empty, err := dataIsZero(f, size)
		if err != nil {
			return false, err
		}
		if empty && (prevUnsealed || s.id == 1) {
			return remove(herr.Error())
		}
		l.noteCorrupt(fmt.Errorf("%w: %s offset 0: %v", ErrCorrupt, s.path, herr))
		return true, nil
	}
	if h.segID != s.id || h.base != s.base {
		l.noteCorrupt(fmt.Errorf("%w: %s: header says segment %d base %d", ErrCorrupt, s.path, h.segID, h.base))
		return true, nil
	}
	ckpt, ok := bestCheckpoint(page)
	if !ok {
		// Both slots damaged. A segment is created with a valid slot and each later write
		// touches one slot, in its own sector, so this is damage and the durable point is
		// unknown: records may be gone. Report it; keep what the scan finds readable.
		ckpt = checkpoint{durable: DataOffset}
	}
	if ckpt.sealed {
		return true, nil // sealed before the crash; the next append starts a new segment
	}
	m, err := mmap.MapRegion(f.OS(), int(size), mmap.RDONLY, 0, 0)
	if err != nil {
		return false, fmt.Errorf("segment: map %s: %w", s.path, err)
	}
	s.f, s.m, s.capacity = f, m, size
	s.bld = index.NewBuilder(l.opts.IndexInterval, size)
	s.gen, s.ckptOff = ckpt.gen, ckpt.durable

	var res scanResult
	clean := l.meta.clean && l.meta.cseg == s.id && ckpt.durable == l.meta.cend && l.loadCleanIndex(s, ckpt)
	if clean {
		res = scanResult{position: ckpt.position()}
	} else {
		res = scanFrames(m, DataOffset, size, s.base, s.bld)
		if res.count == 0 && res.end == DataOffset && prevUnsealed && lastNonZero(m, DataOffset) == DataOffset {
			m.Unmap()
			s.f, s.m, s.bld = nil, nil, nil
			return remove("no records and the previous segment is not sealed")
		}
		if !ok {
			err := fmt.Errorf("%w: %s offset %d: both checkpoint slots are damaged; %d records found, more may be lost",
				ErrCorrupt, s.path, slot0Off, res.count)
			s.damaged = err
			l.noteCorrupt(err)
		} else if err := l.repairTail(s, ckpt, res); err != nil {
			m.Unmap()
			s.f, s.m, s.bld = nil, nil, nil
			return false, err
		}
	}
	keepFile = true
	s.live.Store(true)
	// Trust what the scan checked and what this process will write; after a clean open
	// nothing was scanned, so the frames already there are checked when read.
	s.trustLo, s.trustHi = DataOffset, size
	if clean {
		s.trustLo = res.end
	}
	if s.damaged != nil {
		s.trustHi = res.end
	}
	l.active = s
	l.apos = res.position
	s.synced = res.position
	l.written = l.currentPtLocked()
	s.readEnd.Store(res.end)
	return true, nil
}

// syncAfterCrash makes durable what the recovery of a log that was not closed cleanly is
// about to trust. A process that died (kill -9) leaves its last writes in the page cache,
// where this one reads them, and a power cut before the kernel writes them back would still
// lose them: the frames written since the last sync of the newest segment, and the sealed
// checkpoint and truncation of a seal the crash interrupted between its two fdatasyncs, which
// would leave a segment that recovery took for sealed without its sealed checkpoint. So the
// newest segment is synced, and each one before it back to the first that has an index file:
// a seal stores the index only after its last fdatasync, and reads rebuild the index of a
// segment only once recovery has synced it. After a clean close everything is synced.
func (l *Log) syncAfterCrash(segs []*segment) error {
	for i := len(segs) - 1; i >= 0; i-- {
		s := segs[i]
		if i < len(segs)-1 {
			if f, err := l.fs.OpenFile(idxPath(s.path), os.O_RDONLY, 0); err == nil {
				f.Close()
				return nil
			}
		}
		f, err := l.fs.OpenFile(s.path, os.O_RDONLY, 0)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("segment: sync %s after a crash: %w", s.path, err)
		}
	}
	return nil
}

// sealedOnDisk reports whether the segment file at path carries a valid sealed checkpoint.
func sealedOnDisk(fsys vfs.FS, path string) bool {
	page, err := headerPageOf(fsys, path)
	if err != nil {
		return false
	}
	c, ok := bestCheckpoint(page)
	return ok && c.sealed
}

// headerPageOf reads the header page of the segment file at path.
func headerPageOf(fsys vfs.FS, path string) ([]byte, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readHeaderPage(f)
}

// loadCleanIndex loads the index stored at a clean close into the segment's builder. It
// reports false when the index does not match the checkpoint, and the caller scans.
func (l *Log) loadCleanIndex(s *segment, ckpt checkpoint) bool {
	want := indexHeader(s, ckpt.position(), l.opts.IndexInterval)
	f, err := index.Open(l.fs, idxPath(s.path), want)
	if err != nil {
		return false
	}
	defer f.Close()
	t := f.Table()
	for i := range t.Len() {
		s.bld.Observe(t.At(i))
	}
	// The frame at the end must be the end of the log.
	if ckpt.durable+4 <= int64(len(s.m)) && !bytes.Equal(s.m[ckpt.durable:ckpt.durable+4], []byte{0, 0, 0, 0}) {
		s.bld = index.NewBuilder(l.opts.IndexInterval, int64(len(s.m)))
		return false
	}
	return true
}

// repairTail decides what a scan of the newest segment found. Damage before the checkpoint's
// durable offset is corruption. Damage after it is a torn tail: the bytes from the first bad
// frame to the last non-zero byte are zeroed and synced.
func (l *Log) repairTail(s *segment, ckpt checkpoint, res scanResult) error {
	dirty := lastNonZero(s.m, res.end)
	if res.end < ckpt.durable {
		why := "frames end (zero length word)"
		if res.err != nil {
			why = res.err.Error()
		}
		err := fmt.Errorf("%w: %s offset %d: %s before the durable checkpoint at %d",
			ErrCorrupt, s.path, res.end, why, ckpt.durable)
		s.damaged = err
		l.noteCorrupt(err)
		return nil
	}
	if ckpt.count > 0 && (res.count < ckpt.count || res.last < ckpt.last) {
		l.noteCorrupt(fmt.Errorf("%w: %s: checkpoint promises %d records up to seq %d, found %d up to %d",
			ErrCorrupt, s.path, ckpt.count, ckpt.last, res.count, res.last))
		return nil
	}
	if dirty <= res.end {
		return nil
	}
	n := (dirty - res.end + 7) &^ 7
	l.logger.Warn("truncating a torn tail after the last durable checkpoint",
		"file", s.path, "offset", res.end, "bytes", n, "reason", res.err)
	if err := s.f.ZeroRange(res.end, n); err != nil {
		return fmt.Errorf("segment: zero torn tail of %s at %d: %w", s.path, res.end, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("segment: sync %s after zeroing its tail: %w", s.path, err)
	}
	return nil
}

// lastNonZero returns the offset just past the last non-zero byte of m at or after from, or
// from if there is none.
func lastNonZero(m []byte, from int64) (end int64) {
	defer func() {
		if recover() != nil {
			end = int64(len(m)) // a fault: treat everything as dirty
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	for i := int64(len(m)); i > from; {
		lo := max(from, i-4096)
		chunk := m[lo:i]
		for j := len(chunk) - 1; j >= 0; j-- {
			if chunk[j] != 0 {
				return lo + int64(j) + 1
			}
		}
		i = lo
	}
	return from
}

// dataIsZero reports whether a file holds only zeros past its header page.
func dataIsZero(f interface {
	ReadAt([]byte, int64) (int, error)
}, size int64) (bool, error) {
	buf := make([]byte, 64<<10)
	for off := int64(DataOffset); off < size; {
		n, err := f.ReadAt(buf, off)
		for _, b := range buf[:n] {
			if b != 0 {
				return false, nil
			}
		}
		off += int64(n)
		if err != nil {
			break
		}
	}
	return true, nil
}

// finishSeal seals a segment whose seal a crash interrupted: its frames are scanned, a torn
// tail is zeroed, and the sealed checkpoint, truncation and index are written. It reports
// torn when the tail was torn: the records after it, in later segments, follow a hole.
// Damage before the segment's durable checkpoint is corruption, reported and left alone.
func (l *Log) finishSeal(s *segment, wantLast uint64) (torn bool, err error) {
	f, err := l.fs.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return false, err
	}
	page, err := readHeaderPage(f)
	if err != nil {
		return false, err
	}
	h, herr := decodeSegHeader(page)
	if errors.Is(herr, ErrVersion) {
		return false, fmt.Errorf("%s: %w", s.path, herr)
	}
	ckpt, ok := bestCheckpoint(page)
	if herr != nil || h.segID != s.id || h.base != s.base || !ok || size < DataOffset {
		l.noteCorrupt(fmt.Errorf("%w: %s: unsealed segment with a damaged header page", ErrCorrupt, s.path))
		return false, nil
	}
	m, err := mmap.MapRegion(f.OS(), int(size), mmap.RDONLY, 0, 0)
	if err != nil {
		return false, fmt.Errorf("segment: map %s: %w", s.path, err)
	}
	defer m.Unmap()
	bld := index.NewBuilder(l.opts.IndexInterval, size)
	res := scanFrames(m, DataOffset, size, s.base, bld)
	if res.end < ckpt.durable || res.count < ckpt.count {
		l.noteCorrupt(fmt.Errorf("%w: %s offset %d: damage before the durable checkpoint at %d (%v)",
			ErrCorrupt, s.path, res.end, ckpt.durable, res.err))
		return false, nil
	}
	dirty := lastNonZero(m, res.end)
	// Torn: garbage after the last good frame, or fewer records than the next segment's
	// header says were written before it (a tail lost to zeros looks like a clean end).
	torn = dirty > res.end || res.last < wantLast
	if torn {
		l.logger.Warn("truncating a torn tail of a segment whose seal was interrupted",
			"file", s.path, "offset", res.end, "reason", res.err)
		if dirty > res.end {
			if err := f.ZeroRange(res.end, (dirty-res.end+7)&^7); err != nil {
				return false, fmt.Errorf("segment: zero torn tail of %s at %d: %w", s.path, res.end, err)
			}
		}
	}
	if err := f.Sync(); err != nil {
		return false, err
	}
	c := res.checkpointAt(ckpt.gen+1, true)
	if _, err := f.WriteAt(appendCheckpoint(nil, c), slotOffset(c.gen)); err != nil {
		return false, err
	}
	if err := f.Truncate((res.end + DataOffset - 1) &^ (DataOffset - 1)); err != nil {
		return false, err
	}
	if err := f.Sync(); err != nil {
		return false, err
	}
	ih := indexHeader(s, res.position, l.opts.IndexInterval)
	if err := index.Write(l.fs, idxPath(s.path), ih, bld.Table()); err != nil {
		l.logger.Warn("could not store a sealed segment's index; it is rebuilt when read", "file", s.path, "err", err)
	}
	l.logger.Info("sealed a segment whose seal was interrupted", "file", s.path, "records", res.count)
	return torn, nil
}

// dropAfter removes the segments after segs[i]: they follow a hole left by a torn tail in an
// unsealed segment (Interval and None modes), and keeping them would make the loss something
// other than a suffix. It releases the active segment if it is among them.
func (l *Log) dropAfter(segs []*segment, i int) []*segment {
	for _, s := range segs[i+1:] {
		l.logger.Warn("removing a segment that follows a torn tail: unsynced records are lost as a suffix",
			"file", s.path, "after", segs[i].path)
		if s == l.active {
			l.active = nil
			l.apos = position{ltime: l.apos.ltime}
			l.written = commitPt{}
		}
		s.removed.Store(true)
		s.release()
	}
	return segs[:i+1]
}

// prevLastOf returns the prevLast field of a segment file's header, 0 if unreadable.
func prevLastOf(fsys vfs.FS, path string) uint64 {
	page, err := headerPageOf(fsys, path)
	if err != nil {
		return 0
	}
	h, err := decodeSegHeader(page)
	if err != nil {
		return 0
	}
	return h.prevLast
}
