package main

import (
	"flag"
	"time"

	"github.com/sluice-streams/sluice/server"
)

// connLimits are the limits on what clients may make `sluice serve` hold (docs/SECURITY.md).
type connLimits struct {
	maxConns, maxConnsPerIP                 int
	maxConcurrentRequests                   int
	maxInflightBytes                        int64
	headerTimeout, readTimeout, idleTimeout time.Duration
}

// defaultConnLimits are the limits unless flags say otherwise.
func defaultConnLimits() connLimits {
	return connLimits{maxConns: 4096, maxConnsPerIP: 512, maxConcurrentRequests: 1024, headerTimeout: 10 * time.Second,
		readTimeout: 60 * time.Second, idleTimeout: 120 * time.Second}
}

// addConnLimitFlags defines the flags of connLimits on fs; the returned value holds them once
// fs is parsed.
func addConnLimitFlags(fs *flag.FlagSet) *connLimits {
	l := defaultConnLimits()
	fs.IntVar(&l.maxConns, "max-conns", l.maxConns, "most connections open at once, from all clients")
	fs.IntVar(&l.maxConnsPerIP, "max-conns-per-ip", l.maxConnsPerIP, "most connections open at once from one client address; 0 means no cap")
	fs.Int64Var(&l.maxInflightBytes, "max-inflight-bytes", l.maxInflightBytes, "most request body `bytes` held at once, counted as they arrive (more is refused with ServiceUnavailable); 0 means an eighth of the machine's memory, within 64 MiB and 4 GiB")
	fs.IntVar(&l.maxConcurrentRequests, "max-concurrent-requests", l.maxConcurrentRequests, "most requests executing at once, their bodies read (more are refused with ServiceUnavailable; subscriptions are not counted); 0 means no cap")
	fs.DurationVar(&l.headerTimeout, "header-timeout", l.headerTimeout, "longest a request's line and headers may take to arrive")
	fs.DurationVar(&l.readTimeout, "read-timeout", l.readTimeout, "longest a request's body may take to arrive")
	fs.DurationVar(&l.idleTimeout, "idle-timeout", l.idleTimeout, "longest a connection may wait for its next request")
	return &l
}

// options returns o with the limits set.
func (l connLimits) options(o server.Options) server.Options {
	o.MaxConns, o.MaxInflightBytes = l.maxConns, l.maxInflightBytes
	o.MaxConnsPerIP = l.maxConnsPerIP
	if o.MaxConnsPerIP == 0 {
		o.MaxConnsPerIP = -1 // no cap: the server's 0 is its default
	}
	o.MaxConcurrentRequests = l.maxConcurrentRequests
	if o.MaxConcurrentRequests == 0 {
		o.MaxConcurrentRequests = -1 // no cap: the server's 0 is its default
	}
	o.HeaderTimeout, o.ReadTimeout, o.IdleTimeout = l.headerTimeout, l.readTimeout, l.idleTimeout
	return o
}
