package etcdtest

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/internal/pki"
)

// PKI is a certificate authority made for one test and the certificates it signed, as PEM
// files in a temporary directory: etcd's server certificate, for 127.0.0.1 and localhost,
// and a client certificate. Two PKIs share nothing: one's CA does not verify the other's
// certificates.
type PKI struct {
	CA                    string // the CA's certificate
	ServerCert, ServerKey string
	ClientCert, ClientKey string // common name ClientCN
	pool                  *x509.CertPool
	client                tls.Certificate
}

// ClientCN is the common name of a PKI's client certificate. etcd with --client-cert-auth
// and auth enabled takes it as the user of a request that carries no token.
const ClientCN = "sluice"

// NewPKI makes a CA, a server and a client certificate, valid for an hour.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	p := &PKI{CA: filepath.Join(dir, "ca.pem"), ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem")}
	ca, err := pki.NewCA("sluice test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	server, err := pki.Issue(ca, "127.0.0.1", time.Hour, []string{"127.0.0.1", "localhost"}, x509.ExtKeyUsageServerAuth)
	if err != nil {
		t.Fatal(err)
	}
	client, err := pki.Issue(ca, ClientCN, time.Hour, nil, x509.ExtKeyUsageClientAuth)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{pki.WriteCert(p.CA, ca.Cert), server.WriteFiles(p.ServerCert, p.ServerKey), client.WriteFiles(p.ClientCert, p.ClientKey)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	p.pool, p.client = ca.Pool(), client.Leaf()
	return p
}

// ClientTLS returns a client's TLS configuration: the PKI's CA as its roots and, if
// withCert, its client certificate.
func (p *PKI) ClientTLS(withCert bool) *tls.Config {
	cfg := &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12}
	if withCert {
		cfg.Certificates = []tls.Certificate{p.client}
	}
	return cfg
}
