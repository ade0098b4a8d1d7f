// Package faultfs is a fault-injecting vfs.FS for tests: it passes calls to the real file
// system and can make them fail (ENOSPC, EIO) on demand, and it keeps, for every file, the
// bytes as of its last successful Sync so that Crash can simulate a power cut: each file is
// put back to its synced content, and CrashTorn additionally keeps a random subset of the
// unsynced 512-byte sectors, as a disk that writes back out of order would.
//
// Simplifications, deliberate and documented: directory operations (create, rename, remove)
// are treated as durable at once, and a file that was never synced comes back empty. Files
// must be small (tests use 64 KiB segments): Sync copies the whole file.
package faultfs

import (
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/sluice-streams/sluice/internal/vfs"
)

// FS wraps vfs.OS. The zero value is not usable; call New.
type FS struct {
	mu       sync.Mutex
	durable  map[string][]byte // path → content at the last successful Sync; nil: never synced
	nodes    map[string]*node  // path → the node open files of that path share
	noSpace  bool
	maxAlloc int64 // Allocate beyond this many bytes fails with ENOSPC; 0: no limit
	writeErr error
	syncErr  error
	syncs    int
	// syncBudget, when not negative, is how many more syncs succeed before every Sync fails
	// with syncErr (FailSyncsAfter).
	syncBudget int
	budgetErr  error
}

// New returns a fault-injecting file system over the real one.
func New() *FS {
	return &FS{durable: map[string][]byte{}, nodes: map[string]*node{}, syncBudget: -1}
}

// SetNoSpace makes Allocate and WriteAt fail with ENOSPC while on is true.
func (f *FS) SetNoSpace(on bool) {
	f.mu.Lock()
	f.noSpace = on
	f.mu.Unlock()
}

// LimitAllocate makes Allocate fail with ENOSPC when it would reach past n bytes, as a disk
// with n bytes free would (0: no limit).
func (f *FS) LimitAllocate(n int64) {
	f.mu.Lock()
	f.maxAlloc = n
	f.mu.Unlock()
}

// FailWrites makes every WriteAt fail with err (nil: stop failing).
func (f *FS) FailWrites(err error) {
	f.mu.Lock()
	f.writeErr = err
	f.mu.Unlock()
}

// FailSyncs makes every Sync fail with err (nil: stop failing).
func (f *FS) FailSyncs(err error) {
	f.mu.Lock()
	f.syncErr, f.syncBudget = err, -1
	f.mu.Unlock()
}

// FailSyncsAfter lets the next n syncs succeed and makes every later Sync fail with err, so
// that a test can stop a multi-step operation after each of its syncs in turn. FailSyncs
// ends it.
func (f *FS) FailSyncsAfter(n int, err error) {
	f.mu.Lock()
	f.syncBudget, f.syncErr = n, nil
	if n == 0 {
		f.syncErr = err
	} else {
		f.budgetErr = err
	}
	f.mu.Unlock()
}

// Syncs returns how many file syncs succeeded.
func (f *FS) Syncs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.syncs
}

// Crash puts every file back to its content at its last successful Sync.
func (f *FS) Crash() error { return f.crash(nil) }

// PowerCut simulates losing power while the program runs: from now on every write and sync
// fails with EIO (so nothing more can be acknowledged), and every file goes back to its synced
// content, keeping a random half of the unsynced sectors when rng is not nil. Call Revive
// before opening the files again.
func (f *FS) PowerCut(rng *rand.Rand) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writeErr, f.syncErr = unix.EIO, unix.EIO
	return f.crashLocked(rng)
}

// Revive ends injected failures: the machine is back.
func (f *FS) Revive() {
	f.mu.Lock()
	f.writeErr, f.syncErr, f.noSpace, f.syncBudget = nil, nil, false, -1
	f.mu.Unlock()
}

// CrashTorn is Crash, except that each unsynced 512-byte sector of a file is kept with
// probability 1/2, drawn from rng.
func (f *FS) CrashTorn(rng *rand.Rand) error { return f.crash(rng) }

func (f *FS) crash(rng *rand.Rand) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.crashLocked(rng)
}

