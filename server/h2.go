package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/stream"
)

// HTTP/2 shares the listener with HTTP/1.1. Every accepted connection is sorted on a goroutine
// of its own, under a deadline: over TLS by the protocol ALPN negotiated ("h2" or not), in
// plaintext by its first bytes, the HTTP/2 client preface meaning HTTP/2 with prior knowledge
// (h2c upgrades from HTTP/1.1 are not supported). HTTP/1.1 connections go to fasthttp, HTTP/2
// ones to the standard library's HTTP/2 server, whose handler runs handle on a copy of each
// request; so both protocols answer from the same code.

// h2Preface opens every HTTP/2 connection (RFC 9113, section 3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

const (
	// defaultHandshakeTimeout is how long a new connection has to complete its TLS handshake
	// or send the bytes telling its protocol, unless Options.HandshakeTimeout says otherwise.
	defaultHandshakeTimeout = 10 * time.Second
	// h2MaxStreams caps the concurrent streams of one HTTP/2 connection, generously: an
	// enhanced fan-out consumer subscribes to each of its shards over one connection (a
	// client needing more opens another connection or waits).
	h2MaxStreams = 256
	// h2MaxFrame is the largest frame a client may send. A connection's read buffer grows to
	// the largest frame it reads, so this bounds it.
	h2MaxFrame = 256 << 10
	// h2MaxHeaderBytes bounds the header block of an HTTP/2 request, as fasthttp's read buffer
	// bounds the request line and headers of an HTTP/1.1 one.
	h2MaxHeaderBytes = 16 << 10
	// h2PingAfter: a connection on which nothing arrived for this long is pinged, and closed
	// if the ping goes unanswered, so a client that vanished without closing its connection
	// does not keep its subscriptions open.
	h2PingAfter = 30 * time.Second
)

// h2Front sorts the connections a Server accepts between fasthttp and the HTTP/2 server, and
// owns the latter.
type h2Front struct {
	s        *Server
	h2       *http.Server  // serves the connections sorted as HTTP/2; speaks nothing else
	tls      *tls.Config   // nil: plaintext
	detect   time.Duration // the handshake timeout
	maxConns int64
	grace    time.Duration // how long Shutdown lets HTTP/2 streams finish before closing

	// open counts the accepted connections not yet closed, whatever their protocol, against
	// maxConns. The accept loops add; whoever ends a connection subtracts: the sorting
	// goroutine when sorting fails, else fasthttp's or the HTTP/2 server's ConnState hook.
	open    atomic.Int64
	perIP   connsPerIP  // the open connections of each client address (limits.go); same hands as open
	capWarn everyMinute // warnings that maxConns was reached
	ipWarn  everyMinute // warnings that an address reached its cap

	mu     sync.Mutex // guards muxes and closed
	muxes  map[*connMux]struct{}
	closed bool // set by stopAccepting; Serve refuses to start after it
}

// newH2Front returns the HTTP/2 side of s, with the limits and timeouts of s.http, which must
// be built already; it hooks s.http's ConnState to count the HTTP/1.1 connections.
func newH2Front(s *Server, opts Options) *h2Front {
	f := &h2Front{
		s:        s,
		detect:   orDur(opts.HandshakeTimeout, defaultHandshakeTimeout),
		maxConns: int64(s.http.Concurrency),
		grace:    s.http.WriteTimeout,
		muxes:    map[*connMux]struct{}{},
		perIP:    connsPerIP{max: max(orInt(opts.MaxConnsPerIP, defaultMaxConnsPerIP), 0), n: map[netip.Addr]int{}},
	}
	if opts.TLSConfig != nil {
		f.tls = opts.TLSConfig.Clone()
		if len(f.tls.NextProtos) == 0 {
			f.tls.NextProtos = []string{"h2", "http/1.1"}
		}
	}
	var protos http.Protocols
	protos.SetHTTP2(true)            // connections whose TLS handshake chose "h2"
	protos.SetUnencryptedHTTP2(true) // plaintext connections that start with the preface
	f.h2 = &http.Server{
		Handler:   http.HandlerFunc(s.serveHTTP2),
		Protocols: &protos,
		HTTP2: &http.HTTP2Config{
			MaxConcurrentStreams: h2MaxStreams,
			MaxReadFrameSize:     h2MaxFrame,
			SendPingTimeout:      h2PingAfter,
		},
		// The connection has already said it speaks HTTP/2 when it gets here: this bounds
		// the replay of the preface and, over TLS, nothing more.
		ReadHeaderTimeout: f.detect,
		ReadTimeout:       s.bodyTimeout,       // per stream: reading the request body
		WriteTimeout:      s.http.WriteTimeout, // per stream; SubscribeToShard extends its own
		IdleTimeout:       s.http.IdleTimeout,  // a connection with no open stream
		MaxHeaderBytes:    h2MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ConnState: func(c net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				f.dropConn(c)
			}
		},
	}
	s.http.ConnState = func(c net.Conn, st fasthttp.ConnState) {
		if st == fasthttp.StateClosed || st == fasthttp.StateHijacked {
			f.dropConn(c)
		}
	}
	return f
}

