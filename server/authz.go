package server

import (
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/iam"
	"github.com/sluice-streams/sluice/server/wire"
)

// Authorisation. A server whose Authenticator is a SigV4Verifier (sluice serve --iam)
// authorises every request as AWS does: the operation's action and resource kind come from
// iam.Actions (iam.NativeActions for the native protocol); the handler names the resource
// once it has resolved it from the request (a stream's name or ARN, a consumer's ARN, a
// ResourceARN, or "*"), and calls authorize before it changes or reads anything. The
// principal's identity policies come parsed with the principal (User.Parsed), the
// resource's policy parsed from package account (Account.ResourcePolicy). A denied request
// is an AccessDeniedException whose message is iam.Decision.Message. Without a verifier
// nothing is authorised: every request of the server's account is allowed, as before.
//
// The context the condition keys read: aws:SourceIp is the connection's remote address (no
// proxy header is trusted), aws:SecureTransport whether the connection is TLS (HTTP/1.1 or
// HTTP/2), aws:CurrentTime and aws:EpochTime the server's clock at the check.

// opCall is what authorisation knows of one request. Calls are pooled: one lives from the
// routing of its request until the handler returns.
type opCall struct {
	action iam.ActionInfo
	on     bool      // authorisation is on: p holds the caller
	p      Principal // the caller, as its Authenticator found it
	ip     netip.Addr
	tls    bool
	// checked is set by authorize: handle refuses to answer an operation that returned
	// without checking (a handler that forgot is a bug, not an open door).
	checked bool
	arn     []byte // scratch for the resource's ARN
}

var calls = sync.Pool{New: func() any { return &opCall{arn: make([]byte, 0, 160)} }}

// h2TLSKey marks a request that came over HTTP/2 on a TLS connection (serveHTTP2): its
// RequestCtx has no connection of its own to tell.
const h2TLSKey = "sluice.h2tls"

// newCall returns a pooled call for a request whose action is action, from p.
func (s *Server) newCall(ctx *fasthttp.RequestCtx, action iam.ActionInfo, p Principal) *opCall {
	c := calls.Get().(*opCall)
	c.action, c.on, c.checked = action, s.authorizing, false
	if c.on {
		c.p = p
		if ip, ok := netip.AddrFromSlice(ctx.RemoteIP()); ok {
			c.ip = ip.Unmap()
		}
		c.tls = ctx.IsTLS() || ctx.UserValue(h2TLSKey) != nil
	}
	return c
}

func (c *opCall) release() {
	*c = opCall{arn: c.arn[:0]}
	calls.Put(c)
}

// account is the account an iterator of this call is issued to: the caller's, or "" (the
// engine's) without authorisation.
func (c *opCall) account() string {
	if !c.on {
		return ""
	}
	return c.p.Account
}

// authorize decides whether the caller may perform the call's action on resource, an ARN or
// "*": nil, or the AccessDeniedException to answer. resource is read during the call only.
func (s *Server) authorize(c *opCall, resource string) error {
	c.checked = true
	if !c.on {
		return nil
	}
	req := iam.Request{
		Principal:       iam.Principal{Account: c.p.Account, ARN: c.p.ARN, UserName: c.p.User},
		Action:          c.action.Action,
		Resource:        resource,
		SourceIP:        c.ip,
		SecureTransport: c.tls,
		Time:            time.Now(),
	}
	var held [1]*iam.Policy
	res := held[:0]
	if resource != "*" {
		p, err := s.account.ResourcePolicy(resource)
		if err != nil {
			return err
		}
		if p != nil {
			res = append(res, p)
		}
	}
	if d := iam.Decide(req, c.p.Identity, res); !d.Allowed() {
		return apiError{code: wire.AccessDenied, msg: d.Message(req)}
	}
	return nil
}

// authorizeStream authorises the call on the stream name of the server's account.
func (s *Server) authorizeStream(c *opCall, name string) error {
	if !c.on {
		c.checked = true
		return nil
	}
	c.arn = append(append(c.arn[:0], s.streamARNPrefix...), name...)
	return s.authorize(c, bytesString(c.arn))
}

// errUnchecked answers an operation whose handler returned without authorising it: a bug,
// logged as one.
var errUnchecked = apiError{code: wire.InternalFailure, msg: internalMessage,
	cause: errors.New("BUG: the operation returned without authorising the request")}
