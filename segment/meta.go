package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sluice-streams/sluice/internal/crc"
	"github.com/sluice-streams/sluice/internal/vfs"
)

// Log metadata file "log.meta", 80 bytes, little-endian, replaced atomically (temporary file,
// fdatasync, rename, fsync of the directory):
//
//	0       8     10      12     16      24         32       40      48      56      64       72     76    80
//	+-------+-----+-------+------+-------+----------+--------+-------+-------+-------+--------+------+-----+
//	| magic | ver | flags | rsvd | logID | reserved | cseg   | cend  | clast | ctime | hidden | rsvd | CRC |
//	+-------+-----+-------+------+-------+----------+--------+-------+-------+-------+--------+------+-----+
//
//	magic     "SLUICLOG"
//	ver       uint16, metaVersion
//	flags     uint16, bit 0: clean (the log was closed cleanly; the c* fields describe it);
//	          bit 1: cut pending (replicated mode: a Truncate was decided; clast holds the
//	          position to cut after, and Open finishes the cut before anything else). The
//	          two bits are never set together. A single-node log never sets bit 1.
//	logID     uint64
//	reserved  uint64, no sequence number at or above it has been handed out. Each open
//	          starts numbering at reserved or above and reserves a span past it before
//	          acknowledging anything, so numbers are never reused even when a torn tail
//	          loses records that readers had already seen.
//	cseg      uint64, clean: id of the active segment (0: none)
//	cend      uint64, clean: end of its frames
//	clast     uint64, clean: its last sequence number
//	ctime     int64,  clean: that record's arrival time
//	hidden    int64,  records that arrived before this Unix-nanosecond time are hidden
//	CRC       uint32, CRC32C of bytes [0, 76)
const (
	metaName    = "log.meta"
	metaSize    = 80
	metaVersion = 1
	metaMagic   = "SLUICLOG"
	metaClean   = 1
	metaCut     = 2
)

type meta struct {
	logID    uint64
	reserved uint64
	clean    bool
	cseg     uint64
	cend     int64
	clast    uint64
	ctime    int64
	hidden   int64
	// cutPending: a Truncate after cut was decided and may not be finished on disk (Open
	// finishes it). Stored in the clast field, so never together with clean.
	cutPending bool
	cut        uint64
}

func (m meta) encode() []byte {
	b := make([]byte, 0, metaSize)
	b = append(b, metaMagic...)
	b = binary.LittleEndian.AppendUint16(b, metaVersion)
	var flags uint16
	if m.clean {
		flags |= metaClean
	}
	clast := m.clast
	if m.cutPending {
		if m.clean || m.clast != 0 {
			panic("BUG: log.meta with a pending cut and a clean close")
		}
		flags |= metaCut
		clast = m.cut
	}
	b = binary.LittleEndian.AppendUint16(b, flags)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, m.logID)
	b = binary.LittleEndian.AppendUint64(b, m.reserved)
	b = binary.LittleEndian.AppendUint64(b, m.cseg)
	b = binary.LittleEndian.AppendUint64(b, uint64(m.cend))
	b = binary.LittleEndian.AppendUint64(b, clast)
	b = binary.LittleEndian.AppendUint64(b, uint64(m.ctime))
	b = binary.LittleEndian.AppendUint64(b, uint64(m.hidden))
	b = binary.LittleEndian.AppendUint32(b, 0)
	return binary.LittleEndian.AppendUint32(b, crc.Checksum(b))
}

func decodeMeta(b []byte) (meta, error) {
	var m meta
	if len(b) != metaSize {
		return m, fmt.Errorf("%d bytes, want %d", len(b), metaSize)
	}
	if string(b[:8]) != metaMagic {
		return m, fmt.Errorf("bad magic %q", b[:8])
	}
	if got, want := binary.LittleEndian.Uint32(b[76:]), crc.Checksum(b[:76]); got != want {
		return m, fmt.Errorf("CRC %08x, want %08x", got, want)
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != metaVersion {
		return m, fmt.Errorf("%w %d", ErrVersion, v)
	}
	m.clean = binary.LittleEndian.Uint16(b[10:])&metaClean != 0
	m.logID = binary.LittleEndian.Uint64(b[16:])
	m.reserved = binary.LittleEndian.Uint64(b[24:])
	m.cseg = binary.LittleEndian.Uint64(b[32:])
	m.cend = int64(binary.LittleEndian.Uint64(b[40:]))
	m.clast = binary.LittleEndian.Uint64(b[48:])
	m.ctime = int64(binary.LittleEndian.Uint64(b[56:]))
	m.hidden = int64(binary.LittleEndian.Uint64(b[64:]))
	if flags := binary.LittleEndian.Uint16(b[10:]); flags&metaCut != 0 {
		if m.clean {
			return m, fmt.Errorf("flags %#x: clean and cut pending together", flags)
		}
		m.cutPending, m.cut, m.clast = true, m.clast, 0
	}
	return m, nil
}

// readMeta returns the log's metadata; ok is false when the file does not exist.
func readMeta(fsys vfs.FS, dir string) (m meta, ok bool, err error) {
	path := filepath.Join(dir, metaName)
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		if isNotExist(err) {
			return m, false, nil
		}
		return m, false, err
	}
	defer f.Close()
	b := make([]byte, metaSize+1)
	n, err := f.ReadAt(b, 0)
	if n == len(b) {
		return m, false, fmt.Errorf("%w: %s: longer than %d bytes", ErrCorrupt, path, metaSize)
	}
	if n < metaSize && err != nil {
		return m, false, fmt.Errorf("%w: %s: %d bytes: %v", ErrCorrupt, path, n, err)
	}
	m, err = decodeMeta(b[:n])
	if errors.Is(err, ErrVersion) {
		return m, false, fmt.Errorf("%s: %w", path, err)
	}
	if err != nil {
		return m, false, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	return m, true, nil
}

// writeMeta replaces the metadata file crash-safely.
func writeMeta(fsys vfs.FS, dir string, m meta) error {
	return vfs.WriteFileAtomic(fsys, filepath.Join(dir, metaName), m.encode(), 0o600)
}

func isNotExist(err error) bool { return err != nil && errorsIs(err, fs.ErrNotExist) }