func (f *FS) crashLocked(rng *rand.Rand) error {
	for path, old := range f.durable {
		cur, err := os.ReadFile(path)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return err
		}
		next := append([]byte(nil), old...)
		if rng != nil {
			if len(cur) > len(next) && rng.IntN(2) == 0 {
				next = append(next, make([]byte, len(cur)-len(next))...)
			}
			for s := 0; s < len(next) && s < len(cur); s += 512 {
				e := min(s+512, len(next), len(cur))
				if rng.IntN(2) == 0 {
					copy(next[s:e], cur[s:e])
				}
			}
		}
		if err := os.WriteFile(path, next, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (f *FS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	inner, err := vfs.OS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	if _, ok := f.durable[name]; !ok || flag&os.O_TRUNC != 0 {
		if flag&os.O_CREATE != 0 || flag&os.O_TRUNC != 0 {
			f.durable[name] = []byte{}
		} else if !ok {
			// An existing file opened for the first time: what is on disk now is durable.
			b, err := os.ReadFile(name)
			if err == nil {
				f.durable[name] = b
			}
		}
	}
	nd := f.nodes[name]
	if nd == nil {
		nd = &node{name: name}
		f.nodes[name] = nd
	}
	f.mu.Unlock()
	return &file{File: inner, fs: f, node: nd}, nil
}

func (f *FS) Remove(name string) error {
	f.mu.Lock()
	delete(f.durable, name)
	delete(f.nodes, name)
	f.mu.Unlock()
	return vfs.OS.Remove(name)
}

func (f *FS) Rename(oldname, newname string) error {
	if err := vfs.OS.Rename(oldname, newname); err != nil {
		return err
	}
	f.mu.Lock()
	if b, ok := f.durable[oldname]; ok {
		f.durable[newname] = b
		delete(f.durable, oldname)
	}
	if nd := f.nodes[oldname]; nd != nil {
		nd.name = newname
		f.nodes[newname] = nd
		delete(f.nodes, oldname)
	}
	// A renamed directory takes the files under it along.
	prefix := oldname + string(os.PathSeparator)
	for path, b := range f.durable {
		if rest, ok := strings.CutPrefix(path, prefix); ok {
			f.durable[filepath.Join(newname, rest)] = b
			delete(f.durable, path)
		}
	}
	for path, nd := range f.nodes {
		if rest, ok := strings.CutPrefix(path, prefix); ok {
			nd.name = filepath.Join(newname, rest)
			f.nodes[nd.name] = nd
			delete(f.nodes, path)
		}
	}
	f.mu.Unlock()
	return nil
}

func (f *FS) ReadDir(name string) ([]fs.DirEntry, error)   { return vfs.OS.ReadDir(name) }
func (f *FS) MkdirAll(name string, perm fs.FileMode) error { return vfs.OS.MkdirAll(name, perm) }
func (f *FS) SyncDir(name string) error                    { return vfs.OS.SyncDir(name) }

type file struct {
	vfs.File
	fs   *FS
	node *node
}

// node is a path as the open files know it; Rename updates it.
type node struct{ name string }

func (f *file) path() string {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.node.name
}

func (f *file) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	noSpace, werr := f.fs.noSpace, f.fs.writeErr
	f.fs.mu.Unlock()
	if werr != nil {
		// A failed write may still have reached the file in part.
		n, _ := f.File.WriteAt(p[:len(p)/2], off)
		return n, &os.PathError{Op: "write", Path: f.path(), Err: werr}
	}
	if noSpace {
		return 0, &os.PathError{Op: "write", Path: f.path(), Err: unix.ENOSPC}
	}
	return f.File.WriteAt(p, off)
}

func (f *file) Allocate(off, n int64) error {
	f.fs.mu.Lock()
	noSpace := f.fs.noSpace || f.fs.maxAlloc > 0 && off+n > f.fs.maxAlloc
	f.fs.mu.Unlock()
	if noSpace {
		return &os.PathError{Op: "fallocate", Path: f.path(), Err: unix.ENOSPC}
	}
	return f.File.Allocate(off, n)
}

func (f *file) Sync() error {
	f.fs.mu.Lock()
	serr := f.fs.syncErr
	f.fs.mu.Unlock()
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.path(), Err: serr}
	}
	if err := f.File.Sync(); err != nil {
		return err
	}
	name := f.path()
	b, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.fs.syncErr != nil {
		// The power went while this sync ran: it does not count.
		return &os.PathError{Op: "fdatasync", Path: name, Err: f.fs.syncErr}
	}
	f.fs.durable[name] = b
	f.fs.syncs++
	if f.fs.syncBudget > 0 {
		if f.fs.syncBudget--; f.fs.syncBudget == 0 {
			f.fs.syncErr = f.fs.budgetErr
		}
	}
	return nil
}