// serve accepts connections on ln and serves them until ln fails or Shutdown; it returns
// what fasthttp's Serve returns (nil after Shutdown).
func (f *h2Front) serve(ln net.Listener) error {
	m := &connMux{f: f, ln: ln, done: make(chan struct{}), sorting: map[net.Conn]struct{}{}}
	m.h1 = connQueue{m: m, conns: make(chan net.Conn)}
	m.h2 = connQueue{m: m, conns: make(chan net.Conn)}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		ln.Close()
		return nil
	}
	f.muxes[m] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.muxes, m)
		f.mu.Unlock()
	}()
	go m.accept()
	go f.h2.Serve(&m.h2) // returns once m is closed
	err := f.s.http.Serve(&m.h1)
	m.close(nil)
	m.wg.Wait()
	return err
}

// stopAccepting closes every listener being served and the connections still being sorted.
func (f *h2Front) stopAccepting() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for m := range f.muxes {
		m.close(nil)
	}
}

// shutdown waits for the requests in flight on both servers. The HTTP/2 connections are told
// to go away (a GOAWAY frame, so clients retry elsewhere what the server has not started) and
// close once their streams end; those still open after the grace period are closed.
func (f *h2Front) shutdown() error {
	h1 := make(chan error, 1)
	go func() { h1 <- f.s.http.Shutdown() }()
	ctx, cancel := context.WithTimeout(context.Background(), f.grace)
	defer cancel()
	if err := f.h2.Shutdown(ctx); err != nil {
		f.s.log.Warn("closing HTTP/2 connections whose streams outlived the shutdown grace", "grace", f.grace, "err", err)
		f.h2.Close()
	}
	f.mu.Lock()
	muxes := make([]*connMux, 0, len(f.muxes))
	for m := range f.muxes {
		muxes = append(muxes, m)
	}
	f.mu.Unlock()
	for _, m := range muxes {
		m.wg.Wait()
	}
	return <-h1
}

// dropConn uncounts c, an accepted connection that closed.
func (f *h2Front) dropConn(c net.Conn) {
	f.open.Add(-1)
	f.perIP.release(c)
}

func (f *h2Front) warnConnCap() {
	if f.capWarn.due() {
		f.s.log.Warn("refusing connections: the connection cap is reached", "max_conns", f.maxConns)
	}
}

// connMux accepts the connections of one listener and sorts each, on a goroutine of its
// own, into the queue of fasthttp (h1) or of the HTTP/2 server (h2).
type connMux struct {
	f      *h2Front
	ln     net.Listener
	h1, h2 connQueue
	wg     sync.WaitGroup // the sorting goroutines; Add under mu before done is closed

	once sync.Once
	done chan struct{} // closed by close
	err  error         // why accepting stopped, nil for a close; written before done is closed

	mu      sync.Mutex            // guards sorting and, with done, wg.Add
	sorting map[net.Conn]struct{} // connections being sorted; close closes them
}

