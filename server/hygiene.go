package server

import (
	"bytes"
	"errors"
	"strconv"

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
		if bytes.HasPrefix(path, []byte(wire.PathPut)) {
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

// httpError answers a request fasthttp could not read (too large, malformed, timed out) in
// the shape of the API it was addressed to.
func (s *Server) httpError(ctx *fasthttp.RequestCtx, err error) {
	var tooLarge bool
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		tooLarge = true
	}
	if isNativePath(ctx.Request.Header.RequestURI()) {
		code, msg := wire.Serialization, "malformed request: "+err.Error()
		if tooLarge {
			code, msg = wire.Validation, "request body exceeds the limit of "+strconv.Itoa(bodyLimit(&ctx.Request.Header))+" bytes for "+string(ctx.Request.Header.RequestURI())
		}
		s.nativeFail(ctx, code, msg)
		return
	}
	ae := apiError{code: wire.Serialization, msg: "malformed request: " + err.Error()}
	if tooLarge {
		ae = apiError{code: wire.Validation, msg: "Request body exceeds the limit of " + strconv.Itoa(bodyLimit(&ctx.Request.Header)) + " bytes for this operation"}
	}
	ctx.Response.Header.Set("x-amzn-RequestId", newRequestID())
	s.fail(ctx, ae)
}
