package server

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/account"
	"github.com/sluice-streams/sluice/audit"
	"github.com/sluice-streams/sluice/iam"
	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/stream"
)

// Request hygiene defaults. A PutRecords request carries at most 10 MiB of data, which base64
// makes about 13.4 MiB of JSON.
const (
	maxBodySize     = 16 << 20
	targetPrefix    = "Kinesis_20131202."
	jsonContentType = "application/x-amz-json-1.1"
)

// Options configure a Server.
type Options struct {
	Logger *slog.Logger
	// MaxConns caps concurrent connections; 0 means 4096.
	MaxConns int
	// MaxConnsPerIP caps the concurrent connections from one client address, so that one
	// client cannot take all MaxConns; 0 means 512, negative means no cap (limits.go).
	MaxConnsPerIP int
	// MaxInflightBytes caps the request body bytes the server holds at once, counted as they
	// arrive; a request that would exceed it is refused with ServiceUnavailable. 0 means
	// DefaultMaxInflightBytes() (limits.go).
	MaxInflightBytes int64
	// MaxConcurrentRequests caps the requests executing at once, their bodies read (a
	// subscription's stream, /healthz and /metrics are not counted); one more is refused at
	// once with ServiceUnavailable. 0 means 1024, negative means no cap (limits.go).
	MaxConcurrentRequests int
	// HeaderTimeout bounds how long a request's line and headers may take to arrive (over
	// HTTP/1.1; from the connection's first byte, or the first byte after an idle wait);
	// 0 means 10 s.
	HeaderTimeout time.Duration
	// ReadTimeout bounds reading a request's body, WriteTimeout writing its answer, and
	// IdleTimeout how long a connection may wait for its next request; 0 means 60 s, 60 s
	// and 120 s. Over HTTP/2 the first two bound each stream.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// TLSConfig, when set, makes the server speak HTTPS: HTTP/2 to clients that negotiate
	// "h2" through ALPN, HTTP/1.1 to the others. NextProtos, when empty, becomes ["h2",
	// "http/1.1"]. Without it the server speaks plaintext HTTP/1.1, and HTTP/2 to clients
	// that start with the HTTP/2 preface (prior knowledge; h2c upgrades are not supported).
	TLSConfig *tls.Config
	// HandshakeTimeout bounds how long a new connection may take to tell its protocol: its
	// TLS handshake, or its first bytes in plaintext; 0 means 10 s.
	HandshakeTimeout time.Duration
	// Authenticator decides who sent each request (auth.go): a SigV4Verifier checks
	// signatures (sigv4.go); nil means a SigV4Parser for the engine's account, which accepts
	// unsigned requests and does not verify signatures.
	Authenticator Authenticator
	// Account keeps the AWS account's settings (resource policies and tags, the billing
	// commitment, warm throughput, limits) for the engine; nil means account.New(engine),
	// which loads them at the first operation that needs them.
	Account *account.Account
	// Audit, when set, receives a line for every control-plane call, synced before the call
	// is answered, and with AuditData for every data-plane call too (audit.go).
	Audit     *audit.Writer
	AuditData bool
	// Peer, when set, makes the server a node of a cluster: it serves the peer routes
	// (PeerRaftPath, PeerForwardPath) with it, and forwards the records of shards another
	// node leads to that node through it (peer.go).
	Peer Peer
	// Metrics, when set, is called at every scrape of /metrics; the figures it returns are
	// exposed beside the engine's (a cluster node's controller figures).
	Metrics func() []Metric
}

