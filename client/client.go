package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/internal/sigv4"
	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/shardmap"
)

// DefaultEndpoint is where `sluice serve` listens unless told otherwise.
const DefaultEndpoint = "http://127.0.0.1:4567"

// Config configures a Client. The zero Config talks to DefaultEndpoint.
type Config struct {
	// Endpoint is the server's base URL: http://host:port, or https://host:port for TLS.
	Endpoint string
	// TLSConfig is used for an https endpoint; nil means the system's defaults.
	TLSConfig *tls.Config
	// MaxConns caps the connections to the server, subscriptions excepted (each holds a
	// connection of its own); 0 means 64. A request waits for a free connection.
	MaxConns int
	// DialTimeout bounds establishing a connection; 0 means 5 s.
	DialTimeout time.Duration
	// RequestTimeout bounds one request, from sending to the end of its answer, unless the
	// caller's context ends sooner; 0 means 30 s. It does not apply to subscriptions.
	RequestTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle for longer; 0 means 30 s.
	IdleTimeout time.Duration
	// Logger receives warnings about retried failures; nil discards them.
	Logger *slog.Logger
	// Credentials sign every request (credentials.go). Nil means LoadCredentials from the
	// environment and the shared credentials file; where it finds none, requests go unsigned,
	// which only a server without --iam accepts. Unsigned forces unsigned requests.
	Credentials *Credentials
	Unsigned    bool
	// Region is the signatures' credential scope: the server's --region. "" means
	// AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1.
	Region string
}

// Client talks to one sluice server: the Kinesis API for the control plane, the native
// protocol for records. It is safe for concurrent use; Producers and Consumers made from it
// share its connections.
type Client struct {
	cfg    Config
	hc     *fasthttp.HostClient
	host   string // Host header and dial address
	tls    bool
	log    *slog.Logger
	signer *sigv4.Signer // nil: requests go unsigned
	closed atomic.Bool

	// nodes are the clients of other nodes of a cluster, by host:port (leaders.go), made on
	// first use and closed with this one. nodesMu guards nodes; the sub-clients themselves
	// are safe for concurrent use. A sub-client's own nodes map stays nil.
	nodesMu sync.Mutex
	nodes   map[string]*Client
}

// New returns a client for cfg.Endpoint. It does not connect until the first request.
func New(cfg Config) (*Client, error) {
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultEndpoint
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("sluice: endpoint %q: %w", cfg.Endpoint, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("sluice: endpoint %q: want http://host:port or https://host:port", cfg.Endpoint)
	}
	host := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			host = net.JoinHostPort(u.Hostname(), "443")
		} else {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
	}
	cfg.MaxConns = orInt(cfg.MaxConns, 64)
	cfg.DialTimeout = orDur(cfg.DialTimeout, 5*time.Second)
	cfg.RequestTimeout = orDur(cfg.RequestTimeout, 30*time.Second)
	cfg.IdleTimeout = orDur(cfg.IdleTimeout, 30*time.Second)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, host: host, tls: u.Scheme == "https", log: cfg.Logger}
	if !cfg.Unsigned {
		creds, found := Credentials{}, false
		if cfg.Credentials != nil {
			creds, found = *cfg.Credentials, true
		} else if creds, found, err = LoadCredentials(os.Getenv); err != nil {
			return nil, err
		}
		if found {
			region := cfg.Region
			if region == "" {
				region = regionFromEnv(os.Getenv)
			}
			c.signer = sigv4.NewSigner(sigv4.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey,
				SessionToken: creds.SessionToken}, region, "kinesis")
		}
	}
	c.hc = newHostClient(&cfg, host, c.tls)
	return c, nil
}

// newHostClient returns the connection pool of a client of host.
func newHostClient(cfg *Config, host string, isTLS bool) *fasthttp.HostClient {
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	return &fasthttp.HostClient{
		Addr:                host,
		Name:                "sluice-go",
		IsTLS:               isTLS,
		TLSConfig:           cfg.TLSConfig,
		MaxConns:            cfg.MaxConns,
		MaxIdleConnDuration: cfg.IdleTimeout,
		MaxConnWaitTimeout:  cfg.RequestTimeout,
		ReadTimeout:         cfg.RequestTimeout,
		WriteTimeout:        cfg.RequestTimeout,
		// A get answer is at most 10 MiB of frames, or one record over it.
		MaxResponseBodySize: wire.MaxMessageSize,
		ReadBufferSize:      16 << 10,
		// A put or get is not idempotent as far as fasthttp knows: never resend on its own.
		MaxIdemponentCallAttempts: 1,
		Dial: func(addr string) (net.Conn, error) {
			return dialer.Dial("tcp", addr)
		},
	}
}

