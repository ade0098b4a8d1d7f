package sigv4

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TestAWSExamples checks the signing key and the signature of AWS's published examples: the
// key derivation example of the SigV4 documentation and the get-vanilla case of its test
// suite.
func TestAWSExamples(t *testing.T) {
	k := SigningKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "iam")
	if got := string(hexOf(k[:])); got != "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9" {
		t.Fatalf("signing key %s", got)
	}
	r := &Request{Method: []byte("GET"), Path: []byte("/"), SignedHeaders: []string{"host", "x-amz-date"},
		Headers:     HeaderList{{"host", "example.amazonaws.com"}, {"x-amz-date", "20150830T123600Z"}},
		PayloadHash: []byte(EmptyPayload)}
	s := NewSigner(Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}, "us-east-1", "service")
	got := s.Authorization(r, time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC))
	want := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
	if got != want {
		t.Fatalf("get-vanilla:\n got %s\nwant %s", got, want)
	}
}

func hexOf(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}

func TestCanonicalURI(t *testing.T) {
	for in, want := range map[string]string{
		"":                "/",
		"/":               "/",
		"/sluice/v1/put":  "/sluice/v1/put",
		"/a/./b":          "/a/b",
		"/a/../b":         "/b",
		"/../a":           "/a",
		"//a//b/":         "/a/b/",
		"/a%20b":          "/a%2520b",
		"/a b":            "/a%20b",
		"/.hidden/x":      "/.hidden/x",
		"/a/..":           "/",
		"/~user/x-y_z.1/": "/~user/x-y_z.1/",
	} {
		if got := string(appendCanonicalURI(nil, []byte(in))); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

func TestCanonicalQuery(t *testing.T) {
	for in, want := range map[string]string{
		"":                        "",
		"b=2&a=1":                 "a=1&b=2",
		"a=2&a=1":                 "a=1&a=2",
		"a":                       "a=",
		"x=a+b&y=a%20b&z=%2f%7E":  "x=a%20b&y=a%20b&z=%2F~",
		"X-Amz-Signature=abc&b=1": "b=1",
		"%zz=1":                   "%25zz=1",
		"&&a=1&":                  "a=1",
	} {
		if got := string(appendCanonicalQuery(nil, []byte(in), "X-Amz-Signature")); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
	}
}

// TestMatchesSDKSigner signs random requests with the AWS SDK for Go v2's signer and with
// Signer, and wants the same Authorization header: paths, queries, repeated headers and
// values with runs of spaces included.
func TestMatchesSDKSigner(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	creds := Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret/with+chars"}
	sdk := v4.NewSigner()
	paths := []string{"/", "/sluice/v1/put", "/a%20b/c", "/x~y/z.z", "/%E2%82%AC"}
	queries := []string{"", "a=1", "b=2&a=1&a=0", "q=a+b%2Fc", "k=%7E&j"}
	values := []string{"v", "  lead and  trail  ", "a   b", "application/x-amz-json-1.1"}
	for i := range 200 {
		body := make([]byte, rng.IntN(300))
		for j := range body {
			body[j] = byte(rng.Uint32())
		}
		path, query := paths[rng.IntN(len(paths))], queries[rng.IntN(len(queries))]
		url := "http://127.0.0.1:4567" + path
		if query != "" {
			url += "?" + query
		}
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(rng.IntN(1e6)) * time.Second)
		req.Header.Set("X-Amz-Date", at.Format(TimeFormat))
		req.Header.Set("Content-Type", values[rng.IntN(len(values))])
		if rng.IntN(2) == 0 {
			req.Header.Add("X-Custom", values[rng.IntN(len(values))])
			req.Header.Add("X-Custom", values[rng.IntN(len(values))])
		}
		hash := PayloadHash(body)
		if err := sdk.SignHTTP(context.Background(), aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey},
			req, string(hash[:]), "kinesis", "eu-west-1", at); err != nil {
			t.Fatal(err)
		}
		want := req.Header.Get("Authorization")
		hl := HeaderList{{"host", req.Host}}
		if len(body) > 0 {
			hl = append(hl, Header{"content-length", strconv.Itoa(len(body))})
		}
		for k, vs := range req.Header {
			if k == "Authorization" {
				continue
			}
			for _, v := range vs {
				hl = append(hl, Header{strings.ToLower(k), v})
			}
		}
		r := &Request{Method: []byte(req.Method), Path: []byte(req.URL.EscapedPath()), Query: []byte(req.URL.RawQuery),
			Headers: hl, SignedHeaders: hl.Names(), PayloadHash: hash[:]}
		if got := NewSigner(creds, "eu-west-1", "kinesis").Authorization(r, at); got != want {
			t.Fatalf("request %d (%s %s):\n got %s\nwant %s", i, path, query, got, want)
		}
	}
}
