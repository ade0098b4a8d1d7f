//go:build linux

package lazyfs

import (
	"context"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is a file or directory of a mounted Disk: go-fuse's loopback node, with every change
// of data or names recorded on the Disk first.
type node struct {
	*fs.LoopbackNode
	disk *Disk
}

// WrapChild makes every node the mount creates a node of the layer.
func (n *node) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), disk: n.disk}
}

// Operations that would change the backing directory behind the journal's back are refused.
var (
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeTmpfiler       = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
)

// backing returns the node's path in the backing directory.
func (n *node) backing() string {
	return filepath.Join(n.RootData.Path, n.Path(n.RootData.RootNode.EmbeddedInode()))
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	d := n.disk
	d.mu.Lock()
	defer d.mu.Unlock()
	p := filepath.Join(n.backing(), name)
	_, err := os.Lstat(p)
	existed := err == nil
	// O_TRUNC of a file that exists (created by someone else since the kernel's lookup) is a
	// change of its data: done below, where it is recorded.
	ch, fh, fl, errno := n.LoopbackNode.Create(ctx, name, flags&^syscall.O_TRUNC, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if !existed {
		d.journal = append(d.journal, nsOp{kind: nsCreate, a: d.rel(p)})
	}
	f := d.wrap(fh)
	if existed && flags&syscall.O_TRUNC != 0 {
		d.mu.Unlock() // truncate takes it
		errno = f.truncate(0)
		d.mu.Lock()
		if errno != 0 {
			f.lf.Release(ctx)
			return nil, nil, 0, errno
		}
	}
	return ch, f, fl, 0
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.Open(ctx, flags&^syscall.O_TRUNC)
	if errno != 0 {
		return nil, 0, errno
	}
	f := n.disk.wrap(fh)
	if flags&syscall.O_TRUNC != 0 {
		if errno := f.truncate(0); errno != 0 {
			f.lf.Release(ctx)
			return nil, 0, errno
		}
	}
	return f, fl, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	d := n.disk
	d.mu.Lock()
	defer d.mu.Unlock()
	ch, errno := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	if errno == 0 {
		d.journal = append(d.journal, nsOp{kind: nsCreate, a: d.rel(filepath.Join(n.backing(), name))})
	}
	return ch, errno
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.remove(name, false)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.remove(name, true)
}

// remove moves the entry name into the trash, with the checks unlink(2) or rmdir(2) make.
func (n *node) remove(name string, dir bool) syscall.Errno {
	d := n.disk
	d.mu.Lock()
	defer d.mu.Unlock()
	p := filepath.Join(n.backing(), name)
	if errno := removable(p, dir); errno != 0 {
		return errno
	}
	return fs.ToErrno(d.toTrashLocked(p))
}

// removable returns the error unlink(2) (dir false) or rmdir(2) would give for p, short of
// permissions.
func removable(p string, dir bool) syscall.Errno {
	fi, err := os.Lstat(p)
	if err != nil {
		return fs.ToErrno(err)
	}
	switch {
	case dir && !fi.IsDir():
		return syscall.ENOTDIR
	case !dir && fi.IsDir():
		return syscall.EISDIR
	case dir:
		ents, err := os.ReadDir(p)
		if err != nil {
			return fs.ToErrno(err)
		}
		if len(ents) > 0 {
			return syscall.ENOTEMPTY
		}
	}
	return 0
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok || np.disk != n.disk {
		return syscall.EXDEV
	}
	if flags&^unix.RENAME_NOREPLACE != 0 {
		return syscall.EINVAL // RENAME_EXCHANGE and RENAME_WHITEOUT are not modelled
	}
	d := n.disk
	d.mu.Lock()
	defer d.mu.Unlock()
	from, to := filepath.Join(n.backing(), name), filepath.Join(np.backing(), newName)
	src, err := os.Lstat(from)
	if err != nil {
		return fs.ToErrno(err)
	}
	trashed := false
	if dst, err := os.Lstat(to); err == nil {
		if flags&unix.RENAME_NOREPLACE != 0 {
			return syscall.EEXIST
		}
		if os.SameFile(src, dst) {
			return 0
		}
		if src.IsDir() && !dst.IsDir() {
			return syscall.ENOTDIR
		}
		if errno := removable(to, src.IsDir()); errno != 0 {
			return errno
		}
		// The replaced entry goes to the trash first, so that an undone rename brings it back.
		if err := d.toTrashLocked(to); err != nil {
			return fs.ToErrno(err)
		}
		trashed = true
	}
	if err := os.Rename(from, to); err != nil {
		if last := len(d.journal) - 1; trashed {
			// Put the replaced entry back: nothing happened.
			if uerr := d.undoLocked(d.journal[last]); uerr == nil {
				d.journal = d.journal[:last]
			}
		}
		return fs.ToErrno(err)
	}
	d.journal = append(d.journal, nsOp{kind: nsRename, a: d.rel(from), b: d.rel(to)})
	return 0
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	sz, ok := in.GetSize()
	if !ok {
		if lf, ok := f.(*file); ok {
			f = lf.lf
		}
		return n.LoopbackNode.Setattr(ctx, f, in, out)
	}
	lf, ok := f.(*file)
	if !ok {
		fd, err := syscall.Open(n.backing(), syscall.O_RDWR|syscall.O_CLOEXEC, 0)
		if err != nil {
			return fs.ToErrno(err)
		}
		lf = n.disk.wrap(fs.NewLoopbackFile(fd))
		defer lf.lf.Release(ctx)
	}
	if errno := lf.truncate(int64(sz)); errno != 0 {
		return errno
	}
	in.Valid &^= fuse.FATTR_SIZE
	return n.LoopbackNode.Setattr(ctx, lf.lf, in, out)
}

// Fsync is fsync(2) and fdatasync(2) of a file: the journal commits and the file's unsynced
// pages become durable. The backing file is not synced: the layer only models durability.
func (n *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	if err := n.disk.commit(); err != nil {
		return fs.ToErrno(err)
	}
	lf, ok := f.(*file)
	if !ok {
		fd, err := syscall.Open(n.backing(), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return fs.ToErrno(err)
		}
		defer syscall.Close(fd)
		return fs.ToErrno(n.disk.synced(fd))
	}
	return fs.ToErrno(n.disk.synced(lf.fd))
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dir{ds: fh, disk: n.disk}, fl, 0
}

func (n *node) Link(context.Context, fs.InodeEmbedder, string, *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.ENOTSUP
}

func (n *node) Symlink(context.Context, string, string, *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.ENOTSUP
}

func (n *node) Mknod(context.Context, string, uint32, uint32, *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.ENOTSUP
}

func (n *node) Tmpfile(context.Context, uint32, uint32, *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.ENOSYS
}

// CopyFileRange answers ENOSYS, so that the kernel copies with reads and writes, which the
// layer records.
func (n *node) CopyFileRange(context.Context, fs.FileHandle, uint64, *fs.Inode, fs.FileHandle, uint64, uint64, uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

// dir is an open directory; its fsync commits the journal.
type dir struct {
	ds   fs.FileHandle
	disk *Disk
}

func (h *dir) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	return h.ds.(fs.FileReaddirenter).Readdirent(ctx)
}

func (h *dir) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	return h.ds.(fs.FileSeekdirer).Seekdir(ctx, off)
}

