package cluster

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Peer authentication. Every request one node sends another (Raft batches, forwarded
// writes) carries two headers:
//
//	X-Sluice-Peer-Time       the sender's clock, Unix seconds, decimal
//	X-Sluice-Peer-Signature  hex(HMAC-SHA256(peer key, time ‖ "\n" ‖ path ‖ "\n" ‖ body))
//
// The peer key is 32 random bytes stored once in etcd (meta/peer-key, hex), created by the
// first node that starts with a transaction that writes it only if absent, as
// meta/replicas. A receiver recomputes the MAC and compares in constant time (hmac.Equal);
// a request without the headers, with another MAC, or a time more than PeerMaxSkew from
// its own clock is refused with 403 before anything of it is used. A captured request can
// be replayed within that window by someone who can see the traffic (Raft tolerates a
// duplicated message; a replayed forwarded write duplicates its records): the transport is
// plaintext HTTP, so a cluster whose network is not trusted needs it protected below
// (a private network or a tunnel).

// The peer authentication headers.
const (
	HeaderPeerTime      = "X-Sluice-Peer-Time"
	HeaderPeerSignature = "X-Sluice-Peer-Signature"
)

// PeerMaxSkew is how far a peer request's time may be from the receiver's clock.
const PeerMaxSkew = 5 * time.Minute

// ErrPeerAuth is returned by PeerKey.Verify for a request it refuses.
var ErrPeerAuth = errors.New("cluster: peer request not signed with the cluster's key")

// PeerKey signs and verifies peer requests.
type PeerKey struct {
	key []byte
	now func() time.Time
}

// NewPeerKey returns a PeerKey over key; now nil is time.Now.
func NewPeerKey(key []byte, now func() time.Time) *PeerKey {
	if now == nil {
		now = time.Now
	}
	return &PeerKey{key: key, now: now}
}

func (k *PeerKey) mac(ts, path string, body []byte) []byte {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte(ts))
	m.Write([]byte{'\n'})
	m.Write([]byte(path))
	m.Write([]byte{'\n'})
	m.Write(body)
	return m.Sum(nil)
}

// Sign sets the authentication headers of a request to path with body.
func (k *PeerKey) Sign(h http.Header, path string, body []byte) {
	ts := strconv.FormatInt(k.now().Unix(), 10)
	h.Set(HeaderPeerTime, ts)
	h.Set(HeaderPeerSignature, hex.EncodeToString(k.mac(ts, path, body)))
}

// Verify checks the authentication headers of a request to path with body (header reads
// them); an error wrapping ErrPeerAuth refuses it.
func (k *PeerKey) Verify(header func(string) []byte, path string, body []byte) error {
	ts := string(header(HeaderPeerTime))
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: no time", ErrPeerAuth)
	}
	if d := k.now().Sub(time.Unix(sec, 0)); d > PeerMaxSkew || d < -PeerMaxSkew {
		return fmt.Errorf("%w: its time is %v from this node's", ErrPeerAuth, d.Round(time.Second))
	}
	sig := make([]byte, sha256.Size)
	if s := header(HeaderPeerSignature); len(s) != 2*sha256.Size {
		return fmt.Errorf("%w: no signature", ErrPeerAuth)
	} else if _, err := hex.Decode(sig, s); err != nil {
		return fmt.Errorf("%w: no signature", ErrPeerAuth)
	}
	if !hmac.Equal(sig, k.mac(ts, path, body)) {
		return fmt.Errorf("%w: wrong signature", ErrPeerAuth)
	}
	return nil
}

// EnsurePeerKey returns the cluster's peer key, creating it (32 random bytes) if none is
// recorded yet, with a transaction that writes it only if absent: every node gets the same.
func (c *Client) EnsurePeerKey() ([]byte, error) { return c.ensureSecret("meta/peer-key", 32) }

// ensureSecret returns the n random bytes recorded (hex) under the cluster's key name,
// recording new ones with a transaction that writes them only if absent, so that every
// node gets the same.
func (c *Client) ensureSecret(name string, n int) ([]byte, error) {
	fresh := make([]byte, n)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	ctx, cancel := c.ctx()
	defer cancel()
	key := c.prefix + name
	resp, err := c.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, hex.EncodeToString(fresh))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return nil, unavailable(name, err)
	}
	if resp.Succeeded {
		return fresh, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 {
		return nil, fmt.Errorf("cluster: %s vanished", name)
	}
	b, err := hex.DecodeString(string(kvs[0].Value))
	if err != nil || len(b) != len(fresh) {
		return nil, fmt.Errorf("cluster: %s does not hold a key of %d bytes", name, len(fresh))
	}
	return b, nil
}
