//go:build linux

package lazyfs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// pageSize is the unit in which unsynced data is saved and dropped.
const pageSize = 4096

// Disk is a backing directory seen through the layer: what was written to it through a
// mount, and which of that is durable.
type Disk struct {
	root  string // the backing directory: the file system's content
	trash string // removed entries, until the journal entry that removed them commits

	mu       sync.Mutex
	journal  []nsOp              // name changes since the last commit, oldest first
	files    map[fileID]*tracked // files changed since their last sync
	trashSeq int                 // names the entries in trash

	server *fuse.Server // non-nil while mounted; used by the test's goroutine only
	mnt    string       // where it is mounted
}

// CutStats says what a Cut took back.
type CutStats struct {
	Undone  int // journal entries undone (creations, renames, removals)
	Dropped int // unsynced pages given back their durable content
	Kept    int // unsynced pages that survived the cut
	Resized int // files whose size went back to their durable size
}

// nsKind is the kind of a journal entry.
type nsKind uint8

const (
	nsCreate nsKind = iota // a file or directory was created at a
	nsRename               // a was renamed to b
	nsRemove               // a was moved to the trash entry b
)

// nsOp is one journal entry; paths are relative to the backing directory (trash entries to
// the trash directory).
type nsOp struct {
	kind nsKind
	a, b string
}

// fileID names a backing file across renames.
type fileID struct{ dev, ino uint64 }

// tracked is a file changed since its last sync: its durable size and the durable content
// of every page changed since.
type tracked struct {
	mu     sync.Mutex
	fd     int   // the layer's own read-write descriptor of the backing file
	synced int64 // the file's durable size
	// pages maps a page number to its durable content; nil means zeros.
	pages map[int64][]byte
}

