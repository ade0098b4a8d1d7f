package server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/server/wire"
)

// Limits on what clients may make the server hold, so that no client, or set of clients,
// can make it buffer more than it has or lock others out (docs/SECURITY.md lists them with
// their flags):
//
//   - request bodies are read as their bytes arrive, into a buffer that grows with what was
//     received, never to the length a request declares; each byte read is first taken from a
//     server-wide budget of in-flight request bytes (Options.MaxInflightBytes), and a request
//     that finds the budget spent is refused at once with ServiceUnavailable (503), which
//     clients retry;
//   - the requests executing at once, their bodies read, are capped
//     (Options.MaxConcurrentRequests), so that more requests than the CPUs can serve are
//     refused at once with ServiceUnavailable instead of all slowing down together: over
//     HTTP/1.1 fasthttp runs one handler per connection, up to Options.MaxConns, but over
//     HTTP/2 each connection may carry 256 streams at once;
//   - connections are capped in total (Options.MaxConns) and per client address
//     (Options.MaxConnsPerIP), so that one address cannot take every connection;
//   - a request's line and headers must arrive within Options.HeaderTimeout, its body within
//     Options.ReadTimeout, and an idle connection closes after Options.IdleTimeout.

const (
	// defaultMaxConnsPerIP is the per-address connection cap unless Options say otherwise.
	defaultMaxConnsPerIP = 512
	// defaultMaxConcurrentRequests is the cap on requests executing at once unless Options say
	// otherwise.
	defaultMaxConcurrentRequests = 1024
	// defaultHeaderTimeout is how long a request's line and headers may take to arrive.
	defaultHeaderTimeout = 10 * time.Second
	// readChunk is the most a body read takes from the in-flight budget at a time, before the
	// bytes arrive; what a read does not fill is given back at once.
	readChunk = 64 << 10
	// firstBodyBuf is the capacity a body buffer starts from when none is pooled; it doubles as
	// it fills, up to the declared length or the operation's limit.
	firstBodyBuf = 16 << 10
)

// Bounds of the default in-flight budget: an eighth of the machine's memory, no less than
// room for a few of the largest requests, no more than 4 GiB.
const (
	minDefaultInflight = 4 * dataBodyLimit
	maxDefaultInflight = 4 << 30
)

var (
	// errOverBudget refuses a request whose body would take the in-flight budget over its cap.
	errOverBudget = errors.New("the server is holding as many request bytes as it may; retry later")
	// errBusy refuses a request that finds as many requests executing as the server runs.
	errBusy = errors.New("the server is executing as many requests as it may; retry later")
	// errBodyUnreadable is a body that ended before its declared length or did not arrive in
	// time: its read error may name addresses, which a client is not told.
	errBodyUnreadable = errors.New("the request body ended early or did not arrive in time")
)

// DefaultMaxInflightBytes returns the in-flight budget used when Options.MaxInflightBytes is
// 0: an eighth of the physical memory (MemTotal in /proc/meminfo), within 64 MiB and 4 GiB;
// 1 GiB where the memory cannot be read.
func DefaultMaxInflightBytes() int64 {
	total := memTotal()
	if total <= 0 {
		return 1 << 30
	}
	return min(max(total/8, minDefaultInflight), maxDefaultInflight)
}

// memTotal returns the machine's physical memory in bytes from /proc/meminfo; 0 if unknown.
func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}

// byteBudget counts the request body bytes the server holds, against a cap. Every body
// reader takes from it and gives back; its counters are only changed atomically.
type byteBudget struct {
	max     int64
	used    atomic.Int64
	reading atomic.Int64 // bodies being read: readBody calls not yet returned
}

// take reserves n bytes; false, reserving nothing, if that would exceed the cap.
func (b *byteBudget) take(n int64) bool {
	if b.used.Add(n) > b.max {
		b.used.Add(-n)
		return false
	}
	return true
}

// give returns n bytes reserved by take.
func (b *byteBudget) give(n int64) { b.used.Add(-n) }

