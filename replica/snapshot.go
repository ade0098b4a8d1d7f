package replica

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.etcd.io/raft/v3/confchange"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/internal/vfs"
	"github.com/sluice-streams/sluice/segment"
)

// Snapshots (docs/CLUSTER.md, "Snapshots"; docs/FORMAT.md). A snapshot of a shard's replica
// is a position S (the applied index), its term, the group's configuration at S, the sealed
// segment files that hold frames up to S, shipped byte for byte, and the tail: the frames
// after the last of those files up to S (in the leader's active segment), shipped as frames.
// raft.snap records the snapshot a replica's log starts from (after an install, or after
// retention removed segments); a snapshot's Data is the same encoding, naming what to fetch.
//
//	snapshot record: index u64, term u64, cslen u32, ConfState (protobuf, cslen bytes),
//	                 nfiles u32, then per file: size u64, first u64, last u64,
//	                 namelen u32, name;
//	                 then the tail: from u64, to u64, size u64 (0, 0, 0: none);
//	                 then the seal (absent in a record written before it was carried):
//	                 nseals u32, nseals raft.seal records (32 bytes each, seal.go), last u64
//
// It is framed like the other side files (magic "SLRSNAPS", count 1, CRC). The tail is
// fetched under the name frames-<from>-<to>: the frames at positions from to to, as segment
// files store them. The seal is every seal and unseal entry at or below the index, and last,
// the position of the last record below the seal in force at the index (0 when none is): an
// install makes the records the replica's raft.seal. A record without the seal leaves
// raft.seal's records at or below its index as they are.
//
// Install, crash-safe. FetchSnapshot writes the files and the tail into the staging
// directory snapshot.staging (each synced), then its manifest (raft.snap there, written
// atomically): a crash up to here leaves the old log, and Open deletes the staging
// directory. Persist renames snapshot.staging to snapshot.install and syncs the replica's
// directory: the commit point. finishInstall then replaces the log: raft.snap, raft.terms
// and raft.conf first, then every segment and index file not in the snapshot goes, the
// staged files move in, a new log.meta is written, the tail is appended (AppendAt) and the
// log closed (synced); the manifest goes, then the rest of snapshot.install. Every step may
// be repeated, and Open repeats them while the manifest exists: after a crash the log is
// the old one or the new one, never a mix.
const (
	snapName    = "raft.snap"
	stagingName = "snapshot.staging"
	installName = "snapshot.install"
	maxSnapCS   = 1 << 20
)

// snapRec is a snapshot: position, term, configuration, the sealed files up to it, and the
// seal (hasSeals: the record carries it).
type snapRec struct {
	index, term uint64
	cs          *pb.ConfState
	files       []segment.SealedFile
	tail        tailRange
	hasSeals    bool
	seals       []sealRec // the seal and unseal entries at or below index
	sealLast    uint64    // the last record below the seal in force at index (0: none in force)
}

// tailRange is a snapshot's frames from..to, size bytes, fetched as one stream.
type tailRange struct{ from, to, size uint64 }

func (t tailRange) name() string { return fmt.Sprintf("frames-%d-%d", t.from, t.to) }

// parseTailName parses a tail's name (frames-<from>-<to>).
func parseTailName(name string) (from, to uint64, ok bool) {
	rest, found := strings.CutPrefix(name, "frames-")
	a, b, found2 := strings.Cut(rest, "-")
	from, err1 := strconv.ParseUint(a, 10, 64)
	to, err2 := strconv.ParseUint(b, 10, 64)
	return from, to, found && found2 && err1 == nil && err2 == nil && from >= 1 && from <= to
}

