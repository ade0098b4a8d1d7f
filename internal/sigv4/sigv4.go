// Package sigv4 computes AWS Signature Version 4 (AWS4-HMAC-SHA256) as AWS does for services
// other than S3: the canonical request, the string to sign, the derived signing key and the
// signature. The server verifies with it and the Go client signs with it, so both compute
// the same bytes from the same request. It imports the standard library only.
//
// It owns the arithmetic of a signature, not its policy: which headers must be signed, how
// far a request's time may stray, who owns an access key and what a refusal is called are
// the caller's. Functions are safe for concurrent use; a Signer is too.
//
// The canonical request, for a request whose signed headers are h1…hn:
//
//	METHOD \n
//	canonical URI: the path with its dot segments and empty segments removed, each byte
//	               outside A-Z a-z 0-9 - _ . ~ / percent-encoded (so a path sent encoded is
//	               encoded twice, as AWS does for services other than S3) \n
//	canonical query: name=value pairs, each decoded then encoded as above ('/' included),
//	                 sorted by name then value, joined with '&' \n
//	h1:values \n … hn:values \n   values trimmed, runs of spaces collapsed, repeats joined by ','
//	\n
//	h1;…;hn \n
//	payload hash: hex SHA-256 of the body, or UNSIGNED-PAYLOAD
//
// The string to sign is "AWS4-HMAC-SHA256\n<X-Amz-Date>\n<scope>\n<hex SHA-256 of the
// canonical request>", the scope "<yyyymmdd>/<region>/<service>/aws4_request", and the key
// HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request").
package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"slices"
	"strings"
	"sync"
)

const (
	// Algorithm names the signature in an Authorization header and X-Amz-Algorithm.
	Algorithm = "AWS4-HMAC-SHA256"
	// TimeFormat is X-Amz-Date's layout (ISO 8601 basic, UTC).
	TimeFormat = "20060102T150405Z"
	// DateFormat is the credential scope's date.
	DateFormat = "20060102"
	// Terminator ends a credential scope.
	Terminator = "aws4_request"
	// UnsignedPayload stands for the payload hash of a request whose body is not signed.
	UnsignedPayload = "UNSIGNED-PAYLOAD"
	// EmptyPayload is the hex SHA-256 of an empty body.
	EmptyPayload = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// Headers gives a request's header values to the canonical request.
type Headers interface {
	// AppendValues appends the values of the header named name (lower-case) to dst, in the
	// order they were received, and returns dst; nothing when the header is absent.
	AppendValues(dst [][]byte, name string) [][]byte
}

// Request is what a signature covers.
type Request struct {
	Method []byte
	Path   []byte // as sent: percent-encoded, without the query
	Query  []byte // as sent, without the '?'
	// OmitQuery names a query parameter the canonical query leaves out: X-Amz-Signature,
	// when the signature travels in the query.
	OmitQuery     string
	Headers       Headers
	SignedHeaders []string // lower-case names, in the order the signature lists them
	PayloadHash   []byte   // hex SHA-256 of the body, or UnsignedPayload
}

// PayloadHash returns the hex SHA-256 of body.
func PayloadHash(body []byte) [2 * sha256.Size]byte {
	sum := sha256.Sum256(body)
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], sum[:])
	return out
}

// AppendCanonicalRequest appends the canonical request of r to dst.
func AppendCanonicalRequest(dst []byte, r *Request) []byte {
	dst = append(dst, r.Method...)
	dst = append(dst, '\n')
	dst = appendCanonicalURI(dst, r.Path)
	dst = append(dst, '\n')
	dst = appendCanonicalQuery(dst, r.Query, r.OmitQuery)
	dst = append(dst, '\n')
	var vals [][]byte
	for _, name := range r.SignedHeaders {
		dst = append(dst, name...)
		dst = append(dst, ':')
		vals = r.Headers.AppendValues(vals[:0], name)
		for i, v := range vals {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendTrimmed(dst, v)
		}
		dst = append(dst, '\n')
	}
	dst = append(dst, '\n')
	for i, name := range r.SignedHeaders {
		if i > 0 {
			dst = append(dst, ';')
		}
		dst = append(dst, name...)
	}
	dst = append(dst, '\n')
	return append(dst, r.PayloadHash...)
}

