package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/iam"
	"github.com/sluice-streams/sluice/internal/sigv4"
)

const (
	testAccount = "000000000000"
	testKey     = "AKIDTESTUSER"
	testSecret  = "test/secret+key"
)

// testNow is the verifier's clock in the tests that sign requests themselves.
var testNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// allowAll is an identity policy allowing every Kinesis action on every resource.
const allowAll = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kinesis:*","Resource":"*"}]}`

// testUsers are alice, allowed everything in the server's account, and mallory, of another
// account, allowed nothing.
func testUsers() []User {
	p, err := iam.Parse(iam.Identity, "alice policies[0]", []byte(allowAll))
	if err != nil {
		panic(err)
	}
	return []User{
		{Name: "alice", AccessKeyID: testKey, SecretAccessKey: testSecret, Account: testAccount,
			Policies: []json.RawMessage{json.RawMessage(allowAll)}, Parsed: []*iam.Policy{p}},
		{Name: "mallory", AccessKeyID: "AKIDOTHERACCOUNT", SecretAccessKey: "other", Account: "111111111111"},
	}
}

func testVerifier() *SigV4Verifier {
	v := NewSigV4Verifier(testAccount, "us-east-1", testUsers())
	v.Now = func() time.Time { return testNow }
	return v
}

// signed is a request signed by the AWS SDK for Go v2's signer, the reference.
type signed struct {
	key, secret, region string
	at                  time.Time
	body                string
	header              map[string]string // extra headers, signed
	payloadHash         string            // "" for the body's SHA-256
	presign             string            // non-empty: sign in the query, with this X-Amz-Expires
	token               string            // a session token, signed (X-Amz-Security-Token)
}

// request signs s and returns it as the server sees it.
func (s signed) request(t testing.TB) *fasthttp.Request {
	t.Helper()
	if s.key == "" {
		s.key, s.secret = testKey, testSecret
	}
	if s.region == "" {
		s.region = "us-east-1"
	}
	if s.at.IsZero() {
		s.at = testNow
	}
	url := "http://127.0.0.1:4567/"
	if s.presign != "" {
		url += "?X-Amz-Expires=" + s.presign
	}
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(s.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "Kinesis_20131202.ListStreams")
	for k, v := range s.header {
		req.Header.Set(k, v)
	}
	hash := s.payloadHash
	if hash == "" {
		h := sigv4.PayloadHash([]byte(s.body))
		hash = string(h[:])
	}
	creds := aws.Credentials{AccessKeyID: s.key, SecretAccessKey: s.secret, SessionToken: s.token}
	if s.presign != "" {
		u, hdr, err := v4.NewSigner().PresignHTTP(context.Background(), creds, req, hash, "kinesis", s.region, s.at)
		if err != nil {
			t.Fatal(err)
		}
		if req, err = http.NewRequest(http.MethodPost, u, strings.NewReader(s.body)); err != nil {
			t.Fatal(err)
		}
		req.Header = hdr
	} else if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hash, "kinesis", s.region, s.at); err != nil {
		t.Fatal(err)
	}
	return toFastRequest(req, []byte(s.body))
}