func encodeSnap(r snapRec) ([]byte, error) {
	cs, err := proto.Marshal(r.cs)
	if err != nil {
		return nil, err
	}
	b := appendSideHeader(nil, "SLRSNAPS", 1)
	b = binary.LittleEndian.AppendUint64(b, r.index)
	b = binary.LittleEndian.AppendUint64(b, r.term)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(cs)))
	b = append(b, cs...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.files)))
	for _, f := range r.files {
		b = binary.LittleEndian.AppendUint64(b, uint64(f.Size))
		b = binary.LittleEndian.AppendUint64(b, f.First)
		b = binary.LittleEndian.AppendUint64(b, f.Last)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(f.Name)))
		b = append(b, f.Name...)
	}
	b = binary.LittleEndian.AppendUint64(b, r.tail.from)
	b = binary.LittleEndian.AppendUint64(b, r.tail.to)
	b = binary.LittleEndian.AppendUint64(b, r.tail.size)
	if r.hasSeals {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(r.seals)))
		b = appendSealRecs(b, r.seals)
		b = binary.LittleEndian.AppendUint64(b, r.sealLast)
	}
	return sealSide(b), nil
}

// decodeSnap decodes a snapshot record. File names must be segment file names, so that a
// snapshot's Data can never name a path outside the replica's directory.
func decodeSnap(b []byte) (snapRec, error) {
	var r snapRec
	count, body, err := checkSide(b, "SLRSNAPS")
	if err != nil {
		return r, err
	}
	if count != 1 || len(body) < 20 {
		return r, fmt.Errorf("%d records in %d bytes", count, len(body))
	}
	r.index, r.term = binary.LittleEndian.Uint64(body), binary.LittleEndian.Uint64(body[8:])
	n := binary.LittleEndian.Uint32(body[16:])
	body = body[20:]
	if n > maxSnapCS || int(n)+4 > len(body) {
		return r, fmt.Errorf("configuration of %d bytes", n)
	}
	r.cs = &pb.ConfState{}
	if err := proto.Unmarshal(body[:n], r.cs); err != nil {
		return r, fmt.Errorf("configuration: %v", err)
	}
	nf := binary.LittleEndian.Uint32(body[n:])
	body = body[n+4:]
	for i := range nf {
		if len(body) < 28 {
			return r, fmt.Errorf("file %d cut short", i)
		}
		f := segment.SealedFile{Size: int64(binary.LittleEndian.Uint64(body)), First: binary.LittleEndian.Uint64(body[8:]),
			Last: binary.LittleEndian.Uint64(body[16:])}
		l := binary.LittleEndian.Uint32(body[24:])
		if int(l) > len(body)-28 {
			return r, fmt.Errorf("file %d: name of %d bytes", i, l)
		}
		f.Name = string(body[28 : 28+l])
		body = body[28+l:]
		if !segment.IsSegmentName(f.Name) || f.Size < 0 || f.Last > r.index {
			return r, fmt.Errorf("file %d: %q, %d bytes, last %d above the snapshot's %d", i, f.Name, f.Size, f.Last, r.index)
		}
		if len(r.files) > 0 && f.Name <= r.files[len(r.files)-1].Name {
			return r, fmt.Errorf("file %d: %q out of order", i, f.Name)
		}
		r.files = append(r.files, f)
	}
	if len(body) < 24 {
		return r, fmt.Errorf("%d bytes after the files", len(body))
	}
	r.tail = tailRange{binary.LittleEndian.Uint64(body), binary.LittleEndian.Uint64(body[8:]), binary.LittleEndian.Uint64(body[16:])}
	if t := r.tail; t != (tailRange{}) && (t.from > t.to || t.to > r.index || t.size == 0) {
		return r, fmt.Errorf("tail %d to %d (%d bytes) for a snapshot at %d", t.from, t.to, t.size, r.index)
	}
	if body = body[24:]; len(body) == 0 {
		return r, nil // written before snapshots carried the seal
	}
	if len(body) < 12 {
		return r, fmt.Errorf("%d bytes after the tail", len(body))
	}
	ns := binary.LittleEndian.Uint32(body)
	body = body[4:]
	if uint64(len(body)) != uint64(ns)*sealRecSize+8 {
		return r, fmt.Errorf("%d seal records in %d bytes", ns, len(body))
	}
	if r.seals, err = decodeSealRecs(body, int(ns)); err != nil {
		return r, fmt.Errorf("seal: %v", err)
	}
	r.hasSeals, r.sealLast = true, binary.LittleEndian.Uint64(body[len(body)-8:])
	if n := len(r.seals); n > 0 && r.seals[n-1].index > r.index || r.sealLast > r.index {
		return r, fmt.Errorf("seal records up to %d, ending %d, for a snapshot at %d", r.seals[max(n-1, 0)].index, r.sealLast, r.index)
	}
	return r, nil
}

