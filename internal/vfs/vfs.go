// Package vfs is the narrow file-system seam the storage packages write through.
//
// It exists so that tests can put a fault-injecting layer (package faultfs) between the log
// and the disk: ENOSPC and EIO on demand, and a simulated power cut that drops every write
// not yet synced. Production code uses OS, which calls the kernel directly.
//
// A File's Sync is fdatasync(2): it makes the file's data, and the metadata needed to read it
// back (its size), durable. Directory entries become durable through FS.SyncDir.
package vfs

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// File is an open file. Implementations are safe for concurrent use by multiple goroutines
// as far as the kernel's pread/pwrite are: distinct ranges may be read and written at once.
type File interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
	// Sync makes the data written so far durable (fdatasync).
	Sync() error
	// Allocate reserves disk blocks for [off, off+n) and extends the file to cover it, so
	// later writes into that range cannot fail for lack of space (fallocate mode 0).
	Allocate(off, n int64) error
	// ZeroRange makes [off, off+n) read as zeros while keeping its blocks allocated.
	ZeroRange(off, n int64) error
	Truncate(size int64) error
	Size() (int64, error)
	// OS returns the underlying *os.File, used only to map the file into memory.
	OS() *os.File
	Name() string
	Close() error
}

// FS opens, renames and removes files and makes directory changes durable.
type FS interface {
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	Remove(name string) error
	Rename(oldname, newname string) error
	ReadDir(name string) ([]fs.DirEntry, error)
	MkdirAll(name string, perm fs.FileMode) error
	// SyncDir fsyncs a directory so that creations, renames and removals in it are durable.
	SyncDir(name string) error
}

// OS is the FS of the running kernel.
var OS FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &osFile{f: f}, nil
}

func (osFS) Remove(name string) error                     { return os.Remove(name) }
func (osFS) Rename(oldname, newname string) error         { return os.Rename(oldname, newname) }
func (osFS) ReadDir(name string) ([]fs.DirEntry, error)   { return os.ReadDir(name) }
func (osFS) MkdirAll(name string, perm fs.FileMode) error { return os.MkdirAll(name, perm) }

func (osFS) SyncDir(name string) error {
	d, err := os.Open(name)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

type osFile struct{ f *os.File }

func (o *osFile) ReadAt(p []byte, off int64) (int, error)  { return o.f.ReadAt(p, off) }
func (o *osFile) WriteAt(p []byte, off int64) (int, error) { return o.f.WriteAt(p, off) }
func (o *osFile) Truncate(size int64) error                { return o.f.Truncate(size) }
func (o *osFile) OS() *os.File                             { return o.f }
func (o *osFile) Name() string                             { return o.f.Name() }
func (o *osFile) Close() error                             { return o.f.Close() }

func (o *osFile) Sync() error {
	for {
		err := unix.Fdatasync(int(o.f.Fd()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "fdatasync", Path: o.f.Name(), Err: err}
		}
		return nil
	}
}

func (o *osFile) Size() (int64, error) {
	st, err := o.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (o *osFile) Allocate(off, n int64) error {
	err := fallocate(int(o.f.Fd()), 0, off, n)
	if errors.Is(err, unix.EOPNOTSUPP) {
		// A file system without fallocate: extending the size is the best left. Writes
		// into the hole may then fail with ENOSPC, which the writer reports; they are
		// writes, not stores into a mapping, so they cannot raise SIGBUS.
		if size, serr := o.Size(); serr == nil && size < off+n {
			return o.f.Truncate(off + n)
		}
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "fallocate", Path: o.f.Name(), Err: err}
	}
	return nil
}

func (o *osFile) ZeroRange(off, n int64) error {
	err := fallocate(int(o.f.Fd()), unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) {
		return &os.PathError{Op: "fallocate(zero range)", Path: o.f.Name(), Err: err}
	}
	return WriteZeros(o, off, n)
}

func fallocate(fd int, mode uint32, off, n int64) error {
	for {
		err := unix.Fallocate(fd, mode, off, n)
		if err != unix.EINTR {
			return err
		}
	}
}

// WriteZeros writes n zero bytes at off with plain writes, 64 KiB at a time.
func WriteZeros(f File, off, n int64) error {
	var zeros [64 << 10]byte
	for n > 0 {
		c := min(n, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:c], off); err != nil {
			return err
		}
		off += c
		n -= c
	}
	return nil
}
