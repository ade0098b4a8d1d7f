package server

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/iam"
	"github.com/sluice-streams/sluice/internal/sigv4"
	"github.com/sluice-streams/sluice/server/wire"
)

// Authentication. AWS clients sign every request with Signature Version 4, in a header
//
//	Authorization: AWS4-HMAC-SHA256 Credential=<access key>/<yyyymmdd>/<region>/kinesis/aws4_request,
//	               SignedHeaders=<names;…>, Signature=<64 hex digits>
//
// or in the query (X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-SignedHeaders,
// X-Amz-Signature and X-Amz-Expires). The Authenticator of a Server decides who sent a
// request: SigV4Verifier (sigv4.go) checks the signature against the secrets of an IAM file;
// SigV4Parser, the default without one, parses the header and checks nothing.
//
// Every refusal is a 400 with the Kinesis name AWS answers with, as the JSON protocol of
// Kinesis (and DynamoDB) answer them: MissingAuthenticationTokenException,
// IncompleteSignatureException, InvalidSignatureException, UnrecognizedClientException.

// Principal is who sent a request.
type Principal struct {
	AccessKey string // "" for an unsigned request
	Account   string
	Region    string // the credential scope's region
	// User names the IAM file's user of the access key; "" without an IAM file.
	User string
	// Policies are the user's IAM policy documents as the IAM file holds them, and Identity
	// the same parsed (User.Parsed), what authorisation evaluates. Both belong to the loaded
	// IAM file: read them, never modify them.
	Policies []json.RawMessage
	Identity []*iam.Policy
	// ARN is the user's IAM ARN (User.ARN); "" without an IAM file.
	ARN string
}

// Authenticator decides who a request comes from.
type Authenticator interface {
	// Authenticate returns the principal of a request, or an apiError to answer with. r is
	// the whole request: method, path and query as sent, headers, body. Over HTTP/2 its
	// Host header is the request's :authority. Authenticate must not keep r or modify it.
	Authenticate(r *fasthttp.Request) (Principal, error)
}

// Credential is a parsed SigV4 signature, from the Authorization header or the query.
type Credential struct {
	AccessKey, Date, Region, Service string
	SignedHeaders                    []string
	Signature                        string
	// AmzDate is the request's time in sigv4.TimeFormat: X-Amz-Date, from the header (or
	// the Date header, converted) or the query; "" if the request carries none.
	AmzDate string
	// InQuery says the signature came in the query; Expires is X-Amz-Expires, in seconds.
	InQuery bool
	Expires int64
}

// authError is an authentication failure, shaped as AWS reports it.
func authError(code wire.Code, msg string) apiError { return apiError{code: code, msg: msg} }

// maxExpires is the largest X-Amz-Expires AWS accepts: seven days.
const maxExpires = 7 * 24 * 3600

var errMissingToken = authError(wire.MissingAuthenticationToken, "Missing Authentication Token")

// parseRequestAuth finds and parses the signature of r. found is false for an unsigned
// request.
func parseRequestAuth(r *fasthttp.Request) (c Credential, found bool, err error) {
	h := r.Header.Peek("Authorization")
	q := r.URI().QueryString()
	inQuery := len(q) > 0 && strings.Contains(string(q), "X-Amz-Algorithm=")
	switch {
	case len(h) > 0 && inQuery:
		return Credential{}, true, authError(wire.InvalidSignature, "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.")
	case len(h) > 0:
		c, err = parseAuthorization(string(h))
		if err != nil {
			return Credential{}, true, err
		}
		if d := r.Header.Peek("X-Amz-Date"); len(d) > 0 {
			c.AmzDate = string(d)
		} else if d := r.Header.Peek("Date"); len(d) > 0 {
			if t, err := http.ParseTime(string(d)); err == nil {
				c.AmzDate = t.UTC().Format(sigv4.TimeFormat)
			} else {
				c.AmzDate = string(d) // refused as a malformed date by the verifier
			}
		}
		return c, true, nil
	case inQuery:
		c, err = parseQueryAuth(string(q))
		return c, true, err
	}
	return Credential{}, false, nil
}

// parseAuthorization parses a SigV4 Authorization header value.
func parseAuthorization(h string) (Credential, error) {
	algo, rest, _ := strings.Cut(h, " ")
	if algo != sigv4.Algorithm {
		return Credential{}, authError(wire.IncompleteSignature, "Authorization header requires the "+sigv4.Algorithm+" algorithm. Authorization="+h)
	}
	var cred, signed, sig string
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return Credential{}, authError(wire.IncompleteSignature, "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters of the form key=value. Authorization="+h)
		}
		switch k {
		case "Credential":
			cred = v
		case "SignedHeaders":
			signed = v
		case "Signature":
			sig = v
		}
	}
	var msg string
	for _, p := range [...]struct{ name, v string }{{"Credential", cred}, {"Signature", sig}, {"SignedHeaders", signed}} {
		if p.v == "" {
			msg += "Authorization header requires '" + p.name + "' parameter. "
		}
	}
	if msg != "" {
		return Credential{}, authError(wire.IncompleteSignature, msg+"Authorization="+h)
	}
	return parseSignature(cred, signed, sig)
}