// applyConf returns cs with the configuration change entry e applied, as raft applies it.
func applyConf(cs *pb.ConfState, e confRec) (*pb.ConfState, error) {
	var cc *pb.ConfChangeV2
	switch pb.EntryType(e.typ) {
	case pb.EntryConfChange:
		var c pb.ConfChange
		if err := proto.Unmarshal(e.data, &c); err != nil {
			return nil, err
		}
		cc = c.AsV2()
	case pb.EntryConfChangeV2:
		cc = &pb.ConfChangeV2{}
		if err := proto.Unmarshal(e.data, cc); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("entry type %d", e.typ)
	}
	chg := confchange.Changer{Tracker: tracker.MakeProgressTracker(1, 0), LastIndex: e.index}
	cfg, prs, err := confchange.Restore(chg, cs)
	if err != nil {
		return nil, err
	}
	chg.Tracker.Config, chg.Tracker.Progress = cfg, prs
	if cc.LeaveJoint() {
		cfg, prs, err = chg.LeaveJoint()
	} else if autoLeave, ok := cc.EnterJoint(); ok {
		cfg, prs, err = chg.EnterJoint(autoLeave, cc.GetChanges()...)
	} else {
		cfg, prs, err = chg.Simple(cc.GetChanges()...)
	}
	if err != nil {
		return nil, err
	}
	chg.Tracker.Config, chg.Tracker.Progress = cfg, prs
	return chg.Tracker.ConfState(), nil
}

// confAtLocked returns the group's configuration as of index i: the base (the snapshot's, or
// SetConfState's) with every conf entry above the snapshot and at or below i applied.
func (s *Storage) confAtLocked(i uint64) (*pb.ConfState, error) {
	cs := s.cs
	if s.snap.cs != nil {
		cs = s.snap.cs
	}
	cs = proto.Clone(cs).(*pb.ConfState)
	for _, c := range s.confs {
		if c.index <= s.snap.index {
			continue
		}
		if c.index > i {
			break
		}
		next, err := applyConf(cs, c)
		if err != nil {
			return nil, fmt.Errorf("%w: conf entry %d: %v", ErrCorrupt, c.index, err)
		}
		cs = next
	}
	return cs, nil
}

// OpenSnapshotFile implements multiraft.SnapshotFiles (this package does not import it; its
// tests check the fit): it opens a sealed segment file that a
// snapshot of this replica may name (one of the sealed segments up to the published tip).
func (l *Log) OpenSnapshotFile(name string) (io.ReadCloser, int64, error) {
	if from, to, ok := parseTailName(name); ok {
		return l.storage.openTail(from, to)
	}
	seg := l.storage.segLog()
	files, err := seg.SealedUpTo(l.storage.appliedIndex())
	if err != nil {
		return nil, 0, err
	}
	k := slices.IndexFunc(files, func(f segment.SealedFile) bool { return f.Name == name })
	if k < 0 {
		return nil, 0, ErrNoSnapshotFile
	}
	f, err := l.storage.fs.OpenFile(filepath.Join(l.storage.dir, name), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, ErrNoSnapshotFile // removed by retention since
	}
	if err != nil {
		return nil, 0, err
	}
	return &fileReader{f: f}, files[k].Size, nil
}

// fileReader reads a vfs.File from its start.
type fileReader struct {
	f   vfs.File
	off int64
}

