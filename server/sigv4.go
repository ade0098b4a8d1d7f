package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/internal/sigv4"
	"github.com/sluice-streams/sluice/server/wire"
)

// SigV4Verifier authenticates requests by their SigV4 signature, as AWS does: the access key
// must be a user's of the IAM file, the signature must be the one its secret gives the
// request (internal/sigv4 computes it), and the request's time must lie within
// MaxClockSkew of the server's clock (or, signed in the query, within X-Amz-Expires after
// it). The payload hash is the X-Amz-Content-Sha256 header when the request has one
// (UNSIGNED-PAYLOAD leaves the body unsigned; a hash is checked against the body once the
// signature matches), else the SHA-256 of the body: one pass over the body either way.
//
// Safe for concurrent use; SetUsers swaps the users atomically, so a reload never blocks a
// request.
type SigV4Verifier struct {
	account, region string
	// Now is the server's clock; nil means time.Now. Set it before the first request.
	Now   func() time.Time
	users atomic.Pointer[userSet]
}

// MaxClockSkew is how far a request's time may be from the server's clock.
const MaxClockSkew = 5 * time.Minute

// maxCachedKeys bounds the signing keys a user set keeps: one per access key, date, region
// and service, so a few per active key and day.
const maxCachedKeys = 4096

// userSet is one loaded IAM file: immutable but for its cache of signing keys.
type userSet struct {
	byKey map[string]*User

	mu   sync.Mutex           // guards keys
	keys map[string]sigv4.Key // access key + "/" + scope → signing key, at most maxCachedKeys
}

// NewSigV4Verifier returns a verifier of the signatures of users (ParseIAM) for a server of
// account in region. Credentials scoped to another region are refused; users of another
// account are authenticated, and a server with a verifier authorises every request by the
// users' policies and the resources' (authz.go), which decide what another account may do.
func NewSigV4Verifier(account, region string, users []User) *SigV4Verifier {
	v := &SigV4Verifier{account: account, region: region}
	v.SetUsers(users)
	return v
}

// SetUsers replaces the users; requests already being verified finish with the old ones.
func (v *SigV4Verifier) SetUsers(users []User) {
	set := &userSet{byKey: make(map[string]*User, len(users)), keys: map[string]sigv4.Key{}}
	users = slices.Clone(users) // arn is filled in here, on the verifier's own copy
	for i := range users {
		users[i].arn = users[i].ARN()
		set.byKey[users[i].AccessKeyID] = &users[i]
	}
	v.users.Store(set)
}

// signingKey returns the signing key of u for scope, derived once and cached. kb is scratch
// space holding the cache key.
func (s *userSet) signingKey(u *User, c *Credential, kb []byte) sigv4.Key {
	s.mu.Lock()
	k, ok := s.keys[string(kb)]
	s.mu.Unlock()
	if ok {
		return k
	}
	k = sigv4.SigningKey(u.SecretAccessKey, c.Date, c.Region, c.Service)
	s.mu.Lock()
	if len(s.keys) >= maxCachedKeys {
		clear(s.keys)
	}
	s.keys[string(kb)] = k
	s.mu.Unlock()
	return k
}

// verifyBuf is the scratch space of one verification, pooled.
type verifyBuf struct {
	canon, sts, key []byte
}

var verifyBufs = sync.Pool{New: func() any {
	return &verifyBuf{canon: make([]byte, 0, 512), sts: make([]byte, 0, 256), key: make([]byte, 0, 128)}
}}

// fastHeaders gives a fasthttp request's headers to the canonical request.
type fastHeaders fasthttp.RequestHeader

func (h *fastHeaders) AppendValues(dst [][]byte, name string) [][]byte {
	if name == ":authority" {
		// HTTP/2's pseudo-header, which signers over HTTP/2 (the AWS SDK for JavaScript v3)
		// sign in place of host: the HTTP/2 front gives its value as the request's Host.
		return append(dst, (*fasthttp.RequestHeader)(h).Host())
	}
	return append(dst, (*fasthttp.RequestHeader)(h).PeekAll(name)...)
}

