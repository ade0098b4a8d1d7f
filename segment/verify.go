package segment

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/edsrzf/mmap-go"

	"github.com/sluice-streams/sluice/index"
	"github.com/sluice-streams/sluice/internal/vfs"
)

// SegmentReport is what Verify found in one segment file.
type SegmentReport struct {
	Path    string
	ID      uint64
	Base    uint64
	Sealed  bool
	Records uint64
	First   uint64
	Last    uint64
	End     int64  // offset past the last good frame
	Index   string // "ok", "missing", "invalid: …" (sealed segments only)
	Problem string // empty when the segment is intact
}

// Verify checks every segment of the log in dir without changing anything: headers,
// checkpoints, every frame's CRC, sequence order, sealed summaries against the frames, index
// files against their segments, and missing segments. It is what `sluice inspect` prints.
// The returned error reports I/O failures only; damage is described in the reports.
func Verify(dir string) ([]SegmentReport, error) {
	fsys := vfs.OS
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var reps []SegmentReport
	for _, e := range entries {
		base, id, ok := parseSegName(e.Name())
		if !ok {
			continue
		}
		reps = append(reps, verifySegment(fsys, filepath.Join(dir, e.Name()), base, id))
	}
	slices.SortFunc(reps, func(a, b SegmentReport) int { return cmpU64(a.Base, b.Base) })
	for i := 1; i < len(reps); i++ {
		if reps[i].ID != reps[i-1].ID+1 && reps[i].Problem == "" {
			reps[i].Problem = fmt.Sprintf("segment(s) %d to %d missing before it", reps[i-1].ID+1, reps[i].ID-1)
		}
	}
	return reps, nil
}

func verifySegment(fsys vfs.FS, path string, base, id uint64) (r SegmentReport) {
	r = SegmentReport{Path: path, ID: id, Base: base}
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		r.Problem = err.Error()
		return r
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		r.Problem = err.Error()
		return r
	}
	page, err := readHeaderPage(f)
	if err != nil {
		r.Problem = err.Error()
		return r
	}
	h, err := decodeSegHeader(page)
	if err != nil {
		r.Problem = fmt.Sprintf("offset 0: %v", err)
		return r
	}
	if h.segID != id || h.base != base {
		r.Problem = fmt.Sprintf("header says segment %d base %d, the name says %d base %d", h.segID, h.base, id, base)
		return r
	}
	ckpt, haveCkpt := bestCheckpoint(page)
	r.Sealed = haveCkpt && ckpt.sealed
	if size <= DataOffset {
		if r.Sealed && ckpt.durable > size {
			r.Problem = fmt.Sprintf("truncated to %d bytes, sealed end %d", size, ckpt.durable)
		}
		return r
	}
	m, err := mmap.MapRegion(f.OS(), int(size), mmap.RDONLY, 0, 0)
	if err != nil {
		r.Problem = err.Error()
		return r
	}
	defer m.Unmap()
	bld := index.NewBuilder(defaultIndexInterval, size)
	res := scanFrames(m, DataOffset, size, base, bld)
	r.Records, r.First, r.Last, r.End = res.count, res.first, res.last, res.end
	switch {
	case !haveCkpt:
		r.Problem = "no valid checkpoint slot"
	case r.Sealed && (res.end != ckpt.durable || res.count != ckpt.count || res.last != ckpt.last):
		r.Problem = fmt.Sprintf("frames end at %d with %d records up to %d, the seal says %d, %d, %d",
			res.end, res.count, res.last, ckpt.durable, ckpt.count, ckpt.last)
		if res.err != nil {
			r.Problem += fmt.Sprintf(" (offset %d: %v)", res.end, res.err)
		}
	case res.end < ckpt.durable:
		r.Problem = fmt.Sprintf("offset %d: damage before the durable checkpoint at %d: %v", res.end, ckpt.durable, res.err)
	case res.err != nil || lastNonZero(m, res.end) > res.end:
		r.Problem = fmt.Sprintf("offset %d: torn tail (past the durable checkpoint; recovery zeroes it)", res.end)
	}
	if r.Sealed {
		want := index.Header{SegmentID: id, Base: base, End: ckpt.durable, Last: ckpt.last}
		switch xf, err := index.Open(fsys, idxPath(path), want); {
		case err == nil:
			xf.Close()
			r.Index = "ok"
		case isNotExist(err):
			r.Index = "missing (rebuilt when read)"
		default:
			r.Index = "invalid, rebuilt when read: " + err.Error()
		}
	}
	return r
}