func (r *fileReader) Read(p []byte) (int, error) {
	n, err := r.f.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (r *fileReader) Close() error { return r.f.Close() }

// FetchSnapshot implements multiraft.SnapshotFiles: it stages the files snap names, read
// with open, in snapshot.staging (each synced, then the manifest): Persist installs them.
// A file whose size differs from the snapshot's is refused. A snapshot at or below the
// applied index needs nothing: raft does not restore it.
func (l *Log) FetchSnapshot(ctx context.Context, snap *pb.Snapshot, open func(name string) (io.ReadCloser, error)) error {
	st := l.storage
	rec, err := decodeSnap(snap.GetData())
	if err != nil {
		return fmt.Errorf("replica: snapshot data: %w", err)
	}
	if md := snap.GetMetadata(); rec.index != md.GetIndex() || rec.term != md.GetTerm() {
		return fmt.Errorf("replica: snapshot data names (%d, %d), metadata (%d, %d)", rec.index, rec.term, md.GetIndex(), md.GetTerm())
	}
	if rec.index <= st.appliedIndex() {
		return nil // raft will not restore it (its commit index is past it): nothing to fetch
	}
	stage := filepath.Join(st.dir, stagingName)
	if err := removeDir(st.fs, stage); err != nil {
		return err
	}
	if err := st.fs.MkdirAll(stage, 0o700); err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for _, f := range rec.files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fetchFile(st.fs, filepath.Join(stage, f.Name), f.Size, buf, func() (io.ReadCloser, error) { return open(f.Name) }); err != nil {
			return fmt.Errorf("replica: snapshot file %s: %w", f.Name, err)
		}
	}
	if t := rec.tail; t.size > 0 {
		if err := fetchFile(st.fs, filepath.Join(stage, t.name()), int64(t.size), buf, func() (io.ReadCloser, error) { return open(t.name()) }); err != nil {
			return fmt.Errorf("replica: snapshot frames %d to %d: %w", t.from, t.to, err)
		}
	}
	return writeSide(st.fs, stage, snapName, snap.GetData())
}

// fetchFile copies exactly size bytes from what open returns into path, and syncs it.
func fetchFile(fsys vfs.FS, path string, size int64, buf []byte, open func() (io.ReadCloser, error)) error {
	src, err := open()
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := fsys.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer dst.Close()
	var off int64
	for {
		n, err := src.Read(buf[:min(int64(len(buf)), size-off+1)])
		if off+int64(n) > size {
			return fmt.Errorf("longer than %d bytes", size)
		}
		if _, werr := dst.WriteAt(buf[:n], off); werr != nil {
			return werr
		}
		off += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if off != size {
		return fmt.Errorf("%d bytes, want %d", off, size)
	}
	return dst.Sync()
}

// removeDir removes a directory of plain files and the directory (gone already: nil).
func removeDir(fsys vfs.FS, dir string) error {
	entries, err := fsys.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := fsys.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := fsys.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// prepareDir readies a replica's directory before its segment log opens: a staging
// directory (a fetch that never committed) is removed, and an install that committed is
// finished.
func prepareDir(dir string, so segment.Options) error {
	if err := removeDir(so.FS, filepath.Join(dir, stagingName)); err != nil {
		return err
	}
	return finishInstall(dir, so)
}

// finishInstall finishes the install of the snapshot in snapshot.install, if there is one
// (see the package's snapshot comment). Every step may be repeated after a crash.
func finishInstall(dir string, so segment.Options) error {
	fsys := so.FS
	inst := filepath.Join(dir, installName)
	rec, ok, err := rollForward(fsys, dir, so.LogID)
	if err != nil || !ok {
		return err
	}
	if rec.tail.size > 0 {
		if err := appendTail(dir, so, filepath.Join(inst, rec.tail.name()), rec.tail); err != nil {
			return err
		}
	}
	if err := fsys.Remove(filepath.Join(inst, snapName)); err != nil {
		return err
	}
	if err := fsys.SyncDir(inst); err != nil {
		return err
	}
	if err := removeDir(fsys, inst); err != nil {
		return err
	}
	return fsys.SyncDir(dir)
}

// rollForward replaces the log's files with the snapshot's (the side files, the segment
// files and log.meta); ok is false when no install is pending (a leftover directory without
// its manifest is removed).
func rollForward(fsys vfs.FS, dir string, logID uint64) (rec snapRec, ok bool, err error) {
	inst := filepath.Join(dir, installName)
	man, ok, err := readSide(fsys, inst, snapName, func(b []byte) ([]byte, error) {
		_, err := decodeSnap(b)
		return b, err
	})
	if err != nil {
		return rec, false, err
	}
	if !ok { // the manifest goes first: what is left of the directory is done with
		return rec, false, removeDir(fsys, inst)
	}
	rec, _ = decodeSnap(man)
	for _, w := range []struct {
		name string
		b    []byte
	}{{snapName, man}, {termsName, encodeTerms(nil)}, {confName, encodeConfs(nil)}} {
		if err := writeSide(fsys, dir, w.name, w.b); err != nil {
			return rec, false, err
		}
	}
	if rec.hasSeals { // the snapshot's seal replaces the old log's
		if err := writeSide(fsys, dir, sealName, encodeSeals(rec.seals)); err != nil {
			return rec, false, err
		}
	}
	keep := map[string]bool{}
	for _, f := range rec.files {
		keep[f.Name] = true
	}
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return rec, false, err
	}
	for _, e := range entries {
		name := e.Name()
		if (segment.IsSegmentName(name) && !keep[name]) || filepath.Ext(name) == ".idx" {
			if err := fsys.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return rec, false, err
			}
		}
	}
	for _, f := range rec.files {
		err := fsys.Rename(filepath.Join(inst, f.Name), filepath.Join(dir, f.Name))
		if errors.Is(err, fs.ErrNotExist) {
			// Moved by an earlier attempt: it must be in place.
			var moved vfs.File
			if moved, err = fsys.OpenFile(filepath.Join(dir, f.Name), os.O_RDONLY, 0); err != nil {
				return rec, false, fmt.Errorf("%w: snapshot file %s: %v", ErrCorrupt, f.Name, err)
			}
			moved.Close()
		}
		if err != nil {
			return rec, false, err
		}
	}
	if err := segment.CreateMeta(fsys, dir, logID); err != nil {
		return rec, false, err
	}
	return rec, true, fsys.SyncDir(dir)
}

