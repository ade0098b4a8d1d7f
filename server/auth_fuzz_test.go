package server

import (
	"errors"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/internal/sigv4"
	"github.com/sluice-streams/sluice/server/wire"
)

// FuzzSigV4Parse feeds the SigV4 parsers an arbitrary Authorization header and query: they
// must not panic, must refuse only with an authentication error, and what they accept must
// be well formed. The same header and query then go through the verifier, which must refuse
// them (the fuzzer cannot forge a signature) with an authentication error and never panic.
func FuzzSigV4Parse(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential="+testKey+"/20260304/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature="+goodSig, "")
	f.Add("", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="+testKey+"%2F20260304%2Fus-east-1%2Fkinesis%2Faws4_request&X-Amz-Date=20260304T050607Z&X-Amz-SignedHeaders=host&X-Amz-Signature="+goodSig+"&X-Amz-Expires=300")
	f.Add("AWS4-HMAC-SHA256 Credential=a/b/c/d/e,,=,", "X-Amz-Algorithm=x&%zz=1&a=%")
	f.Add("AWS4-HMAC-SHA256 Credential=A/20260304/r/kinesis/aws4_request, SignedHeaders=Host;;x, Signature="+goodSig, "X-Amz-Expires=-1")
	v := testVerifier()
	f.Fuzz(func(t *testing.T, header, query string) {
		check := func(where string, c Credential, err error) {
			if err != nil {
				var ae apiError
				if !errors.As(err, &ae) || !ae.code.Unauthenticated() {
					t.Fatalf("%s: refused with %v", where, err)
				}
				return
			}
			if c.AccessKey == "" || len(c.Date) != 8 || c.Region == "" || c.Service != "kinesis" || len(c.Signature) != 64 ||
				len(c.SignedHeaders) == 0 || c.Expires < 0 || c.Expires > maxExpires {
				t.Fatalf("%s: accepted %+v", where, c)
			}
			for _, h := range c.SignedHeaders {
				if h == "" || strings.ToLower(h) != h {
					t.Fatalf("%s: signed header %q", where, h)
				}
			}
		}
		c, err := parseAuthorization(header)
		check("header", c, err)
		c, err = parseQueryAuth(query)
		check("query", c, err)

		var r fasthttp.Request
		r.Header.SetMethod("POST")
		r.SetRequestURI("/?" + query)
		r.Header.SetHost("localhost")
		if header != "" && !strings.ContainsAny(header, "\r\n") {
			r.Header.Set("Authorization", header)
		}
		r.Header.Set("X-Amz-Date", testNow.Format(sigv4.TimeFormat))
		if _, err := v.Authenticate(&r); err == nil {
			t.Fatalf("header %q, query %q: accepted", header, query)
		} else {
			var ae apiError
			if !errors.As(err, &ae) || !(ae.code.Unauthenticated() || ae.code == wire.AccessDenied) {
				t.Fatalf("verifier refused with %v", err)
			}
		}
	})
}
