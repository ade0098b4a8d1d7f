package segment

import (
	"os"
	"path/filepath"

	"github.com/sluice-streams/sluice/internal/vfs"
)

// Snapshots of a replicated log. A replica that is too far behind its group's leader (the
// entries it needs were removed by retention) receives the leader's sealed segment files as
// they are, byte for byte, and adopts them as its log: SealedUpTo lists what to send,
// CreateMeta makes a directory of received files a log that Open accepts.

// SealedFile is one sealed segment file of a log.
type SealedFile struct {
	Name        string // the file's name in the log's directory
	Size        int64  // its size in bytes
	First, Last uint64 // positions of its first and last frames (0 and 0: it holds none)
}

// SealedUpTo lists, oldest first, the sealed segments of the log whose frames are all at or
// below pos. The list stops at the first segment that is not sealed, cannot be read, or
// holds a frame above pos, so it is always a run of consecutive segments from the oldest.
// Retention may remove a listed file at any time after the call.
func (l *Log) SealedUpTo(pos uint64) ([]SealedFile, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	var out []SealedFile
	for _, s := range *l.segs.Load() {
		if s == l.active {
			break
		}
		info, err := s.sealedInfo()
		if err != nil || info.last > pos {
			break
		}
		f, err := l.fs.OpenFile(s.path, os.O_RDONLY, 0)
		if err != nil {
			return nil, err
		}
		size, err := f.Size()
		f.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, SealedFile{Name: filepath.Base(s.path), Size: size, First: info.first, Last: info.last})
	}
	return out, nil
}

// FirstPos returns the base of the oldest segment of the log (0: the log has none). In
// replicated mode a segment is created for the batch that rolls into it, so its base is the
// position of its first frame.
func (l *Log) FirstPos() uint64 {
	segs := *l.segs.Load()
	if len(segs) == 0 {
		return 0
	}
	return segs[0].base
}

// IsSegmentName reports whether name has the shape of a segment file's name
// (`<base>-<id>.seg`, docs/FORMAT.md).
func IsSegmentName(name string) bool {
	_, _, ok := parseSegName(name)
	return ok
}

// CreateMeta writes a new log.meta (logID, no reservation, not clean) into dir, atomically,
// for segment files placed there from another replica of the same replicated log: Open
// then accepts them as a log and scans the newest. It replaces a log.meta already there.
func CreateMeta(fsys vfs.FS, dir string, logID uint64) error {
	if fsys == nil {
		fsys = vfs.OS
	}
	return writeMeta(fsys, dir, meta{logID: logID})
}