// readBody reads a request body of at most limit bytes from r; size is its declared length,
// -1 if unknown. The buffer grows only as bytes arrive (doubling when full, never past the
// declared length or limit+1), and each read first takes from the budget the room it reads
// into, giving back what it did not fill: so the budget holds len(body) bytes when readBody
// returns, error or not, until the caller calls release(body). A declared length over limit
// is fasthttp.ErrBodyTooLarge before anything is read, an undeclared one once limit+1 bytes
// arrived; a spent budget is errOverBudget; a body that ends early or whose read fails is
// errBodyUnreadable.
func (b *byteBudget) readBody(r io.Reader, size int64, limit int) ([]byte, error) {
	if size > int64(limit) {
		return nil, fasthttp.ErrBodyTooLarge
	}
	want := int64(limit) + 1 // read one byte past the limit to tell a body over it
	if size >= 0 {
		want = size
	}
	if want == 0 {
		return nil, nil
	}
	b.reading.Add(1)
	defer b.reading.Add(-1)
	class := bodyClass(want)
	buf := (*reqBodyBufs[class].Get().(*[]byte))[:0]
	for int64(len(buf)) < want {
		if len(buf) == cap(buf) {
			// The smaller buffer is dropped, not pooled: the pools keep buffers of whole
			// bodies, so that the next body of this size needs no growing. Growing stops at
			// the size of the body's class, not at want, so that the buffer goes back to the
			// class the next body of this length takes from.
			nb := make([]byte, len(buf), min(max(2*cap(buf), firstBodyBuf), bodyClassSize(class)))
			copy(nb, buf)
			buf = nb
		}
		n := min(cap(buf)-len(buf), readChunk, int(want)-len(buf))
		if !b.take(int64(n)) {
			return buf, errOverBudget
		}
		k, err := r.Read(buf[len(buf) : len(buf)+n])
		b.give(int64(n - k))
		buf = buf[:len(buf)+k]
		if errors.Is(err, io.EOF) {
			if size >= 0 && int64(len(buf)) < size {
				return buf, errBodyUnreadable
			}
			break
		}
		if err != nil {
			return buf, errBodyUnreadable
		}
	}
	if len(buf) > limit {
		return buf, fasthttp.ErrBodyTooLarge
	}
	return buf, nil
}

// release gives back the budget body holds, and body to the pool unless kept is set: a
// streamed response (a subscription) may still be reading from its request's body.
func (b *byteBudget) release(body []byte, kept bool) {
	b.give(int64(len(body)))
	if !kept && cap(body) >= firstBodyBuf && cap(body) <= maxPooledBody {
		k := bodyClass(int64(cap(body)))
		if bodyClassSize(k) > cap(body) {
			k-- // a buffer holds the bodies of the largest class it covers
		}
		body = body[:0]
		reqBodyBufs[k].Put(&body)
	}
}

// reqBodyBufs pools request body buffers apart from the answers' (bodyBufs), so that a body
// finds a buffer grown to a body's size rather than an answer's: with one pool for both,
// BenchmarkAPIPutRecords and BenchmarkNativePut allocated each body afresh (0.8 MB/op
// instead of 36 kB/op for 500 records of 1 KiB). The pool of class k holds buffers of at
// least bodyClassSize(k) bytes, and a body takes from the class of its declared length
// (bodyClass), so that a small body never holds a buffer grown for a large one: the in-flight
// budget counts the bytes read, not the buffer they are read into, and with a single pool
// for every size, TestServerOverload's 100-byte bodies held buffers grown for its 1 MiB
// records: body buffers then took 152 MB of the heap under its 64 MiB budget, and 38 MB
// with the classes (docs/OPERATIONS.md, Overload).
var reqBodyBufs [bodyClasses]sync.Pool

func init() {
	for k := range reqBodyBufs {
		reqBodyBufs[k].New = func() any { return new([]byte) }
	}
}

// bodyClasses is the number of body buffer classes: firstBodyBuf doubled up to 16 MiB, and
// the largest body buffer.
const bodyClasses = 12

// bodyClassSize returns the size of class k's buffers: firstBodyBuf << k, and
// maxPooledBody for the last class.
func bodyClassSize(k int) int {
	if k == bodyClasses-1 {
		return maxPooledBody
	}
	return firstBodyBuf << k
}

// bodyClass returns the smallest class whose buffers hold n bytes; n is at most
// maxPooledBody (readBody's want is at most an operation's limit plus one).
func bodyClass(n int64) int {
	for k := range bodyClasses - 1 {
		if n <= int64(bodyClassSize(k)) {
			return k
		}
	}
	return bodyClasses - 1
}

// maxPooledBody is the largest body buffer pooled: the largest body any operation accepts.
const maxPooledBody = dataBodyLimit + readChunk

