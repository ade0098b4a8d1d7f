package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/sluice-streams/sluice/internal/vfs"
)

// KeySize is the size of a master key and of a data key: AES-256.
const KeySize = 32

// ManagedAlias is the alias of the AWS managed key of Kinesis, created on first use.
const ManagedAlias = "alias/aws/kinesis"

const (
	aliasesFile = "aliases.json"
	keySuffix   = ".key"
	nonceSize   = 12
	maxAliases  = 1 << 20 // bytes of aliases.json read at most
)

// Errors. They name key ids, never key material.
var (
	// ErrNotFound is a key id, ARN or alias the keyring does not hold.
	ErrNotFound = errors.New("keyring: key not found")
	// ErrInvalidKey is a key id of no form KMS accepts.
	ErrInvalidKey = errors.New("keyring: invalid key id")
	// ErrUnwrap is a wrapped key the master key does not open: another key of the same id,
	// or damaged bytes.
	ErrUnwrap = errors.New("keyring: wrapped key does not open under its master key")
	// ErrInsecure is a keyring directory or key file readable by group or others.
	ErrInsecure = errors.New("keyring: key material is readable by group or others")
	// ErrRotating is a rotation that found the version it was about to add already made:
	// another rotation of the same key ran at the same time. Nothing was changed.
	ErrRotating = errors.New("keyring: the key was rotated concurrently")
)

