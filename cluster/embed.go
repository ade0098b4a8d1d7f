package cluster

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Embedded is an etcd server running in this process, one member on loopback: what
// `sluice dev-cluster` and the tests run. A production cluster points its nodes at an
// external etcd cluster instead (--cluster-etcd).
type Embedded struct {
	etcd      *embed.Etcd
	cfg       EmbeddedConfig // with the URLs it listens on
	endpoints []string
}

// EmbeddedConfig configures StartEmbedded.
type EmbeddedConfig struct {
	Dir string // etcd's data directory
	// ClientURL and PeerURL are where it listens (http://127.0.0.1:PORT); empty: a free
	// loopback port each.
	ClientURL, PeerURL string
	// CertFile and KeyFile, when set, serve the client URL with TLS (an https:// URL):
	// etcd's --cert-file and --key-file. With ClientCertAuth, a client must present a
	// certificate signed by a CA of TrustedCAFile (--client-cert-auth, --trusted-ca-file).
	CertFile, KeyFile, TrustedCAFile string
	ClientCertAuth                   bool
	// BcryptCost is the cost of the hash of the passwords of etcd's users (--bcrypt-cost);
	// 0: etcd's default, 10.
	BcryptCost uint
	// LogLevel is etcd's own log level (its logger writes to standard error); default
	// "fatal": etcd logs errors of its own orderly shutdown.
	LogLevel string
}

// StartEmbedded starts a single-member etcd in cfg.Dir and waits until it serves.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	var err error
	if cfg.ClientURL == "" {
		if cfg.ClientURL, err = freeLoopbackURL(); err != nil {
			return nil, err
		}
		if cfg.CertFile != "" {
			cfg.ClientURL = "https" + strings.TrimPrefix(cfg.ClientURL, "http")
		}
	}
	if cfg.PeerURL == "" {
		if cfg.PeerURL, err = freeLoopbackURL(); err != nil {
			return nil, err
		}
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "fatal"
	}
	cu, err := url.Parse(cfg.ClientURL)
	if err != nil {
		return nil, err
	}
	pu, err := url.Parse(cfg.PeerURL)
	if err != nil {
		return nil, err
	}
	ec := embed.NewConfig()
	ec.Name = "sluice"
	ec.Dir = cfg.Dir
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.LogLevel = cfg.LogLevel
	if cfg.BcryptCost != 0 {
		ec.BcryptCost = cfg.BcryptCost
	}
	ec.ClientTLSInfo.CertFile, ec.ClientTLSInfo.KeyFile = cfg.CertFile, cfg.KeyFile
	ec.ClientTLSInfo.TrustedCAFile, ec.ClientTLSInfo.ClientCertAuth = cfg.TrustedCAFile, cfg.ClientCertAuth
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("cluster: embedded etcd: %w", err)
	case <-time.After(30 * time.Second):
		e.Close()
		return nil, fmt.Errorf("cluster: embedded etcd did not become ready in 30s")
	}
	return &Embedded{etcd: e, cfg: cfg, endpoints: []string{cfg.ClientURL}}, nil
}

// Endpoints returns the client URLs, for Config.Endpoints.
func (e *Embedded) Endpoints() []string { return e.endpoints }

// Config returns the configuration that starts this server again on the same directory and
// ports (after Close).
func (e *Embedded) Config() EmbeddedConfig { return e.cfg }

// Err reports the server's fatal errors.
func (e *Embedded) Err() <-chan error { return e.etcd.Err() }

// Close stops the server.
func (e *Embedded) Close() { e.etcd.Close() }

// freeLoopbackURL returns http://127.0.0.1:PORT for a port free a moment ago.
func freeLoopbackURL() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return "http://" + l.Addr().String(), nil
}
