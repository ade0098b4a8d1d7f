package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// KeySize is the size of a master key and of a data key: AES-256.
const KeySize = 32

// ManagedAlias is the alias of the AWS managed key of Kinesis, created on first use.
const ManagedAlias = "alias/aws/kinesis"

const nonceSize = 12

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

// Ring is a keyring: master keys kept in a Store, resolved, and used to wrap and unwrap
// data keys.
type Ring struct {
	store Store

	mu   sync.Mutex             // guards keys
	keys map[string]cipher.AEAD // loaded master key versions by keyFile(id, version)
}

// Open returns the keyring in directory dir. Nothing is read or created until a key is
// needed.
func Open(dir string) *Ring { return New(NewDir(dir)) }

// New returns the keyring kept in store.
func New(store Store) *Ring {
	return &Ring{store: store, keys: make(map[string]cipher.AEAD)}
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
	switch {
	case strings.HasPrefix(name, "key/") && uuidPattern.MatchString(name[4:]):
		name = name[4:]
	case uuidPattern.MatchString(name):
	case aliasPattern.MatchString(name):
		id, err := r.store.Alias(name)
		if errors.Is(err, ErrNotFound) && name == ManagedAlias {
			id, err = r.create(ManagedAlias, true)
		}
		if err != nil {
			return "", err
		}
		name = id
	default:
		return "", fmt.Errorf("%w: %q", ErrInvalidKey, keyID)
	}
	if _, err := r.key(name, 1); err != nil {
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
	return r.create(alias, false)
}

// create makes a key and records it with its alias (Store.Create); it returns the key id
// the alias names afterwards.
func (r *Ring) create(alias string, ifAbsent bool) (string, error) {
	var raw [16]byte
	key := make([]byte, KeySize)
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	if _, err := rand.Read(key); err != nil {
		return "", err
	}
	defer clear(key)
	raw[6] = raw[6]&0x0f | 0x40 // version 4
	raw[8] = raw[8]&0x3f | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(raw[:])
	id := h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	got, err := r.store.Create(id, key, alias, ifAbsent)
	if err != nil || got != id {
		return got, err
	}
	_, err = r.remember(id, 1, key)
	return id, err
}

// remember caches and returns the cipher of version v of key id (material key, which it
// clears).
func (r *Ring) remember(id string, v uint32, key []byte) (cipher.AEAD, error) {
	a, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.keys[keyFile(id, v)] = a
	r.mu.Unlock()
	return a, nil
}

// key returns the cipher of version v of master key id, loading it from the store.
func (r *Ring) key(id string, v uint32) (cipher.AEAD, error) {
	r.mu.Lock()
	a, ok := r.keys[keyFile(id, v)]
	r.mu.Unlock()
	if ok {
		return a, nil
	}
	if !uuidPattern.MatchString(id) {
		return nil, fmt.Errorf("%w: %q", ErrInvalidKey, id)
	}
	if v == 0 {
		return nil, fmt.Errorf("%w: %s version 0", ErrNotFound, id)
	}
	key, err := r.store.Key(id, v)
	if err != nil {
		return nil, err
	}
	if len(key) != KeySize {
		clear(key)
		return nil, fmt.Errorf("keyring: key %s version %d holds %d bytes, not %d", id, v, len(key), KeySize)
	}
	return r.remember(id, v, key)
}

// newest returns the newest version of master key id, as its store holds it now: a
// rotation made by another process (sluice rotate-key, another node) is seen at the next
// wrap.
func (r *Ring) newest(id string) (uint32, error) {
	if !uuidPattern.MatchString(id) {
		return 0, fmt.Errorf("%w: %q", ErrInvalidKey, id)
	}
	return r.store.Newest(id)
}

// Rotate adds a new version of the master key keyID names, as AWS KMS key rotation does:
// the key id stays, Wrap uses the new version from now on, and every older version stays
// in the keyring to unwrap what it wrapped. It returns the key id and the new version.
//
// The store records the version only if it has none of that number (Store.AddVersion):
// two rotations of one key at the same time never replace a version either of them may
// already have wrapped a data key with (the loser gets ErrRotating).
func (r *Ring) Rotate(keyID string) (string, uint32, error) {
	id, err := r.Resolve(keyID)
	if err != nil {
		return "", 0, err
	}
	cur, err := r.newest(id)
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
	if err := r.store.AddVersion(id, next, key); err != nil {
		return "", 0, err
	}
	if _, err := r.remember(id, next, key); err != nil {
		return "", 0, err
	}
	return id, next, nil
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
	v, err := r.newest(id)
	var a cipher.AEAD
	if err == nil {
		a, err = r.key(id, v)
	}
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
	a, err := r.key(id, v)
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
