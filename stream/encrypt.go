package stream

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/internal/keyring"
	"github.com/sluice-streams/sluice/segment"
)

// Server-side encryption (StartStreamEncryption) seals each record's data with AES-256-GCM
// under a data key of the stream; the keyring's master key (Options.KeyringDir) wraps the
// data keys, which the stream's metadata keeps (streamMeta.DataKeys). docs/FORMAT.md,
// "Encryption at rest", describes the bytes.
//
// A data key is used by the process that made it only: its first encrypted put after start
// (or after the stream's key id changed, or after RenewDataKeys) makes and saves a new
// one, so that the nonces it draws from an in-memory counter are never reused under one
// key.
//
// The sealed data of a record (the frame's data field, frame.FlagSealed set):
//
//	0        4          12                 12+n    28+n
//	+--------+----------+------------------+-------+
//	| key id | counter  |    ciphertext    |  tag  |
//	+--------+----------+------------------+-------+
//
//	key id   uint32 LE, the data key's DataKeys id
//	counter  uint64 LE, unique per record under that key
//	the 12 bytes [0, 12) are the GCM nonce; the partition key is the additional data.
const (
	sealNonceSize = 12
	sealTagSize   = 16
	// SealOverhead is what sealing adds to a record's data.
	SealOverhead = sealNonceSize + sealTagSize
)

// dataKeyMeta is one data key of a stream, as the stream's metadata keeps it.
type dataKeyMeta struct {
	ID      uint32 `json:"id"`                // from 1, in every record sealed under it
	Master  string `json:"master"`            // the keyring's master key id (a UUID) that wraps it
	Version uint32 `json:"version,omitempty"` // the master key's version that wraps it; 0 (absent, written before rotation): 1
	Wrapped []byte `json:"wrapped"`           // keyring.Ring.Wrap of the 32 bytes, bound to wrapAAD
	Created int64  `json:"created"`           // Unix ms
}

// masterVersion is the version of the master key that wrapped dk.
func (dk *dataKeyMeta) masterVersion() uint32 {
	return max(dk.Version, 1)
}

// sealer seals the records this process puts under one data key.
type sealer struct {
	keyID string // the stream's KeyId it was made for (streamMeta.KeyID)
	id    uint32
	aead  cipher.AEAD
	ctr   atomic.Uint64 // the last counter drawn
}

// seal appends the sealed form of data (key: the partition key) to dst.
func (sl *sealer) seal(dst, key, data []byte) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, sl.id)
	dst = binary.LittleEndian.AppendUint64(dst, sl.ctr.Add(1))
	return sl.aead.Seal(dst, dst[start:start+sealNonceSize], data, key)
}

// wrapAAD binds a wrapped data key to its stream incarnation and id.
func wrapAAD(meta *streamMeta, id uint32) []byte {
	b := append([]byte("sluice data key\x00"), meta.Name...)
	b = binary.LittleEndian.AppendUint64(append(b, 0), meta.Gen)
	return binary.LittleEndian.AppendUint32(b, id)
}

// kmsError turns a keyring failure into the error a client sees: a missing key is
// KMSNotFoundException, key material that does not open the stream's data key
// KMSAccessDeniedException, anything else an internal failure. The messages name key ids,
// never key material or paths.
func kmsError(keyID string, err error) error {
	switch {
	case errors.Is(err, keyring.ErrNotFound), errors.Is(err, keyring.ErrInvalidKey):
		return &Error{Kind: KindKMSNotFound, Msg: fmt.Sprintf("Key '%s' does not exist in the server's keyring.", keyID), Err: err}
	case errors.Is(err, keyring.ErrUnwrap):
		return &Error{Kind: KindKMSAccessDenied, Msg: fmt.Sprintf("The server's keyring holds key '%s' but it does not open the stream's data key.", keyID), Err: err}
	}
	return &Error{Kind: KindInternalFailure, Msg: "the keyring failed", Err: err}
}

// resolveKey checks that the keyring holds the key keyID names (StartStreamEncryption).
func (e *Engine) resolveKey(keyID string) error {
	if _, err := e.keyring.Resolve(keyID); err != nil {
		return kmsError(keyID, err)
	}
	return nil
}

