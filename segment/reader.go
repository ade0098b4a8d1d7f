package segment

import (
	"encoding/binary"
	"fmt"
	"runtime/debug"
	"sort"

	"github.com/sluice-streams/sluice/frame"
)

// View is a run of contiguous frames inside one segment's mapping, returned by Read. It holds
// a reference to the segment: the bytes stay mapped, and the file on disk, until Release,
// even if retention deletes the segment or the log is closed meanwhile. A View must be
// released exactly once; the zero View needs no release.
type View struct {
	seg   *segment
	b     []byte
	Count int    // records in the view
	First uint64 // sequence number of the first record (0 if empty)
	Last  uint64 // sequence number of the last record (0 if empty)
	// LastTime is the arrival time of the last record (Unix ns, 0 if empty).
	LastTime int64
	// Next is where the following read starts: past the view's last record. When the view
	// is empty, the starting point (raised to the retention horizon) or, if no record at or
	// above it was readable when Read began although the tip was, past that tip: the numbers
	// in between were never handed out (a restart skips the rest of its reservation).
	Next uint64
	// Payload is the size of the records' partition keys and data: the frames less their
	// headers and padding. Read adds it up from the length words it walks anyway, so that
	// counting bytes out (the engine's metrics) needs no second pass over the frames.
	Payload int
}

// Bytes returns the frames, exactly as stored (docs/FORMAT.md). Valid until Release.
func (v *View) Bytes() []byte { return v.b }

// Len returns the size of the frames in bytes.
func (v *View) Len() int { return len(v.b) }

// Records returns an iterator over the view's records. Records alias the mapping and are
// valid until Release.
func (v *View) Records() Iter { return Iter{b: v.b} }

// Release drops the view's reference. The view is empty afterwards.
func (v *View) Release() {
	if v.seg != nil {
		v.seg.release()
	}
	*v = View{Next: v.Next}
}

// Replace makes v a view of frames b built in memory from v's own records (the engine's
// decrypted copy of sealed records): it releases v's mapping and sets Payload to payload;
// Count, First, Last, LastTime and Next stay. b must hold the same records in the same
// order, and stays valid for as long as the caller keeps it.
func (v *View) Replace(b []byte, payload int) {
	if v.seg != nil {
		v.seg.release()
		v.seg = nil
	}
	v.b, v.Payload = b, payload
}

// Iter decodes the frames of a View without allocating. It does not check CRCs: Read did, or
// the frames were written or scanned by this process (see Read).
type Iter struct {
	b   []byte
	off int
	rec Record
	err error
}

// Next advances to the next record and reports whether there is one.
func (it *Iter) Next() bool {
	if it.off >= len(it.b) || it.err != nil {
		return false
	}
	b := it.b[it.off:]
	h, err := frame.DecodeHeader(b)
	if err != nil || h.Len == 0 {
		it.err = err
		return false
	}
	it.rec = Record{Seq: h.Seq, Time: h.Time, Flags: h.Flags,
		Key:  b[frame.HeaderSize : frame.HeaderSize+h.KeyLen : frame.HeaderSize+h.KeyLen],
		Data: b[frame.HeaderSize+h.KeyLen : h.Len : h.Len]}
	it.off += min(frame.Align(h.Len), len(b))
	return true
}

// Record returns the current record.
func (it *Iter) Record() Record { return it.rec }

// Err returns the error that stopped the iteration, if any.
func (it *Iter) Err() error { return it.err }

// Read returns the records with sequence numbers at or above from: at least one record if
// any is readable (even one larger than maxBytes), at most maxRecords and, beyond the first,
// at most maxBytes of frames. A view never crosses a segment boundary; call Read again from
// View.Next for more. Records hidden by retention are skipped.
//
// Every frame's header is bounds-checked. Its CRC is checked unless this process wrote the
// frame or already checked it while scanning the segment (recovery, an index rebuild): frames
// read back from disk by a new process are checked, frames it produced itself are served as
// written, and consumers of the native protocol check CRCs end to end. Damage returns an
// error wrapping ErrCorrupt with the file and offset; reading past it needs a later from.
func (l *Log) Read(from uint64, maxRecords, maxBytes int) (View, error) {
	l.ensureHorizon()
	return l.readFrom(from, maxRecords, maxBytes)
}

