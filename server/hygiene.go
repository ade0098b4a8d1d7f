package server

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"weak"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/server/wire"
)

// Request hygiene: each operation may send a body no larger than it can need, checked from
// the headers before the body is read, so that no request makes the server buffer more.
const (
	// dataBodyLimit is for PutRecord and PutRecords and the native put: up to 10 MiB of
	// data, which base64 makes about 13.4 MiB of JSON.
	dataBodyLimit = maxBodySize
	// controlBodyLimit is for every other operation: the largest legitimate bodies are
	// resource policies (20 KiB) and tag sets (50 × 384 bytes).
	controlBodyLimit = 1 << 20
	// nativeSmallLimit is for the native get and subscribe requests, a few dozen bytes.
	nativeSmallLimit = 64 << 10
)

// bodyLimit returns the largest body the request whose headers are h may send.
func bodyLimit(h *fasthttp.RequestHeader) int {
	if path := h.RequestURI(); isNativePath(path) {
		if bytes.HasPrefix(path, []byte(wire.PathPut)) || isPeerPath(path) {
			return dataBodyLimit
		}
		return nativeSmallLimit
	}
	switch string(h.Peek("X-Amz-Target")) {
	case targetPrefix + "PutRecords", targetPrefix + "PutRecord":
		return dataBodyLimit
	}
	return controlBodyLimit
}

// chunkedHeaders keeps a copy of the headers of a request whose body is chunked while the
// body is read: when reading a chunked body fails (too large, malformed), fasthttp resets the
// request, headers included, and httpError needs them to answer in the operation's shape and
// name its limit. A body with a Content-Length is refused from its headers, which stay.
//
// The keys are weak pointers to the header of a pooled fasthttp.RequestCtx, so that an entry
// never keeps a context alive; the entry of a request is taken by handle or httpError, or
// dropped when its context reads its next headers. One left behind by a connection that died
// mid-body stays until then, or until the map reaches chunkedHeadersMax entries and is cleared.
type chunkedHeaders struct {
	n  atomic.Int64 // len(m), read without mu so that requests skip the map when it is empty
	mu sync.Mutex   // guards m
	m  map[weak.Pointer[fasthttp.RequestHeader]]*fasthttp.RequestHeader
}

// chunkedHeadersMax bounds chunkedHeaders; requests in flight need one entry each at most.
const chunkedHeadersMax = 4096

// save is called with the headers of each request, before its body is read.
func (c *chunkedHeaders) save(h *fasthttp.RequestHeader) {
	if h.ContentLength() != -1 { // not chunked
		c.take(h)
		return
	}
	cp := new(fasthttp.RequestHeader)
	h.CopyTo(cp)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= chunkedHeadersMax {
		c.m = map[weak.Pointer[fasthttp.RequestHeader]]*fasthttp.RequestHeader{}
	}
	c.m[weak.Make(h)] = cp
	c.n.Store(int64(len(c.m)))
}

// take removes and returns the copy saved for h, nil if there is none.
func (c *chunkedHeaders) take(h *fasthttp.RequestHeader) *fasthttp.RequestHeader {
	if c.n.Load() == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := weak.Make(h)
	cp := c.m[k]
	delete(c.m, k)
	c.n.Store(int64(len(c.m)))
	return cp
}

// unquoted is the message of an error fasthttp gave for a request it could not read, without
// the request bytes fasthttp quotes in it: its header errors end with ": buffer size=N,
// contents: "…"" (the whole request as read), and some quote the offending line before
// that. Those bytes may hold a header that a proxy added on the way and that the client
// was never meant to see.
func unquoted(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, ": buffer size="); i >= 0 {
		msg = msg[:i]
	}
	if i := strings.IndexByte(msg, '"'); i >= 0 {
		msg = strings.TrimRight(msg[:i], ": ")
	}
	return msg
}

// httpError answers a request fasthttp could not read (too large, malformed, timed out) in
// the shape of the API it was addressed to.
func (s *Server) httpError(ctx *fasthttp.RequestCtx, err error) {
	if h := s.chunked.take(&ctx.Request.Header); h != nil {
		h.CopyTo(&ctx.Request.Header) // reset by fasthttp after a failed chunked read
	}
	var tooLarge bool
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		tooLarge = true
	}
	overBudget := errors.Is(err, errOverBudget) // limits.go
	if overBudget {
		s.warnOverBudget()
	}
	if small := new(fasthttp.ErrSmallBuffer); errors.As(err, &small) {
		// fasthttp's message quotes the headers and names its settings
		err = errors.New("the request line and headers exceed " + strconv.Itoa(s.http.ReadBufferSize) + " bytes")
	}
	if isNativePath(ctx.Request.Header.RequestURI()) {
		code, msg := wire.Serialization, "malformed request: "+unquoted(err)
		switch {
		case tooLarge:
			code, msg = wire.Validation, "request body exceeds the limit of "+strconv.Itoa(bodyLimit(&ctx.Request.Header))+" bytes for "+string(ctx.Request.Header.RequestURI())
		case overBudget:
			code, msg = wire.ServiceUnavailable, err.Error()
		}
		s.nativeFail(ctx, code, msg)
		return
	}
	ae := apiError{code: wire.Serialization, msg: "malformed request: " + unquoted(err)}
	switch {
	case tooLarge:
		ae = apiError{code: wire.Validation, msg: "Request body exceeds the limit of " + strconv.Itoa(bodyLimit(&ctx.Request.Header)) + " bytes for this operation"}
	case overBudget:
		ae = apiError{code: wire.ServiceUnavailable, msg: err.Error()}
	}
	ctx.Response.Header.Set("x-amzn-RequestId", newRequestID())
	s.fail(ctx, ae)
}
