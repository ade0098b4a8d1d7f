package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluice-streams/sluice/stream"
)

// Catalog is the stream.Catalog of a cluster: each stream's metadata is the value of
// catalog/streams/<name>, and its revision is the key's ModRevision. A save is one
// transaction that compares the key's ModRevision with the revision the writer read (its
// CreateRevision with 0 for a new stream), so of two nodes that change a stream from the
// same revision exactly one wins. The same transaction writes the placement of the shards
// the new shard map adds (placement.go) and deletes that of the shards it no longer holds.
type Catalog struct {
	c *Client
}

var _ stream.Catalog = (*Catalog)(nil)

// Catalog returns the cluster's catalog, for stream.Options.Catalog.
func (c *Client) Catalog() *Catalog { return &Catalog{c: c} }

func (k *Catalog) entry(kv *mvccpb.KeyValue) stream.CatalogEntry {
	key := string(kv.Key)
	return stream.CatalogEntry{Name: strings.TrimPrefix(key, k.c.streamsPrefix()), Data: kv.Value, Rev: kv.ModRevision,
		Source: "etcd " + key}
}

// Load returns every stream's entry and the revision it was read at.
func (k *Catalog) Load() ([]stream.CatalogEntry, int64, error) {
	ctx, cancel := k.c.ctx()
	defer cancel()
	return k.load(ctx)
}

func (k *Catalog) load(ctx context.Context) ([]stream.CatalogEntry, int64, error) {
	resp, err := k.c.cli.Get(ctx, k.c.streamsPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, unavailable("load the catalog", err)
	}
	out := make([]stream.CatalogEntry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, k.entry(kv))
	}
	return out, resp.Header.Revision, nil
}

// cmp is the compare-and-swap condition of a write of name against revision prev.
func (k *Catalog) cmp(name string, prev int64) clientv3.Cmp {
	key := k.c.streamKey(name)
	if prev == 0 {
		return clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	}
	return clientv3.Compare(clientv3.ModRevision(key), "=", prev)
}

// Save writes name's metadata if its ModRevision is still prev (absent if prev is 0), with
// the placement of its shards, and returns the new revision.
func (k *Catalog) Save(name string, data []byte, prev int64) (int64, error) {
	ctx, cancel := k.c.ctx()
	defer cancel()
	ops, err := k.c.placementOps(ctx, name, data)
	if err != nil {
		return 0, err
	}
	ops = append(ops, clientv3.OpPut(k.c.streamKey(name), string(data)))
	resp, err := k.c.cli.Txn(ctx).If(k.cmp(name, prev)).Then(ops...).Commit()
	if err != nil {
		return 0, unavailable("save stream "+name, err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("%w: %s changed since revision %d", stream.ErrCatalogConflict, name, prev)
	}
	return resp.Header.Revision, nil
}

// Delete removes name's metadata, placement, account settings (AccountStore) and trailing
// on-demand peak (demand.go) if its ModRevision is still prev.
func (k *Catalog) Delete(name string, prev int64) error {
	ctx, cancel := k.c.ctx()
	defer cancel()
	resp, err := k.c.cli.Txn(ctx).If(k.cmp(name, prev)).
		Then(clientv3.OpDelete(k.c.streamKey(name)), clientv3.OpDelete(k.c.placementPrefix(name), clientv3.WithPrefix()),
			clientv3.OpDelete(k.c.accountKey(name)), clientv3.OpDelete(k.c.onDemandKey(name))).Commit()
	if err != nil {
		return unavailable("delete stream "+name, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: %s changed since revision %d", stream.ErrCatalogConflict, name, prev)
	}
	return nil
}

// Watch reports every change of the catalog after revision from until ctx ends. If etcd
// compacted the history the watch needs (it was disconnected long enough), the catalog is
// read again and reported whole (stream.CatalogReset). While etcd is unreachable the
// watch waits and resumes where it stopped.
func (k *Catalog) Watch(ctx context.Context, from int64) <-chan stream.CatalogEvent {
	out := make(chan stream.CatalogEvent, 16)
	go func() {
		defer close(out)
		send := func(ev stream.CatalogEvent) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		rev := from
		for ctx.Err() == nil {
			wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			wch := k.c.cli.Watch(wctx, k.c.streamsPrefix(), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
			reload := false
			for resp := range wch {
				if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
					reload = true
					break
				}
				if err := resp.Err(); err != nil {
					k.c.cfg.Logger.Warn("catalog watch", "err", err)
					break
				}
				for _, ev := range resp.Events {
					e := stream.CatalogEvent{Kind: stream.CatalogPut, Entry: k.entry(ev.Kv)}
					if ev.Type == clientv3.EventTypeDelete {
						e.Kind, e.Entry.Data = stream.CatalogDelete, nil
					}
					if !send(e) {
						cancel()
						return
					}
					rev = ev.Kv.ModRevision
				}
			}
			cancel()
			if ctx.Err() != nil {
				return
			}
			if !reload {
				// The watch ended without a compaction (no leader, a closed client):
				// start again from the last revision reported, after a pause.
				select {
				case <-time.After(200 * time.Millisecond):
				case <-ctx.Done():
					return
				}
				continue
			}
			entries, at, err := k.load(ctx)
			if err != nil {
				k.c.cfg.Logger.Warn("catalog watch: reload after a compaction", "err", err)
				continue
			}
			if !send(stream.CatalogEvent{Kind: stream.CatalogReset, Entries: entries, Rev: at}) {
				return
			}
			rev = at
		}
	}()
	return out
}
