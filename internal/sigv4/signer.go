package sigv4

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Credentials are an access key's identifier and secret, and the session token of temporary
// credentials ("" for long-term ones).
type Credentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// Header is one request header: its name in lower case and its value.
type Header struct{ Name, Value string }

// HeaderList is a request's headers as a client builds them.
type HeaderList []Header

// AppendValues implements Headers.
func (l HeaderList) AppendValues(dst [][]byte, name string) [][]byte {
	for _, h := range l {
		if h.Name == name {
			dst = append(dst, []byte(h.Value))
		}
	}
	return dst
}

// Names returns the distinct names of l, sorted: the signed headers of a request signing
// all of them.
func (l HeaderList) Names() []string {
	names := make([]string, 0, len(l))
	for _, h := range l {
		names = append(names, h.Name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Signer signs requests with one credential for one region and service. It keeps the
// signing key of the last date it signed for. Safe for concurrent use.
type Signer struct {
	creds           Credentials
	region, service string
	mu              sync.Mutex // guards date and key
	date            string
	key             Key
}

// NewSigner returns a signer of requests to service in region with creds.
func NewSigner(creds Credentials, region, service string) *Signer {
	return &Signer{creds: creds, region: region, service: service}
}

// Credentials returns the signer's credentials.
func (s *Signer) Credentials() Credentials { return s.creds }

// Authorization returns the Authorization header of r signed at t, whose X-Amz-Date, in r's
// headers, must be t in TimeFormat. r.SignedHeaders says which headers it signs.
func (s *Signer) Authorization(r *Request, t time.Time) string {
	t = t.UTC()
	amzDate, date := t.Format(TimeFormat), t.Format(DateFormat)
	s.mu.Lock()
	if s.date != date {
		s.date, s.key = date, SigningKey(s.creds.SecretAccessKey, date, s.region, s.service)
	}
	key := s.key
	s.mu.Unlock()
	scope := AppendScope(nil, date, s.region, s.service)
	canon := AppendCanonicalRequest(nil, r)
	sig := Signature(key, AppendStringToSign(nil, amzDate, scope, canon))
	var b strings.Builder
	b.WriteString(Algorithm + " Credential=")
	b.WriteString(s.creds.AccessKeyID)
	b.WriteByte('/')
	b.Write(scope)
	b.WriteString(", SignedHeaders=")
	b.WriteString(strings.Join(r.SignedHeaders, ";"))
	b.WriteString(", Signature=")
	b.Write(sig[:])
	return b.String()
}
