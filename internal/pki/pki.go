// Package pki makes small certificate authorities and the certificates they sign, with
// ECDSA P-256 keys: the throwaway CA of `sluice dev-cluster --tls`, and the CAs of the tests
// that run TLS (a server's, etcd's, the nodes' own). It is the standard library's crypto/x509
// put together once: a CA, a leaf for some hosts and usages, and PEM files readable by their
// owner only.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"time"
)

// Cert is a certificate and its private key.
type Cert struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// Leaf is the certificate as crypto/tls serves or presents it.
func (c *Cert) Leaf() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.Cert.Raw}, PrivateKey: c.Key, Leaf: c.Cert}
}

// Pool is a pool holding c's certificate alone: the roots of whoever trusts c as a CA.
func (c *Cert) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.Cert)
	return p
}

// WriteFiles writes c's certificate and its key (PKCS #8) as PEM to certFile and keyFile,
// mode 0600.
func (c *Cert) WriteFiles(certFile, keyFile string) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.Key)
	if err != nil {
		return err
	}
	if err := WriteCert(certFile, c.Cert); err != nil {
		return err
	}
	return writePEM(keyFile, "PRIVATE KEY", keyDER)
}

// WriteCert writes cert as PEM to file, mode 0600.
func WriteCert(file string, cert *x509.Certificate) error {
	return writePEM(file, "CERTIFICATE", cert.Raw)
}

func writePEM(file, typ string, der []byte) error {
	return os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// Template is a certificate valid from an hour ago for life, for the host names and IP
// addresses in hosts and the extended key usages given, under common name cn. Change what
// else a test needs before Sign.
func Template(cn string, life time.Duration, hosts []string, usages ...x509.ExtKeyUsage) *x509.Certificate {
	now := time.Now()
	tmpl := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(life),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usages}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl
}

// NewCA makes a self-signed CA named cn, valid for life.
func NewCA(cn string, life time.Duration) (*Cert, error) {
	tmpl := Template(cn, life, nil)
	tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	return Sign(nil, tmpl)
}

// Issue makes a key and a certificate for it that ca signs, from Template's arguments.
func Issue(ca *Cert, cn string, life time.Duration, hosts []string, usages ...x509.ExtKeyUsage) (*Cert, error) {
	return Sign(ca, Template(cn, life, hosts, usages...))
}

// Sign makes a key and the certificate of tmpl for it, with a random serial number, signed
// by parent, or self-signed if parent is nil.
func Sign(parent *Cert, tmpl *x509.Certificate) (*Cert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128)); err != nil {
		return nil, err
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &Cert{Cert: cert, Key: key}, nil
}
