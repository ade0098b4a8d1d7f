package cluster

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"time"

	"github.com/sluice-streams/sluice/multiraft"
)

// peerTransport returns the one transport of the node's own requests to its peers (Raft
// batches, snapshot files, forwarded writes, remote reads, seals): plaintext when peerTLS
// is nil, else TLS, with the configuration peerTLS returns when each connection is made
// (ReplicationConfig.PeerTLS).
func peerTransport(peerTLS func() *tls.Config) *http.Transport {
	tr := &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: 90 * time.Second}
	if peerTLS != nil {
		tr.DialTLSContext = dialPeerTLS(peerTLS)
	}
	return tr
}

// dialPeerTLS returns a dialer of TLS connections to peers that takes its configuration
// from peerTLS at every dial, so that reloaded certificates and CAs apply to the next
// connection, and checks the peer's certificate against the host of the address dialled
// (an IP address or a DNS name of the peer's certificate). A failed handshake is returned
// as a failed dial (a *net.OpError of Op "dial"): no byte of a request was sent.
func dialPeerTLS(peerTLS func() *tls.Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cfg := peerTLS().Clone()
		cfg.ServerName = host
		c := tls.Client(raw, cfg)
		if err := c.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, &net.OpError{Op: "dial", Net: network, Addr: raw.RemoteAddr(), Err: err}
		}
		return c, nil
	}
}

// peerURL returns the URL of path on node n's peer address, https when the node reaches its
// peers over TLS.
func (r *Replication) peerURL(n Node, path string) string {
	return multiraft.PeerURL(r.cfg.PeerTLS != nil, n.Peer(), path)
}
