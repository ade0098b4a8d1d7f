package segment

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/edsrzf/mmap-go"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/index"
	"github.com/sluice-streams/sluice/internal/vfs"
)

// Segment file names are "<base>-<id>.seg": the base sequence as 20 decimal digits and the
// segment id as 10, so that names sort by base sequence and a missing id shows in a listing
// without opening any file. The sealed segment's index is "<same stem>.idx".
const (
	segSuffix = ".seg"
	idxSuffix = ".idx"
	tmpSuffix = ".tmp"
)

func segName(base, id uint64) string { return fmt.Sprintf("%020d-%010d%s", base, id, segSuffix) }

func parseSegName(name string) (base, id uint64, ok bool) {
	stem, found := strings.CutSuffix(name, segSuffix)
	if !found || len(stem) != 31 || stem[20] != '-' {
		return 0, 0, false
	}
	base, err1 := strconv.ParseUint(stem[:20], 10, 64)
	id, err2 := strconv.ParseUint(stem[21:], 10, 64)
	return base, id, err1 == nil && err2 == nil
}

// position is a segment's frames as of one moment: where they end and what they hold. It is
// the one description of a durable point: the writer's position in the active segment
// (Log.apos), a batch's commit point and what a sync made durable (commitPt,
// segment.synced), what a scan found (scanResult), a sealed segment's summary
// (segment.info), and what a checkpoint slot stores (checkpoint.position, checkpointAt).
type position struct {
	end   int64  // offset just past the last frame; DataOffset when there is none
	first uint64 // sequence number of the first frame (0: none)
	last  uint64 // sequence number of the last frame (0: none)
	ltime int64  // arrival time of the last frame, Unix ns
	count uint64 // frames
}

// position returns the point a checkpoint slot records.
func (c checkpoint) position() position {
	return position{end: c.durable, first: c.first, last: c.last, ltime: c.ltime, count: c.count}
}

// checkpointAt returns checkpoint generation gen recording p. A zero position, nothing
// written, records the start of the data.
func (p position) checkpointAt(gen uint64, sealed bool) checkpoint {
	c := checkpoint{gen: gen, durable: p.end, first: p.first, last: p.last, ltime: p.ltime, count: p.count, sealed: sealed}
	if p.end == 0 {
		c.durable = DataOffset
	}
	return c
}

// indexHeader describes the index of segment s whose frames are p; interval is the spacing
// of its entries (index.Open does not compare it).
func indexHeader(s *segment, p position, interval int64) index.Header {
	return index.Header{Interval: uint32(interval), SegmentID: s.id, Base: s.base, End: p.end, Last: p.last}
}

// segment is one segment file. A sealed segment is opened lazily: its header page is read the
// first time its summary is needed (retention, time lookups) and it is mapped the first time it
// is read.
//
// Reference counting: the log's segment list holds one reference and every View one more.
// acquire fails once the count has reached zero; the goroutine that drops the last reference
// unmaps the file and, if retention removed the segment, deletes it.
type segment struct {
	_    noCopy
	fs   vfs.FS
	path string
	id   uint64
	base uint64

	refs    atomic.Int32
	removed atomic.Bool // set (before the list's reference is dropped) when retention drops it

	// live is true while the segment is the active one: its mapping, builder and trust range
	// are then fixed and read without a lock. Cleared under mu when it is sealed; from then
	// on every access to the mapping goes through view under mu, which is what lets
	// UnmapIdle unmap it.
	live atomic.Bool
	used atomic.Bool // set by reads, cleared by UnmapIdle: a second-chance idle mark

	// readEnd is the end of the readable frames. For the active segment it is written by the
	// goroutine that publishes appends (under Log.cmu in sync mode, Log.mu otherwise) and read
	// by readers; for a sealed segment it is set once, before the segment is shared.
	readEnd atomic.Int64

	// Active segment only, set before the segment is shared and then immutable (the file is
	// written with WriteAt at offsets only the writer chooses).
	f        vfs.File
	capacity int64
	bld      *index.Builder
	damaged  error // corruption found by recovery at readEnd: reads that reach it report it

	// Frames starting in [trustLo, trustHi) were written by this process or checked by a
	// scan, so Read does not check their CRC again. Set before the segment is shared
	// (active) or under mu before view returns the mapping (sealed).
	trustLo, trustHi int64

	// Lazily loaded state of a sealed segment, guarded by mu.
	mu         sync.Mutex
	m          mmap.MMap
	info       position // the sealed segment's frames
	infoLoaded bool
	truncated  int64 // the file is shorter than info.end: frames at or past it are lost
	idx        *index.File
	table      index.Table // of idx, or rebuilt in memory
	openErr    error

	// Sync state of the active segment, owned by whoever holds the log's sync token.
	gen     uint64         // last checkpoint generation written
	ckptOff int64          // durable offset recorded by that checkpoint
	synced  position       // last point made durable
	ckptBuf [slotSize]byte // encoding buffer, so a sync does not allocate
}