// appendTrimmed appends v without leading and trailing white space (ASCII space, tab, line
// feed, vertical tab, form feed, carriage return), each run of spaces inside it collapsed
// to one.
func appendTrimmed(dst, v []byte) []byte {
	for len(v) > 0 && isSpace(v[0]) {
		v = v[1:]
	}
	for len(v) > 0 && isSpace(v[len(v)-1]) {
		v = v[:len(v)-1]
	}
	for i, c := range v {
		if c == ' ' && i > 0 && v[i-1] == ' ' {
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

func isSpace(c byte) bool { return c == ' ' || '\t' <= c && c <= '\r' }

// unreserved reports whether c stays as it is in a URI-encoded string.
func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~'
}

const upperHex = "0123456789ABCDEF"

// appendEncoded appends s URI-encoded: bytes other than unreserved ones (and '/', when
// keepSlash) as %XX with upper-case hex digits.
func appendEncoded(dst []byte, s []byte, keepSlash bool) []byte {
	for _, c := range s {
		if unreserved(c) || c == '/' && keepSlash {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', upperHex[c>>4], upperHex[c&15])
	}
	return dst
}

// plainPath reports whether p needs neither normalisation nor encoding: it starts with '/',
// holds only unreserved bytes and slashes, and has no empty, "." or ".." segment.
func plainPath(p []byte) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	for i := 1; i < len(p); i++ {
		c := p[i]
		if c == '/' {
			if p[i-1] == '/' {
				return false
			}
			continue
		}
		if !unreserved(c) {
			return false
		}
		if c == '.' && p[i-1] == '/' && (i+1 == len(p) || p[i+1] == '/' || p[i+1] == '.' && (i+2 == len(p) || p[i+2] == '/')) {
			return false
		}
	}
	return true
}

// appendCanonicalURI appends the canonical URI of the path p as sent.
func appendCanonicalURI(dst, p []byte) []byte {
	if plainPath(p) {
		return append(dst, p...)
	}
	return appendEncoded(dst, normalizePath(p), true)
}

// normalizePath removes the dot segments of p (RFC 3986, section 5.2.4) and its empty
// segments, keeping a leading and a trailing slash; "" becomes "/".
func normalizePath(p []byte) []byte {
	var segs [][]byte
	for seg := range strings.SplitSeq(string(p), "/") {
		switch seg {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, []byte(seg))
		}
	}
	out := []byte{'/'}
	for i, s := range segs {
		if i > 0 {
			out = append(out, '/')
		}
		out = append(out, s...)
	}
	if len(segs) > 0 && p[len(p)-1] == '/' {
		out = append(out, '/')
	}
	return out
}

// appendCanonicalQuery appends the canonical form of the raw query q, without the
// parameter named omit.
func appendCanonicalQuery(dst, q []byte, omit string) []byte {
	if len(q) == 0 {
		return dst
	}
	type pair struct{ k, v []byte }
	var pairs []pair
	for part := range strings.SplitSeq(string(q), "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, dv := unescapeQuery(k), unescapeQuery(v)
		if omit != "" && string(dk) == omit {
			continue
		}
		pairs = append(pairs, pair{appendEncoded(nil, dk, false), appendEncoded(nil, dv, false)})
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if c := strings.Compare(string(a.k), string(b.k)); c != 0 {
			return c
		}
		return strings.Compare(string(a.v), string(b.v))
	})
	for i, p := range pairs {
		if i > 0 {
			dst = append(dst, '&')
		}
		dst = append(dst, p.k...)
		dst = append(dst, '=')
		dst = append(dst, p.v...)
	}
	return dst
}

// unescapeQuery decodes a query name or value as a form does: %XX is the byte XX and '+' a
// space. A '%' not followed by two hex digits stands for itself.
func unescapeQuery(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			out = append(out, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			out = append(out, c)
		}
	}
	return out
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// AppendScope appends the credential scope of a date (yyyymmdd), region and service to dst.
func AppendScope(dst []byte, date, region, service string) []byte {
	dst = append(dst, date...)
	dst = append(dst, '/')
	dst = append(dst, region...)
	dst = append(dst, '/')
	dst = append(dst, service...)
	return append(dst, "/"+Terminator...)
}

// AppendStringToSign appends the string to sign of a canonical request to dst.
func AppendStringToSign(dst []byte, amzDate string, scope, canonicalRequest []byte) []byte {
	sum := sha256.Sum256(canonicalRequest)
	dst = append(dst, Algorithm+"\n"...)
	dst = append(dst, amzDate...)
	dst = append(dst, '\n')
	dst = append(dst, scope...)
	dst = append(dst, '\n')
	return hex.AppendEncode(dst, sum[:])
}

// Key is a derived signing key.
type Key [sha256.Size]byte

// SigningKey derives the signing key of a secret for a date (yyyymmdd), region and service.
func SigningKey(secret, date, region, service string) Key {
	k := hmacSum([]byte("AWS4"+secret), date)
	k = hmacSum(k[:], region)
	k = hmacSum(k[:], service)
	return hmacSum(k[:], Terminator)
}

func hmacSum(key []byte, data string) Key {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	var k Key
	m.Sum(k[:0])
	return k
}

// hmacState is the scratch space of Signature, pooled: HMAC by hand over a pooled digest
// allocates nothing, where crypto/hmac.New allocates its two digests and pads each time, and
// a Sum into a local array through the hash.Hash interface moves the array to the heap
// (BenchmarkSigV4Verify in server).
type hmacState struct {
	d          hash.Hash
	pad        [sha256.BlockSize]byte
	inner, sum [sha256.Size]byte
}

var hmacStates = sync.Pool{New: func() any { return &hmacState{d: sha256.New()} }}

// Signature returns the signature of a string to sign under key k, in hex: HMAC-SHA256
// (RFC 2104) with the 32-byte key k.
func Signature(k Key, stringToSign []byte) [2 * sha256.Size]byte {
	st := hmacStates.Get().(*hmacState)
	defer hmacStates.Put(st)
	for i := range st.pad {
		st.pad[i] = 0x36
	}
	for i, c := range k {
		st.pad[i] ^= c
	}
	st.d.Reset()
	st.d.Write(st.pad[:])
	st.d.Write(stringToSign)
	st.d.Sum(st.inner[:0])
	for i := range st.pad {
		st.pad[i] ^= 0x36 ^ 0x5c
	}
	st.d.Reset()
	st.d.Write(st.pad[:])
	st.d.Write(st.inner[:])
	st.d.Sum(st.sum[:0])
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], st.sum[:])
	return out
}
