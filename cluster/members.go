package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Membership: a node that joins writes nodes/<id> = {"addr":…,"raft":…,"peer":…,"zone":…} under a lease of
// Config.LeaseTTL that it keeps alive. A node that stops (or is cut off from etcd) stops
// keeping it; etcd deletes the key when the lease expires, and every watcher reports the
// node down. A node cut off longer than its lease registers again, under a new lease, once
// etcd answers. Joining also writes the node's roster entry (roster.go), which outlives the
// lease.

// Node is a member of the cluster.
type Node struct {
	ID   uint64 // > 0, the node's --node-id: its slot in placement records
	Addr string // host:port of its API
	// RaftID is the Raft member id of the node's data directory (RaftID, node.json): what
	// it is in every Raft group. Zero for a node that registered without one.
	RaftID uint64
	// PeerAddr is host:port where the other nodes reach its Raft transport and forwarded
	// writes; empty: Addr.
	PeerAddr string
	// Leaving is set by a node that is stopping gracefully (Member.MarkLeaving): it hands
	// its leaderships away and is given none (leadership.go).
	Leaving bool
	// Zone is the failure domain the node is in (serve's --zone): the controller places no
	// two replicas of a shard in one zone while there are enough zones. "" is a zone too.
	Zone string
}

// Peer returns the address the other nodes send Raft messages and forwarded writes to.
func (n Node) Peer() string {
	if n.PeerAddr != "" {
		return n.PeerAddr
	}
	return n.Addr
}

type nodeValue struct {
	Addr     string `json:"addr"`
	RaftID   uint64 `json:"raft,omitempty"`
	PeerAddr string `json:"peer,omitempty"`
	Leaving  bool   `json:"leaving,omitempty"`
	Zone     string `json:"zone,omitempty"`
}

// NodeEventKind says what a NodeEvent reports.
type NodeEventKind uint8

// The membership events.
const (
	NodeUp NodeEventKind = iota + 1
	NodeDown
)

func (k NodeEventKind) String() string {
	switch k {
	case NodeUp:
		return "NodeUp"
	case NodeDown:
		return "NodeDown"
	}
	return "NodeEventKind(" + strconv.Itoa(int(k)) + ")"
}

// NodeEvent is a node coming up (its key written) or going down (its key deleted: it left,
// or its lease expired).
type NodeEvent struct {
	Kind NodeEventKind
	Node Node // Addr is empty for NodeDown
}

// Member is this node's registration, kept alive until Leave or until its context ends.
type Member struct {
	c      *Client
	node   Node
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex // guards lease and node.Leaving
	lease clientv3.LeaseID
}

// Join registers the node (id > 0) at addr, waits until the registration is written, and
// keeps it alive in the background until ctx ends or Leave is called. A node id already
// registered is taken over (a node that restarts before its old lease expired).
func (c *Client) Join(ctx context.Context, id uint64, addr string) (*Member, error) {
	return c.JoinNode(ctx, Node{ID: id, Addr: addr})
}

// JoinNode is Join for a node that registers its Raft id and peer address as well.
func (c *Client) JoinNode(ctx context.Context, n Node) (*Member, error) {
	if n.ID == 0 {
		return nil, errors.New("cluster: node id 0: ids start at 1")
	}
	mctx, cancel := context.WithCancel(ctx)
	m := &Member{c: c, node: n, cancel: cancel, done: make(chan struct{})}
	ka, err := m.register(mctx)
	if err != nil {
		cancel()
		return nil, err
	}
	go m.keepAlive(mctx, ka)
	return m, nil
}

// register grants a lease and writes the node's key under it.
func (m *Member) register(ctx context.Context) (<-chan *clientv3.LeaseKeepAliveResponse, error) {
	c := m.c
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	// The roster entry first, so the node is never up without one.
	if err := c.rosterJoin(rctx, m.node); err != nil {
		return nil, err
	}
	lease, err := c.cli.Grant(rctx, int64((c.cfg.LeaseTTL+time.Second-1)/time.Second))
	if err != nil {
		return nil, unavailable("grant a lease", err)
	}
	m.mu.Lock()
	v := m.valueLocked()
	m.mu.Unlock()
	if _, err := c.cli.Put(rctx, c.nodeKey(m.node.ID), v, clientv3.WithLease(lease.ID)); err != nil {
		return nil, unavailable("register node", err)
	}
	ka, err := c.cli.KeepAlive(ctx, lease.ID)
	if err != nil {
		return nil, unavailable("keep the lease alive", err)
	}
	m.mu.Lock()
	m.lease = lease.ID
	m.mu.Unlock()
	return ka, nil
}

