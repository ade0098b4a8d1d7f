package server

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/sluice-streams/sluice/internal/sigv4"
)

// TestMetricsNeedGetMetrics: with signatures verified (--iam), GET /metrics answers only a
// signed request of a user whose policies allow sluice:GetMetrics (kinesis:* does not), and
// /healthz answers anyone with "ok" and nothing more.
func TestMetricsNeedGetMetrics(t *testing.T) {
	users, err := ParseIAM([]byte(`{"users": [
 {"name": "admin", "accessKeyId": "AKadmin", "secretAccessKey": "s-admin", "policies": [`+allowAll+`]},
 {"name": "scraper", "accessKeyId": "AKscraper", "secretAccessKey": "s-scraper", "policies": [
  {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sluice:GetMetrics", "Resource": "*"}]}]}
]}`), testAccount)
	if err != nil {
		t.Fatal(err)
	}
	hs := startH2Server(t, Options{Authenticator: NewSigV4Verifier(testAccount, "us-east-1", users)})
	get := func(path, user string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+hs.addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			h := sigv4.PayloadHash(nil)
			if err := v4.NewSigner().SignHTTP(ctx(t), aws.Credentials{AccessKeyID: "AK" + user, SecretAccessKey: "s-" + user}, req, string(h[:]), "kinesis", "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, body, _ := get("/metrics", ""); code == 200 || strings.Contains(body, "# HELP") {
		t.Fatalf("unsigned /metrics: %d %.200s", code, body)
	}
	if code, body, _ := get("/metrics", "admin"); code != 400 || !strings.Contains(body, "AccessDeniedException") || !strings.Contains(body, "sluice:GetMetrics") {
		t.Fatalf("/metrics signed by a kinesis:* user: %d %.300s, want AccessDeniedException naming sluice:GetMetrics", code, body)
	}
	if code, body, _ := get("/metrics", "scraper"); code != 200 || !strings.Contains(body, "# HELP") {
		t.Fatalf("/metrics signed by a user allowed sluice:GetMetrics: %d %.200s", code, body)
	}
	code, body, h := get("/healthz", "")
	if code != 200 || body != "ok\n" {
		t.Fatalf("unsigned /healthz: %d %q, want 200 ok", code, body)
	}
	for name := range h {
		switch strings.ToLower(name) {
		case "content-type", "content-length", "date", "x-amzn-requestid", "server":
		default:
			t.Errorf("/healthz sends header %s: %v", name, h[name])
		}
	}
	if s := h.Get("Server"); s != "" && s != "sluice" {
		t.Errorf("/healthz names its server %q", s)
	}
}
