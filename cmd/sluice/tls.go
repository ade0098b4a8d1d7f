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

// certReloader serves the certificate of --tls-cert and --tls-key and loads it again on
// reload (SIGHUP): new connections get the new one, and a file that fails to load leaves
// the one loaded before in service.
type certReloader struct {
	certFile, keyFile string
	// cert is written by load (the serve loop) and read by every TLS handshake.
	cert atomic.Pointer[tls.Certificate]
}

// load reads the certificate and key files and, if they make a pair, serves them from now on.
func (r *certReloader) load() error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("--tls-cert, --tls-key: %v", err)
	}
	r.cert.Store(&cert)
	return nil
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cert.Load(), nil
}

// loadTLS reads the certificate and key given by --tls-cert and --tls-key (both or neither:
// nil, for plaintext) and the CA certificates of --tls-client-ca, which, when given, every
// client must present a certificate signed by. It returns the server's TLS configuration and
// the reloader of its certificate.
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
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.load(); err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: tlsCipherSuites, GetCertificate: r.getCertificate}
	if clientCA != "" {
		pem, err := os.ReadFile(clientCA)
		if err != nil {
			return nil, nil, fmt.Errorf("--tls-client-ca: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("--tls-client-ca %s: no PEM certificate in the file", clientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, r, nil
}
