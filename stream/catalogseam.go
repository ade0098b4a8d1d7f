package stream

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/sluice-streams/sluice/internal/vfs"
)

// Catalog is the engine's seam to where every stream's metadata is kept (the shard map,
// lineage, ending sequence numbers, settings, consumers). A stream's shard logs are not in
// it: they stay under the engine's data directory (the ShardLog seam). The default is the
// local catalog, one stream.json per stream in the data directory; a cluster keeps it in a
// store its nodes share (package cluster, etcd), so that every node describes a stream
// alike. The contract:
//
//   - Entries. One entry per stream: its name, its metadata as the bytes stream.json holds
//     (the engine encodes and decodes them; an implementation stores them unchanged) and a
//     revision, > 0, that changes on every write of the entry.
//   - Load returns every entry and the revision the listing was read at. Open calls it once.
//   - Save writes an entry only if its revision is still prev (prev 0: only if the name is
//     absent), atomically, and returns the new revision: of two writers that read the same
//     revision, one wins and the other gets an error wrapping ErrCatalogConflict. Once Save
//     returns nil the entry is durable (the local catalog: synced; etcd: committed).
//   - Delete removes an entry under the same rule.
//   - Watch reports the changes made after revision from, by any writer (the engine's own
//     writes come back too and are told apart by revision), in revision order, on a channel
//     that is closed when ctx ends. A CatalogReset event replaces the whole catalog (after
//     the store lost the history the watch needed). A nil channel: nobody else writes.
//   - Errors. A store that cannot be reached is an error, after a bounded wait, never a
//     hang: an implementation returns a *Error of KindInternalFailure (which a client
//     retries) so the engine reports it as it is.
//
// Implementations are safe for concurrent use. The engine calls Save and Delete holding the
// stream's mutex, never the engine's, so a slow catalog delays only the stream it changes,
// never a data path.
type Catalog interface {
	Load() (entries []CatalogEntry, rev int64, err error)
	Save(name string, data []byte, prev int64) (rev int64, err error)
	Delete(name string, prev int64) error
	Watch(ctx context.Context, from int64) <-chan CatalogEvent
}

// CatalogEntry is one stream's entry in a Catalog.
type CatalogEntry struct {
	Name   string
	Data   []byte // the encoded metadata, stream.json's bytes
	Rev    int64  // the revision of this version of the entry
	Source string // where it was read (a file, a key), for error messages
}

// CatalogEventKind says what a CatalogEvent reports.
type CatalogEventKind uint8

// The kinds of change a Catalog's watch reports.
const (
	CatalogPut    CatalogEventKind = iota + 1 // Entry was created or changed
	CatalogDelete                             // Entry.Name was deleted at Entry.Rev
	CatalogReset                              // Entries is the whole catalog at Rev
)

// CatalogEvent is one change a Catalog's watch reports.
type CatalogEvent struct {
	Kind    CatalogEventKind
	Entry   CatalogEntry   // CatalogPut, CatalogDelete (Data nil)
	Entries []CatalogEntry // CatalogReset
	Rev     int64          // CatalogReset: the revision Entries were read at
}

// ErrCatalogConflict is wrapped by a Catalog's Save or Delete that found the entry changed
// since the revision the caller gave: another writer won.
var ErrCatalogConflict = errors.New("stream: the catalog entry was changed by another writer")

// fileCatalog is the local catalog: <dir>/streams/<name>/stream.json, replaced crash-safely
// (vfs.WriteFileAtomic). Its revisions are counted in memory from Open: the data directory
// is locked by one engine, its only writer. A deletion moves the stream's directory (its
// shard logs with it) to <dir>/trash in one durable rename, then removes it.
type fileCatalog struct {
	fs     vfs.FS
	dir    string
	logger *slog.Logger

	mu   sync.Mutex       // guards rev and revs
	rev  int64            // the last revision given
	revs map[string]int64 // each stream's current revision
}

func newFileCatalog(fsys vfs.FS, dir string, logger *slog.Logger) *fileCatalog {
	return &fileCatalog{fs: fsys, dir: dir, logger: logger, revs: map[string]int64{}}
}

func (c *fileCatalog) streamDir(name string) string { return filepath.Join(c.dir, streamsDir, name) }

// Load reads every stream.json. A stream directory without one is a creation that crashed
// before its catalog file (nothing was acknowledged): it is removed.
func (c *fileCatalog) Load() ([]CatalogEntry, int64, error) {
	des, err := c.fs.ReadDir(filepath.Join(c.dir, streamsDir))
	if err != nil {
		return nil, 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []CatalogEntry
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		dir := c.streamDir(de.Name())
		path := filepath.Join(dir, metaFile)
		b, err := vfs.ReadFile(c.fs, path, 64<<20)
		if errors.Is(err, fs.ErrNotExist) {
			c.logger.Warn("removing a stream directory without a catalog file", "dir", dir)
			os.RemoveAll(dir)
			continue
		}
		if err != nil {
			return nil, 0, err
		}
		c.rev++
		c.revs[de.Name()] = c.rev
		out = append(out, CatalogEntry{Name: de.Name(), Data: b, Rev: c.rev, Source: path})
	}
	return out, c.rev, nil
}

// checkLocked returns ErrCatalogConflict unless name's revision is prev; the caller holds mu.
func (c *fileCatalog) checkLocked(name string, prev int64) error {
	if c.revs[name] != prev {
		return fmt.Errorf("%w: %s at revision %d, not %d", ErrCatalogConflict, name, c.revs[name], prev)
	}
	return nil
}

// Save writes stream.json into the stream's directory, which the engine has made.
func (c *fileCatalog) Save(name string, data []byte, prev int64) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.checkLocked(name, prev); err != nil {
		return 0, err
	}
	if err := vfs.WriteFileAtomic(c.fs, filepath.Join(c.streamDir(name), metaFile), data, 0o600); err != nil {
		return 0, err
	}
	c.rev++
	c.revs[name] = c.rev
	return c.rev, nil
}

// Delete moves the stream's directory out of the catalog (one rename, made durable), then
// removes it.
func (c *fileCatalog) Delete(name string, prev int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.checkLocked(name, prev); err != nil {
		return err
	}
	trash := filepath.Join(c.dir, trashDir)
	if err := c.fs.MkdirAll(trash, 0o700); err != nil {
		return err
	}
	c.rev++
	gone := filepath.Join(trash, fmt.Sprintf("%s-%d", name, c.rev))
	if err := c.fs.Rename(c.streamDir(name), gone); err != nil {
		return err
	}
	delete(c.revs, name)
	if err := c.fs.SyncDir(filepath.Join(c.dir, streamsDir)); err != nil {
		return err
	}
	return os.RemoveAll(gone)
}

// Watch returns nil: the engine that owns the directory is the catalog's only writer.
func (c *fileCatalog) Watch(context.Context, int64) <-chan CatalogEvent { return nil }
