package keyring

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/sluice-streams/sluice/internal/vfs"
)

const (
	aliasesFile = "aliases.json"
	cacheFile   = "cache-of" // present in the directory of a cache: what it caches
	keySuffix   = ".key"
	maxAliases  = 1 << 20 // bytes of aliases.json read at most
	maxCacheOf  = 4 << 10 // bytes of cache-of read at most
)

// Dir is the Store of a keyring directory (the package's doc describes its files). It is
// the keyring of a single node, and in cluster mode each node's cache of the cluster's
// keyring (MarkCache).
type Dir struct {
	dir string
	fs  vfs.FS

	mu sync.Mutex // serialises this process's changes of aliases.json
}

// NewDir returns the Store of the keyring directory dir. Nothing is read or created until
// a key is needed.
func NewDir(dir string) *Dir {
	return &Dir{dir: dir, fs: vfs.OS}
}

// keyFile is the file name of version v of master key id: <id>.key for version 1 (the
// key as CreateKey made it), <id>.v<v>.key for the versions Rotate adds.
func keyFile(id string, v uint32) string {
	if v == 1 {
		return id + keySuffix
	}
	return id + ".v" + strconv.FormatUint(uint64(v), 10) + keySuffix
}

// mkdir creates the directory (0700) if it is missing and refuses one others may read.
func (d *Dir) mkdir() error {
	if err := d.fs.MkdirAll(d.dir, 0o700); err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	return checkPrivate(d.dir)
}

// Alias returns the key id alias names in aliases.json.
func (d *Dir) Alias(alias string) (string, error) {
	aliases, err := d.aliases()
	if err != nil {
		return "", err
	}
	id, ok := aliases[alias]
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrNotFound, alias)
	}
	return id, nil
}

// Create writes the key's file, then points alias at it in aliases.json.
func (d *Dir) Create(id string, key []byte, alias string, ifAbsent bool) (string, error) {
	if err := d.mkdir(); err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if ifAbsent && alias != "" {
		aliases, err := d.aliases()
		if err != nil {
			return "", err
		}
		if got, ok := aliases[alias]; ok {
			return got, nil
		}
	}
	if err := vfs.WriteFileAtomic(d.fs, filepath.Join(d.dir, keyFile(id, 1)), key, 0o600); err != nil {
		return "", fmt.Errorf("keyring: writing key %s: %w", id, err)
	}
	if alias == "" {
		return id, nil
	}
	return id, d.pointAliasLocked(alias, id)
}

// PointAlias points alias at key id in aliases.json (a cache recording what its store
// says).
func (d *Dir) PointAlias(alias, id string) error {
	if err := d.mkdir(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pointAliasLocked(alias, id)
}

// pointAliasLocked rewrites aliases.json with alias naming id; d.mu is held.
func (d *Dir) pointAliasLocked(alias, id string) error {
	aliases, err := d.aliases()
	if err != nil {
		return err
	}
	if aliases[alias] == id {
		return nil
	}
	aliases[alias] = id
	b, err := json.MarshalIndent(aliases, "", "  ")
	if err != nil {
		return err
	}
	if err := vfs.WriteFileAtomic(d.fs, filepath.Join(d.dir, aliasesFile), b, 0o600); err != nil {
		return fmt.Errorf("keyring: writing aliases: %w", err)
	}
	return nil
}

// aliases reads aliases.json (empty if the file or the directory is missing).
func (d *Dir) aliases() (map[string]string, error) {
	b, err := vfs.ReadFile(d.fs, filepath.Join(d.dir, aliasesFile), maxAliases)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("keyring: reading aliases: %w", err)
	}
	aliases := map[string]string{}
	if err := json.Unmarshal(b, &aliases); err != nil {
		return nil, fmt.Errorf("keyring: %s: %w", aliasesFile, err)
	}
	return aliases, nil
}