// Server serves the Kinesis API for one engine.
type Server struct {
	engine *stream.Engine
	log    *slog.Logger
	http   *fasthttp.Server
	h2     *h2Front // sorts connections between http and the HTTP/2 server (h2.go)
	auth   Authenticator
	// authorizing is whether requests are authorised (authz.go): auth is a SigV4Verifier.
	authorizing     bool
	streamARNPrefix string       // arn:aws:kinesis:<region>:<account>:stream/
	rate            *rateLimiter // control-plane quotas (ratelimit.go)
	// chunked holds the headers of requests whose chunked bodies are being read (hygiene.go).
	chunked chunkedHeaders
	// inflight counts the request body bytes held, against Options.MaxInflightBytes (limits.go).
	inflight   *byteBudget
	budgetWarn everyMinute // warnings that inflight reached its cap
	// executing counts the requests being executed, against Options.MaxConcurrentRequests
	// (limits.go).
	executing execCap
	busyWarn  everyMinute // warnings that executing reached its cap
	// lastDamage is the cause of the last request failed by damaged data that was logged
	// (logFailure); swapped by the request goroutines.
	lastDamage atomic.Pointer[string]
	// bodyTimeout bounds reading a request body (Options.ReadTimeout).
	bodyTimeout time.Duration

	account *account.Account // the operations on AWS account settings (ops_aws.go)
	peer    Peer             // Options.Peer: nil on a single node (peer.go)
	metrics func() []Metric  // Options.Metrics; may be nil
	// forwarded counts the records another node took from this one (putForwarded), for
	// sluice_forwarded_records_total. Writers: the put handlers; reader: /metrics.
	forwarded atomic.Uint64

	audit     *audit.Writer // nil: no audit log (audit.go)
	auditData bool          // data-plane calls are audited too
	region    string        // the engine's region, of its ARNs

	subMu        sync.Mutex                        // guards subs and shuttingDown
	subs         map[*stream.Subscription]struct{} // open subscription streams, ended by Shutdown
	shuttingDown bool                              // set by Shutdown: later subscriptions end at once
}

// New returns a server for engine.
func New(engine *stream.Engine, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{engine: engine, account: opts.Account, log: opts.Logger, auth: opts.Authenticator,
		rate: newRateLimiter(engine.CapacityLimits(), engine.Account(), time.Now)}
	if s.account == nil {
		s.account = account.New(engine)
	}
	if s.auth == nil {
		s.auth = SigV4Parser{Default: engine.Account()}
	}
	_, s.authorizing = s.auth.(*SigV4Verifier)
	s.streamARNPrefix = engine.ARN("")
	s.audit, s.auditData, s.region = opts.Audit, opts.AuditData, arnRegion(s.streamARNPrefix)
	s.peer = opts.Peer
	s.metrics = opts.Metrics
	s.inflight = &byteBudget{max: opts.MaxInflightBytes}
	if s.inflight.max <= 0 {
		s.inflight.max = DefaultMaxInflightBytes()
	}
	s.executing.max = int64(orInt(opts.MaxConcurrentRequests, defaultMaxConcurrentRequests))
	s.bodyTimeout = orDur(opts.ReadTimeout, 60*time.Second)
	s.http = &fasthttp.Server{
		Handler:            s.serveHTTP1, // reads the body as it arrives, then handle (limits.go)
		Name:               "sluice",
		MaxRequestBodySize: maxBodySize,
		StreamRequestBody:  true,     // else fasthttp allocates a body's declared length before reading it
		ReadBufferSize:     16 << 10, // bounds the request line and headers
		Concurrency:        orInt(opts.MaxConns, 4096),
		// fasthttp's read timeout runs from a new connection's start, or a kept-alive one's
		// first byte after its idle wait: it bounds the request line and headers, and
		// HeaderReceived gives the body its own.
		ReadTimeout:                   orDur(opts.HeaderTimeout, defaultHeaderTimeout),
		WriteTimeout:                  orDur(opts.WriteTimeout, 60*time.Second),
		IdleTimeout:                   orDur(opts.IdleTimeout, 120*time.Second),
		DisableHeaderNamesNormalizing: false,
		NoDefaultContentType:          true,
		Logger:                        fasthttpLogger{opts.Logger},
		HeaderReceived: func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
			s.chunked.save(h)
			cfg := fasthttp.RequestConfig{MaxRequestBodySize: bodyLimit(h), ReadTimeout: s.bodyTimeout}
			if string(h.Peek("X-Amz-Target")) == targetPrefix+"SubscribeToShard" || isNativeSubscribe(h.RequestURI()) {
				cfg.WriteTimeout = subscribeWriteTimeout
			}
			return cfg
		},
		ErrorHandler: s.httpError,
	}
	s.h2 = newH2Front(s, opts)
	return s
}

