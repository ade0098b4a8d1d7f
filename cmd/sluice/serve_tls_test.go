package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/internal/pki"
	"github.com/sluice-streams/sluice/server"
)

// testCA is a certificate authority for the TLS tests.
type testCA struct {
	*pki.Cert
	pem  []byte
	pool *x509.CertPool
}

// issue returns a certificate and its key for name, signed by ca, or self-signed if ca is
// nil; isCA makes it a CA, client a client certificate, else a server one for 127.0.0.1.
func issue(t *testing.T, ca *testCA, name string, isCA, client bool) (*x509.Certificate, *ecdsa.PrivateKey, tls.Certificate) {
	t.Helper()
	usage, hosts := x509.ExtKeyUsageServerAuth, []string{"127.0.0.1"}
	if client {
		usage, hosts = x509.ExtKeyUsageClientAuth, nil
	}
	tmpl := pki.Template(name, time.Hour, hosts, usage)
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
		tmpl.ExtKeyUsage, tmpl.IPAddresses = nil, nil // a CA's extended key usage would bind its leaves
	}
	c := sign(t, ca, tmpl)
	return c.Cert, c.Key, c.Leaf()
}

// sign returns the certificate of tmpl for a new key, signed by ca or self-signed if ca is
// nil.
func sign(t *testing.T, ca *testCA, tmpl *x509.Certificate) *pki.Cert {
	t.Helper()
	var parent *pki.Cert
	if ca != nil {
		parent = ca.Cert
	}
	c, err := pki.Sign(parent, tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newTestCA(t *testing.T, name string) *testCA {
	c := sign(t, nil, func() *x509.Certificate {
		tmpl := pki.Template(name, time.Hour, nil)
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
		return tmpl
	}())
	return &testCA{Cert: c, pool: c.Pool(), pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Cert.Raw})}
}

// writeServerCert writes a server certificate for 127.0.0.1 signed by ca, and its key, to
// certFile and keyFile.
func writeServerCert(t *testing.T, ca *testCA, name, certFile, keyFile string) {
	t.Helper()
	cert, key, _ := issue(t, ca, name, false, false)
	writeCertKey(t, &pki.Cert{Cert: cert, Key: key}, certFile, keyFile)
}

// writeCertKey writes c's certificate and key as PEM to certFile and keyFile.
func writeCertKey(t *testing.T, c *pki.Cert, certFile, keyFile string) {
	t.Helper()
	if err := c.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
}

// startTLSServe runs serve with TLS from certFile and keyFile (and clientCA, if not "") and
// returns its host:port and its log.
func startTLSServe(t *testing.T, certFile, keyFile, clientCA string) (string, *syncBuffer) {
	t.Helper()
	cfg, err := newServeConfig("127.0.0.1:0", t.TempDir(), "none", "off")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.tls, cfg.certs, err = loadTLS(certFile, keyFile, clientCA); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, &stdout, &stderr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	var addr string
	waitFor(t, "the server to listen", func() bool {
		_, after, ok := strings.Cut(stdout.String(), "on https://")
		if ok {
			addr = strings.Fields(after)[0]
		}
		return ok
	})
	return addr, &stderr
}

// TestServeTLSVersionsAndSuites checks that TLS 1.1, and TLS 1.2 without an ECDHE AEAD
// suite, are refused, and TLS 1.2 and 1.3 are served.
func TestServeTLSVersionsAndSuites(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "sluice test CA")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeServerCert(t, ca, "sluice", certFile, keyFile)
	addr, _ := startTLSServe(t, certFile, keyFile, "")
	for _, tt := range []struct {
		name   string
		conf   *tls.Config
		served bool
	}{
		{"TLS 1.1", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, false},
		{"TLS 1.2 CBC", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}}, false},
		{"TLS 1.2", &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}, true},
		{"TLS 1.3", &tls.Config{MinVersion: tls.VersionTLS13}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.conf.RootCAs = ca.pool
			c, err := tls.Dial("tcp", addr, tt.conf)
			if err == nil {
				c.Close()
			}
			if (err == nil) != tt.served {
				t.Fatalf("handshake: %v, want served %v", err, tt.served)
			}
		})
	}
}

// servedCert returns the common name of the certificate the server at addr presents.
func servedCert(t *testing.T, addr string, pool *x509.CertPool) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// TestServeTLSReload replaces the certificate files and sends SIGHUP: new connections get the
// new certificate; files that do not load leave it in service, and the log says why.
func TestServeTLSReload(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "sluice test CA")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeServerCert(t, ca, "first", certFile, keyFile)
	addr, log := startTLSServe(t, certFile, keyFile, "")
	if got := servedCert(t, addr, ca.pool); got != "first" {
		t.Fatalf("serving %q, want first", got)
	}
	writeServerCert(t, ca, "second", certFile, keyFile)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload", func() bool { return strings.Contains(log.String(), "TLS certificate reloaded") })
	if got := servedCert(t, addr, ca.pool); got != "second" {
		t.Fatalf("serving %q after the reload, want second", got)
	}
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refused reload", func() bool { return strings.Contains(log.String(), "TLS certificate not reloaded") })
	if !strings.Contains(log.String(), "tls-key") {
		t.Fatalf("the log does not say why: %s", log.String())
	}
	if got := servedCert(t, addr, ca.pool); got != "second" {
		t.Fatalf("serving %q after a refused reload, want second", got)
	}
}