// readFrom is Read under a horizon already placed (or being placed by placeHorizon).
func (l *Log) readFrom(from uint64, maxRecords, maxBytes int) (View, error) {
	if maxRecords <= 0 {
		maxRecords = 1
	}
	from = max(from, l.horizon.Load())
	// The tip is loaded before the segment list and the segments' read ends: publish
	// stores a segment's read end before the tip, and a roll stores the new list before
	// anything in the new segment is published, so every record up to this tip is visible
	// to the walk below. An empty walk therefore proves that nothing lies in [from, tip],
	// and Next may move past it. A tip loaded after the walk would not prove that: records
	// published meanwhile would be skipped.
	tip := l.tip.Load()
	for attempt := 0; ; attempt++ {
		segs := *l.segs.Load()
		i := sort.Search(len(segs), func(i int) bool { return segs[i].base > from }) - 1
		i = max(i, 0)
		restart := false
		for start := i; i < len(segs); i++ {
			s := segs[i]
			if i > start && s.id != segs[i-1].id+1 {
				return View{}, fmt.Errorf("%w: %s: segment(s) %d to %d missing before it",
					ErrCorrupt, s.path, segs[i-1].id+1, s.id-1)
			}
			if !s.acquire() {
				restart = true // removed by retention meanwhile: reload the list
				break
			}
			v, err := s.read(from, maxRecords, maxBytes, 0)
			if l.opts.Replicated && v.Count > 0 && v.Last > tip {
				// Replicated: frames past the published tip are not readable yet.
				if v.clipTo(tip); v.Count == 0 {
					return View{Next: max(from, tip+1)}, nil
				}
			}
			if err != nil || v.Count > 0 {
				if v.Count == 0 {
					s.release()
				}
				return v, err
			}
			s.release()
		}
		if !restart || attempt > 100 {
			return View{Next: max(from, tip+1)}, nil
		}
	}
}

// read builds a view of this segment. The caller holds a reference, which moves into the
// returned view when it is not empty.
// end is where its readable frames end (readEnd, or what was written for ReadWritten); 0
// means readEnd as it is once view has loaded the segment: a sealed segment not read or
// summarised since the log was opened has no readEnd before that.
func (s *segment) read(from uint64, maxRecords, maxBytes int, end int64) (v View, err error) {
	m, table, err := s.view()
	if err != nil {
		return View{}, err
	}
	if end == 0 {
		end = s.readEnd.Load()
	}
	limit := end
	if s.truncated >= 0 && s.truncated < limit {
		limit = s.truncated
	}
	limit = min(limit, int64(len(m)))
	table = table.Prefix(limit)
	off := int64(DataOffset)
	if e, ok := table.SeekSeq(from); ok {
		off = e.Off
	}
	defer func() {
		if r := recover(); r != nil {
			v, err = View{}, fmt.Errorf("%w: %s: memory fault reading offset %d: %v", ErrCorrupt, s.path, off, r)
		}
	}()
	// A file truncated under its mapping raises SIGBUS on access. SetPanicOnFault turns the
	// fault into a panic of this goroutine, recovered above as ErrCorrupt. The deferred call
	// restores the previous setting without a closure, so reads stay free of allocations.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	// Skip to the first frame at or above from. A frame this process did not write or scan
	// has its CRC checked before its sequence number is believed.
	for off < limit {
		h, err := s.frameAt(m, off, limit)
		if err != nil {
			return View{}, s.damage(off, end, err)
		}
		if h.Len == 0 {
			return View{}, s.damage(off, end, nil)
		}
		if h.Seq >= from {
			break
		}
		off += int64(frame.Align(h.Len))
	}
	start := off
	if off >= s.trustLo {
		// Frames written by this process, or checked by a scan: walking the length words is
		// enough. This loop is the whole per-record cost of a zero-copy read
		// (BenchmarkRead/view), so it reads nothing else.
		trustEnd := min(limit, s.trustHi)
		lastOff := off
		// Payload adds up in a local: v lives in memory for the deferred recover, and a store
		// a record there cost BenchmarkRead/view a few percent.
		payload := 0
		for off+frame.HeaderSize <= trustEnd && v.Count < maxRecords {
			n := int64(binary.LittleEndian.Uint32(m[off:]))
			if n < frame.HeaderSize || off+n > trustEnd {
				break // end of log, or damage: the checked path below says which
			}
			sz := min((n+7)&^7, trustEnd-off)
			if v.Count > 0 && off+sz-start > int64(maxBytes) {
				break
			}
			lastOff = off
			v.Count++
			payload += int(n) - frame.HeaderSize
			off += sz
		}
		if v.Count > 0 {
			v.First = binary.LittleEndian.Uint64(m[start+8:])
			v.Last = binary.LittleEndian.Uint64(m[lastOff+8:])
			v.LastTime = int64(binary.LittleEndian.Uint64(m[lastOff+16:]))
			v.seg, v.b, v.Next, v.Payload = s, m[start:off:off], v.Last+1, payload
			return v, nil
		}
	}
	for off < limit && v.Count < maxRecords {
		var seq uint64
		var n, payload int
		var ts int64
		{
			r, rn, err := frame.Decode(m[off:limit])
			if err != nil || rn == 0 {
				if v.Count > 0 {
					break // return what is good; the next read reports the damage
				}
				return View{}, s.damage(off, end, err)
			}
			seq, n, ts, payload = r.Seq, rn, r.Time, len(r.Key)+len(r.Data)
		}
		if v.Count > 0 && off+int64(n)-start > int64(maxBytes) {
			break
		}
		if v.Count == 0 {
			v.First = seq
		}
		v.Last, v.LastTime = seq, ts
		v.Count++
		v.Payload += payload
		off += int64(n)
	}
	if v.Count == 0 {
		if s.damaged != nil && off >= end {
			return View{}, s.damaged
		}
		if limit < end {
			return View{}, s.damage(limit, end, nil)
		}
		return View{Next: from}, nil
	}
	v.seg, v.b, v.Next = s, m[start:off:off], v.Last+1
	return v, nil
}