func orInt(v, d int) int {
	if v == 0 {
		return d
	}
	return v
}

func orDur(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}

// Serve accepts connections on ln until Shutdown, serving HTTP/1.1 and HTTP/2 on it (over
// TLS if Options.TLSConfig is set).
func (s *Server) Serve(ln net.Listener) error { return s.h2.serve(ln) }

// Shutdown stops accepting connections, ends the open SubscribeToShard streams (their
// consumers resubscribe from their continuation sequence numbers) and waits for the requests
// in flight. HTTP/2 connections are sent a GOAWAY and closed once their streams end, or after
// the write timeout if some do not.
func (s *Server) Shutdown() error {
	s.h2.stopAccepting()
	s.subMu.Lock()
	s.shuttingDown = true
	for sub := range s.subs {
		sub.Close()
	}
	s.subMu.Unlock()
	return s.h2.shutdown()
}

// trackSubscription registers an open subscription so that Shutdown ends it. One that
// arrives once Shutdown has begun is closed at once: its stream sends what the subscription
// already holds, if anything, and ends, and the consumer resubscribes elsewhere or later.
func (s *Server) trackSubscription(sub *stream.Subscription) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if s.shuttingDown {
		sub.Close()
		return
	}
	if s.subs == nil {
		s.subs = map[*stream.Subscription]struct{}{}
	}
	s.subs[sub] = struct{}{}
}

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Warn("http", "msg", strings.TrimSpace(fmt.Sprintf(format, args...)))
}