// The refusals of a verifier.
var (
	errUnrecognized = authError(wire.UnrecognizedClient, "The security token included in the request is invalid.")
	errSignature    = authError(wire.InvalidSignature, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	errHostUnsigned = authError(wire.IncompleteSignature, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	errContentHash  = authError(wire.InvalidSignature, "The provided 'x-amz-content-sha256' header does not match what was computed.")
	errBadHash      = authError(wire.IncompleteSignature, "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or the hex SHA-256 of the body.")
)

// Authenticate implements Authenticator.
func (v *SigV4Verifier) Authenticate(r *fasthttp.Request) (Principal, error) {
	c, found, err := parseRequestAuth(r)
	if err != nil {
		return Principal{}, err
	}
	if !found {
		return Principal{}, errMissingToken
	}
	// A session token belongs to temporary credentials, which sluice never issues: AWS
	// refuses a token it did not issue, whoever signed the request.
	if len(r.Header.Peek("X-Amz-Security-Token")) > 0 || c.InQuery && r.URI().QueryArgs().Has("X-Amz-Security-Token") {
		return Principal{}, errUnrecognized
	}
	set := v.users.Load()
	u := set.byKey[c.AccessKey]
	if u == nil {
		return Principal{}, errUnrecognized
	}
	if v.region != "" && c.Region != v.region {
		return Principal{}, authError(wire.InvalidSignature, "Credential should be scoped to a valid region, not '"+c.Region+"'. ")
	}
	if !slices.Contains(c.SignedHeaders, "host") && !slices.Contains(c.SignedHeaders, ":authority") {
		return Principal{}, errHostUnsigned
	}
	if err := v.checkTime(&c, r); err != nil {
		return Principal{}, err
	}

	body := r.Body()
	var payload [2 * sha256.Size]byte
	var hash []byte
	checkBody := false
	switch h := r.Header.Peek("X-Amz-Content-Sha256"); {
	case len(h) == 0:
		payload = sigv4.PayloadHash(body)
		hash = payload[:]
	case string(h) == sigv4.UnsignedPayload:
		hash = h
	case len(h) == 2*sha256.Size && isLowerHex(h):
		hash, checkBody = h, true
	default:
		return Principal{}, errBadHash
	}

	buf := verifyBufs.Get().(*verifyBuf)
	defer verifyBufs.Put(buf)
	req := sigv4.Request{Method: r.Header.Method(), Path: r.URI().PathOriginal(), Query: r.URI().QueryString(),
		Headers: (*fastHeaders)(&r.Header), SignedHeaders: c.SignedHeaders, PayloadHash: hash}
	if c.InQuery {
		req.OmitQuery = "X-Amz-Signature"
	}
	buf.canon = sigv4.AppendCanonicalRequest(buf.canon[:0], &req)
	buf.key = append(append(buf.key[:0], c.AccessKey...), '/')
	buf.key = sigv4.AppendScope(buf.key, c.Date, c.Region, c.Service)
	scope := buf.key[len(c.AccessKey)+1:]
	buf.sts = sigv4.AppendStringToSign(buf.sts[:0], c.AmzDate, scope, buf.canon)
	sig := sigv4.Signature(set.signingKey(u, &c, buf.key), buf.sts)
	if !hmac.Equal(sig[:], []byte(c.Signature)) {
		return Principal{}, errSignature
	}
	if checkBody {
		payload = sigv4.PayloadHash(body)
		if !hmac.Equal(payload[:], hash) {
			return Principal{}, errContentHash
		}
	}
	// A user of another account is not refused here: a resource policy may grant it access,
	// which authorisation (authz.go) decides.
	return Principal{AccessKey: c.AccessKey, Account: u.Account, Region: c.Region, User: u.Name,
		Policies: u.Policies, Identity: u.Parsed, ARN: u.arn}, nil
}

// checkTime refuses a request whose time is not in its credential's date, or too far from
// the server's clock: more than MaxClockSkew either way, or, signed in the query with
// X-Amz-Expires, past that many seconds after it.
func (v *SigV4Verifier) checkTime(c *Credential, r *fasthttp.Request) error {
	t, err := requestTime(c, r)
	if err != nil {
		return err
	}
	if d := c.AmzDate[:8]; d != c.Date {
		return authError(wire.InvalidSignature, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '"+c.Date+"' != '"+d+"', from '"+c.AmzDate+"'.")
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	n := now().UTC().Truncate(time.Second)
	f := func(t time.Time) string { return t.Format(sigv4.TimeFormat) }
	switch {
	case c.InQuery && c.Expires > 0 && n.Sub(t) > time.Duration(c.Expires)*time.Second:
		e := time.Duration(c.Expires) * time.Second
		return authError(wire.InvalidSignature, "Signature expired: "+c.AmzDate+" is now earlier than "+f(n.Add(-e))+" ("+f(n)+" - "+strconv.FormatInt(c.Expires, 10)+" sec.)")
	case (!c.InQuery || c.Expires == 0) && n.Sub(t) > MaxClockSkew:
		return authError(wire.InvalidSignature, "Signature expired: "+c.AmzDate+" is now earlier than "+f(n.Add(-MaxClockSkew))+" ("+f(n)+" - 5 min.)")
	case t.Sub(n) > MaxClockSkew:
		return authError(wire.InvalidSignature, "Signature not yet current: "+c.AmzDate+" is still later than "+f(n.Add(MaxClockSkew))+" ("+f(n)+" + 5 min.)")
	}
	return nil
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