// toFastRequest copies req, with body, into a fasthttp request.
func toFastRequest(req *http.Request, body []byte) *fasthttp.Request {
	var r fasthttp.Request
	r.Header.SetMethod(req.Method)
	r.SetRequestURI(req.URL.RequestURI())
	r.Header.SetHost(req.Host)
	for k, vs := range req.Header {
		if strings.EqualFold(k, "Host") {
			continue
		}
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	r.SetBody(body)
	r.Header.SetContentLength(len(body))
	return &r
}

func TestSigV4Verifier(t *testing.T) {
	const ok = ""
	body := `{"Limit":10}`
	cases := []struct {
		name      string
		req       func(t testing.TB) *fasthttp.Request
		wantName  string // "" for accepted
		wantInMsg string
	}{
		{"header", signed{body: body}.request, ok, ""},
		{"empty body", signed{}.request, ok, ""},
		{"four minutes slow", signed{body: body, at: testNow.Add(-4 * time.Minute)}.request, ok, ""},
		{"four minutes fast", signed{body: body, at: testNow.Add(4 * time.Minute)}.request, ok, ""},
		{"query", signed{body: body, presign: "300"}.request, ok, ""},
		{"query, an hour old, expiring in two", signed{body: body, presign: "7200", at: testNow.Add(-time.Hour)}.request, ok, ""},
		{"content hash header", signed{body: body, header: map[string]string{"X-Amz-Content-Sha256": hexHash(body)}}.request, ok, ""},
		{"unsigned payload", signed{body: body, payloadHash: sigv4.UnsignedPayload,
			header: map[string]string{"X-Amz-Content-Sha256": sigv4.UnsignedPayload}}.request, ok, ""},
		{"header with runs of spaces", signed{body: body, header: map[string]string{"X-Custom": "  a   b  "}}.request, ok, ""},

		{"unsigned", func(t testing.TB) *fasthttp.Request { return headerRequest("") },
			"MissingAuthenticationTokenException", "Missing Authentication Token"},
		{"wrong secret", signed{body: body, secret: "wrong", key: testKey}.request,
			"InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."},
		{"unknown key", signed{body: body, key: "AKIDNOBODY", secret: "x"}.request,
			"UnrecognizedClientException", "The security token included in the request is invalid."},
		{"session token", signed{body: body, token: "FwoGZXIvYXdzEXAMPLE"}.request,
			"UnrecognizedClientException", "The security token included in the request is invalid."},
		{"session token in the query", signed{body: body, presign: "300", token: "FwoGZXIvYXdzEXAMPLE"}.request,
			"UnrecognizedClientException", "The security token included in the request is invalid."},
		{"body changed", func(t testing.TB) *fasthttp.Request {
			r := signed{body: body}.request(t)
			r.SetBody([]byte(`{"Limit":11}`))
			return r
		}, "InvalidSignatureException", "The request signature we calculated does not match"},
		{"body changed under a content hash", func(t testing.TB) *fasthttp.Request {
			r := signed{body: body, header: map[string]string{"X-Amz-Content-Sha256": hexHash(body)}}.request(t)
			r.SetBody([]byte(`{"Limit":11}`))
			return r
		}, "InvalidSignatureException", "The provided 'x-amz-content-sha256' header does not match what was computed."},
		{"signed header changed", func(t testing.TB) *fasthttp.Request {
			r := signed{body: body}.request(t)
			r.Header.Set("X-Amz-Target", "Kinesis_20131202.DeleteStream")
			return r
		}, "InvalidSignatureException", "The request signature we calculated does not match"},
		{"query changed", func(t testing.TB) *fasthttp.Request {
			r := signed{body: body, presign: "300"}.request(t)
			r.SetRequestURI(strings.Replace(string(r.RequestURI()), "X-Amz-Expires=300", "X-Amz-Expires=301", 1))
			return r
		}, "InvalidSignatureException", "The request signature we calculated does not match"},
		{"six minutes slow", signed{body: body, at: testNow.Add(-6 * time.Minute)}.request,
			"InvalidSignatureException", "Signature expired: 20260304T050007Z is now earlier than 20260304T050107Z (20260304T050607Z - 5 min.)"},
		{"six minutes fast", signed{body: body, at: testNow.Add(6 * time.Minute)}.request,
			"InvalidSignatureException", "Signature not yet current: 20260304T051207Z is still later than 20260304T051107Z (20260304T050607Z + 5 min.)"},
		{"query expired", signed{body: body, presign: "60", at: testNow.Add(-2 * time.Minute)}.request,
			"InvalidSignatureException", "Signature expired: 20260304T050407Z is now earlier than 20260304T050507Z (20260304T050607Z - 60 sec.)"},
		{"another region", signed{body: body, region: "eu-west-1"}.request,
			"InvalidSignatureException", "Credential should be scoped to a valid region, not 'eu-west-1'. "},
		{"header and query", func(t testing.TB) *fasthttp.Request {
			r := signed{body: body, presign: "300"}.request(t)
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testKey+"/20260304/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature="+goodSig)
			return r
		}, "InvalidSignatureException", "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header."},
		{"malformed header", func(t testing.TB) *fasthttp.Request {
			return headerRequest("AWS4-HMAC-SHA256 Credential=" + testKey + "/20260304/us-east-1/kinesis/aws4_request")
		}, "IncompleteSignatureException", "Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=AWS4-HMAC-SHA256"},
		{"query without a signature", func(t testing.TB) *fasthttp.Request {
			r := headerRequest("")
			r.SetRequestURI("/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20260304T050607Z")
			return r
		}, "IncompleteSignatureException", "AWS query-string parameters must include 'X-Amz-Credential'. AWS query-string parameters must include 'X-Amz-Signature'. AWS query-string parameters must include 'X-Amz-SignedHeaders'. Re-examine the query-string parameters."},
		{"no date", func(t testing.TB) *fasthttp.Request {
			r := signed{body: body}.request(t)
			r.Header.Del("X-Amz-Date")
			return r
		}, "IncompleteSignatureException", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."},
		{"date outside the credential's day", func(t testing.TB) *fasthttp.Request {
			r := signed{body: body}.request(t)
			r.Header.Set("X-Amz-Date", "20260305T050607Z")
			return r
		}, "InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '20260304' != '20260305'"},
		{"host not signed", func(t testing.TB) *fasthttp.Request {
			r := headerRequest("")
			r.Header.Set("X-Amz-Date", testNow.Format(sigv4.TimeFormat))
			hl := sigv4.HeaderList{{Name: "x-amz-date", Value: testNow.Format(sigv4.TimeFormat)}}
			e := sigv4.EmptyPayload
			auth := sigv4.NewSigner(sigv4.Credentials{AccessKeyID: testKey, SecretAccessKey: testSecret}, "us-east-1", "kinesis").
				Authorization(&sigv4.Request{Method: []byte("POST"), Path: []byte("/"), Headers: hl, SignedHeaders: hl.Names(), PayloadHash: []byte(e)}, testNow)
			r.Header.Set("Authorization", auth)
			return r
		}, "IncompleteSignatureException", "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."},
		{"bad content hash", signed{body: body, header: map[string]string{"X-Amz-Content-Sha256": "abc"}, payloadHash: "abc"}.request,
			"IncompleteSignatureException", "x-amz-content-sha256 must be"},
	}
	v := testVerifier()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pr, err := v.Authenticate(c.req(t))
			if c.wantName == ok {
				if err != nil {
					t.Fatal(err)
				}
				if pr.AccessKey != testKey || pr.Account != testAccount || pr.User != "alice" || pr.Region != "us-east-1" ||
					len(pr.Policies) != 1 || !bytes.Contains(pr.Policies[0], []byte("2012-10-17")) {
					t.Fatalf("principal %+v", pr)
				}
				return
			}
			var ae apiError
			if !errors.As(err, &ae) || ae.name() != c.wantName || !strings.Contains(ae.msg, c.wantInMsg) || ae.status() != 400 {
				t.Fatalf("got %v (status %d), want %s: …%s…", err, ae.status(), c.wantName, c.wantInMsg)
			}
		})
	}
}

