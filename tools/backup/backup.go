// Package backup is `sluice backup`: it copies a data directory, whether a server is running
// on it or not, into a new directory that `sluice serve --data-dir` starts from.
//
// # How a copy of a running server is consistent
//
// The copy is made without the server's help and then recovered, as a start after kill -9
// would recover the source itself:
//
//   - Files are copied in an order that makes every shard's copy a prefix of its log: in each
//     directory stream.json and log.meta first, then the other files in name order (segments
//     sort by base sequence number), then the subdirectories. A segment is copied from its
//     first page on, and the first page (header and checkpoints) is read alone before the
//     rest: the frames a checkpoint names were written before the checkpoint, so they are in
//     the copy. A segment rolled after its directory was listed is not copied, and neither
//     is anything after it.
//   - Records being written while a segment is copied may arrive half: that is a torn tail,
//     which recovery zeroes, as it does after a crash. Temporary files (*.tmp), the lock
//     file and trash/ are not copied. A file deleted under the copy (retention deleting the
//     oldest segment, an index replaced) is skipped; a stream deleted during the copy is left
//     out of it.
//   - Every file and directory of the copy is synced; then the engine opens the copy (shard
//     log recovery: torn tails zeroed, interrupted seals finished, sequence reservations
//     renewed) and closes it cleanly, so the server started from it reads no frames at
//     start-up. Only then is the directory renamed from DEST.partial to DEST.
//
// What is promised: every record acknowledged before the backup started is in the copy,
// whatever the durability mode (an acknowledged record is in the page cache, which the copy
// reads). Of the records acknowledged while it runs, each shard keeps a prefix (possibly
// empty) in its order: no record is in the copy without every earlier record of its shard.
// Streams are not cut at one common instant.
//
// The copy holds what the data directory holds: the catalog, the shard logs, the iterator
// key, account.json and, when it is in the data directory (the default), the keyring of
// encryption at rest. A keyring kept elsewhere (`serve --kms-keyring DIR`) must be backed
// up too, or the encrypted records of the copy cannot be read: --kms-keyring DIR copies it
// into DEST/kms-keyring, where `sluice serve` looks by default. The audit log is not part of
// the data directory and is not copied.
//
// Files of the copy are 0600 and directories 0700, whatever the source's modes.
package backup

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluice-streams/sluice/internal/dirlock"
	"github.com/sluice-streams/sluice/internal/vfs"
	"github.com/sluice-streams/sluice/stream"
)

// Run executes `sluice backup [--kms-keyring DIR] DATA_DIR DEST`. The status is 0 when the
// backup is complete, 1 when it failed, 2 on a usage error.
func Run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyring := fs.String("kms-keyring", "", "`directory` of the master keys when the server keeps them outside DATA_DIR (serve --kms-keyring): copied into DEST/kms-keyring")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sluice backup [--kms-keyring DIR] DATA_DIR DEST")
		fmt.Fprintln(stderr, "Copies a data directory, while a server runs on it or not, into the new directory DEST,")
		fmt.Fprintln(stderr, "recovered and closed cleanly: `sluice serve --data-dir DEST` starts from it. Every record")
		fmt.Fprintln(stderr, "acknowledged before the backup started is in it (docs/OPERATIONS.md).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return 2
	}
	start := time.Now()
	sum, err := Backup(fs.Arg(0), fs.Arg(1), Options{KeyringDir: *keyring, Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		fmt.Fprintf(stderr, "sluice backup: %v\n", err)
		return 1
	}
	live := "no server was running"
	if sum.Live {
		live = "copied while a server was running"
	}
	fmt.Fprintf(stdout, "sluice backup: %s → %s: %d files, %d bytes, %d streams in %s (%s)\n",
		fs.Arg(0), fs.Arg(1), sum.Files, sum.Bytes, sum.Streams, time.Since(start).Round(time.Millisecond), live)
	return 0
}

