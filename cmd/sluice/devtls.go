package main

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-streams/sluice/internal/pki"
)

// devCertLife is how long the certificates of `sluice dev-cluster --tls` are valid.
const devCertLife = 30 * 24 * time.Hour

// devTLSFiles are the files `sluice dev-cluster --tls` writes under DIR/tls.
type devTLSFiles struct{ dir string }

func (f devTLSFiles) ca() string { return filepath.Join(f.dir, "ca.pem") }
func (f devTLSFiles) cert(node int) string {
	return filepath.Join(f.dir, fmt.Sprintf("node-%d.pem", node))
}
func (f devTLSFiles) key(node int) string {
	return filepath.Join(f.dir, fmt.Sprintf("node-%d-key.pem", node))
}

// serveArgs are the flags of node's serve: its certificate and key, and the CA the other
// nodes' certificates are checked against.
func (f devTLSFiles) serveArgs(node int) []string {
	return []string{"--tls-cert", f.cert(node), "--tls-key", f.key(node), "--peer-ca", f.ca()}
}

// writeDevTLS makes a throwaway CA and, for nodes 1 … nodes, a certificate it signs for
// 127.0.0.1 and localhost, valid for serving and as a client certificate, and writes the
// CA's certificate, each node's certificate and each node's key (0600) to f.dir, replacing
// what was there. The CA's key is never written: no other certificate can be made under it.
func writeDevTLS(f devTLSFiles, nodes int) error {
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return err
	}
	ca, err := pki.NewCA("sluice dev-cluster CA", devCertLife)
	if err != nil {
		return err
	}
	if err := pki.WriteCert(f.ca(), ca.Cert); err != nil {
		return err
	}
	for n := 1; n <= nodes; n++ {
		node, err := pki.Issue(ca, fmt.Sprintf("sluice dev-cluster node %d", n), devCertLife, []string{"127.0.0.1", "localhost"},
			x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
		if err != nil {
			return err
		}
		if err := node.WriteFiles(f.cert(n), f.key(n)); err != nil {
			return err
		}
	}
	return nil
}