// handle routes a request: GET /healthz, or a Kinesis operation named by X-Amz-Target.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	s.chunked.take(&ctx.Request.Header) // the body was read: its headers are no longer needed
	reqID := newRequestID()
	ctx.Response.Header.Set("x-amzn-RequestId", reqID)
	if !uncapped(ctx) {
		if !s.executing.take() {
			s.refuseBusy(ctx) // limits.go
			return
		}
		defer s.executing.give()
	}
	if string(ctx.Path()) == "/healthz" && ctx.IsGet() {
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("ok\n")
		return
	}
	if isPeerPath(ctx.Path()) {
		s.servePeer(ctx) // peer.go
		return
	}
	if isNativePath(ctx.Path()) {
		s.serveNative(ctx) // native.go
		return
	}
	if string(ctx.Path()) == "/metrics" && ctx.IsGet() {
		if err := s.authorizeMetrics(ctx); err != nil {
			s.fail(ctx, toAPIError(err))
			return
		}
		s.serveMetrics(ctx) // metrics.go
		return
	}
	if !ctx.IsPost() {
		s.fail(ctx, apiError{code: wire.UnknownOperation, msg: "Kinesis operations are POST requests to /"})
		return
	}
	target := string(ctx.Request.Header.Peek("X-Amz-Target"))
	op, ok := strings.CutPrefix(target, targetPrefix)
	var p Principal // the caller, once authenticated
	var err error
	if s.audit != nil {
		defer func() { s.auditCall(ctx, op, p) }() // audit.go
	}
	if ok && op == "SubscribeToShard" {
		p, err = s.auth.Authenticate(&ctx.Request)
		if err != nil {
			s.fail(ctx, toAPIError(err))
			return
		}
		c := s.newCall(ctx, iam.Actions[op], p)
		defer c.release()
		s.subscribe(ctx, c, ctx.Request.Body())
		return
	}
	h, known := operations[op]
	if !ok || !known {
		s.fail(ctx, apiError{code: wire.UnknownOperation, msg: ""})
		return
	}
	p, err = s.auth.Authenticate(&ctx.Request)
	if err != nil {
		s.fail(ctx, toAPIError(err))
		return
	}
	if err := s.rate.allow(op); err != nil {
		s.fail(ctx, toAPIError(err))
		return
	}
	body := ctx.Request.Body()
	asCBOR := isCBOR(ctx.Request.Header.ContentType())
	if asCBOR && len(body) > 0 {
		// The operations decode JSON: transcode the body (cbor.go). The JSON lives as long as
		// the request body would have, until handle returns.
		js, err := cborToJSON(getBodyBuf(len(body)+len(body)/2+64), body)
		defer putBodyBuf(js)
		if err != nil {
			s.fail(ctx, toAPIError(err))
			return
		}
		body = js
	}
	c := s.newCall(ctx, iam.Actions[op], p)
	defer c.release()
	out, err := h(s, c, body)
	if err == nil && !c.checked {
		err = errUnchecked
	}
	if err != nil {
		s.fail(ctx, toAPIError(err))
		return
	}
	if asCBOR {
		b, err := cborAnswer(out)
		if err != nil {
			s.fail(ctx, toAPIError(err))
			return
		}
		ctx.SetContentType(cborContentType)
		ctx.SetStatusCode(fasthttp.StatusOK)
		putBodyBuf(ctx.Response.SwapBody(b))
		return
	}
	ctx.SetContentType(jsonContentType)
	ctx.SetStatusCode(fasthttp.StatusOK)
	if out == nil {
		ctx.SetBodyString("{}")
		return
	}
	if raw, ok := out.(rawJSON); ok {
		// raw comes from bodyBufs: it becomes the body without a copy, and the buffer the
		// response held goes back to the pool.
		putBodyBuf(ctx.Response.SwapBody(raw))
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		s.fail(ctx, toAPIError(err))
		return
	}
	ctx.SetBody(b)
}

// rawJSON is an operation's answer already encoded as JSON by one of the data-path encoders,
// which keep encoding/json off the hot path. Its buffer comes from getBodyBuf and belongs to
// the response once returned.
type rawJSON []byte

// apiError is an error as the API reports it: a Kinesis error (its code) and the message.
// Its name and HTTP status follow from the code.
type apiError struct {
	code  wire.Code
	msg   string
	cause error // what went wrong inside, for the log only; nil for a refused request
}

// name returns the Kinesis error name (the JSON __type, the X-Amzn-ErrorType header).
func (e apiError) name() string { return e.code.Name() }

// status returns the HTTP status of the error.
func (e apiError) status() int { return e.code.Status() }

func (e apiError) Error() string { return e.name() + ": " + e.msg }

// internalMessage is what a client is told of a server-side failure: never its cause (a
// file path, a system error), which goes to the server's log with the request id.
const internalMessage = "Internal service failure."

// noSpaceMessage is what a client is told when a shard's disk is full: an InternalFailure,
// which every SDK retries, and PutRecords' only per-record error besides throttling. The
// engine logs the episode once (segment/space.go), so the server does not log each refusal.
const noSpaceMessage = "Internal service failure: the shard's storage is full and the records were not written; retry later."

// kindCodes maps the engine's error kinds to the API's error codes.
var kindCodes = [...]wire.Code{
	stream.KindInvalidArgument:               wire.InvalidArgument,
	stream.KindResourceNotFound:              wire.ResourceNotFound,
	stream.KindResourceInUse:                 wire.ResourceInUse,
	stream.KindLimitExceeded:                 wire.LimitExceeded,
	stream.KindProvisionedThroughputExceeded: wire.ProvisionedThroughputExceeded,
	stream.KindExpiredIterator:               wire.ExpiredIterator,
	stream.KindValidation:                    wire.Validation,
	stream.KindInternalFailure:               wire.InternalFailure,
	stream.KindExpiredNextToken:              wire.ExpiredNextToken,
	stream.KindKMSNotFound:                   wire.KMSNotFound,
	stream.KindKMSAccessDenied:               wire.KMSAccessDenied,
}