// frameAt decodes the header of the frame at off, checking its CRC unless the frame is
// trusted (written or scanned by this process).
func (s *segment) frameAt(m []byte, off, limit int64) (frame.Header, error) {
	h, err := frame.DecodeHeader(m[off:limit])
	if err != nil || h.Len == 0 || (off >= s.trustLo && off < s.trustHi) {
		return h, err
	}
	return h, frame.CheckCRC(m[off : off+int64(h.Len)])
}

// damage describes what stops a read at off inside the readable range [.., end).
func (s *segment) damage(off, end int64, cause error) error {
	if s.truncated >= 0 && off >= s.truncated {
		return fmt.Errorf("%w: %s: file truncated at %d, its frames end at %d", ErrCorrupt, s.path, s.truncated, end)
	}
	if cause == nil {
		return fmt.Errorf("%w: %s offset %d: zero length before the end of frames at %d", ErrCorrupt, s.path, off, end)
	}
	return fmt.Errorf("%w: %s offset %d: %v", ErrCorrupt, s.path, off, cause)
}

// SeqAtTime returns the sequence number of the first readable record that arrived at or
// after t (Unix nanoseconds). ok is false when there is none yet.
func (l *Log) SeqAtTime(t int64) (seq uint64, ok bool, err error) {
	l.ensureHorizon()
	tip := l.tip.Load()
	seq, ok, err = l.seqAtTime(t)
	if ok && l.opts.Replicated && seq > tip {
		return 0, false, nil // not published yet
	}
	return seq, ok, err
}

// seqAtTime is SeqAtTime over every frame written, published or not (a replicated log's
// retention horizon is placed among them).
func (l *Log) seqAtTime(t int64) (seq uint64, ok bool, err error) {
	segs := *l.segs.Load()
	// Segments are ordered by time too; find the first whose last record is at or after t.
	lo, hi := 0, len(segs)
	var ierr error
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		lt, empty, err := l.segLastTime(segs[mid])
		if err != nil {
			ierr = err
			break
		}
		if !empty && lt >= t {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if ierr != nil {
		lo = 0 // fall back to a linear walk that reports the damage where it matters
	}
	for i := lo; i < len(segs); i++ {
		s := segs[i]
		if !s.acquire() {
			continue
		}
		seq, ok, err := l.segSeqAtTime(s, t)
		s.release()
		if err != nil || ok {
			return max(seq, l.horizon.Load()), ok, err
		}
	}
	return 0, false, nil
}

// segLastTime returns the arrival time of a segment's last readable record.
func (l *Log) segLastTime(s *segment) (t int64, empty bool, err error) {
	if s.live.Load() {
		// Active: the newest record is at or after anything earlier; treat it as unbounded.
		return 1<<63 - 1, false, nil
	}
	info, err := s.sealedInfo()
	return info.ltime, info.count == 0, err
}

// segSeqAtTime is s.seqAtTime over the frames of s that seqAtTime looks at: a replicated
// log's active segment is read up to what was written, not what was published (its read
// end), under mu, which holds those frames still (a Truncate cuts them under mu). A
// reopened replicated log has published nothing of its active segment until its owner
// publishes: a horizon placed by the published frames alone would hide every record
// written before the reopen.
func (l *Log) segSeqAtTime(s *segment, t int64) (seq uint64, ok bool, err error) {
	if l.opts.Replicated && s.live.Load() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if s == l.active {
			return s.seqAtTime(t, l.apos.end)
		}
	}
	return s.seqAtTime(t, 0)
}

// seqAtTime returns the first record of s at or after t among its frames up to end (0: its
// read end).
func (s *segment) seqAtTime(t int64, end int64) (seq uint64, ok bool, err error) {
	m, table, err := s.view()
	if err != nil {
		return 0, false, err
	}
	if end == 0 {
		end = s.readEnd.Load()
	}
	end = min(end, int64(len(m)))
	table = table.Prefix(end)
	off := int64(DataOffset)
	if e, ok := table.SeekTime(t); ok {
		off = e.Off
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: memory fault at %d: %v", ErrCorrupt, s.path, off, r)
		}
	}()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	for off < end {
		h, err := s.frameAt(m, off, end)
		if err != nil || h.Len == 0 {
			return 0, false, s.damage(off, end, err)
		}
		if h.Time >= t {
			return h.Seq, true, nil
		}
		off += int64(frame.Align(h.Len))
	}
	return 0, false, nil
}
