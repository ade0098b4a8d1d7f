package pki

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestIssueVerifies: a leaf Issue makes verifies against its CA's pool for its IP address
// and host name and usage, not for another host, nor against another CA; its files are
// owner-only and load as a key pair.
func TestIssueVerifies(t *testing.T) {
	ca, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := Issue(ca, "node", time.Hour, []string{"127.0.0.1", "localhost"}, x509.ExtKeyUsageServerAuth)
	if err != nil {
		t.Fatal(err)
	}
	usage := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: host, KeyUsages: usage}); err != nil {
			t.Errorf("for %s: %v", host, err)
		}
	}
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "127.0.0.2", KeyUsages: usage}); err == nil {
		t.Error("verified for a host it does not name")
	}
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: other.Pool(), DNSName: "localhost", KeyUsages: usage}); err == nil {
		t.Error("verified against another CA")
	}
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "localhost",
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("verified as a client certificate")
	}
	if leaf.Cert.SerialNumber.Cmp(ca.Cert.SerialNumber) == 0 {
		t.Error("the leaf has its CA's serial number")
	}

	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := leaf.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{certFile, keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(f), st.Mode().Perm())
		}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(pair.Certificate[0]) != string(leaf.Cert.Raw) || string(leaf.Leaf().Certificate[0]) != string(leaf.Cert.Raw) {
		t.Error("the files or Leaf hold another certificate")
	}
}