func orInt(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

func orDur(v, d time.Duration) time.Duration {
	if v <= 0 {
		return d
	}
	return v
}

// Close closes the client's idle connections, and those of the clients of the other nodes
// of a cluster it made; requests still running finish. A closed client refuses new requests
// with ErrClosed.
func (c *Client) Close() error {
	c.closed.Store(true)
	c.hc.CloseIdleConnections()
	c.nodesMu.Lock()
	defer c.nodesMu.Unlock()
	for _, n := range c.nodes {
		n.Close()
	}
	return nil
}

// deadline is the earlier of ctx's deadline and the request timeout from now.
func (c *Client) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(c.cfg.RequestTimeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// do sends req and reads the answer into resp. A context that ends while the request runs
// does not interrupt it; the request timeout bounds it instead.
func (c *Client) do(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.hc.DoDeadline(req, resp, c.deadline(ctx)); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return wrapTransport(err)
	}
	return nil
}

// ---- The Kinesis control plane (AWS JSON 1.1). -------------------------------------------

const (
	targetPrefix    = "Kinesis_20131202."
	jsonContentType = "application/x-amz-json-1.1"
)

// CallKinesis calls a Kinesis API operation: in is encoded as its JSON input (nil for {}),
// and the answer is decoded into out (unless nil). Control-plane calls refused for their rate
// (LimitExceededException) are retried with backoff within ctx, up to 8 attempts.
func (c *Client) CallKinesis(ctx context.Context, op string, in, out any) error {
	body := []byte("{}")
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("sluice %s: encoding the input: %w", op, err)
		}
	}
	var err error
	for attempt := range 8 {
		if err = c.callKinesisOnce(ctx, op, body, out); err == nil || !retryable(err) {
			return err
		}
		if serr := sleepCtx(ctx, backoff(attempt, 50*time.Millisecond, 2*time.Second)); serr != nil {
			return err
		}
	}
	return err
}

func (c *Client) callKinesisOnce(ctx context.Context, op string, body []byte, out any) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI("/")
	req.Header.SetHost(c.host)
	req.Header.Set("X-Amz-Target", targetPrefix+op)
	req.Header.SetContentType(jsonContentType)
	req.SetBodyRaw(body)
	c.sign(req, "/", jsonContentType, targetPrefix+op)
	if err := c.do(ctx, req, resp); err != nil {
		return fmt.Errorf("sluice %s: %w", op, err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		var ae struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
			Msg2    string `json:"Message"`
		}
		_ = json.Unmarshal(resp.Body(), &ae)
		name := ae.Type
		if i := strings.LastIndexByte(name, '#'); i >= 0 {
			name = name[i+1:]
		}
		if name == "" {
			name = string(resp.Header.Peek("X-Amzn-ErrorType"))
			name, _, _ = strings.Cut(name, ":")
		}
		if name == "" {
			name = wire.InternalFailure.Name()
		}
		msg := ae.Message
		if msg == "" {
			msg = ae.Msg2
		}
		return &Error{Code: codeOfName(name, resp.StatusCode()), Name: name, Message: msg, Status: resp.StatusCode(), Op: op}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(resp.Body(), out); err != nil {
		return fmt.Errorf("sluice %s: %w: %v", op, ErrBadAnswer, err)
	}
	return nil
}

// CreateStream creates a provisioned stream of shards shards.
func (c *Client) CreateStream(ctx context.Context, stream string, shards int) error {
	return c.CallKinesis(ctx, "CreateStream", struct {
		StreamName string
		ShardCount int
	}{stream, shards}, nil)
}

// DeleteStream deletes a stream and its consumers.
func (c *Client) DeleteStream(ctx context.Context, stream string) error {
	return c.CallKinesis(ctx, "DeleteStream", struct {
		StreamName              string
		EnforceConsumerDeletion bool
	}{stream, true}, nil)
}

// StreamSummary is what DescribeStreamSummary tells about a stream.
type StreamSummary struct {
	Name           string
	ARN            string
	Status         string // CREATING, ACTIVE, UPDATING or DELETING
	Mode           string // PROVISIONED or ON_DEMAND
	RetentionHours int
	OpenShards     int
	Consumers      int
	MaxRecordKiB   int // the largest record's data, in KiB
	Encryption     string
}

// DescribeStreamSummary describes a stream.
func (c *Client) DescribeStreamSummary(ctx context.Context, stream string) (StreamSummary, error) {
	var out struct {
		StreamDescriptionSummary struct {
			StreamName, StreamARN, StreamStatus string
			StreamModeDetails                   struct{ StreamMode string }
			RetentionPeriodHours                int
			OpenShardCount, ConsumerCount       int
			MaxRecordSizeInKiB                  int
			EncryptionType                      string
		}
	}
	err := c.CallKinesis(ctx, "DescribeStreamSummary", struct{ StreamName string }{stream}, &out)
	d := &out.StreamDescriptionSummary
	return StreamSummary{Name: d.StreamName, ARN: d.StreamARN, Status: d.StreamStatus, Mode: d.StreamModeDetails.StreamMode,
		RetentionHours: d.RetentionPeriodHours, OpenShards: d.OpenShardCount, Consumers: d.ConsumerCount,
		MaxRecordKiB: d.MaxRecordSizeInKiB, Encryption: d.EncryptionType}, err
}

