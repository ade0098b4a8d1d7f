package audit

import (
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// AnchorName is the file, in the audit directory, that records the newest line: the chain
// protects every line by the hash its successor records, and the anchor does it for the
// last one, and for the end of the log.
//
// Layout: one line of exactly anchorSize bytes, rewritten in place (pwrite at offset 0 and
// fdatasync: one sector, which a disk writes whole):
//
//	0        18                    39                                                   104       113
//	"sluice-audit-head " <sequence> " " <SHA-256 of the line, hex> " " <CRC32C, hex> "\n"
//
// sequence is 20 decimal digits, the CRC32C (8 hex digits) covers the bytes before it.
const (
	AnchorName   = "HEAD"
	anchorMagic  = "sluice-audit-head "
	anchorCRCOff = len(anchorMagic) + 20 + 1 + 64 + 1
	anchorSize   = anchorCRCOff + 8 + 1
)

// castagnoli is the CRC32C table of the anchor's checksum (this package imports the
// standard library only: internal/crc is the same function).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// anchor is the content of the anchor file.
type anchor struct {
	seq uint64
	sum [32]byte
}

func appendAnchor(dst []byte, a anchor) []byte {
	start := len(dst)
	dst = append(dst, anchorMagic...)
	dst = fmt.Appendf(dst, "%020d ", a.seq)
	dst = hex.AppendEncode(dst, a.sum[:])
	dst = append(dst, ' ')
	dst = fmt.Appendf(dst, "%08x\n", crc32.Checksum(dst[start:], castagnoli))
	return dst
}

// errNoAnchor is readAnchor's error when the directory has no anchor file.
var errNoAnchor = errors.New("no anchor file")

// readAnchor reads the anchor file of dir: errNoAnchor if there is none, another error if
// it is not an anchor as written (damaged or edited).
func readAnchor(dir string) (anchor, error) {
	b, err := os.ReadFile(filepath.Join(dir, AnchorName))
	if errors.Is(err, fs.ErrNotExist) {
		return anchor{}, errNoAnchor
	}
	if err != nil {
		return anchor{}, err
	}
	bad := fmt.Errorf("%s is not an anchor as sluice writes it", AnchorName)
	if len(b) != anchorSize || string(b[:len(anchorMagic)]) != anchorMagic || b[anchorSize-1] != '\n' {
		return anchor{}, bad
	}
	if c, err := strconv.ParseUint(string(b[anchorCRCOff:anchorSize-1]), 16, 32); err != nil || uint32(c) != crc32.Checksum(b[:anchorCRCOff], castagnoli) {
		return anchor{}, bad
	}
	var a anchor
	fields := b[len(anchorMagic) : anchorCRCOff-1]
	seq, err := strconv.ParseUint(string(fields[:20]), 10, 64)
	if err != nil {
		return anchor{}, bad
	}
	if _, err := hex.Decode(a.sum[:], fields[21:]); err != nil {
		return anchor{}, bad
	}
	a.seq = seq
	return a, nil
}

// writeAnchor records a as the newest line: written in place and synced. The lines up to
// a must be durable before (the anchor never names a line a crash could take away). A new
// anchor file is created and the directory synced.
func (w *Writer) writeAnchor(a anchor) error {
	if w.anchorFile == nil {
		path := filepath.Join(w.dir, AnchorName)
		_, statErr := os.Stat(path)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		if errors.Is(statErr, fs.ErrNotExist) {
			if err := syncDir(w.dir); err != nil {
				f.Close()
				return err
			}
		}
		w.anchorFile = f
	}
	w.anchorBuf = appendAnchor(w.anchorBuf[:0], a)
	if _, err := w.anchorFile.WriteAt(w.anchorBuf, 0); err != nil {
		return err
	}
	return unix.Fdatasync(int(w.anchorFile.Fd()))
}

// syncDir fsyncs a directory, making the creation of its files durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