// toAPIError maps an error to its Kinesis shape. An engine error keeps its kind and
// message, except an internal failure, whose message is internalMessage (noSpaceMessage for
// a full disk); any other error is an internal failure. The cause stays in the apiError for
// the log (fail).
func toAPIError(err error) apiError {
	var ae apiError
	if errors.As(err, &ae) {
		return ae
	}
	var se *stream.Error
	if errors.As(err, &se) && int(se.Kind) < len(kindCodes) && kindCodes[se.Kind] != wire.OK {
		if code := kindCodes[se.Kind]; code != wire.InternalFailure {
			return apiError{code: code, msg: se.Msg}
		}
	}
	if errors.Is(err, segment.ErrNoSpace) {
		return apiError{code: wire.InternalFailure, msg: noSpaceMessage, cause: err}
	}
	return apiError{code: wire.InternalFailure, msg: internalMessage, cause: err}
}

// logFailure reports whether the cause of a failed request is to be logged: not a full disk,
// which the engine logs once per episode (segment/space.go), nor damaged data whose error was
// the last one logged, so that a reader retrying at the damage logs it once, not at every try.
func (s *Server) logFailure(cause error) bool {
	if errors.Is(cause, segment.ErrNoSpace) {
		return false
	}
	if errors.Is(cause, segment.ErrCorrupt) {
		msg := cause.Error()
		if prev := s.lastDamage.Swap(&msg); prev != nil && *prev == msg {
			return false
		}
	}
	return true
}

func (s *Server) fail(ctx *fasthttp.RequestCtx, e apiError) {
	e.msg = awsmsg.Bound(e.msg, maxMessage)                     // a message may quote client input (edge.go)
	if e.status() >= 500 && e.code != wire.ServiceUnavailable { // refusals under load: limits.go warns
		id := string(ctx.Response.Header.Peek("x-amzn-RequestId"))
		if s.logFailure(e.cause) {
			s.log.Error("request failed", "request_id", id, "err", e.cause, "msg", e.msg,
				"target", string(ctx.Request.Header.Peek("X-Amz-Target")))
		}
		if e.code == wire.InternalFailure {
			e.msg += " Request id " + id + "." // the message is one of the constants above
		}
	}
	ctx.Response.Header.Set("X-Amzn-ErrorType", e.name())
	ctx.SetStatusCode(e.status())
	if isCBOR(ctx.Request.Header.ContentType()) {
		ctx.SetContentType(cborContentType)
		ctx.SetBody(appendCBORError(nil, e.name(), e.msg))
		return
	}
	ctx.SetContentType(jsonContentType)
	b, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message,omitempty"`
	}{e.name(), e.msg})
	ctx.SetBody(b)
}

// Request ids are unique, not secret: a random prefix drawn once per process and a counter,
// formatted like a UUID. Drawing 16 random bytes for each request cost about 0.3 µs of a
// 6.5 µs PutRecord.
var (
	requestIDPrefix = func() [8]byte {
		var b [8]byte
		rand.Read(b[:])
		return b
	}()
	requestIDs atomic.Uint64
)

func newRequestID() string {
	var b [16]byte
	copy(b[:8], requestIDPrefix[:])
	binary.BigEndian.PutUint64(b[8:], requestIDs.Add(1))
	var h [32]byte
	hex.Encode(h[:], b[:])
	var out [36]byte
	copy(out[0:], h[0:8])
	out[8] = '-'
	copy(out[9:], h[8:12])
	out[13] = '-'
	copy(out[14:], h[12:16])
	out[18] = '-'
	copy(out[19:], h[16:20])
	out[23] = '-'
	copy(out[24:], h[20:32])
	return string(out[:])
}