// accept runs until ln fails or m is closed.
func (m *connMux) accept() {
	var delay time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if !transientAcceptError(err) {
				m.close(err)
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			m.f.s.log.Warn("accepting connections", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
				continue
			case <-m.done:
				return
			}
		}
		delay = 0
		if m.f.open.Add(1) > m.f.maxConns {
			m.f.open.Add(-1)
			c.Close()
			m.f.warnConnCap()
			continue
		}
		if !m.f.perIP.acquire(c) {
			m.f.open.Add(-1)
			c.Close()
			if m.f.ipWarn.due() {
				m.f.s.log.Warn("refusing connections: a client address reached its connection cap", "remote", c.RemoteAddr().String(), "max_conns_per_ip", m.f.perIP.max)
			}
			continue
		}
		m.mu.Lock()
		select {
		case <-m.done:
			m.mu.Unlock()
			c.Close()
			m.f.dropConn(c)
			return
		default:
		}
		m.sorting[c] = struct{}{}
		m.wg.Add(1)
		m.mu.Unlock()
		go m.sort(c)
	}
}

// transientAcceptError reports whether Accept may succeed again after err: a timeout, or
// running out of file descriptors, which closing connections cures.
func transientAcceptError(err error) bool {
	var ne net.Error
	return (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// sort finds out what c speaks and queues it for its server.
func (m *connMux) sort(c net.Conn) {
	defer m.wg.Done()
	conn, isH2, err := m.detect(c)
	m.mu.Lock()
	delete(m.sorting, c)
	m.mu.Unlock()
	if err != nil {
		c.Close()
		m.f.dropConn(c)
		m.f.s.log.Debug("connection closed before it told its protocol", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	q := &m.h1
	if isH2 {
		q = &m.h2
	}
	if !q.push(conn) {
		conn.Close()
		m.f.dropConn(c)
	}
}

// detect completes the TLS handshake or reads the first bytes of c, within the handshake
// timeout, and returns the connection to serve and whether it speaks HTTP/2.
func (m *connMux) detect(c net.Conn) (net.Conn, bool, error) {
	if err := c.SetDeadline(time.Now().Add(m.f.detect)); err != nil {
		return nil, false, err
	}
	var conn net.Conn
	var isH2 bool
	if m.f.tls != nil {
		tc := tls.Server(c, m.f.tls)
		if err := tc.Handshake(); err != nil {
			return nil, false, err
		}
		conn, isH2 = tc, tc.ConnectionState().NegotiatedProtocol == "h2"
	} else {
		pre, h2, err := readPreface(c)
		if err != nil {
			return nil, false, err
		}
		conn, isH2 = &prefixConn{Conn: c, pre: pre}, h2
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, false, err
	}
	return conn, isH2, nil
}

// readPreface reads from c until what it read stops matching the HTTP/2 preface or matches
// all of it, and returns those bytes (to be replayed) and whether they are the preface. An
// HTTP/1.1 request differs by its second byte at the latest, so it is never waited on.
func readPreface(c net.Conn) ([]byte, bool, error) {
	buf := make([]byte, len(h2Preface))
	n := 0
	for n < len(buf) {
		k, err := c.Read(buf[n:])
		n += k
		if string(buf[:n]) != h2Preface[:n] {
			return buf[:n], false, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
	return buf, true, nil
}

// close stops m: the listener, the queues and the connections still being sorted. err says
// why (nil for Shutdown or a server's Close); the queues' Accept returns it.
func (m *connMux) close(err error) {
	m.once.Do(func() {
		m.err = err
		m.mu.Lock()
		close(m.done)
		for c := range m.sorting {
			c.Close()
		}
		m.mu.Unlock()
		m.ln.Close()
	})
}

// connQueue is the net.Listener a server accepts sorted connections from. Closing it closes
// the whole mux: both servers stop accepting when either does.
type connQueue struct {
	m     *connMux
	conns chan net.Conn // unbuffered: a sent connection has been accepted
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.conns:
		return c, nil
	case <-q.m.done:
		if q.m.err != nil {
			return nil, q.m.err
		}
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.m.close(nil)
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.m.ln.Addr() }

// push hands c to the queue's server; false if the mux closed first.
func (q *connQueue) push(c net.Conn) bool {
	select {
	case q.conns <- c:
		return true
	case <-q.m.done:
		return false
	}
}

// prefixConn replays the bytes read while sorting the connection before reading on.
type prefixConn struct {
	net.Conn
	pre []byte // read only by the one goroutine serving the connection
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// serveHTTP2 serves an HTTP/2 request with handle, the handler of HTTP/1.1 requests: it
// copies the request into a fasthttp.RequestCtx and the response back. A streamed response
// (SubscribeToShard's event stream) is flushed as each write arrives.
func (s *Server) serveHTTP2(w http.ResponseWriter, r *http.Request) {
	var req fasthttp.Request
	req.Header.SetMethod(r.Method)
	req.SetRequestURI(r.URL.RequestURI())
	req.Header.SetHost(r.Host)
	for k, vs := range r.Header {
		if k == "Content-Length" {
			continue
		}
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	// The body is held to the limit of its operation, as over HTTP/1.1 (hygiene.go), and a
	// body that cannot be read is answered as HTTP/1.1 answers it, in the API's shape.
	// It is read as it arrives, within the in-flight budget (limits.go).
	body, err := s.inflight.readBody(r.Body, r.ContentLength, bodyLimit(&req.Header))
	req.Header.SetContentLength(len(body))
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, remoteTCPAddr(r.RemoteAddr), fasthttpLogger{s.log})
	ctx.Request.SetBodyRaw(body) // set after Init, which would copy it
	if r.TLS != nil {
		ctx.SetUserValue(h2TLSKey, true) // ctx has no TLS connection to tell (authz.go)
	}
	ctx.Response.Header.SetNoDefaultContentType(s.http.NoDefaultContentType)
	// A streamed answer's writer may read the request's body until it ends, which can be
	// after this returns: then the body is not pooled (told before the stream is closed).
	var streamed bool
	defer func() { s.inflight.release(body, streamed) }()
	if err != nil {
		s.httpError(&ctx, err)
	} else {
		s.handle(&ctx)
	}
	streamed = ctx.Response.IsBodyStream()

	resp := &ctx.Response
	h := w.Header()
	for k, v := range resp.Header.All() {
		switch name := http.CanonicalHeaderKey(string(k)); name {
		case "Content-Length", "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te":
			// connection-specific (HTTP/2 forbids them), or set below
		default:
			h.Add(name, string(v))
		}
	}
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = nil // no sniffing: HTTP/1.1 answers carry none either
	}
	if _, ok := h["Server"]; !ok {
		h.Set("Server", s.http.Name)
	}
	if !resp.IsBodyStream() {
		b := resp.Body()
		h.Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(resp.StatusCode())
		w.Write(b)
		return
	}
	var onGone func()
	if sub, ok := ctx.UserValue(subscriptionKey).(*stream.Subscription); ok {
		onGone = sub.Close
	}
	s.streamHTTP2(w, r, resp, onGone)
}

// streamHTTP2 copies resp's body stream to w, flushing after each write so that every event
// is pushed at once. When the client goes away (it resets the stream, or the connection
// ends), the body stream is closed, so the stream writer's next write fails and it returns,
// and onGone, when set, runs: it closes a SubscribeToShard subscription, waking a writer that
// waits for the next event.
func (s *Server) streamHTTP2(w http.ResponseWriter, r *http.Request, resp *fasthttp.Response, onGone func()) {
	body := resp.BodyStream()
	defer resp.CloseBodyStream()
	if c, ok := body.(io.Closer); ok {
		stop := context.AfterFunc(r.Context(), func() {
			c.Close()
			if onGone != nil {
				onGone()
			}
		})
		defer stop()
	}
	rc := http.NewResponseController(w)
	if r.Header.Get("X-Amz-Target") == targetPrefix+"SubscribeToShard" || isNativeSubscribe([]byte(r.URL.RequestURI())) {
		// A subscription lives up to five minutes: the per-stream write timeout cannot apply.
		if err := rc.SetWriteDeadline(time.Now().Add(subscribeWriteTimeout)); err != nil {
			return
		}
	}
	w.WriteHeader(resp.StatusCode())
	if rc.Flush() != nil {
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// remoteTCPAddr parses an http.Request's RemoteAddr; nil if it is not an ip:port.
func remoteTCPAddr(s string) net.Addr {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil
	}
	return net.TCPAddrFromAddrPort(ap)
}
