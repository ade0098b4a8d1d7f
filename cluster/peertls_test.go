package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/internal/pki"
)

// TestPeerTransportTLS checks the transport of a node's requests to its peers over TLS: it
// reaches a peer whose certificate a CA of the configuration PeerTLS returns signed, for the
// host dialled (127.0.0.1); it takes the configuration again at the next connection, so a
// CA pool without that CA is refused, as a failed dial (Forward's notSent: nothing was
// sent); it does not modify the configuration it was given; and the peers' URLs are https
// with PeerTLS, http without.
func TestPeerTransportTLS(t *testing.T) {
	ca, err := pki.NewCA("peer CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := pki.Issue(ca, "peer", time.Hour, []string{"127.0.0.1"}, x509.ExtKeyUsageServerAuth)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf.Leaf()}}
	srv.StartTLS()
	defer srv.Close()
	trusted := ca.Pool()
	var cur atomic.Pointer[tls.Config]
	cur.Store(&tls.Config{RootCAs: trusted})
	tr := peerTransport(func() *tls.Config { return cur.Load() })
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	r := &Replication{cfg: ReplicationConfig{PeerTLS: func() *tls.Config { return cur.Load() }}}
	url := r.peerURL(Node{Addr: "127.0.0.1:1", PeerAddr: srv.Listener.Addr().String()}, "/peer")
	if want := "https://" + srv.Listener.Addr().String() + "/peer"; url != want {
		t.Fatalf("peerURL: %q, want %q", url, want)
	}
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatalf("a peer of the trusted CA: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("a peer of the trusted CA answered %s", resp.Status)
	}
	if cur.Load().ServerName != "" {
		t.Fatalf("the dial set ServerName %q in the configuration it was given", cur.Load().ServerName)
	}

	cur.Store(&tls.Config{RootCAs: x509.NewCertPool()})
	tr.CloseIdleConnections()
	_, err = hc.Get(url)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) || !notSent(err) {
		t.Fatalf("a peer of a CA no longer trusted: %v, want an unknown authority refused as a failed dial", err)
	}

	plain := &Replication{}
	if got, want := plain.peerURL(Node{Addr: "10.0.0.1:4567"}, ForwardPath), "http://10.0.0.1:4567"+ForwardPath; got != want {
		t.Fatalf("peerURL without PeerTLS: %q, want %q", got, want)
	}
}