// appendTail opens the log in dir, appends the tail's frames at their positions (AppendAt,
// the frames above what the log holds) and closes it, which syncs them.
func appendTail(dir string, so segment.Options, path string, t tailRange) (err error) {
	b, err := vfs.ReadFile(so.FS, path, int64(t.size))
	if err != nil {
		return fmt.Errorf("%w: snapshot frames: %v", ErrCorrupt, err)
	}
	seg, err := segment.Open(dir, so)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := seg.Close(); err == nil {
			err = cerr
		}
	}()
	var batch []segment.Record
	for len(b) > 0 {
		r, n, err := frame.Decode(b)
		if err != nil || n == 0 || r.Seq < t.from || r.Seq > t.to {
			return fmt.Errorf("%w: snapshot frames: frame at %d: %v", ErrCorrupt, r.Seq, err)
		}
		if r.Seq > seg.LastPos() {
			batch = append(batch, segment.Record(r))
		}
		b = b[n:]
		if len(batch) == 256 || (len(b) == 0 && len(batch) > 0) {
			if err := seg.AppendAt(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

// segLog returns the current segment log (another after a snapshot install).
func (s *Storage) segLog() *segment.Log { return s.cur.Load() }

// installLocked installs the snapshot FetchSnapshot staged: the commit point (renaming the
// staging directory to snapshot.install, then syncing the directory), rollForward, and the
// segment log opened again over the new files, published up to the snapshot's index. From
// the commit point on, a failure leaves the install to Open.
func (s *Storage) installLocked(snap *pb.Snapshot) error {
	md := snap.GetMetadata()
	stage := filepath.Join(s.dir, stagingName)
	man, ok, err := readSide(s.fs, stage, snapName, decodeSnap)
	if err != nil {
		return err
	}
	if !ok || man.index != md.GetIndex() || man.term != md.GetTerm() {
		return fmt.Errorf("%w: snapshot at %d, term %d", ErrSnapshot, md.GetIndex(), md.GetTerm())
	}
	if err := s.fs.Rename(stage, filepath.Join(s.dir, installName)); err != nil {
		return err
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return err
	}
	_ = s.log.Close() // its files are replaced; a failed final sync loses nothing kept
	if err := finishInstall(s.dir, s.segOpts); err != nil {
		return err
	}
	seg, err := segment.Open(s.dir, s.segOpts)
	if err != nil {
		return err
	}
	s.log = seg
	s.cur.Store(seg)
	s.snap, s.terms, s.confs, s.last, s.applied = man, nil, nil, man.index, man.index
	if man.hasSeals {
		s.seals = slices.Clone(man.seals)
	} else { // a snapshot without the seal: the records up to it stay (the rest, as on Open)
		s.dropSealsAboveLocked(man.index)
	}
	s.cache.reset()
	s.hs.commit = max(s.hs.commit, man.index)
	return seg.Publish(s.sealsAtLocked(man.index).limit(man.index))
}

// noteCompacted records in raft.snap that retention moved FirstIndex: the snapshot the log
// now starts from is FirstIndex−1 (its term and configuration; no files), so that the next
// Open knows it even when no segment is left.
func (s *Storage) noteCompacted() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.firstLocked() - 1
	if i <= s.snap.index {
		return nil
	}
	rec := snapRec{index: i, term: s.termLocked(i)}
	var err error
	if rec.cs, err = s.confAtLocked(i); err != nil {
		return err
	}
	rec = s.withSealsLocked(rec)
	b, err := encodeSnap(rec)
	if err != nil {
		return err
	}
	if err := writeSide(s.fs, s.dir, snapName, b); err != nil {
		return err
	}
	s.snap = rec
	s.dropUpToLocked(i)
	return nil
}

// setApplied records the last index given to Apply.
func (s *Storage) setApplied(i uint64) {
	s.mu.Lock()
	s.applied = max(s.applied, i)
	s.cache.dropUpTo(s.applied)
	s.mu.Unlock()
}

// appliedIndex returns the last index given to Apply.
func (s *Storage) appliedIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// tailLocked measures the frames from from to to: their positions and bytes (none: the zero
// tailRange).
func (s *Storage) tailLocked(from, to uint64) (tailRange, error) {
	var t tailRange
	err := walkFrames(s.log, from, to, func(b []byte, first, last uint64) error {
		if t.size == 0 {
			t.from = first
		}
		t.to, t.size = last, t.size+uint64(len(b))
		return nil
	})
	return t, err
}

// walkFrames calls f with the stored frames at positions from to to, in runs of whole
// frames (b aliases a view, valid during the call), with the first and last position of
// each run.
func walkFrames(seg *segment.Log, from, to uint64, f func(b []byte, first, last uint64) error) error {
	for from <= to {
		v, err := seg.ReadWritten(from, 4096, 1<<20)
		if err != nil {
			return err
		}
		if v.Count == 0 {
			v.Release()
			return nil
		}
		b, first, last := v.Bytes(), uint64(0), uint64(0)
		off := 0
		for it := v.Records(); it.Next(); {
			r := it.Record()
			if r.Seq > to {
				break
			}
			if first == 0 {
				first = r.Seq
			}
			last = r.Seq
			off += frame.Size(len(r.Key), len(r.Data))
		}
		if off > 0 {
			err = f(b[:min(off, len(b))], first, last)
		}
		v.Release()
		if err != nil || last == 0 || last >= to || v.Next <= from {
			return err
		}
		from = last + 1
	}
	return nil
}

// openTail serves the frames from to to (a snapshot's tail) as a stream, with its size.
// They must be applied and retained here.
func (s *Storage) openTail(from, to uint64) (io.ReadCloser, int64, error) {
	s.mu.Lock()
	t, err := tailRange{}, error(nil)
	ok := from >= s.firstLocked() && to <= s.applied
	if ok {
		t, err = s.tailLocked(from, to)
	}
	seg := s.log
	s.mu.Unlock()
	if err != nil {
		return nil, 0, err
	}
	if !ok || t.from != from || t.to != to {
		return nil, 0, ErrNoSnapshotFile
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(walkFrames(seg, from, to, func(b []byte, _, _ uint64) error {
			_, err := pw.Write(b)
			return err
		}))
	}()
	return pr, int64(t.size), nil
}
