package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

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
	// TLS is the client's TLS configuration for https:// endpoints: RootCAs the CA of etcd's
	// certificate (nil: the system's roots), Certificates the client certificate an etcd
	// started with --client-cert-auth asks for. nil: https:// endpoints are verified
	// against the system's roots and no client certificate is sent. With TLS set, an
	// http:// endpoint is refused: the etcd client would connect to it in plaintext.
	TLS *tls.Config
	// Username and Password authenticate the client to an etcd with auth enabled (etcdctl
	// auth enable): Dial asks etcd for a token with them, and the client asks again when
	// the token expires. Both or neither.
	Username, Password string
	Logger             *slog.Logger
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

// Dial connects to etcd. Without a user name it does not wait for etcd to answer: the
// first request does. With one it authenticates, waiting up to the dial timeout: a wrong
// password is an error here, and an etcd that does not answer is one wrapping
// ErrUnavailable.
func Dial(cfg Config) (*Client, error) {
	if err := checkEndpoints(cfg); err != nil {
		return nil, err
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, errors.New("cluster: an etcd user name needs a password, and a password a user name")
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
	cli, err := clientv3.New(clientv3.Config{Endpoints: cfg.Endpoints, DialTimeout: cfg.DialTimeout, TLS: cfg.TLS,
		Username: cfg.Username, Password: cfg.Password, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{reconnect, grpc.WithChainUnaryInterceptor(connectionError)}})
	if err != nil {
		if cfg.Username == "" {
			return nil, fmt.Errorf("cluster: etcd client: %w", err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w in %v: %w", ErrUnavailable, cfg.DialTimeout, err)
		}
		return nil, fmt.Errorf("cluster: authenticating to etcd as %q: %w", cfg.Username, err)
	}
	if cfg.Username != "" && cfg.TLS == nil && !strings.HasPrefix(cfg.Endpoints[0], "https://") {
		cfg.Logger.Warn("the etcd user's password and token go over a connection without TLS", "endpoint", cfg.Endpoints[0])
	}
	return &Client{cli: cli, cfg: cfg, prefix: "/sluice/" + cfg.Name + "/"}, nil
}

// connectionError is the innermost interceptor of the etcd client's requests. A request
// that waited for a connection until its deadline fails in gRPC with the reason the last
// connection attempt failed (a refused connection, a TLS handshake etcd or the client
// rejected) after "latest balancer error: ", which the etcd client replaces with a bare
// context.DeadlineExceeded. connectionError returns an error that still wraps
// context.DeadlineExceeded and keeps the reason; the etcd client passes it on unchanged, as
// it is no gRPC status. Other errors are returned as they are.
func connectionError(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if st, ok := grpcstatus.FromError(err); ok && st.Code() == codes.DeadlineExceeded {
		if why, found := strings.CutPrefix(st.Message(), "latest balancer error: "); found {
			return fmt.Errorf("%w: no connection to etcd: %s", context.DeadlineExceeded, why)
		}
	}
	return err
}

// checkEndpoints refuses endpoints the etcd client would connect to otherwise than they
// say: it takes the scheme of the first for all of them, and drops a TLS configuration on
// an http:// one.
func checkEndpoints(cfg Config) error {
	if len(cfg.Endpoints) == 0 {
		return errors.New("cluster: no etcd endpoints")
	}
	secure := strings.HasPrefix(cfg.Endpoints[0], "https://")
	for _, ep := range cfg.Endpoints {
		switch {
		case strings.HasPrefix(ep, "https://") != secure && strings.Contains(ep, "://"):
			return fmt.Errorf("cluster: etcd endpoints %s and %s: want all https:// or none", cfg.Endpoints[0], ep)
		case cfg.TLS != nil && strings.HasPrefix(ep, "http://"):
			return fmt.Errorf("cluster: etcd endpoint %s: TLS needs an https:// endpoint", ep)
		}
	}
	return nil
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