// New returns the Disk whose content is the directory root (created if missing); its trash
// directory is root + ".trash".
func New(root string) (*Disk, error) {
	d := &Disk{root: filepath.Clean(root), files: map[fileID]*tracked{}}
	d.trash = d.root + ".trash"
	for _, dir := range []string{d.root, d.trash} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Root returns the backing directory.
func (d *Disk) Root() string { return d.root }

// Mount serves the Disk at the existing directory mnt until Unmount.
func (d *Disk) Mount(mnt string) error {
	if d.server != nil {
		return fmt.Errorf("lazyfs: %s is mounted already at %s", d.root, d.mnt)
	}
	lr, err := fs.NewLoopbackRoot(d.root)
	if err != nil {
		return err
	}
	root := &node{LoopbackNode: lr.(*fs.LoopbackNode), disk: d}
	server, err := fs.Mount(mnt, root, &fs.Options{
		MountOptions: fuse.MountOptions{
			DirectMount:       true,
			DirectMountStrict: true,
			FsName:            "lazyfs",
			Name:              "lazyfs",
			MaxBackground:     64,
		},
		NullPermissions: true,
	})
	if err != nil {
		return fmt.Errorf("lazyfs: mounting %s: %w", mnt, err)
	}
	d.server, d.mnt = server, mnt
	return nil
}

// Unmount unmounts the Disk; what was not synced stays unsynced (Cut drops it).
func (d *Disk) Unmount() error {
	if d.server == nil {
		return nil
	}
	err := d.server.Unmount()
	if err != nil {
		return fmt.Errorf("lazyfs: unmounting %s: %w", d.mnt, err)
	}
	d.server.Wait()
	d.server, d.mnt = nil, ""
	return nil
}

// Cut is the power failure: it unmounts the Disk if it is mounted (the processes using it
// must be gone), then takes back everything not synced (see the package comment), keeping
// each unsynced page that is still inside its file with probability keep (0 keeps none),
// drawn from rng. The Disk can be mounted again afterwards.
func (d *Disk) Cut(rng *rand.Rand, keep float64) (CutStats, error) {
	if err := d.Unmount(); err != nil {
		return CutStats{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var st CutStats
	for i := len(d.journal) - 1; i >= 0; i-- {
		if err := d.undoLocked(d.journal[i]); err != nil {
			return st, err
		}
		st.Undone++
	}
	d.journal = nil
	ids := make([]fileID, 0, len(d.files))
	for id := range d.files {
		ids = append(ids, id)
	}
	// Map order is random; the draws must not be, for a seed to replay a cut.
	slices.SortFunc(ids, func(a, b fileID) int {
		if a.dev != b.dev {
			return cmpU64(a.dev, b.dev)
		}
		return cmpU64(a.ino, b.ino)
	})
	for _, id := range ids {
		t := d.files[id]
		if err := t.restore(rng, keep, &st); err != nil {
			return st, err
		}
		syscall.Close(t.fd)
		delete(d.files, id)
	}
	return st, emptyDir(d.trash)
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (d *Disk) undoLocked(op nsOp) error {
	a := filepath.Join(d.root, op.a)
	switch op.kind {
	case nsCreate:
		return os.Remove(a)
	case nsRename:
		return os.Rename(filepath.Join(d.root, op.b), a)
	case nsRemove:
		return os.Rename(filepath.Join(d.trash, op.b), a)
	}
	panic("BUG: lazyfs: unknown journal entry")
}

// commit makes the journal durable: the entries it removed are gone for good.
func (d *Disk) commit() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var err error
	for _, op := range d.journal {
		if op.kind == nsRemove {
			err = errors.Join(err, os.RemoveAll(filepath.Join(d.trash, op.b)))
		}
	}
	d.journal = d.journal[:0]
	return err
}

// rel returns the backing path p relative to the backing directory.
func (d *Disk) rel(p string) string {
	r, err := filepath.Rel(d.root, p)
	if err != nil {
		panic("BUG: lazyfs: path outside the backing directory: " + p)
	}
	return r
}

// toTrashLocked moves the backing entry p into the trash and records it; the caller holds
// d.mu.
func (d *Disk) toTrashLocked(p string) error {
	d.trashSeq++
	name := strconv.Itoa(d.trashSeq)
	if err := os.Rename(p, filepath.Join(d.trash, name)); err != nil {
		return err
	}
	d.journal = append(d.journal, nsOp{kind: nsRemove, a: d.rel(p), b: name})
	return nil
}

// track returns the record of the backing file open as fd, starting one (durable size: the
// current size) if the file has none.
func (d *Disk) track(fd int) (*tracked, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, err
	}
	id := fileID{uint64(st.Dev), st.Ino}
	d.mu.Lock()
	defer d.mu.Unlock()
	if t := d.files[id]; t != nil {
		return t, nil
	}
	// A descriptor of the layer's own, writable whatever the caller's was opened for, that
	// follows the file through renames and removal.
	own, err := syscall.Open("/proc/self/fd/"+strconv.Itoa(fd), syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	t := &tracked{fd: own, synced: st.Size, pages: map[int64][]byte{}}
	d.files[id] = t
	return t, nil
}

// synced forgets the saved pages of the file open as fd: it is durable as it is.
func (d *Disk) synced(fd int) error {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return err
	}
	d.mu.Lock()
	t := d.files[fileID{uint64(st.Dev), st.Ino}]
	d.mu.Unlock()
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.synced = st.Size
	clear(t.pages)
	return nil
}

// saveLocked saves the durable content of every page of [off, off+n) not saved yet; the
// caller holds t.mu. Pages at or past the durable size are durably zeros.
func (t *tracked) saveLocked(off, n int64) error {
	if n <= 0 {
		return nil
	}
	first, last := off/pageSize, (off+n-1)/pageSize
	buf := make([]byte, 64*pageSize)
	for p := first; p <= last; {
		if _, ok := t.pages[p]; ok || p*pageSize >= t.synced {
			if !ok {
				t.pages[p] = nil
			}
			p++
			continue
		}
		// Read up to 64 pages at once: zeroing or truncating a whole segment saves many.
		cnt := min(last-p+1, 64)
		b := buf[:cnt*pageSize]
		clear(b)
		if _, err := preadFull(t.fd, b, p*pageSize); err != nil {
			return err
		}
		for i := range cnt {
			if _, ok := t.pages[p+i]; ok {
				continue
			}
			pg := b[i*pageSize : (i+1)*pageSize]
			if (p+i)*pageSize >= t.synced || allZero(pg) {
				t.pages[p+i] = nil
				continue
			}
			t.pages[p+i] = slices.Clone(pg)
		}
		p += cnt
	}
	return nil
}

// restore is the cut of one file: unsynced pages get their durable content back (each one
// still inside the file survives with probability keep), and the size its durable size, or
// up to the end of a surviving page past it.
func (t *tracked) restore(rng *rand.Rand, keep float64, st *CutStats) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var fst syscall.Stat_t
	if err := syscall.Fstat(t.fd, &fst); err != nil {
		return err
	}
	cur := fst.Size
	size := t.synced
	nums := make([]int64, 0, len(t.pages))
	for p := range t.pages {
		nums = append(nums, p)
	}
	slices.Sort(nums)
	drop := nums[:0:0]
	for _, p := range nums {
		if keep > 0 && (p+1)*pageSize <= cur && rng.Float64() < keep {
			st.Kept++
			size = max(size, (p+1)*pageSize)
			continue
		}
		drop = append(drop, p)
	}
	if cur < t.synced {
		if err := syscall.Ftruncate(t.fd, t.synced); err != nil {
			return err
		}
	}
	zeros := make([]byte, pageSize)
	for _, p := range drop {
		pg := t.pages[p]
		if pg == nil {
			pg = zeros
		}
		st.Dropped++
		if p*pageSize >= size {
			continue // cut off by the truncation below
		}
		if _, err := syscall.Pwrite(t.fd, pg, p*pageSize); err != nil {
			return err
		}
	}
	size = min(size, max(cur, t.synced))
	if size != cur {
		st.Resized++
	}
	return syscall.Ftruncate(t.fd, size)
}

func preadFull(fd int, b []byte, off int64) (int, error) {
	n := 0
	for n < len(b) {
		m, err := syscall.Pread(fd, b[n:], off+int64(n))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break // end of file: the rest reads as zeros
		}
		n += m
	}
	return n, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// emptyDir removes everything inside dir.
func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