// keepAlive drains the lease's keep-alive responses; when they end (the lease expired, or
// etcd was unreachable too long) it registers again, retrying until ctx ends.
func (m *Member) keepAlive(ctx context.Context, ka <-chan *clientv3.LeaseKeepAliveResponse) {
	defer close(m.done)
	for {
		for range ka {
		}
		if ctx.Err() != nil {
			return
		}
		m.c.cfg.Logger.Warn("cluster membership lease lost; registering again", "node", m.node.ID)
		for {
			var err error
			if ka, err = m.register(ctx); err == nil {
				break
			}
			select {
			case <-time.After(500 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		}
	}
}

// valueLocked is the node's registration as written in its key; m.mu is held.
func (m *Member) valueLocked() string {
	v, _ := json.Marshal(nodeValue{Addr: m.node.Addr, RaftID: m.node.RaftID, PeerAddr: m.node.PeerAddr, Leaving: m.node.Leaving, Zone: m.node.Zone})
	return string(v)
}

// Node returns the registered node.
func (m *Member) Node() Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.node
}

// MarkLeaving writes the node's registration again, under the same lease, with "leaving":
// true: the other nodes then neither hand it leaderships nor make it a preferred leader
// (leadership.go) while it stops. A registration written again after a lost lease keeps it.
func (m *Member) MarkLeaving() error {
	m.mu.Lock()
	m.node.Leaving = true
	lease, v := m.lease, m.valueLocked()
	m.mu.Unlock()
	ctx, cancel := m.c.ctx()
	defer cancel()
	if _, err := m.c.cli.Put(ctx, m.c.nodeKey(m.node.ID), v, clientv3.WithLease(lease)); err != nil {
		return unavailable("mark the node leaving", err)
	}
	return nil
}

// Leave stops keeping the registration alive and revokes its lease, so the others see the
// node down at once (if etcd answers; otherwise when the lease expires).
func (m *Member) Leave() error {
	m.cancel()
	<-m.done
	m.mu.Lock()
	lease := m.lease
	m.mu.Unlock()
	ctx, cancel := m.c.ctx()
	defer cancel()
	if _, err := m.c.cli.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return unavailable("revoke the lease", err)
	}
	return nil
}

func (c *Client) node(kv *mvccpb.KeyValue) (Node, error) {
	id, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), c.nodesPrefix()), 10, 64)
	if err != nil || id == 0 {
		return Node{}, fmt.Errorf("cluster: %s is not a node's key", kv.Key)
	}
	var v nodeValue
	if len(kv.Value) > 0 {
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return Node{}, fmt.Errorf("cluster: %s holds %q", kv.Key, kv.Value)
		}
	}
	return Node{ID: id, Addr: v.Addr, RaftID: v.RaftID, PeerAddr: v.PeerAddr, Leaving: v.Leaving, Zone: v.Zone}, nil
}

// Members returns the nodes up, in id order.
func (c *Client) Members() ([]Node, error) {
	ctx, cancel := c.ctx()
	defer cancel()
	nodes, _, err := c.members(ctx)
	return nodes, err
}

func (c *Client) members(ctx context.Context) ([]Node, int64, error) {
	resp, err := c.cli.Get(ctx, c.nodesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, 0, unavailable("list nodes", err)
	}
	out := make([]Node, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		n, err := c.node(kv)
		if err != nil {
			c.cfg.Logger.Warn("ignoring a malformed node key", "err", err)
			continue
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, resp.Header.Revision, nil
}

// WatchMembers returns the nodes up now and a channel of the changes after, until ctx ends
// (then it is closed). A node that registers again under a new lease (its address may have
// changed) is reported up again. If etcd compacted the history the watch needs, the
// membership is read again and the difference reported.
func (c *Client) WatchMembers(ctx context.Context) ([]Node, <-chan NodeEvent, error) {
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	nodes, rev, err := c.members(rctx)
	cancel()
	if err != nil {
		return nil, nil, err
	}
	up := map[uint64]bool{}
	for _, n := range nodes {
		up[n.ID] = true
	}
	out := make(chan NodeEvent, 16)
	go func() {
		defer close(out)
		send := func(ev NodeEvent) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for ctx.Err() == nil {
			wctx, cancel := context.WithCancel(ctx)
			reload := false
			for resp := range c.cli.Watch(wctx, c.nodesPrefix(), clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
				if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
					reload = true
					break
				}
				for _, ev := range resp.Events {
					rev = ev.Kv.ModRevision
					n, err := c.node(ev.Kv)
					if err != nil {
						continue
					}
					kind := NodeUp
					if ev.Type == clientv3.EventTypeDelete {
						kind = NodeDown
						delete(up, n.ID)
					} else {
						up[n.ID] = true
					}
					if !send(NodeEvent{Kind: kind, Node: n}) {
						cancel()
						return
					}
				}
			}
			cancel()
			if !reload {
				select {
				case <-time.After(200 * time.Millisecond):
				case <-ctx.Done():
				}
				continue
			}
			nodes, at, err := c.members(ctx)
			if err != nil {
				continue
			}
			now := map[uint64]bool{}
			for _, n := range nodes {
				now[n.ID] = true
				if !up[n.ID] && !send(NodeEvent{Kind: NodeUp, Node: n}) {
					return
				}
			}
			for id := range up {
				if !now[id] && !send(NodeEvent{Kind: NodeDown, Node: Node{ID: id}}) {
					return
				}
			}
			up, rev = now, at
		}
	}()
	return nodes, out, nil
}
