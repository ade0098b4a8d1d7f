package client

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/server/wire"
)

// ShardLeaders returns the API address (host:port) of the node leading each shard of stream,
// by shard index, as the node the client talks to knows them: the native leaders request
// (docs/PROTOCOL.md), authorised as ListShards. A server that is not a node of a cluster
// answers none: everything goes to it. A shard in an election is absent, and so is one whose
// leader's address has no host a client can dial (a node listening on every interface,
// [::]:4567): the node the client talks to forwards such a shard's records.
func (c *Client) ShardLeaders(ctx context.Context, stream string) (map[uint32]string, error) {
	if stream == "" || len(stream) > wire.MaxNameLen {
		return nil, fmt.Errorf("sluice leaders: stream name of %d bytes: %w", len(stream), ErrValidation)
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	c.nativeRequest(req, wire.PathLeaders, wire.AppendLeadersRequest(nil, stream))
	if err := c.do(ctx, req, resp); err != nil {
		return nil, fmt.Errorf("sluice leaders: %w", err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return nil, nativeError("leaders", resp)
	}
	out := map[uint32]string{}
	err := wire.ReadLeaders(resp.Body(), func(l wire.ShardLeader) {
		if dialable(l.Addr) {
			out[l.Shard] = string(l.Addr)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("sluice leaders: %w: %v", ErrBadAnswer, err)
	}
	return out, nil
}

// dialable reports whether addr is host:port with a host a client can dial: not empty and
// not an unspecified address (0.0.0.0, ::).
func dialable(addr []byte) bool {
	host, port, err := net.SplitHostPort(string(addr))
	if err != nil || host == "" || port == "" {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err != nil || !ip.IsUnspecified()
}

// node returns the client of the cluster node at addr (host:port): c itself for "" or c's
// own host, else a client made on first use with c's configuration, scheme and credentials
// (its requests name, and are signed for, its own host), closed with c.
func (c *Client) node(addr string) *Client {
	if addr == "" || addr == c.host {
		return c
	}
	c.nodesMu.Lock()
	defer c.nodesMu.Unlock()
	if n := c.nodes[addr]; n != nil {
		return n
	}
	if c.closed.Load() {
		return c // refuses the request with ErrClosed
	}
	n := &Client{cfg: c.cfg, host: addr, tls: c.tls, log: c.log, signer: c.signer}
	scheme := "http://"
	if c.tls {
		scheme = "https://"
	}
	n.cfg.Endpoint = scheme + addr
	n.hc = newHostClient(&n.cfg, addr, n.tls)
	if c.nodes == nil {
		c.nodes = map[string]*Client{}
	}
	c.nodes[addr] = n
	return n
}