// Key reads version v of key id from its file, refusing a file or directory others may
// read.
func (d *Dir) Key(id string, v uint32) ([]byte, error) {
	path := filepath.Join(d.dir, keyFile(id, v))
	if err := checkPrivate(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, notFound(id, v)
		}
		return nil, err
	}
	if err := checkPrivate(d.dir); err != nil {
		return nil, err
	}
	key, err := vfs.ReadFile(d.fs, path, KeySize+1)
	if err != nil {
		return nil, fmt.Errorf("keyring: reading key %s version %d: %w", id, v, err)
	}
	return key, nil
}

// notFound is ErrNotFound naming version v of key id.
func notFound(id string, v uint32) error {
	if v == 1 {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return fmt.Errorf("%w: %s version %d", ErrNotFound, id, v)
}

// Newest returns the highest version whose file the directory holds. It reads the
// directory every time, so a rotation made by another process (sluice rotate-key next to a
// running server) is seen at the next wrap.
func (d *Dir) Newest(id string) (uint32, error) {
	entries, err := d.fs.ReadDir(d.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, notFound(id, 1)
	}
	if err != nil {
		return 0, fmt.Errorf("keyring: %w", err)
	}
	newest := uint32(0)
	prefix := id + ".v"
	for _, e := range entries {
		if e.Name() == keyFile(id, 1) {
			newest = max(newest, 1)
			continue
		}
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		num, ok := strings.CutSuffix(rest, keySuffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(num, 10, 32)
		if err != nil || v < 2 || keyFile(id, uint32(v)) != e.Name() {
			continue // not a name Rotate writes (a leftover .tmp, a stray file)
		}
		newest = max(newest, uint32(v))
	}
	if newest == 0 {
		return 0, notFound(id, 1)
	}
	return newest, nil
}

// AddVersion writes version v of key id under a temporary name, syncs it, and links it to
// its final name, which fails if that name exists: two rotations of one key at the same
// time never replace a version either of them may already have wrapped a data key with
// (the loser gets ErrRotating). The directory is synced before it returns. Unlike the
// Store's contract it also takes v = 1, which a cache records as any other version.
func (d *Dir) AddVersion(id string, v uint32, key []byte) error {
	if err := d.mkdir(); err != nil {
		return err
	}
	final := filepath.Join(d.dir, keyFile(id, v))
	tmp := final + ".tmp"
	f, err := d.fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrRotating, id)
		}
		return fmt.Errorf("keyring: writing key %s version %d: %w", id, v, err)
	}
	_, err = f.WriteAt(key, 0)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp, final)
		if errors.Is(err, fs.ErrExist) {
			err = fmt.Errorf("%w: %s", ErrRotating, id)
		}
	}
	d.fs.Remove(tmp)
	if err == nil {
		err = d.fs.SyncDir(d.dir)
	}
	if err != nil && !errors.Is(err, ErrRotating) {
		return fmt.Errorf("keyring: writing key %s version %d: %w", id, v, err)
	}
	return err
}

// MarkCache records in the directory that it is a cache of another store, described by of
// (which names no key material): CacheOf reports it, and sluice create-key and rotate-key
// refuse to change such a directory, whose keys are made in the store it caches.
func (d *Dir) MarkCache(of string) error {
	if err := d.mkdir(); err != nil {
		return err
	}
	if got, ok, err := d.CacheOf(); err != nil || ok && got == of {
		return err
	}
	if err := vfs.WriteFileAtomic(d.fs, filepath.Join(d.dir, cacheFile), []byte(of+"\n"), 0o600); err != nil {
		return fmt.Errorf("keyring: marking the cache: %w", err)
	}
	return nil
}

// CacheOf returns what MarkCache recorded, and whether the directory is a cache.
func (d *Dir) CacheOf() (string, bool, error) {
	b, err := vfs.ReadFile(d.fs, filepath.Join(d.dir, cacheFile), maxCacheOf)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("keyring: %w", err)
	}
	return strings.TrimSpace(string(b)), true, nil
}

// checkPrivate refuses a path whose mode lets group or others read it.
func checkPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %v", ErrInsecure, filepath.Base(path), fi.Mode().Perm())
	}
	return nil
}