// serveHTTP1 reads the body of an HTTP/1.1 request as it arrives (fasthttp streams request
// bodies for this server: its own reader would allocate the declared length before reading),
// within the in-flight budget, and then serves the request with handle.
func (s *Server) serveHTTP1(ctx *fasthttp.RequestCtx) {
	if !ctx.Request.IsBodyStream() {
		s.handle(ctx)
		return
	}
	h := &ctx.Request.Header
	body, err := s.inflight.readBody(ctx.Request.BodyStream(), int64(h.ContentLength()), bodyLimit(h))
	defer func() { s.inflight.release(body, ctx.Response.IsBodyStream()) }()
	if err != nil {
		ctx.SetConnectionClose() // the rest of the body is not read
		s.httpError(ctx, err)
		return
	}
	ctx.Request.SetBodyRaw(body)
	s.handle(ctx)
}

// execCap counts the requests being executed against a cap; its counter is only changed
// atomically, by take and give.
type execCap struct {
	max int64 // ≤ 0: no cap
	n   atomic.Int64
}

// take counts one more request; false, counting nothing, if max are executing already.
func (c *execCap) take() bool {
	if c.max <= 0 {
		return true
	}
	if c.n.Add(1) > c.max {
		c.n.Add(-1)
		return false
	}
	return true
}

// give uncounts a request take counted.
func (c *execCap) give() {
	if c.max > 0 {
		c.n.Add(-1)
	}
}

// uncapped reports whether a request is left out of the cap on executing requests: a
// subscription, whose answer is a stream lasting minutes, and the probes (/healthz,
// /metrics), which must answer while the server is busiest.
func uncapped(ctx *fasthttp.RequestCtx) bool {
	switch path := ctx.Path(); {
	case string(path) == "/healthz" || string(path) == "/metrics":
		return ctx.IsGet()
	case isNativePath(path):
		return isNativeSubscribe(ctx.Request.Header.RequestURI())
	}
	return string(ctx.Request.Header.Peek("X-Amz-Target")) == targetPrefix+"SubscribeToShard"
}

// refuseBusy answers a request refused by the cap on executing requests: ServiceUnavailable,
// in the shape of the API it was addressed to. The connection stays open: the body was read.
func (s *Server) refuseBusy(ctx *fasthttp.RequestCtx) {
	if s.busyWarn.due() {
		s.log.Warn("refusing requests: the requests executing reached their cap", "max_concurrent_requests", s.executing.max)
	}
	if isNativePath(ctx.Path()) {
		s.nativeFail(ctx, wire.ServiceUnavailable, errBusy.Error())
		return
	}
	s.fail(ctx, apiError{code: wire.ServiceUnavailable, msg: errBusy.Error()})
}

// connsPerIP counts the open connections of each client address against a cap.
type connsPerIP struct {
	max int // 0: no cap

	mu sync.Mutex // guards n
	n  map[netip.Addr]int
}

// clientAddr returns the IP address of c's peer; false if it has none (not TCP).
func clientAddr(c net.Conn) (netip.Addr, bool) {
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(ta.IP)
	return a.Unmap(), ok
}

// acquire counts c against its address; false, counting nothing, if the address has max
// connections open already.
func (p *connsPerIP) acquire(c net.Conn) bool {
	a, ok := clientAddr(c)
	if p.max <= 0 || !ok {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[a] >= p.max {
		return false
	}
	p.n[a]++
	return true
}

// release uncounts c, which acquire counted.
func (p *connsPerIP) release(c net.Conn) {
	a, ok := clientAddr(c)
	if p.max <= 0 || !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[a] <= 1 {
		delete(p.n, a)
		return
	}
	p.n[a]--
}

// everyMinute lets a warning repeated under load through at most once a minute.
type everyMinute struct {
	last atomic.Int64 // unix nanoseconds of the last warning let through
}

// due reports whether a minute passed since the last warning let through, and if so
// records this one.
func (e *everyMinute) due() bool {
	now := time.Now().UnixNano()
	last := e.last.Load()
	return now-last >= int64(time.Minute) && e.last.CompareAndSwap(last, now)
}

func (s *Server) warnOverBudget() {
	if s.budgetWarn.due() {
		s.log.Warn("refusing requests: the request bytes in flight reached their cap", "max_inflight_bytes", s.inflight.max)
	}
}
