package cluster

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluice-streams/sluice/internal/keyring"
)

// KeyringStore is the keyring.Store of a cluster: the master keys of encryption at rest and
// their aliases in etcd, shared by every node, so that a data key one node wraps (a shard's
// leader sealing records) is unwrapped by every other (a follower, the next leader after a
// failover, a node serving a shard it holds no replica of).
//
//	kms/keys/<key id>/<version>   the version's 32 bytes, hex; version decimal, from 1
//	kms/aliases/<alias>           the key id the alias names ("alias/aws/kinesis" → a UUID)
//
// Every write is a transaction that writes only what is absent: CreateKey puts a key's
// version 1 only if its key does not exist; alias/aws/kinesis, created on first use, is put
// with its key only if the alias does not exist, else the transaction returns the key it
// names, so two nodes creating it at once agree on one; a rotation puts version N+1 only if
// it does not exist (the loser gets keyring.ErrRotating). A version is never rewritten, and
// sluice never deletes one.
//
// Each node keeps a cache of what it read, its keyring directory (keyring.Dir, 0700 and
// 0600, marked as a cache so that sluice create-key and rotate-key refuse to change it):
// a version is read from the cache when there, else from etcd and then cached, so a node
// cut off from etcd still opens every record sealed under a data key it has unwrapped
// before, or whose master key it has read. The newest version of a key and an alias are
// read from etcd every time (a new data key, StartStreamEncryption), and from the cache
// only while etcd does not answer: the version wrapped then may be an older one, which
// every node can still unwrap.
//
// Whoever can read the cluster's prefix in etcd can read every master key, as the peer key
// and the iterator key (docs/SECURITY.md).
type KeyringStore struct {
	c     *Client
	cache *keyring.Dir // nil: none (sluice create-key and rotate-key)
}

// KeyringStore returns the cluster's keyring store. cacheDir, if not empty, is this node's
// keyring directory, which becomes its cache (keyring.Dir.MarkCache).
func (c *Client) KeyringStore(cacheDir string) (*KeyringStore, error) {
	s := &KeyringStore{c: c}
	if cacheDir != "" {
		s.cache = keyring.NewDir(cacheDir)
		if err := s.cache.MarkCache(fmt.Sprintf("the keyring of cluster %s in etcd (%skms/)", c.cfg.Name, c.prefix)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (c *Client) kmsVersionKey(id string, v uint32) string {
	return c.prefix + "kms/keys/" + id + "/" + strconv.FormatUint(uint64(v), 10)
}
func (c *Client) kmsAliasKey(alias string) string { return c.prefix + "kms/aliases/" + alias }

// notFound is keyring.ErrNotFound naming version v of key id.
func notFound(id string, v uint32) error {
	if v == 1 {
		return fmt.Errorf("%w: %s", keyring.ErrNotFound, id)
	}
	return fmt.Errorf("%w: %s version %d", keyring.ErrNotFound, id, v)
}

// Alias returns the key id alias names in etcd, or in the cache while etcd does not answer.
func (s *KeyringStore) Alias(alias string) (string, error) {
	ctx, cancel := s.c.ctx()
	defer cancel()
	resp, err := s.c.cli.Get(ctx, s.c.kmsAliasKey(alias))
	if err != nil {
		if s.cache != nil {
			if id, cerr := s.cache.Alias(alias); cerr == nil {
				return id, nil
			}
		}
		return "", unavailable("read a key alias", err)
	}
	if len(resp.Kvs) == 0 {
		return "", fmt.Errorf("%w: %s", keyring.ErrNotFound, alias)
	}
	id := string(resp.Kvs[0].Value)
	return id, s.cacheAlias(alias, id)
}

// Create puts version 1 of key id, and the alias, in one transaction (see the type's doc).
func (s *KeyringStore) Create(id string, key []byte, alias string, ifAbsent bool) (string, error) {
	ctx, cancel := s.c.ctx()
	defer cancel()
	vk, ak := s.c.kmsVersionKey(id, 1), s.c.kmsAliasKey(alias)
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(vk), "=", 0)}
	ops := []clientv3.Op{clientv3.OpPut(vk, hex.EncodeToString(key))}
	var orElse []clientv3.Op
	if alias != "" {
		ops = append(ops, clientv3.OpPut(ak, id))
		if ifAbsent {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(ak), "=", 0))
			orElse = append(orElse, clientv3.OpGet(ak))
		}
	}
	resp, err := s.c.cli.Txn(ctx).If(cmps...).Then(ops...).Else(orElse...).Commit()
	if err != nil {
		return "", unavailable("create a master key", err)
	}
	if !resp.Succeeded {
		if len(orElse) > 0 {
			if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
				got := string(kvs[0].Value)
				return got, s.cacheAlias(alias, got)
			}
		}
		return "", fmt.Errorf("cluster: master key %s already exists", id)
	}
	if err := s.cacheVersion(id, 1, key); err != nil {
		return "", err
	}
	if alias == "" {
		return id, nil
	}
	return id, s.cacheAlias(alias, id)
}

