package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluice-streams/sluice/stream"
)

// AccountStore is the account.Store of a cluster (its records are stream.CatalogEntry values,
// account.Record, so that this package needs nothing of package account): the account's settings in etcd, shared by
// every node, so that a resource policy put through one node is enforced by all and the
// other settings (billing commitment, warm throughput, consumer tags) read the same
// everywhere. The account's own record is account/settings, a stream's is
// account/streams/<name>, each the JSON account.json holds for it. A record's revision is
// its key's ModRevision; a Save is one transaction that compares the ModRevision of every
// key it writes (its CreateRevision with 0 for a new one), so of two nodes that change the
// same record from the same revision exactly one wins. The catalog's transaction that
// deletes a stream deletes its account record too (Catalog.Delete).
type AccountStore struct {
	c *Client
}

// AccountStore returns the cluster's store of account settings, for account.OpenStore.
func (c *Client) AccountStore() *AccountStore { return &AccountStore{c: c} }

func (c *Client) accountPrefix() string { return c.prefix + "account/" }
func (c *Client) accountKey(rec string) string {
	if rec == "" {
		return c.prefix + "account/settings"
	}
	return c.prefix + "account/streams/" + rec
}

// Load returns every record and the revision they were read at.
func (s *AccountStore) Load() ([]stream.CatalogEntry, int64, error) {
	ctx, cancel := s.c.ctx()
	defer cancel()
	resp, err := s.c.cli.Get(ctx, s.c.accountPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, unavailable("load the account settings", err)
	}
	out := make([]stream.CatalogEntry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		rec := stream.CatalogEntry{Data: kv.Value, Rev: kv.ModRevision}
		switch name, isStream := strings.CutPrefix(key, s.c.prefix+"account/streams/"); {
		case isStream:
			rec.Name = name
		case key == s.c.accountKey(""):
		default:
			continue // not a record of this version
		}
		out = append(out, rec)
	}
	return out, resp.Header.Revision, nil
}

// Save applies changes in one transaction if none of their records changed since the
// revisions they carry.
func (s *AccountStore) Save(changes []stream.CatalogEntry) (int64, error) {
	ctx, cancel := s.c.ctx()
	defer cancel()
	cmps := make([]clientv3.Cmp, 0, len(changes))
	ops := make([]clientv3.Op, 0, len(changes))
	for _, ch := range changes {
		key := s.c.accountKey(ch.Name)
		if ch.Rev == 0 {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		} else {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", ch.Rev))
		}
		if ch.Data == nil {
			ops = append(ops, clientv3.OpDelete(key))
		} else {
			ops = append(ops, clientv3.OpPut(key, string(ch.Data)))
		}
	}
	resp, err := s.c.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return 0, unavailable("save the account settings", err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("%w: in etcd", stream.ErrCatalogConflict)
	}
	return resp.Header.Revision, nil
}

// Watch reports the revision of every change of the account's records after revision from,
// until ctx ends. If etcd compacted the history the watch needs, the oldest revision etcd
// keeps is reported (an account that read the settings before it reads them again). While etcd is unreachable the watch
// waits and resumes where it stopped, so no change is missed.
func (s *AccountStore) Watch(ctx context.Context, from int64) <-chan int64 {
	out := make(chan int64, 1)
	report := func(rev int64) {
		select { // coalesce: a report not taken yet is replaced by the later one
		case <-out:
		default:
		}
		out <- rev
	}
	go func() {
		defer close(out)
		rev := from
		for ctx.Err() == nil {
			wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			for resp := range s.c.cli.Watch(wctx, s.c.accountPrefix(), clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
				if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
					// The changes up to the oldest revision etcd keeps are gone: an account
					// that read the settings before it reads them again (a report past its
					// revision), and the watch goes on from there.
					rev = max(rev, resp.CompactRevision)
					report(rev)
					break
				}
				if err := resp.Err(); err != nil {
					s.c.cfg.Logger.Warn("account settings watch", "err", err)
					break
				}
				if n := len(resp.Events); n > 0 {
					rev = resp.Events[n-1].Kv.ModRevision
					report(rev)
				}
			}
			cancel()
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}()
	return out
}
