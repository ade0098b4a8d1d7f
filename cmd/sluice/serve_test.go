package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/internal/pki"
)

// writeTestCert writes a self-signed certificate for 127.0.0.1 and its key as PEM files in
// dir, and returns their paths and a pool trusting the certificate.
func writeTestCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	c := sign(t, nil, pki.Template("sluice test", time.Hour, []string{"127.0.0.1"}, x509.ExtKeyUsageServerAuth))
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeCertKey(t, c, certFile, keyFile)
	return certFile, keyFile, c.Pool()
}

func TestServeTLSFlags(t *testing.T) {
	certFile, keyFile, _ := writeTestCert(t, t.TempDir())
	missing := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		args   []string
		stderr string
	}{
		{[]string{"--tls-cert", certFile}, "give both or neither"},
		{[]string{"--tls-key", keyFile}, "give both or neither"},
		{[]string{"--tls-cert", missing, "--tls-key", keyFile}, "--tls-cert, --tls-key"},
		{[]string{"--tls-cert", keyFile, "--tls-key", certFile}, "--tls-cert, --tls-key"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"serve", "--data-dir", t.TempDir()}, tt.args...)
			if status := run(args, &stdout, &stderr); status != exitUsage {
				t.Errorf("status %d, want %d\nstderr: %s", status, exitUsage, &stderr)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q does not contain %q", &stderr, tt.stderr)
			}
		})
	}
}

// TestServeTLS serves HTTPS from a certificate and key on disk: a client negotiating h2
// gets HTTP/2, one offering only http/1.1 gets HTTP/1.1.
func TestServeTLS(t *testing.T) {
	certFile, keyFile, pool := writeTestCert(t, t.TempDir())
	cfg, err := newServeConfig("127.0.0.1:0", t.TempDir(), "sync", "kinesis")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.tls, cfg.certs, err = loadTLS(certFile, keyFile, ""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, &stdout, &stderr) }()
	var base string
	for i := 0; i < 500 && base == ""; i++ {
		if _, after, ok := strings.Cut(stdout.String(), "on https://"); ok {
			base = "https://" + strings.Fields(after)[0]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if base == "" {
		t.Fatalf("the server never said it serves HTTPS: %q", stdout.String())
	}
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	var h1only http.Protocols
	h1only.SetHTTP1(true)
	h1 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Protocols: &h1only}}
	for _, tt := range []struct {
		client *http.Client
		proto  int
		stream string
	}{{h2, 2, "over-h2"}, {h1, 1, "over-h1"}} {
		resp, err := tt.client.Get(base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != tt.proto {
			t.Fatalf("healthz: %d over %s, want 200 over HTTP/%d", resp.StatusCode, resp.Proto, tt.proto)
		}
		req, _ := http.NewRequest("POST", base+"/", strings.NewReader(`{"StreamName":"`+tt.stream+`","ShardCount":1}`))
		req.Header.Set("X-Amz-Target", "Kinesis_20131202.CreateStream")
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp, err = tt.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != tt.proto {
			t.Fatalf("CreateStream: %d over %s, want 200 over HTTP/%d", resp.StatusCode, resp.Proto, tt.proto)
		}
	}
	// Plaintext HTTP is refused on the TLS port.
	if resp, err := http.Get("http://" + strings.TrimPrefix(base, "https://") + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plaintext HTTP answered on the TLS port")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
