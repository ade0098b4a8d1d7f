package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
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
	// peers is set in cluster mode (usePeerTLS): load then also makes the TLS client
	// configuration the node reaches its peers with; peerCAFile is --peer-ca ("": the
	// system roots and caFile's CAs); peerHost is the host of the node's peer address,
	// which its certificate must name (checkOwnCert).
	peers      bool
	peerCAFile string
	peerHost   string
	// cert and cas are written by load (the serve loop) and read by every TLS handshake;
	// peer is written by load and read by every connection the node makes to a peer.
	cert atomic.Pointer[tls.Certificate]
	cas  atomic.Pointer[x509.CertPool]
	peer atomic.Pointer[tls.Config]
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
		if pool, err = readCAs(x509.NewCertPool(), "--tls-client-ca", r.caFile); err != nil {
			return err
		}
	}
	var peer *tls.Config
	if r.peers {
		if peer, err = r.peerConfig(cert); err != nil {
			return err
		}
	}
	r.cert.Store(&cert)
	r.cas.Store(pool)
	r.peer.Store(peer)
	return nil
}

// readCAs adds the PEM certificates of file (given by flag) to pool and returns it; a file
// without one is an error.
func readCAs(pool *x509.CertPool, flag, file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", flag, err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate in the file", flag, file)
	}
	return pool, nil
}

// peerConfig returns the TLS client configuration of the node's requests to its peers:
// the peer's certificate is checked against the CAs of --peer-ca or, without it, the
// system roots and the CAs of --tls-client-ca (cluster.ReplicationConfig.PeerTLS checks
// that it names the peer's host); cert, the node's own, is presented to a peer that asks
// for a client certificate (one given --tls-client-ca).
func (r *certReloader) peerConfig(cert tls.Certificate) (*tls.Config, error) {
	var roots *x509.CertPool
	var err error
	switch {
	case r.peerCAFile != "":
		roots, err = readCAs(x509.NewCertPool(), "--peer-ca", r.peerCAFile)
	default:
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool() // no system roots: only --tls-client-ca's, if any
		}
		if r.caFile != "" {
			roots, err = readCAs(roots, "--tls-client-ca", r.caFile)
		}
	}
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: tlsCipherSuites, RootCAs: roots,
		Certificates: []tls.Certificate{cert}}, nil
}

// peerTLS returns the TLS client configuration loaded last, for
// cluster.ReplicationConfig.PeerTLS.
func (r *certReloader) peerTLS() *tls.Config { return r.peer.Load() }

// usePeerTLS makes a cluster node (cluster set) serving TLS (certs not nil) reach its peers
// over TLS too, checking their certificates against the CAs of peerCA (--peer-ca; "": the
// system roots and --tls-client-ca's), reloaded with the rest on SIGHUP. peerHost is the
// host of the node's own peer address (--peer-addr, else --addr).
func usePeerTLS(certs *certReloader, cluster bool, peerCA, peerHost string) error {
	if certs == nil || !cluster {
		if peerCA != "" {
			return errors.New("--peer-ca needs --cluster-etcd and --tls-cert")
		}
		return nil
	}
	certs.peers, certs.peerCAFile, certs.peerHost = true, peerCA, peerHost
	return certs.load()
}

// checkOwnCert checks the node's own certificate as its peers check it when they are given
// the same CAs: against the peer CAs loaded last, for the host of the node's peer address
// (unless that host is empty or unspecified, 0.0.0.0 or ::), for serving and, with
// --tls-client-ca, as a client certificate. An error means that peers configured like this
// node refuse it: the node logs it as a warning at start and at each reload, since the
// failed connections themselves are logged at debug level only.
func (r *certReloader) checkOwnCert() error {
	cert, peer := r.cert.Load(), r.peer.Load()
	if cert == nil || peer == nil || len(cert.Certificate) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return err
	}
	inter := x509.NewCertPool()
	for _, raw := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(raw); err == nil {
			inter.AddCert(c)
		}
	}
	host := r.peerHost
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = ""
	}
	usages := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	if r.caFile != "" {
		usages = append(usages, x509.ExtKeyUsageClientAuth)
	}
	for _, u := range usages {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: peer.RootCAs, Intermediates: inter, DNSName: host,
			KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			return err
		}
	}
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
