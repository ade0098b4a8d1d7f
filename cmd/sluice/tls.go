package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// tlsCipherSuites are the TLS 1.2 suites served: ECDHE key exchange (forward secrecy) with
// an AEAD cipher, for ECDSA and RSA certificates. TLS 1.3 suites are not configurable and are
// all of this kind. Older versions are refused (tls.Config.MinVersion).
var tlsCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// certReloader serves the certificate of --tls-cert and --tls-key, checks client
// certificates against the CAs of --tls-client-ca, and loads the files again on reload
// (SIGHUP): new connections get the new ones, and files that fail to load leave those loaded
// before in service.
type certReloader struct {
	certFile, keyFile string
	caFile            string // "" when clients are not asked for a certificate
	// cert and cas are written by load (the serve loop) and read by every TLS handshake.
	cert atomic.Pointer[tls.Certificate]
	cas  atomic.Pointer[x509.CertPool]
}

// load reads the certificate and key files and the client CA file and, if they all load
// (a certificate and key that make a pair, at least one CA certificate), serves them from
// now on; otherwise nothing changes.
func (r *certReloader) load() error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("--tls-cert, --tls-key: %v", err)
	}
	var pool *x509.CertPool
	if r.caFile != "" {
		pem, err := os.ReadFile(r.caFile)
		if err != nil {
			return fmt.Errorf("--tls-client-ca: %v", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--tls-client-ca %s: no PEM certificate in the file", r.caFile)
		}
	}
	r.cert.Store(&cert)
	r.cas.Store(pool)
	return nil
}

// verifyClient checks a client's certificate chain against the client CAs loaded last, as
// tls.RequireAndVerifyClientCert checks it against a fixed tls.Config.ClientCAs: the leaf
// must chain to one of them through the other certificates the client sent, and be valid
// for client authentication.
func (r *certReloader) verifyClient(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	if len(rawCerts) == 0 {
		return errors.New("tls: client sent no certificate")
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return fmt.Errorf("tls: client certificate: %v", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: r.cas.Load(), Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// loadTLS reads the certificate and key given by --tls-cert and --tls-key (both or neither:
// nil, for plaintext) and the CA certificates of --tls-client-ca, which, when given, every
// client must present a certificate signed by. It returns the server's TLS configuration and
// the reloader of its files. The client CAs are not the configuration's ClientCAs, which are
// fixed: the handshake asks for any certificate and verifyClient checks it against the CAs
// loaded last.
func loadTLS(certFile, keyFile, clientCA string) (*tls.Config, *certReloader, error) {
	if (certFile == "") != (keyFile == "") {
		return nil, nil, errors.New("--tls-cert and --tls-key go together: give both or neither")
	}
	if certFile == "" {
		if clientCA != "" {
			return nil, nil, errors.New("--tls-client-ca needs --tls-cert and --tls-key")
		}
		return nil, nil, nil
	}
	r := &certReloader{certFile: certFile, keyFile: keyFile, caFile: clientCA}
	if err := r.load(); err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: tlsCipherSuites, GetCertificate: r.getCertificate}
	if clientCA != "" {
		cfg.ClientAuth, cfg.VerifyPeerCertificate = tls.RequireAnyClientCert, r.verifyClient
	}
	return cfg, r, nil
}