// Options configure a Backup.
type Options struct {
	// KeyringDir is a keyring outside the data directory to copy into DEST/kms-keyring; ""
	// copies none (a keyring inside the data directory is copied with it).
	KeyringDir string
	// Logger receives what the recovery of the copy reports (torn tails of records being
	// written during the copy, at WARN); nil discards it.
	Logger *slog.Logger
}

// Summary describes a finished backup.
type Summary struct {
	Files   int   // files copied
	Bytes   int64 // their bytes (preallocated zeros of active segments included)
	Streams int   // streams in the copy
	Live    bool  // a server held the data directory during the copy
}

// ErrDestExists is returned when DEST (or DEST.partial, the leftover of a backup that
// failed) exists: a backup never writes into an existing directory.
var ErrDestExists = errors.New("destination exists")

// Backup copies the data directory src into the new directory dst (see the package
// comment) and returns what it copied. On failure it leaves dst absent; the partial copy
// dst.partial stays for inspection unless nothing was copied yet.
func Backup(src, dst string, opts Options) (Summary, error) {
	var sum Summary
	if st, err := os.Stat(filepath.Join(src, "streams")); err != nil || !st.IsDir() {
		return sum, fmt.Errorf("%s is not a sluice data directory (no streams/ in it)", src)
	}
	partial := strings.TrimRight(dst, string(filepath.Separator)) + ".partial"
	for _, p := range []string{dst, partial} {
		if _, err := os.Lstat(p); err == nil {
			return sum, fmt.Errorf("%w: %s; give a new directory", ErrDestExists, p)
		}
	}
	// A server holds the lock exclusively: then the copy is of live files, which recovery
	// makes consistent. Without a server, the shared lock keeps one from starting (and
	// changing the files) during the copy.
	lock, err := dirlock.Acquire(src, false, "sluice backup")
	switch {
	case errors.Is(err, dirlock.ErrLocked):
		sum.Live = true
	case err != nil:
		return sum, err
	default:
		defer lock.Release()
	}
	if err := os.Mkdir(partial, 0o700); err != nil {
		return sum, err
	}
	c := copier{sum: &sum}
	if err := c.dir(src, partial, true); err != nil {
		return sum, fmt.Errorf("copying into %s: %w", partial, err)
	}
	if opts.KeyringDir != "" {
		into := filepath.Join(partial, "kms-keyring")
		if _, err := os.Stat(into); err == nil {
			return sum, fmt.Errorf("--kms-keyring: %s already has a keyring copied from the data directory", dst)
		}
		if err := os.Mkdir(into, 0o700); err != nil {
			return sum, err
		}
		if err := c.dir(opts.KeyringDir, into, false); err != nil {
			return sum, fmt.Errorf("copying the keyring: %w", err)
		}
	}
	if sum.Streams, err = recoverCopy(partial, opts.Logger); err != nil {
		return sum, fmt.Errorf("recovering the copy %s: %w", partial, err)
	}
	if err := os.Rename(partial, dst); err != nil {
		return sum, err
	}
	return sum, vfs.OS.SyncDir(filepath.Dir(dst))
}

// recoverCopy opens the engine on the copy and closes it: every shard log is recovered and
// left with a clean mark. A shard with damage before its durable point fails the backup.
func recoverCopy(dir string, logger *slog.Logger) (int, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := errorCounter{Handler: logger.Handler(), errors: new(atomic.Int64)}
	eng, err := stream.Open(stream.Options{Dir: dir, Logger: slog.New(h), Holder: "sluice backup"})
	if err != nil {
		return 0, err
	}
	n := len(eng.ListStreams())
	if err := eng.Close(); err != nil {
		return n, err
	}
	if k := h.errors.Load(); k > 0 {
		return n, fmt.Errorf("%d errors reported by the recovery of the copy: the source may be damaged; check it with sluice inspect once the server is stopped", k)
	}
	return n, nil
}