// Key returns version v of key id from the cache, or from etcd, caching it.
func (s *KeyringStore) Key(id string, v uint32) ([]byte, error) {
	if s.cache != nil {
		key, err := s.cache.Key(id, v)
		if !errors.Is(err, keyring.ErrNotFound) {
			return key, err
		}
	}
	ctx, cancel := s.c.ctx()
	defer cancel()
	resp, err := s.c.cli.Get(ctx, s.c.kmsVersionKey(id, v))
	if err != nil {
		return nil, unavailable("read a master key", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, notFound(id, v)
	}
	key, err := hex.DecodeString(string(resp.Kvs[0].Value))
	if err != nil || len(key) != keyring.KeySize {
		clear(key)
		return nil, fmt.Errorf("cluster: master key %s version %d in etcd does not hold a key of %d bytes", id, v, keyring.KeySize)
	}
	if err := s.cacheVersion(id, v, key); err != nil {
		clear(key)
		return nil, err
	}
	return key, nil
}

// Newest returns the highest version of key id in etcd, or in the cache while etcd does
// not answer.
func (s *KeyringStore) Newest(id string) (uint32, error) {
	ctx, cancel := s.c.ctx()
	defer cancel()
	prefix := s.c.prefix + "kms/keys/" + id + "/"
	resp, err := s.c.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		if s.cache != nil {
			if v, cerr := s.cache.Newest(id); cerr == nil {
				return v, nil
			}
		}
		return 0, unavailable("read a master key's versions", err)
	}
	newest := uint32(0)
	for _, kv := range resp.Kvs {
		v, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), prefix), 10, 32)
		if err == nil && v >= 1 {
			newest = max(newest, uint32(v))
		}
	}
	if newest == 0 {
		return 0, notFound(id, 1)
	}
	return newest, nil
}

// AddVersion puts version v of key id if key id exists and has no version v.
func (s *KeyringStore) AddVersion(id string, v uint32, key []byte) error {
	ctx, cancel := s.c.ctx()
	defer cancel()
	first, vk := s.c.kmsVersionKey(id, 1), s.c.kmsVersionKey(id, v)
	resp, err := s.c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(first), ">", 0), clientv3.Compare(clientv3.CreateRevision(vk), "=", 0)).
		Then(clientv3.OpPut(vk, hex.EncodeToString(key))).
		Else(clientv3.OpGet(first, clientv3.WithKeysOnly())).Commit()
	if err != nil {
		return unavailable("rotate a master key", err)
	}
	if !resp.Succeeded {
		if len(resp.Responses[0].GetResponseRange().Kvs) == 0 {
			return notFound(id, 1)
		}
		return fmt.Errorf("%w: %s", keyring.ErrRotating, id)
	}
	return s.cacheVersion(id, v, key)
}

// cacheVersion writes version v of key id to the cache, if there is one; a version already
// there (cached by another goroutine) is the same bytes, since etcd never rewrites one.
func (s *KeyringStore) cacheVersion(id string, v uint32, key []byte) error {
	if s.cache == nil {
		return nil
	}
	if err := s.cache.AddVersion(id, v, key); err != nil && !errors.Is(err, keyring.ErrRotating) {
		return err
	}
	return nil
}

// cacheAlias records in the cache, if there is one, the key id alias names in etcd.
func (s *KeyringStore) cacheAlias(alias, id string) error {
	if s.cache == nil {
		return nil
	}
	return s.cache.PointAlias(alias, id)
}
