package vfs

import (
	"io/fs"
	"sync/atomic"
	"time"
)

// CountingFS wraps an FS and counts the syncs made through it: File.Sync calls (fdatasync),
// FS.SyncDir calls, the time spent in both and the longest single File.Sync. Benchmarks use
// it to report how many batches share one sync (group commit) and what share of the wall
// time syncs take. Failed syncs count too. Every other call passes straight through to the
// wrapped FS and its files.
//
// It is safe for concurrent use: Sync and SyncDir, called by any goroutine that writes through
// the FS, add to the counters with atomics; Stats and Reset, called by the benchmark, load and
// store them with atomics. The counters are independent, so a Stats taken while a sync
// completes may see its count without its time.
type CountingFS struct {
	FS // the wrapped file system

	syncs    atomic.Int64 // File.Sync calls
	dirSyncs atomic.Int64 // FS.SyncDir calls
	nanos    atomic.Int64 // time spent in both, nanoseconds
	longest  atomic.Int64 // the longest single File.Sync, nanoseconds
}

// NewCountingFS returns inner with its syncs counted, from zero.
func NewCountingFS(inner FS) *CountingFS { return &CountingFS{FS: inner} }

// SyncStats are the counters of a CountingFS.
type SyncStats struct {
	Syncs    int64         // File.Sync calls
	DirSyncs int64         // FS.SyncDir calls
	Time     time.Duration // total time spent in File.Sync and FS.SyncDir
	Longest  time.Duration // the longest single File.Sync
}

// Stats returns the counters since NewCountingFS or the last Reset.
func (c *CountingFS) Stats() SyncStats {
	return SyncStats{
		Syncs:    c.syncs.Load(),
		DirSyncs: c.dirSyncs.Load(),
		Time:     time.Duration(c.nanos.Load()),
		Longest:  time.Duration(c.longest.Load()),
	}
}

// Reset sets the counters to zero, to start a measurement. A sync running during Reset is
// counted whole if it ends after the reset.
func (c *CountingFS) Reset() {
	c.syncs.Store(0)
	c.dirSyncs.Store(0)
	c.nanos.Store(0)
	c.longest.Store(0)
}

// OpenFile opens the file in the wrapped FS; Sync on the returned File is counted.
func (c *CountingFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &countingFile{File: f, c: c}, nil
}

// SyncDir fsyncs the directory through the wrapped FS, counting the call and its time.
func (c *CountingFS) SyncDir(name string) error {
	t := time.Now()
	err := c.FS.SyncDir(name)
	c.nanos.Add(int64(time.Since(t)))
	c.dirSyncs.Add(1)
	return err
}

// countingFile is a File of a CountingFS.
type countingFile struct {
	File
	c *CountingFS
}

func (f *countingFile) Sync() error {
	t := time.Now()
	err := f.File.Sync()
	d := int64(time.Since(t))
	f.c.nanos.Add(d)
	f.c.syncs.Add(1)
	for {
		cur := f.c.longest.Load()
		if d <= cur || f.c.longest.CompareAndSwap(cur, d) {
			break
		}
	}
	return err
}
