package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/sluice-streams/sluice/stream"
)

// Defaults of Config.
const (
	DefaultName           = "sluice"
	DefaultReplicas       = 3
	DefaultDialTimeout    = 2 * time.Second
	DefaultRequestTimeout = 5 * time.Second
	DefaultLeaseTTL       = 10 * time.Second
)

// Config configures a Client.
type Config struct {
	Endpoints []string // etcd's client URLs
	Name      string   // the cluster's name: its keys are under /sluice/<Name>/; default "sluice"
	// RequestTimeout bounds every etcd request: an etcd that does not answer in it is an
	// error (ErrUnavailable), never a hang. Default 5s.
	RequestTimeout time.Duration
	DialTimeout    time.Duration // default 2s
	// LeaseTTL is the lease of a node's membership key: a node that stops keeping it alive
	// is reported down this long after. Default 10s; etcd raises a shorter one to its
	// minimum.
	LeaseTTL time.Duration
	Logger   *slog.Logger
}

// ErrUnavailable is wrapped by every error of a request etcd did not answer in time (it is
// unreachable, or has no quorum). The request may be retried.
var ErrUnavailable = errors.New("cluster: etcd did not answer")

// ErrReplicasMismatch is returned by EnsureReplicas when the cluster was made with another
// replication factor.
var ErrReplicasMismatch = errors.New("cluster: the replication factor differs from the cluster's")

// Client is a node's connection to the cluster's etcd: the catalog (Catalog), membership
// (Join, Members, WatchMembers) and placement. Safe for concurrent use.
type Client struct {
	cli    *clientv3.Client
	cfg    Config
	prefix string // /sluice/<name>/
	// placements is the node's placement cache, its Replication's (set once by
	// NewReplication; nil on a client that replicates nothing): the catalog transactions
	// placing new shards take each node's counts from it when it is ready (placingView).
	placements atomic.Pointer[placementCache]
}

// Dial connects to etcd. It does not wait for etcd to answer: the first request does.
func Dial(cfg Config) (*Client, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("cluster: no etcd endpoints")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// gRPC's default reconnection backoff grows to 2 minutes: after a long etcd outage a
	// node would wait that long to notice etcd is back. Capped at 2 s, a node reconnects
	// within 2 s of etcd's return, at the cost of one connection attempt per 2 s per node
	// while it is away.
	reconnect := grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
		MinConnectTimeout: cfg.DialTimeout,
	})
	cli, err := clientv3.New(clientv3.Config{Endpoints: cfg.Endpoints, DialTimeout: cfg.DialTimeout,
		DialOptions: []grpc.DialOption{reconnect}, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd client: %w", err)
	}
	return &Client{cli: cli, cfg: cfg, prefix: "/sluice/" + cfg.Name + "/"}, nil
}

// Close closes the connection. Watches end; a membership joined through the client is
// left to its lease.
func (c *Client) Close() error { return c.cli.Close() }

// Keys, under the cluster's prefix (docs/CLUSTER.md):
//
//	nodes/<id>                 {"addr":"host:port"}, under the node's lease
//	catalog/streams/<name>     the stream's metadata (stream.json's bytes)
//	placement/<stream>/<shard> {"replicas":[ids…]}
//	meta/replicas              the replication factor, decimal, fixed at creation
func (c *Client) nodeKey(id uint64) string { return c.prefix + "nodes/" + strconv.FormatUint(id, 10) }
func (c *Client) nodesPrefix() string      { return c.prefix + "nodes/" }
func (c *Client) streamKey(name string) string {
	return c.prefix + "catalog/streams/" + name
}
func (c *Client) streamsPrefix() string { return c.prefix + "catalog/streams/" }
func (c *Client) placementPrefix(stream string) string {
	return c.prefix + "placement/" + stream + "/"
}
func (c *Client) replicasKey() string { return c.prefix + "meta/replicas" }

// ctx returns a context bounded by the request timeout.
func (c *Client) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.cfg.RequestTimeout)
}

// unavailable is the error of an etcd request that failed with err: an InternalFailure
// (which Kinesis clients retry) whose cause wraps ErrUnavailable. Nothing about etcd
// reaches a client; the cause is for the server's log.
func unavailable(op string, err error) error {
	return &stream.Error{Kind: stream.KindInternalFailure, Msg: "the cluster's catalog did not answer; retry the request",
		Err: fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)}
}

// EnsureReplicas fixes the cluster's replication factor at n if none is recorded yet, and
// returns an error wrapping ErrReplicasMismatch if another one is.
func (c *Client) EnsureReplicas(n int) error {
	if n < 1 {
		return fmt.Errorf("cluster: %d replicas: want at least 1", n)
	}
	ctx, cancel := c.ctx()
	defer cancel()
	key := c.replicasKey()
	resp, err := c.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, strconv.Itoa(n))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return unavailable("meta/replicas", err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 1 && string(kvs[0].Value) != strconv.Itoa(n) {
		return fmt.Errorf("%w: cluster %q was created with %s replicas per shard; this node asks for %d (start it with --replicas %s)",
			ErrReplicasMismatch, c.cfg.Name, kvs[0].Value, n, kvs[0].Value)
	}
	return nil
}

// Replicas returns the cluster's replication factor, DefaultReplicas if none is recorded.
func (c *Client) Replicas() (int, error) {
	ctx, cancel := c.ctx()
	defer cancel()
	resp, err := c.cli.Get(ctx, c.replicasKey())
	if err != nil {
		return 0, unavailable("meta/replicas", err)
	}
	if len(resp.Kvs) == 0 {
		return DefaultReplicas, nil
	}
	n, err := strconv.Atoi(string(resp.Kvs[0].Value))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("cluster: meta/replicas holds %q", resp.Kvs[0].Value)
	}
	return n, nil
}