// errorCounter passes records to its handler and counts those at ERROR or above, whether
// the handler shows them or not. The loggers the engine derives (With: a shard's log names
// its stream and shard) count into the same counter.
type errorCounter struct {
	slog.Handler
	errors *atomic.Int64
}

func (h errorCounter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError || h.Handler.Enabled(ctx, l)
}

func (h errorCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.errors.Add(1)
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h errorCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return errorCounter{Handler: h.Handler.WithAttrs(as), errors: h.errors}
}

func (h errorCounter) WithGroup(name string) slog.Handler {
	return errorCounter{Handler: h.Handler.WithGroup(name), errors: h.errors}
}

// copier copies a tree, counting what it copied.
type copier struct {
	sum *Summary
	buf []byte
}

// first lists the files copied before the others of their directory: the catalog entry
// before the shard directories it names, a log's metadata before its segments.
var first = []string{"stream.json", "log.meta"}

// dir copies the directory src into the existing directory dst: its regular files (first,
// then by name), then its subdirectories; then it syncs dst. top is the data directory
// itself, whose lock file and trash/ are skipped. A subdirectory that disappears from the
// source while it is copied (a stream deleted) is removed from the copy.
func (c *copier) dir(src, dst string, top bool) error {
	ents, err := os.ReadDir(src)
	if errors.Is(err, fs.ErrNotExist) && !top {
		return nil // deleted during the copy: the caller removes dst
	}
	if err != nil {
		return err
	}
	rank := func(e fs.DirEntry) int {
		if e.IsDir() {
			return 2
		}
		if slices.Contains(first, e.Name()) {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(ents, func(a, b fs.DirEntry) int { return rank(a) - rank(b) })
	for _, e := range ents {
		name := e.Name()
		from, to := filepath.Join(src, name), filepath.Join(dst, name)
		switch {
		case strings.HasSuffix(name, ".tmp"), top && (name == dirlock.FileName || name == "trash"):
		case e.IsDir():
			if err := os.Mkdir(to, 0o700); err != nil {
				return err
			}
			if err := c.dir(from, to, false); err != nil {
				return err
			}
			if _, err := os.Stat(from); errors.Is(err, fs.ErrNotExist) {
				if err := os.RemoveAll(to); err != nil {
					return err
				}
			}
		case e.Type().IsRegular():
			if err := c.file(from, to); err != nil {
				return err
			}
		}
	}
	return vfs.OS.SyncDir(dst)
}

// pageSize is the size of the first read of a file: a segment's header page, header and
// checkpoints, read before any frame.
const pageSize = 4096

// file copies one file, unless it disappeared from the source, and syncs the copy. The copy
// is allocated at the source's size first (an active segment keeps its preallocation, so
// the server writing into it later cannot fault on a full disk) and only non-zero chunks are
// written.
func (c *copier) file(src, dst string) error {
	in, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // deleted since the listing: retention, or an atomic replacement's old name
	}
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	f, err := vfs.OS.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if st.Size() > 0 {
		if err := f.Allocate(0, st.Size()); err != nil {
			return err
		}
	}
	if c.buf == nil {
		c.buf = make([]byte, 1<<20)
	}
	var off int64
	for chunk := pageSize; ; chunk = len(c.buf) {
		n, err := in.ReadAt(c.buf[:chunk], off)
		if n > 0 && !allZero(c.buf[:n]) {
			if _, werr := f.WriteAt(c.buf[:n], off); werr != nil {
				return werr
			}
		}
		off += int64(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	// A sealed segment is truncated at its seal: the copy ends where the reads ended.
	if err := f.Truncate(off); err != nil {
		return err
	}
	c.sum.Files++
	c.sum.Bytes += off
	return f.Sync()
}

var zeros = make([]byte, 1<<20)

func allZero(b []byte) bool { return bytes.Equal(b, zeros[:len(b)]) }
