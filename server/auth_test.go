package server

import (
	"errors"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

const goodSig = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"

func TestParseAuthorization(t *testing.T) {
	h := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/kinesis/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=" + goodSig
	c, err := parseAuthorization(h)
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessKey != "AKIDEXAMPLE" || c.Date != "20150830" || c.Region != "eu-west-1" || c.Service != "kinesis" ||
		strings.Join(c.SignedHeaders, ";") != "content-type;host;x-amz-date" || c.Signature != goodSig {
		t.Fatalf("%+v", c)
	}
	bad := map[string]string{
		"other algorithm":   "AWS4-HMAC-SHA1 Credential=A/20150830/r/kinesis/aws4_request, SignedHeaders=host, Signature=" + goodSig,
		"no parameters":     "AWS4-HMAC-SHA256",
		"no signature":      "AWS4-HMAC-SHA256 Credential=A/20150830/r/kinesis/aws4_request, SignedHeaders=host",
		"short credential":  "AWS4-HMAC-SHA256 Credential=A/20150830/kinesis/aws4_request, SignedHeaders=host, Signature=" + goodSig,
		"bad date":          "AWS4-HMAC-SHA256 Credential=A/2015/r/kinesis/aws4_request, SignedHeaders=host, Signature=" + goodSig,
		"short signature":   "AWS4-HMAC-SHA256 Credential=A/20150830/r/kinesis/aws4_request, SignedHeaders=host, Signature=abc",
		"upper-case digits": "AWS4-HMAC-SHA256 Credential=A/20150830/r/kinesis/aws4_request, SignedHeaders=host, Signature=" + strings.ToUpper(goodSig),
		"not key=value":     "AWS4-HMAC-SHA256 Credential",
	}
	for name, h := range bad {
		var ae apiError
		if _, err := parseAuthorization(h); !errors.As(err, &ae) || ae.name() != "IncompleteSignatureException" {
			t.Errorf("%s: %v", name, err)
		}
	}
	var ae apiError
	_, err = parseAuthorization("AWS4-HMAC-SHA256 Credential=A/20150830/r/s3/aws4_request, SignedHeaders=host, Signature=" + goodSig)
	if !errors.As(err, &ae) || ae.name() != "InvalidSignatureException" {
		t.Fatalf("wrong service: %v", err)
	}
}

func TestSigV4Parser(t *testing.T) {
	p := SigV4Parser{Default: "000000000000", Accounts: map[string]string{"AKIDOTHER": "111111111111", "AKIDMINE": "000000000000"}}
	sig := func(key string) *fasthttp.Request {
		return headerRequest("AWS4-HMAC-SHA256 Credential=" + key + "/20261125/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=" + goodSig)
	}
	if pr, err := p.Authenticate(headerRequest("")); err != nil || pr.Account != "000000000000" || pr.AccessKey != "" {
		t.Fatalf("unsigned: %+v %v", pr, err)
	}
	if pr, err := p.Authenticate(sig("AKIDUNLISTED")); err != nil || pr.Account != "000000000000" || pr.AccessKey != "AKIDUNLISTED" || pr.Region != "us-east-1" {
		t.Fatalf("unlisted key: %+v %v", pr, err)
	}
	if pr, err := p.Authenticate(sig("AKIDMINE")); err != nil || pr.Account != "000000000000" {
		t.Fatalf("listed key: %+v %v", pr, err)
	}
	var ae apiError
	if _, err := p.Authenticate(sig("AKIDOTHER")); !errors.As(err, &ae) || ae.name() != "AccessDeniedException" {
		t.Fatalf("another account's key: %v", err)
	}
}

// headerRequest returns a request signed (or not, for "") with the Authorization header h,
// dated 2026-11-25.
func headerRequest(h string) *fasthttp.Request {
	var r fasthttp.Request
	r.Header.SetMethod("POST")
	r.SetRequestURI("/")
	r.Header.SetHost("localhost")
	if h != "" {
		r.Header.Set("Authorization", h)
		r.Header.Set("X-Amz-Date", "20261125T000000Z")
	}
	return &r
}
