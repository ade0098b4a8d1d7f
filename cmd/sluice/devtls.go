package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
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
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{Subject: pkix.Name{CommonName: "sluice dev-cluster CA"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.Add(devCertLife), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := signDevCert(caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	if err := writePEM(f.ca(), "CERTIFICATE", caDER); err != nil {
		return err
	}
	for n := 1; n <= nodes; n++ {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		der, err := signDevCert(&x509.Certificate{Subject: pkix.Name{CommonName: fmt.Sprintf("sluice dev-cluster node %d", n)},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(devCertLife), KeyUsage: x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}}, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(f.cert(n), "CERTIFICATE", der); err != nil {
			return err
		}
		if err := writePEM(f.key(n), "PRIVATE KEY", keyDER); err != nil {
			return err
		}
	}
	return nil
}

// signDevCert gives tmpl a random serial number and returns it signed by parent's key.
func signDevCert(tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, parentKey *ecdsa.PrivateKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
}

// writePEM writes one PEM block of typ holding der to file, readable by its owner only.
func writePEM(file, typ string, der []byte) error {
	return os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