// shardJSON is a shard as ListShards answers it.
type shardJSON struct {
	ShardId               string
	ParentShardId         string
	AdjacentParentShardId string
	HashKeyRange          struct{ StartingHashKey, EndingHashKey string }
	SequenceNumberRange   struct{ StartingSequenceNumber, EndingSequenceNumber string }
}

func (j *shardJSON) decode() (shardmap.Shard, error) {
	s := shardmap.Shard{Parent: shardmap.NoParent, AdjacentParent: shardmap.NoParent, Open: j.SequenceNumberRange.EndingSequenceNumber == ""}
	var err error
	if s.ID, err = shardmap.ParseShardID(j.ShardId); err != nil {
		return s, err
	}
	if j.ParentShardId != "" {
		if s.Parent, err = shardmap.ParseShardID(j.ParentShardId); err != nil {
			return s, err
		}
	}
	if j.AdjacentParentShardId != "" {
		if s.AdjacentParent, err = shardmap.ParseShardID(j.AdjacentParentShardId); err != nil {
			return s, err
		}
	}
	if s.Range.Start, err = shardmap.ParseKey(j.HashKeyRange.StartingHashKey); err != nil {
		return s, err
	}
	s.Range.End, err = shardmap.ParseKey(j.HashKeyRange.EndingHashKey)
	return s, err
}

// ListShards lists every shard of a stream that retention has kept, open and closed, by
// ascending id, following NextToken through every page. Open tells the open ones; Parent
// and AdjacentParent are shardmap.NoParent when absent.
func (c *Client) ListShards(ctx context.Context, stream string) ([]shardmap.Shard, error) {
	return c.listShards(ctx, stream, 0)
}

// listShards is ListShards asking for pages of pageSize shards (0: the server's default).
func (c *Client) listShards(ctx context.Context, stream string, pageSize int) ([]shardmap.Shard, error) {
	var shards []shardmap.Shard
	type input struct {
		StreamName string `json:",omitempty"`
		NextToken  string `json:",omitempty"`
		MaxResults int    `json:",omitempty"`
	}
	in := input{StreamName: stream, MaxResults: pageSize}
	for page := 0; ; page++ {
		var out struct {
			Shards    []shardJSON
			NextToken string
		}
		if err := c.CallKinesis(ctx, "ListShards", in, &out); err != nil {
			return nil, err
		}
		for i := range out.Shards {
			s, err := out.Shards[i].decode()
			if err != nil {
				return nil, fmt.Errorf("sluice ListShards: %w: %v", ErrBadAnswer, err)
			}
			shards = append(shards, s)
		}
		if out.NextToken == "" {
			return shards, nil
		}
		if page > 1<<20 {
			return nil, fmt.Errorf("sluice ListShards: %w: endless NextToken chain", ErrBadAnswer)
		}
		// Kinesis wants NextToken alone: it names the stream itself.
		in = input{NextToken: out.NextToken, MaxResults: pageSize}
	}
}

// ConsumerInfo describes an enhanced fan-out consumer.
type ConsumerInfo struct {
	Name      string `json:"ConsumerName"`
	ARN       string `json:"ConsumerARN"`
	Status    string `json:"ConsumerStatus"` // CREATING, ACTIVE or DELETING
	StreamARN string `json:"StreamARN"`
}

// RegisterStreamConsumer registers an enhanced fan-out consumer of the stream streamARN.
func (c *Client) RegisterStreamConsumer(ctx context.Context, streamARN, name string) (ConsumerInfo, error) {
	var out struct{ Consumer ConsumerInfo }
	err := c.CallKinesis(ctx, "RegisterStreamConsumer", struct{ StreamARN, ConsumerName string }{streamARN, name}, &out)
	if out.Consumer.StreamARN == "" {
		out.Consumer.StreamARN = streamARN
	}
	return out.Consumer, err
}

// DescribeStreamConsumer describes a consumer by stream ARN and name, or by its ARN alone
// (streamARN and name empty).
func (c *Client) DescribeStreamConsumer(ctx context.Context, streamARN, name, consumerARN string) (ConsumerInfo, error) {
	var out struct{ ConsumerDescription ConsumerInfo }
	err := c.CallKinesis(ctx, "DescribeStreamConsumer", struct {
		StreamARN    string `json:",omitempty"`
		ConsumerName string `json:",omitempty"`
		ConsumerARN  string `json:",omitempty"`
	}{streamARN, name, consumerARN}, &out)
	return out.ConsumerDescription, err
}

// ---- Backoff. ------------------------------------------------------------------------------

// backoff returns the wait before retry attempt+1: base·2^attempt capped at max, with equal
// jitter (half fixed, half random) so that retries spread out without ever coming at once.
func backoff(attempt int, base, max time.Duration) time.Duration {
	d := max
	if attempt < 30 && base<<attempt < max && base<<attempt > 0 {
		d = base << attempt
	}
	half := d / 2
	return half + rand.N(half+1)
}

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
