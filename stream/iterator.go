package stream

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-streams/sluice/internal/vfs"
)

// Shard iterators are opaque to clients and tamper-evident: a token carries where to read
// and when it was issued, signed with HMAC-SHA256 under a key kept in the data directory (or
// given by Options.IteratorKey: a cluster's nodes share one, so a token issued by one node
// reads on any other), so a server restart keeps issued iterators valid and a forged or
// edited one is refused.
// Kinesis iterators expire 5 minutes after they are issued; so do these.
//
// Token layout (version 2), then encoded with unpadded URL-safe base64:
//
//	0    1     2        4       8          16        24           32     34        34+n  35+n      35+n+a 35+n+a+16
//	+----+-----+--------+-------+----------+---------+------------+------+---------+-----+---------+------+
//	|ver |flags| rsvd   | shard | position | issued  | stream gen | nlen | name    | alen| account | MAC  |
//	+----+-----+--------+-------+----------+---------+------------+------+---------+-----+---------+------+
//
//	ver         uint8, iterVersion
//	flags       uint8, reserved (0)
//	shard       uint32, shard index
//	position    uint64, the next log sequence number to read (records at or above it)
//	issued      int64, Unix milliseconds
//	stream gen  uint64, the stream's creation time in Unix nanoseconds: an iterator of a
//	            deleted stream does not work on a new stream of the same name
//	nlen, name  uint16 and the stream name's bytes (at most 128)
//	alen, account uint8 and the bytes of the account the iterator was issued to (at most
//	            32; AWS account ids are 12 digits): the server refuses it to any other
//	MAC         the first 16 bytes of HMAC-SHA256(key, every byte before it)
//
// Integers are little-endian. At most 34 + 128 + 1 + 32 + 16 = 211 bytes, 282 characters
// encoded: within the 512 characters Kinesis allows a ShardIterator. Version 1 was the same
// without alen and account; a version 1 token (issued before the upgrade, by a server that
// served its own account only) decodes with the engine's account.
const (
	iterVersion   = 2
	iterVersion1  = 1
	iterFixed     = 34
	iterMACSize   = 16
	maxStreamName = 128
	maxIterAcct   = 32
	// IteratorTTL is how long an iterator stays valid after it is issued.
	IteratorTTL = 5 * time.Minute
	keyFile     = "iterator.key"
	// IteratorKeySize is the size of an iterator key in bytes (Options.IteratorKey).
	IteratorKeySize = 32
	keySize         = IteratorKeySize
)

// Iterator is a decoded shard iterator.
type Iterator struct {
	Stream    string
	StreamGen uint64
	Shard     ShardID
	Pos       uint64
	Issued    time.Time
	// Account is the account the iterator was issued to; "" in a version 1 token.
	Account string
}

// IteratorKey signs and checks shard iterators.
type IteratorKey struct{ key [keySize]byte }

// LoadIteratorKey reads the key from dir, creating it (random, written crash-safely) the
// first time.
func LoadIteratorKey(fsys vfs.FS, dir string) (*IteratorKey, error) {
	path := filepath.Join(dir, keyFile)
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err == nil {
		defer f.Close()
		var k IteratorKey
		n, err := f.ReadAt(k.key[:], 0)
		if n != keySize {
			return nil, fmt.Errorf("stream: %s: %d bytes, want %d: %v", path, n, keySize, err)
		}
		return &k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var k IteratorKey
	if _, err := rand.Read(k.key[:]); err != nil {
		return nil, err
	}
	if err := fsys.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// The key is a secret: readable by its owner only.
	if err := vfs.WriteFileAtomic(fsys, path, k.key[:], 0o600); err != nil {
		return nil, err
	}
	return &k, nil
}

// NewIteratorKey returns the iterator key made of b, which must be IteratorKeySize bytes
// (Options.IteratorKey).
func NewIteratorKey(b []byte) (*IteratorKey, error) {
	var k IteratorKey
	if len(b) != keySize {
		return nil, fmt.Errorf("stream: iterator key of %d bytes, want %d", len(b), keySize)
	}
	copy(k.key[:], b)
	return &k, nil
}

// Encode returns the token for it.
func (k *IteratorKey) Encode(it Iterator) string {
	name := it.Stream
	if len(name) > maxStreamName || len(it.Account) > maxIterAcct {
		panic("BUG: stream name longer than 128 bytes or account longer than 32 in an iterator")
	}
	b := make([]byte, 0, iterFixed+len(name)+1+len(it.Account)+iterMACSize)
	b = append(b, iterVersion, 0, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(it.Shard))
	b = binary.LittleEndian.AppendUint64(b, it.Pos)
	b = binary.LittleEndian.AppendUint64(b, uint64(it.Issued.UnixMilli()))
	b = binary.LittleEndian.AppendUint64(b, it.StreamGen)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	b = append(b, byte(len(it.Account)))
	b = append(b, it.Account...)
	b = append(b, k.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (k *IteratorKey) mac(b []byte) []byte {
	h := hmac.New(sha256.New, k.key[:])
	h.Write(b)
	return h.Sum(nil)[:iterMACSize]
}

// Decode checks a token and returns what it carries. A token that is not one of ours, or was
// altered, is an InvalidArgument error; one issued more than IteratorTTL before now is an
// ExpiredIterator error.
func (k *IteratorKey) Decode(token string, now time.Time) (Iterator, error) {
	invalid := errorf(KindInvalidArgument, "invalid ShardIterator")
	if len(token) > 512 {
		return Iterator{}, invalid
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < iterFixed+iterMACSize {
		return Iterator{}, invalid
	}
	body, sum := b[:len(b)-iterMACSize], b[len(b)-iterMACSize:]
	if !hmac.Equal(sum, k.mac(body)) {
		return Iterator{}, invalid
	}
	n := int(binary.LittleEndian.Uint16(body[32:]))
	var account string
	switch {
	case n > maxStreamName:
		return Iterator{}, invalid
	case body[0] == iterVersion1 && iterFixed+n == len(body):
	case body[0] == iterVersion && iterFixed+n < len(body):
		a := body[iterFixed+n+1:]
		if int(body[iterFixed+n]) != len(a) || len(a) > maxIterAcct {
			return Iterator{}, invalid
		}
		account = string(a)
	default:
		return Iterator{}, invalid
	}
	it := Iterator{
		Shard:     ShardID(binary.LittleEndian.Uint32(body[4:])),
		Pos:       binary.LittleEndian.Uint64(body[8:]),
		Issued:    time.UnixMilli(int64(binary.LittleEndian.Uint64(body[16:]))),
		StreamGen: binary.LittleEndian.Uint64(body[24:]),
		Stream:    string(body[iterFixed : iterFixed+n]),
		Account:   account,
	}
	if now.Sub(it.Issued) > IteratorTTL {
		return Iterator{}, errorf(KindExpiredIterator, "Iterator expired. The iterator was created at time %s while right now it is %s which is further in the future than the tolerated delay of %d milliseconds.",
			it.Issued.UTC().Format(time.RFC1123), now.UTC().Format(time.RFC1123), IteratorTTL.Milliseconds())
	}
	return it, nil
}