// TestServeTLSClientCA checks that with --tls-client-ca a client without a certificate, or
// with one its CA did not sign, is refused, and one with a certificate it signed is served.
func TestServeTLSClientCA(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA, otherCA := newTestCA(t, "server CA"), newTestCA(t, "client CA"), newTestCA(t, "other CA")
	certFile, keyFile, caFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "clients.pem")
	writeServerCert(t, serverCA, "sluice", certFile, keyFile)
	if err := os.WriteFile(caFile, clientCA.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	addr, _ := startTLSServe(t, certFile, keyFile, caFile)
	_, _, signed := issue(t, clientCA, "app", false, true)
	_, _, unsigned := issue(t, otherCA, "intruder", false, true)
	get := func(certs []tls.Certificate) error {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverCA.pool, Certificates: certs}}}
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://" + addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("healthz: %d", resp.StatusCode)
		}
		return nil
	}
	if err := get(nil); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	if err := get([]tls.Certificate{unsigned}); err == nil {
		t.Fatal("a client with a certificate of another CA was served")
	}
	if err := get([]tls.Certificate{signed}); err != nil {
		t.Fatalf("a client with a certificate of the client CA: %v", err)
	}
}

func TestServeTLSClientCAFlags(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "sluice test CA")
	certFile, keyFile, junk := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "junk.pem")
	writeServerCert(t, ca, "sluice", certFile, keyFile)
	if err := os.WriteFile(junk, []byte("no certificate here"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		cert, key, ca, want string
	}{
		{"", "", certFile, "needs --tls-cert"},
		{certFile, keyFile, junk, "no PEM certificate"},
		{certFile, keyFile, filepath.Join(dir, "missing.pem"), "--tls-client-ca"},
	} {
		if _, _, err := loadTLS(tt.cert, tt.key, tt.ca); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("loadTLS(%q, %q, %q): %v, want %q", tt.cert, tt.key, tt.ca, err, tt.want)
		}
	}
}

func TestConnLimitFlags(t *testing.T) {
	fs := newFlagSet("serve", "", &strings.Builder{})
	l := addConnLimitFlags(fs)
	if err := fs.Parse([]string{"--max-conns", "100", "--max-conns-per-ip", "0", "--max-inflight-bytes", "1048576", "--max-concurrent-requests", "0", "--header-timeout", "3s"}); err != nil {
		t.Fatal(err)
	}
	o := l.options(server.Options{})
	if o.MaxConns != 100 || o.MaxConnsPerIP >= 0 || o.MaxInflightBytes != 1<<20 || o.MaxConcurrentRequests >= 0 || o.HeaderTimeout != 3*time.Second ||
		o.ReadTimeout != 60*time.Second || o.IdleTimeout != 120*time.Second {
		t.Fatalf("options %+v", o)
	}
	if d := defaultConnLimits().options(server.Options{}); d.MaxConnsPerIP != 512 || d.MaxInflightBytes != 0 || d.MaxConcurrentRequests != 1024 {
		t.Fatalf("default options %+v", d)
	}
}

// TestServeTLSClientCAReload replaces the --tls-client-ca file and sends SIGHUP: new
// connections are checked against the new CAs (a client of the old CA is refused, one of
// the new CA served); a file without a certificate leaves the CAs loaded before in service,
// and the log says why.
func TestServeTLSClientCAReload(t *testing.T) {
	dir := t.TempDir()
	serverCA, oldCA, newCA := newTestCA(t, "server CA"), newTestCA(t, "old client CA"), newTestCA(t, "new client CA")
	certFile, keyFile, caFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "clients.pem")
	writeServerCert(t, serverCA, "sluice", certFile, keyFile)
	if err := os.WriteFile(caFile, oldCA.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	addr, log := startTLSServe(t, certFile, keyFile, caFile)
	_, _, oldClient := issue(t, oldCA, "old app", false, true)
	_, _, newClient := issue(t, newCA, "new app", false, true)
	served := func(cert tls.Certificate) bool {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: serverCA.pool, Certificates: []tls.Certificate{cert}})
		if err != nil {
			return false
		}
		defer c.Close()
		// TLS 1.3 reports a refused client certificate on the first read.
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			return false
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && strings.HasPrefix(line, "HTTP/1.1 200")
	}
	if !served(oldClient) || served(newClient) {
		t.Fatal("before the reload: want the old CA's client served and the new CA's refused")
	}
	hup := func(what, logged string) {
		t.Helper()
		before := strings.Count(log.String(), logged)
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, what, func() bool { return strings.Count(log.String(), logged) > before })
	}
	if err := os.WriteFile(caFile, newCA.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	hup("the reload", "TLS certificate reloaded")
	if served(oldClient) || !served(newClient) {
		t.Fatal("after the reload: want the new CA's client served and the old CA's refused")
	}
	if err := os.WriteFile(caFile, []byte("no certificate here"), 0o600); err != nil {
		t.Fatal(err)
	}
	hup("the refused reload", "TLS certificate not reloaded")
	if !strings.Contains(log.String(), "no PEM certificate") {
		t.Fatalf("the log does not say why: %s", log.String())
	}
	if served(oldClient) || !served(newClient) {
		t.Fatal("after a refused reload: want the CAs loaded before still in service")
	}
}