// sealerFor returns the sealer of the stream's current key id, making a data key if this
// process has none for it.
func (s *Stream) sealerFor(meta *streamMeta) (*sealer, error) {
	if sl := s.sealer.Load(); sl != nil && sl.keyID == meta.KeyID {
		return sl, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	meta = s.meta.Load()
	if sl := s.sealer.Load(); sl != nil && sl.keyID == meta.KeyID {
		return sl, nil
	}
	if meta.Encryption != "KMS" || s.deleted {
		return nil, errorf(KindResourceInUse, "Stream %s under account %s changed its encryption concurrently; retry the request.", meta.Name, s.engine.opts.Account)
	}
	e := s.engine
	master, err := e.keyring.Resolve(meta.KeyID)
	if err != nil {
		return nil, kmsError(meta.KeyID, err)
	}
	key := make([]byte, keyring.KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, internalError(err)
	}
	defer clear(key)
	next := meta.clone()
	id := uint32(1)
	if n := len(next.DataKeys); n > 0 {
		id = next.DataKeys[n-1].ID + 1
	}
	wrapped, version, err := e.keyring.Wrap(master, key, wrapAAD(meta, id))
	if err != nil {
		return nil, kmsError(meta.KeyID, err)
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, internalError(err)
	}
	next.DataKeys = append(next.DataKeys, dataKeyMeta{ID: id, Master: master, Version: version, Wrapped: wrapped, Created: e.opts.Now().UnixMilli()})
	if err := s.saveChangeLocked(next); err != nil {
		return nil, err
	}
	s.meta.Store(next)
	s.opened.Store(id, aead)
	sl := &sealer{keyID: meta.KeyID, id: id, aead: aead}
	s.sealer.Store(sl)
	return sl, nil
}

// RenewDataKeys makes every encrypted stream seal its next puts under a new data key,
// wrapped by the newest version of its master key: after a master key's rotation
// (keyring.Ring.Rotate, sluice rotate-key) a running server calls it so that records put
// from then on are no longer sealed under a data key the old version wraps. Records
// already sealed keep their data key and stay readable. Puts in flight finish under the
// data key they started with.
func (e *Engine) RenewDataKeys() {
	streams := e.streamList()
	for _, s := range streams {
		s.mu.Lock()
		s.sealer.Store(nil)
		s.mu.Unlock()
	}
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// opener returns the cipher of data key id, unwrapping it with the keyring on first use.
func (s *Stream) opener(id uint32) (cipher.AEAD, error) {
	if a, ok := s.opened.Load(id); ok {
		return a.(cipher.AEAD), nil
	}
	meta := s.meta.Load()
	for i := range meta.DataKeys {
		dk := &meta.DataKeys[i]
		if dk.ID != id {
			continue
		}
		key, err := s.engine.keyring.Unwrap(dk.Master, dk.masterVersion(), dk.Wrapped, wrapAAD(meta, id))
		if err != nil {
			return nil, kmsError(dk.Master, err)
		}
		a, err := newGCM(key)
		clear(key)
		if err != nil {
			return nil, internalError(err)
		}
		s.opened.Store(id, a)
		return a, nil
	}
	return nil, internalError(fmt.Errorf("%w: stream %s: a record is sealed under data key %d, which its metadata does not hold", ErrSealed, meta.Name, id))
}

// ErrSealed wraps the failure to open a sealed record: an unknown data key, or data that
// does not authenticate (damaged or altered on disk).
var ErrSealed = errors.New("stream: sealed record does not open")

// openView replaces the sealed records of v by their plaintext: v then holds a copy of its
// frames in memory, with frame.FlagSealed cleared (frame.FlagEncrypted stays), and no longer
// refers to the log's mapping. A view without sealed records is left as it is, zero-copy.
// On an error v is released.
func (s *Stream) openView(v *segment.View) error {
	if len(s.meta.Load().DataKeys) == 0 || v.Count == 0 {
		return nil // never encrypted: nothing to scan
	}
	it := v.Records()
	sealed := false
	for it.Next() {
		if it.Record().Flags&frame.FlagSealed != 0 {
			sealed = true
			break
		}
	}
	if !sealed {
		return nil
	}
	out := make([]byte, 0, v.Len())
	var plain []byte
	var keys openKeys
	payload := 0
	it = v.Records()
	for it.Next() {
		r := it.Record()
		if r.Flags&frame.FlagSealed != 0 {
			var err error
			if plain, err = s.open(plain[:0], &r, &keys); err != nil {
				v.Release()
				return err
			}
			r.Data, r.Flags = plain, r.Flags&^frame.FlagSealed
		}
		out = frame.Append(out, &r)
		payload += len(r.Key) + len(r.Data)
	}
	v.Replace(out, payload)
	return nil
}

// openKeys remembers the last data key one openView used: a view's records were mostly
// sealed by one process, under one key.
type openKeys struct {
	id   uint32
	aead cipher.AEAD
}

// open appends the plaintext of sealed record r to dst.
func (s *Stream) open(dst []byte, r *segment.Record, keys *openKeys) ([]byte, error) {
	if len(r.Data) < SealOverhead {
		return nil, internalError(fmt.Errorf("%w: stream %s: record %d: %d bytes of sealed data", ErrSealed, s.meta.Load().Name, r.Seq, len(r.Data)))
	}
	if id := binary.LittleEndian.Uint32(r.Data); keys.aead == nil || keys.id != id {
		a, err := s.opener(id)
		if err != nil {
			return nil, err
		}
		keys.id, keys.aead = id, a
	}
	dst, err := keys.aead.Open(dst, r.Data[:sealNonceSize], r.Data[sealNonceSize:], r.Key)
	if err != nil {
		return nil, internalError(fmt.Errorf("%w: stream %s: record %d does not authenticate", ErrSealed, s.meta.Load().Name, r.Seq))
	}
	return dst, nil
}
