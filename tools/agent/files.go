package agent

import (
	"errors"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"time"
)

// fingerprintBytes is how much of a file's start identifies its content: a file whose first
// bytes (up to this many) hash as another's is a copy of it (copy-truncate rotation).
const fingerprintBytes = 1024

// tracked is a file a flow follows. It is used by the flow's goroutine only.
type tracked struct {
	fileState
	f      *os.File
	size   int64     // at the last look
	buf    []byte    // bytes of the file from Off not yet made into records: buf[head:]
	head   int       // start of the unread part of buf
	copyOf *tracked  // a copy of that file, not read while that file holds the same content
	seen   bool      // matched by the pattern at the last scan
	linked bool      // has a name in the file system
	idle   time.Time // when the file was last found read to its end with nothing new
	sent   int64     // the byte after the lines delivered (or skipped, or dropped): Off once no batch waits
}

// readEnd is the offset after the bytes already in buf.
func (t *tracked) readEnd() int64 { return t.Off + int64(len(t.buf)-t.head) }

// behind is the bytes of the file not yet sent: lines read into the batch waiting count as
// behind until it is delivered. Off is below sent after a truncation.
func (t *tracked) behind() int64 { return max(t.size-min(t.sent, t.Off), 0) }

func (t *tracked) close() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
}

// headHash hashes the first n bytes of f; false if f has fewer.
func headHash(f *os.File, n int) (uint64, bool) {
	var b [fingerprintBytes]byte
	if n > len(b) {
		n = len(b)
	}
	if _, err := f.ReadAt(b[:n], 0); err != nil {
		return 0, false
	}
	h := fnv.New64a()
	h.Write(b[:n])
	return h.Sum64(), true
}

// refreshFingerprint extends t's fingerprint to the first fingerprintBytes of the file as
// it grows.
func (t *tracked) refreshFingerprint() {
	n := int(min(t.size, fingerprintBytes))
	if n <= t.FPLen {
		return
	}
	if fp, ok := headHash(t.f, n); ok {
		t.FP, t.FPLen = fp, n
	}
}

// sameContent reports whether f starts as t's fingerprint says.
func (t *tracked) sameContent(f *os.File) bool {
	if t.FPLen == 0 {
		return true
	}
	fp, ok := headHash(f, t.FPLen)
	return ok && fp == t.FP
}

// openTracked opens path as the file of st, or returns false when path is another file.
func openTracked(path string, st fileState) (*tracked, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	t := &tracked{fileState: st, f: f, linked: true}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, false
	}
	dev, ino, _ := fileID(fi)
	if dev != st.Dev || ino != st.Ino || fi.Size() < st.FPLen64() || !t.sameContent(f) {
		f.Close()
		return nil, false
	}
	t.Path, t.size = path, fi.Size()
	return t, true
}

// FPLen64 is FPLen as an offset.
func (s fileState) FPLen64() int64 { return int64(s.FPLen) }

// findMoved looks for the file of st in the directory of pattern, under any name: by its
// path first, then by device and inode (renamed), then by content (copied before the
// original was truncated).
func findMoved(pattern string, st fileState) (*tracked, string) {
	if t, ok := openTracked(st.Path, st); ok {
		return t, "at its path"
	}
	names, _ := filepath.Glob(filepath.Join(dirOf(pattern), "*"))
	for _, p := range names {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if dev, ino, _ := fileID(fi); dev == st.Dev && ino == st.Ino {
			if t, ok := openTracked(p, st); ok {
				return t, "renamed"
			}
		}
	}
	if st.FPLen == 0 {
		return nil, ""
	}
	for _, p := range names {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.Size() < st.Off {
			continue
		}
		dev, ino, _ := fileID(fi)
		cp := st
		cp.Dev, cp.Ino = dev, ino
		if t, ok := openTracked(p, cp); ok {
			return t, "copied"
		}
	}
	return nil, ""
}

// dirOf is the directory part of a file pattern.
func dirOf(pattern string) string { return filepath.Dir(pattern) }

// fill reads what the file holds after buf, up to readChunk bytes at a time, and returns
// whether it read anything. Bytes read from a file whose first bytes changed since its last
// scan are dropped: the file was truncated and written again after that scan, and they are
// not what followed buf (the next scan handles the truncation).
func (t *tracked) fill() (bool, error) {
	if t.head > 0 && t.head == len(t.buf) {
		t.buf, t.head = t.buf[:0], 0
	}
	if len(t.buf) == cap(t.buf) {
		if t.head > 0 {
			n := copy(t.buf, t.buf[t.head:])
			t.buf, t.head = t.buf[:n], 0
		} else {
			nb := make([]byte, len(t.buf), max(2*cap(t.buf), readChunk))
			copy(nb, t.buf)
			t.buf = nb
		}
	}
	had := len(t.buf)
	n, err := t.f.ReadAt(t.buf[had:cap(t.buf)], t.readEnd())
	if errors.Is(err, io.EOF) {
		err = nil
	}
	if n == 0 || !t.sameContent(t.f) {
		return false, err
	}
	t.buf = t.buf[:had+n]
	return true, err
}

// readChunk is the least a file's buffer grows by.
const readChunk = 256 << 10