// parseSignature parses the credential, the signed headers and the signature of a SigV4
// signature, wherever it came from.
func parseSignature(cred, signed, sig string) (Credential, error) {
	var c Credential
	var f [5]string
	rest, n := cred, 0
	for ; n < len(f) && rest != ""; n++ {
		f[n], rest, _ = strings.Cut(rest, "/")
	}
	if n != 5 || rest != "" || strings.HasSuffix(cred, "/") || f[0] == "" || len(f[1]) != 8 || f[2] == "" || f[4] != sigv4.Terminator {
		return Credential{}, authError(wire.IncompleteSignature, "Credential must have the form <access key>/<date>/<region>/<service>/aws4_request, got "+cred)
	}
	c.AccessKey, c.Date, c.Region, c.Service = f[0], f[1], f[2], f[3]
	if len(sig) != 64 || strings.Trim(sig, "0123456789abcdef") != "" {
		return Credential{}, authError(wire.IncompleteSignature, "Signature must be 64 lower-case hex digits")
	}
	c.Signature = sig
	c.SignedHeaders = strings.Split(signed, ";")
	for _, name := range c.SignedHeaders {
		if name == "" || strings.ToLower(name) != name {
			return Credential{}, authError(wire.IncompleteSignature, "SignedHeaders must be lower-case header names separated by ';', got "+signed)
		}
	}
	if c.Service != "kinesis" {
		return Credential{}, authError(wire.InvalidSignature, "Credential should be scoped to correct service: 'kinesis'. ")
	}
	return c, nil
}

// queryAuthParams are the query parameters of a signature in the query, X-Amz-Expires aside.
var queryAuthParams = [...]string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders", "X-Amz-Date"}

// parseQueryAuth parses a signature carried in the raw query q.
func parseQueryAuth(q string) (Credential, error) {
	vals, err := url.ParseQuery(q)
	if err != nil {
		return Credential{}, authError(wire.IncompleteSignature, "The query string is malformed. Re-examine the query-string parameters.")
	}
	var msg string
	for _, p := range queryAuthParams {
		if vals.Get(p) == "" {
			msg += "AWS query-string parameters must include '" + p + "'. "
		}
	}
	if msg != "" {
		return Credential{}, authError(wire.IncompleteSignature, msg+"Re-examine the query-string parameters.")
	}
	if a := vals.Get("X-Amz-Algorithm"); a != sigv4.Algorithm {
		return Credential{}, authError(wire.IncompleteSignature, "X-Amz-Algorithm only supports '"+sigv4.Algorithm+"', not '"+a+"'. Re-examine the query-string parameters.")
	}
	c, err := parseSignature(vals.Get("X-Amz-Credential"), vals.Get("X-Amz-SignedHeaders"), vals.Get("X-Amz-Signature"))
	if err != nil {
		return Credential{}, err
	}
	c.AmzDate, c.InQuery = vals.Get("X-Amz-Date"), true
	if e := vals.Get("X-Amz-Expires"); e != "" {
		n, err := strconv.ParseInt(e, 10, 64)
		if err != nil || n < 0 || n > maxExpires {
			return Credential{}, authError(wire.IncompleteSignature, "X-Amz-Expires must be a whole number of seconds from 0 to 604800, got '"+e+"'. Re-examine the query-string parameters.")
		}
		c.Expires = n
	}
	return c, nil
}

// SigV4Parser accepts unsigned requests and well-formed SigV4 signatures without verifying
// them, mapping access keys to accounts: through Accounts when the key is listed there, else
// to Default. A request whose account is not Default is refused: one server holds one
// account's streams. It is what a server runs without an IAM file, on a trusted network.
type SigV4Parser struct {
	Default  string            // the server's account
	Accounts map[string]string // access key → account
}

// Authenticate implements Authenticator.
func (p SigV4Parser) Authenticate(r *fasthttp.Request) (Principal, error) {
	c, found, err := parseRequestAuth(r)
	if err != nil {
		return Principal{}, err
	}
	if !found {
		return Principal{Account: p.Default}, nil
	}
	pr := Principal{AccessKey: c.AccessKey, Account: p.Default, Region: c.Region}
	if a, ok := p.Accounts[c.AccessKey]; ok {
		pr.Account = a
	}
	if pr.Account != p.Default {
		return Principal{}, otherAccount(c.AccessKey, pr.Account, p.Default)
	}
	return pr, nil
}

func otherAccount(key, account, server string) apiError {
	return authError(wire.AccessDenied, "User with access key "+key+" (account "+account+") is not authorized to access streams of account "+server)
}

// requestTime parses a request's X-Amz-Date; r is the request, for the message.
func requestTime(c *Credential, r *fasthttp.Request) (time.Time, error) {
	if c.AmzDate == "" {
		return time.Time{}, authError(wire.IncompleteSignature, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization="+string(r.Header.Peek("Authorization")))
	}
	t, err := time.Parse(sigv4.TimeFormat, c.AmzDate)
	if err != nil {
		return time.Time{}, authError(wire.IncompleteSignature, "Date must be in ISO-8601 'basic format'. Got '"+c.AmzDate+"'. See http://en.wikipedia.org/wiki/ISO_8601")
	}
	return t, nil
}