func hexHash(s string) string {
	h := sigv4.PayloadHash([]byte(s))
	return string(h[:])
}

// TestSigV4VerifierReload swaps the users: the old secret stops working at once (no signing
// key derived from it survives in the cache) and the new one works.
func TestSigV4VerifierReload(t *testing.T) {
	v := testVerifier()
	if _, err := v.Authenticate(signed{}.request(t)); err != nil {
		t.Fatal(err)
	}
	users := testUsers()
	users[0].SecretAccessKey = "rotated"
	v.SetUsers(users)
	var ae apiError
	if _, err := v.Authenticate(signed{}.request(t)); !errors.As(err, &ae) || ae.name() != "InvalidSignatureException" {
		t.Fatalf("old secret after the reload: %v", err)
	}
	if _, err := v.Authenticate(signed{key: testKey, secret: "rotated"}.request(t)); err != nil {
		t.Fatalf("new secret: %v", err)
	}
	v.SetUsers(nil)
	if _, err := v.Authenticate(signed{key: testKey, secret: "rotated"}.request(t)); !errors.As(err, &ae) || ae.name() != "UnrecognizedClientException" {
		t.Fatalf("removed user: %v", err)
	}
}

// TestSigV4KeyCacheBound signs with more scopes than the cache holds: every one verifies,
// and the cache stays within its bound.
func TestSigV4KeyCacheBound(t *testing.T) {
	v := testVerifier()
	for i := range maxCachedKeys + 10 {
		at := testNow.AddDate(0, 0, -i)
		v.Now = func() time.Time { return at }
		if _, err := v.Authenticate(signed{at: at}.request(t)); err != nil {
			t.Fatalf("day %d: %v", i, err)
		}
	}
	set := v.users.Load()
	if n := len(set.keys); n == 0 || n > maxCachedKeys {
		t.Fatalf("%d cached keys, bound %d", n, maxCachedKeys)
	}
}