func (s *segment) acquire() bool {
	for {
		n := s.refs.Load()
		if n <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (s *segment) release() {
	n := s.refs.Add(-1)
	if n > 0 {
		return
	}
	if n < 0 {
		panic("BUG: segment reference count below zero")
	}
	s.destroy()
}

// destroy runs once, when the last reference is dropped.
func (s *segment) destroy() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.idx != nil {
		s.idx.Close()
		s.idx = nil
	}
	if s.m != nil {
		s.m.Unmap()
		s.m = nil
	}
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	if s.removed.Load() {
		s.fs.Remove(s.path)
		s.fs.Remove(idxPath(s.path))
		s.fs.SyncDir(filepath.Dir(s.path))
	}
}

func idxPath(segPath string) string { return strings.TrimSuffix(segPath, segSuffix) + idxSuffix }

// readHeaderPage reads the first page of a segment file.
func readHeaderPage(f vfs.File) ([]byte, error) {
	page := make([]byte, DataOffset)
	n, err := f.ReadAt(page, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return page[:n], nil
}

// loadInfoLocked reads a sealed segment's header and final checkpoint. Called with s.mu held.
func (s *segment) loadInfoLocked() error {
	if s.infoLoaded {
		return s.openErr
	}
	s.infoLoaded = true
	f, err := s.fs.OpenFile(s.path, os.O_RDONLY, 0)
	if err != nil {
		s.openErr = fmt.Errorf("%w: %s: %v", ErrCorrupt, s.path, err)
		return s.openErr
	}
	defer f.Close()
	page, err := readHeaderPage(f)
	if err != nil {
		s.openErr = fmt.Errorf("segment: read %s: %w", s.path, err)
		return s.openErr
	}
	h, err := decodeSegHeader(page)
	if err != nil {
		s.openErr = fmt.Errorf("%w: %s offset 0: %v", ErrCorrupt, s.path, err)
		return s.openErr
	}
	if h.segID != s.id || h.base != s.base {
		s.openErr = fmt.Errorf("%w: %s: header says segment %d base %d", ErrCorrupt, s.path, h.segID, h.base)
		return s.openErr
	}
	c, ok := bestCheckpoint(page)
	if !ok || !c.sealed {
		s.openErr = fmt.Errorf("%w: %s: sealed segment without a valid sealed checkpoint", ErrCorrupt, s.path)
		return s.openErr
	}
	if c.durable < DataOffset {
		s.openErr = fmt.Errorf("%w: %s: sealed end %d before the data", ErrCorrupt, s.path, c.durable)
		return s.openErr
	}
	s.info = c.position()
	size, err := f.Size()
	if err != nil {
		s.openErr = err
		return err
	}
	s.truncated = -1
	if size < c.durable {
		s.truncated = size
	}
	s.readEnd.Store(c.durable)
	return nil
}

// sealedInfo returns the summary of a sealed segment, reading its header if needed.
func (s *segment) sealedInfo() (position, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.loadInfoLocked()
	return s.info, err
}

// view returns the mapping and index table of a segment, opening a sealed segment if needed.
// The caller holds a reference. For the active segment both are fixed at creation.
func (s *segment) view() (mmap.MMap, index.Table, error) {
	if !s.used.Load() {
		s.used.Store(true)
	}
	if s.live.Load() {
		return s.m, s.bld.Table(), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m != nil || s.openErr != nil {
		return s.m, s.table, s.openErr
	}
	if err := s.loadInfoLocked(); err != nil {
		return nil, index.Table{}, err
	}
	f, err := s.fs.OpenFile(s.path, os.O_RDONLY, 0)
	if err != nil {
		s.openErr = fmt.Errorf("%w: %s: %v", ErrCorrupt, s.path, err)
		return nil, index.Table{}, s.openErr
	}
	defer f.Close()
	size := s.info.end
	if s.truncated >= 0 {
		size = s.truncated
	}
	if size < DataOffset {
		s.openErr = fmt.Errorf("%w: %s: truncated to %d bytes, sealed end %d", ErrCorrupt, s.path, size, s.info.end)
		return nil, index.Table{}, s.openErr
	}
	m, err := mmap.MapRegion(f.OS(), int(size), mmap.RDONLY, 0, 0)
	if err != nil {
		s.openErr = fmt.Errorf("segment: map %s: %w", s.path, err)
		return nil, index.Table{}, s.openErr
	}
	s.m = m
	s.loadIndexLocked()
	return s.m, s.table, nil
}

// loadIndexLocked opens the segment's index file, or rebuilds the index by scanning the
// segment when the file is missing or fails validation. Called with s.mu held.
func (s *segment) loadIndexLocked() {
	want := indexHeader(s, s.info, defaultIndexInterval)
	if s.truncated < 0 {
		if f, err := index.Open(s.fs, idxPath(s.path), want); err == nil {
			s.idx, s.table = f, f.Table()
			return
		}
	}
	bld := index.NewBuilder(defaultIndexInterval, int64(len(s.m)))
	res := scanFrames(s.m, DataOffset, int64(len(s.m)), s.base, bld)
	s.table = bld.Table()
	s.trustLo, s.trustHi = DataOffset, res.end // the scan checked every CRC up to here
	// Store the rebuilt index only when it describes the whole segment; a damaged segment
	// is rescanned (and reported) each time it is opened.
	if res.err == nil && res.end == s.info.end && res.last == s.info.last {
		index.Write(s.fs, idxPath(s.path), want, s.table)
	}
}

// scanResult is what a scan of frames found: the frames it accepted, which end at the first
// frame not accepted (end of log or damage), and why it stopped.
type scanResult struct {
	position
	err error // why the scan stopped before a zero length word, nil at a clean end
}

// scanFrames walks frames in m[start:limit], checking each CRC, that sequence numbers
// strictly increase from base and that times do not decrease. It feeds bld (if not nil).
func scanFrames(m []byte, start, limit int64, base uint64, bld *index.Builder) (res scanResult) {
	res.end = start
	prevSeq, prevTime := uint64(0), int64(0)
	defer func() {
		if r := recover(); r != nil {
			res.err = fmt.Errorf("memory fault reading the mapping: %v", r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	off := start
	for off < limit {
		r, n, err := frame.Decode(m[off:limit])
		if err != nil {
			res.err = err
			break
		}
		if n == 0 {
			break
		}
		if r.Seq < base || (res.count > 0 && r.Seq <= prevSeq) {
			res.err = fmt.Errorf("sequence number %d after %d (segment base %d)", r.Seq, prevSeq, base)
			break
		}
		if res.count > 0 && r.Time < prevTime {
			res.err = fmt.Errorf("arrival time %d before %d", r.Time, prevTime)
			break
		}
		if bld != nil {
			bld.Observe(index.Entry{Seq: r.Seq, Time: r.Time, Off: off})
		}
		if res.count == 0 {
			res.first = r.Seq
		}
		prevSeq, prevTime = r.Seq, r.Time
		res.last, res.ltime = r.Seq, r.Time
		res.count++
		off += int64(n)
		res.end = off
	}
	return res
}

// noCopy makes go vet's copylocks check flag copies of structs that embed it.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}