func (h *dir) Releasedir(ctx context.Context, flags uint32) {
	h.ds.(fs.FileReleasedirer).Releasedir(ctx, flags)
}

func (h *dir) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	return fs.ToErrno(h.disk.commit())
}

// file is an open regular file. It deliberately has no PassthroughFd, so that the kernel
// sends every read and write to the layer.
type file struct {
	lf   *fs.LoopbackFile
	fd   int // lf's descriptor of the backing file
	disk *Disk
}

func (d *Disk) wrap(fh fs.FileHandle) *file {
	lf := fh.(*fs.LoopbackFile)
	fd, _ := lf.PassthroughFd() // the descriptor itself; passthrough stays off
	return &file{lf: lf, fd: fd, disk: d}
}

func (f *file) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return f.lf.Read(ctx, buf, off)
}

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	t, err := f.disk.track(f.fd)
	if err != nil {
		return 0, fs.ToErrno(err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.saveLocked(off, int64(len(data))); err != nil {
		return 0, fs.ToErrno(err)
	}
	return f.lf.Write(ctx, data, off)
}

func (f *file) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	var all []byte
	for _, b := range data {
		all = append(all, b...)
	}
	return f.Write(ctx, all, off)
}

// truncate sets the file's size, saving the durable content of the pages it cuts off.
func (f *file) truncate(size int64) syscall.Errno {
	t, err := f.disk.track(f.fd)
	if err != nil {
		return fs.ToErrno(err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var st syscall.Stat_t
	if err := syscall.Fstat(f.fd, &st); err != nil {
		return fs.ToErrno(err)
	}
	if size < st.Size {
		if err := t.saveLocked(size, min(st.Size, t.synced)-size); err != nil {
			return fs.ToErrno(err)
		}
	}
	return fs.ToErrno(syscall.Ftruncate(f.fd, size))
}

// Allocate is fallocate(2): mode 0 (reserve, possibly growing the file), and zero range and
// punch hole, which change content and are recorded like writes. Other modes are refused.
func (f *file) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	const changes = unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_PUNCH_HOLE
	if mode&^(changes|unix.FALLOC_FL_KEEP_SIZE) != 0 {
		return syscall.EOPNOTSUPP
	}
	t, err := f.disk.track(f.fd)
	if err != nil {
		return fs.ToErrno(err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if mode&changes != 0 {
		var st syscall.Stat_t
		if err := syscall.Fstat(f.fd, &st); err != nil {
			return fs.ToErrno(err)
		}
		end := min(int64(off+size), max(st.Size, t.synced))
		if err := t.saveLocked(int64(off), end-int64(off)); err != nil {
			return fs.ToErrno(err)
		}
	}
	return f.lf.Allocate(ctx, off, size, mode)
}

func (f *file) Flush(ctx context.Context) syscall.Errno { return f.lf.Flush(ctx) }

func (f *file) Release(ctx context.Context) syscall.Errno { return f.lf.Release(ctx) }

func (f *file) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return f.lf.Getattr(ctx, out)
}

func (f *file) Statx(ctx context.Context, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	if sx, ok := any(f.lf).(fs.FileStatxer); ok {
		return sx.Statx(ctx, flags, mask, out)
	}
	return syscall.ENOSYS
}

func (f *file) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return f.lf.Lseek(ctx, off, whence)
}