var (
	uuidPattern  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	aliasPattern = regexp.MustCompile(`^alias/[a-zA-Z0-9/_-]{1,250}$`)
	arnPattern   = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key/.+|alias/.+)$`)
)

// Ring is a keyring directory.
type Ring struct {
	dir string
	fs  vfs.FS

	mu   sync.Mutex             // guards keys and the directory's files
	keys map[string]cipher.AEAD // loaded master key versions by file name (keyFile)
}

// keyFile is the file name of version v of master key id: <id>.key for version 1 (the
// key as CreateKey made it), <id>.v<v>.key for the versions Rotate adds.
func keyFile(id string, v uint32) string {
	if v == 1 {
		return id + keySuffix
	}
	return id + ".v" + strconv.FormatUint(uint64(v), 10) + keySuffix
}

// Open returns the keyring in dir. Nothing is read or created until a key is needed.
func Open(dir string) *Ring {
	return &Ring{dir: dir, fs: vfs.OS, keys: make(map[string]cipher.AEAD)}
}

// Resolve returns the key id (a UUID) keyID names: a key id, key ARN, alias or alias ARN.
// ManagedAlias is created on first use; anything else missing is ErrNotFound.
func (r *Ring) Resolve(keyID string) (string, error) {
	name := keyID
	if strings.HasPrefix(name, "arn:") {
		m := arnPattern.FindStringSubmatch(name)
		if m == nil {
			return "", fmt.Errorf("%w: %q", ErrInvalidKey, keyID)
		}
		name = m[1]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case strings.HasPrefix(name, "key/") && uuidPattern.MatchString(name[4:]):
		name = name[4:]
	case uuidPattern.MatchString(name):
	case aliasPattern.MatchString(name):
		aliases, err := r.aliasesLocked()
		if err != nil {
			return "", err
		}
		id, ok := aliases[name]
		if ok {
			name = id
			break
		}
		if name != ManagedAlias {
			return "", fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		if name, err = r.createLocked(ManagedAlias); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("%w: %q", ErrInvalidKey, keyID)
	}
	if _, err := r.keyLocked(name, 1); err != nil {
		return "", err
	}
	return name, nil
}

// CreateKey creates a master key and returns its id; a non-empty alias ("alias/NAME") is
// pointed at it, replacing what it named before.
func (r *Ring) CreateKey(alias string) (string, error) {
	if alias != "" && !aliasPattern.MatchString(alias) {
		return "", fmt.Errorf("%w: alias %q", ErrInvalidKey, alias)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.createLocked(alias)
}

// createLocked makes a key and its alias; r.mu is held.
func (r *Ring) createLocked(alias string) (string, error) {
	if err := r.fs.MkdirAll(r.dir, 0o700); err != nil {
		return "", fmt.Errorf("keyring: %w", err)
	}
	if err := checkPrivate(r.dir); err != nil {
		return "", err
	}
	var raw [16]byte
	key := make([]byte, KeySize)
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	raw[6] = raw[6]&0x0f | 0x40 // version 4
	raw[8] = raw[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(raw[:])
	id := h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	if err := vfs.WriteFileAtomic(r.fs, filepath.Join(r.dir, id+keySuffix), key, 0o600); err != nil {
		return "", fmt.Errorf("keyring: writing key %s: %w", id, err)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	r.keys[keyFile(id, 1)] = aead
	if alias == "" {
		return id, nil
	}
	aliases, err := r.aliasesLocked()
	if err != nil {
		return "", err
	}
	aliases[alias] = id
	b, err := json.MarshalIndent(aliases, "", "  ")
	if err != nil {
		return "", err
	}
	if err := vfs.WriteFileAtomic(r.fs, filepath.Join(r.dir, aliasesFile), b, 0o600); err != nil {
		return "", fmt.Errorf("keyring: writing aliases: %w", err)
	}
	return id, nil
}

// aliasesLocked reads aliases.json (empty if the file or the directory is missing).
func (r *Ring) aliasesLocked() (map[string]string, error) {
	b, err := vfs.ReadFile(r.fs, filepath.Join(r.dir, aliasesFile), maxAliases)
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

// keyLocked returns the cipher of version v of master key id, loading it; r.mu is held.
func (r *Ring) keyLocked(id string, v uint32) (cipher.AEAD, error) {
	name := keyFile(id, v)
	if a, ok := r.keys[name]; ok {
		return a, nil
	}
	if !uuidPattern.MatchString(id) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidKey, id)
	}
	if v == 0 {
		return nil, fmt.Errorf("%w: %s version 0", ErrNotFound, id)
	}
	path := filepath.Join(r.dir, name)
	if err := checkPrivate(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if v == 1 {
				return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
			}
			return nil, fmt.Errorf("%w: %s version %d", ErrNotFound, id, v)
		}
		return nil, err
	}
	if err := checkPrivate(r.dir); err != nil {
		return nil, err
	}
	key, err := vfs.ReadFile(r.fs, path, KeySize+1)
	if err != nil {
		return nil, fmt.Errorf("keyring: reading key %s version %d: %w", id, v, err)
	}
	if len(key) != KeySize {
		clear(key)
		return nil, fmt.Errorf("keyring: key %s version %d holds %d bytes, not %d", id, v, len(key), KeySize)
	}
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	r.keys[name] = a
	return a, nil
}

// currentLocked returns the newest version of master key id: the highest version whose
// file the directory holds. It reads the directory every time, so a rotation made by
// another process (sluice rotate-key next to a running server) is seen at the next wrap.
// r.mu is held.
func (r *Ring) currentLocked(id string) (uint32, error) {
	if _, err := r.keyLocked(id, 1); err != nil {
		return 0, err
	}
	entries, err := r.fs.ReadDir(r.dir)
	if err != nil {
		return 0, fmt.Errorf("keyring: %w", err)
	}
	cur := uint32(1)
	prefix := id + ".v"
	for _, e := range entries {
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
		cur = max(cur, uint32(v))
	}
	return cur, nil
}

// Rotate adds a new version of the master key keyID names, as AWS KMS key rotation does:
// the key id stays, Wrap uses the new version from now on, and every older version stays
// in the keyring to unwrap what it wrapped. It returns the key id and the new version.
//
// The new version's file is written under a temporary name, synced, and linked to its
// final name, which fails if that name exists: two rotations of one key at the same time
// never replace a version either of them may already have wrapped a data key with (the
// loser gets ErrRotating). The directory is synced before Rotate returns.
func (r *Ring) Rotate(keyID string) (string, uint32, error) {
	id, err := r.Resolve(keyID)
	if err != nil {
		return "", 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, err := r.currentLocked(id)
	if err != nil {
		return "", 0, err
	}
	if cur == 1<<32-1 {
		return "", 0, fmt.Errorf("keyring: key %s has no version left to rotate to", id)
	}
	next := cur + 1
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return "", 0, err
	}
	defer clear(key)
	final := filepath.Join(r.dir, keyFile(id, next))
	tmp := final + ".tmp"
	f, err := r.fs.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", 0, fmt.Errorf("%w: %s", ErrRotating, id)
		}
		return "", 0, fmt.Errorf("keyring: writing key %s version %d: %w", id, next, err)
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
	r.fs.Remove(tmp)
	if err == nil {
		err = r.fs.SyncDir(r.dir)
	}
	if err != nil {
		if errors.Is(err, ErrRotating) {
			return "", 0, err
		}
		return "", 0, fmt.Errorf("keyring: writing key %s version %d: %w", id, next, err)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", 0, err
	}
	r.keys[keyFile(id, next)] = aead
	return id, next, nil
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

// newAEAD returns AES-256-GCM under key and clears key, which the cipher has expanded.
func newAEAD(key []byte) (cipher.AEAD, error) {
	defer clear(key)
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Wrap encrypts dataKey under the newest version of master key id (as Resolve returns it),
// binding it to aad, and returns nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes) and the
// version that wrapped it, which Unwrap needs.
func (r *Ring) Wrap(id string, dataKey, aad []byte) ([]byte, uint32, error) {
	r.mu.Lock()
	v, err := r.currentLocked(id)
	var a cipher.AEAD
	if err == nil {
		a, err = r.keyLocked(id, v)
	}
	r.mu.Unlock()
	if err != nil {
		return nil, 0, err
	}
	out := make([]byte, nonceSize, nonceSize+len(dataKey)+a.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, 0, err
	}
	return a.Seal(out, out[:nonceSize], dataKey, aad), v, nil
}

// Unwrap opens what Wrap returned under version v of master key id with the same aad.
func (r *Ring) Unwrap(id string, v uint32, wrapped, aad []byte) ([]byte, error) {
	r.mu.Lock()
	a, err := r.keyLocked(id, v)
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if len(wrapped) < nonceSize+a.Overhead() {
		return nil, fmt.Errorf("%w: %s version %d", ErrUnwrap, id, v)
	}
	k, err := a.Open(nil, wrapped[:nonceSize], wrapped[nonceSize:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: %s version %d", ErrUnwrap, id, v)
	}
	return k, nil
}