func TestParseIAM(t *testing.T) {
	users, err := ParseIAM([]byte(`{"users": [
		{"name": "a", "accessKeyId": "AK1", "secretAccessKey": "s1", "policies": [`+allowAll+`]},
		{"name": "b", "accessKeyId": "AK2", "secretAccessKey": "s2", "account": "111111111111"}]}`), testAccount)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[0].Account != testAccount || users[1].Account != "111111111111" ||
		len(users[0].Policies) != 1 || string(users[0].Policies[0]) != allowAll || len(users[0].Parsed) != 1 || users[1].Policies != nil {
		t.Fatalf("%+v", users)
	}
	for in, want := range map[string]string{
		`{"users": [], "groups": []}`: `the file: unknown key "groups"`,
		`{"users": [{"name": "a", "accessKeyId": "AK1", "secretAccessKey": "s", "secret": "x", "AccessKeyId": "y"}]}`:                           `users[0]: unknown key "AccessKeyId", "secret"`,
		`{"users": [{"accessKeyId": "AK1", "secretAccessKey": "s"}]}`:                                                                           `users[0]: "name" is required`,
		`{"users": [{"name": "a", "secretAccessKey": "s"}]}`:                                                                                    `users[0] (a): "accessKeyId" is required`,
		`{"users": [{"name": "a", "accessKeyId": "AK1"}]}`:                                                                                      `users[0] (a): "secretAccessKey" is required`,
		`{"users": [{"name": "a", "accessKeyId": "AK1", "secretAccessKey": "s"}, {"name": "b", "accessKeyId": "AK1", "secretAccessKey": "t"}]}`: `users[1] (b): access key AK1 is also a's`,
		`{"users": [{"name": "a", "accessKeyId": "AK1", "secretAccessKey": "s", "policies": ["x"]}]}`:                                           `users[0] (a): policies[0] is not a JSON object`,
		`{"users": [{"name": "a", "accessKeyId": "AK1", "secretAccessKey": "s", "policies": [{"Statement": {"Effect": "Maybe"}}]}]}`:            `users[0] (a): policies[0]: malformed policy document: Statement.Effect`,
		`{"users": [{"name": "a", "accessKeyId": "AK1", "secretAccessKey": "s", "account": "12345"}]}`:                                          `users[0] (a): "account" is 12 digits, not "12345"`,
		`{"users": [`: `the file: unexpected end of JSON input`,
		`[]`:          `the file: json: cannot unmarshal array`,
	} {
		if _, err := ParseIAM([]byte(in), testAccount); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want …%s…", in, err, want)
		}
	}
}
