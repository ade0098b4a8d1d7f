package client

import (
	"context"
	"errors"
	"time"
)

// leadersEvery is how often a Producer in cluster mode asks for the shards' leaders while it
// sends, to follow leader changes, and how long an address it could not reach is not used.
const leadersEvery = 2 * time.Second

// leaders is where a Producer sends each shard's records: in cluster mode the node leading
// the shard, as the last leaders answer (Client.ShardLeaders) told; otherwise, and for a
// shard with no known leader, the client's endpoint, which forwards what it does not lead.
// A stale entry costs a hop, never a record. Guarded by Producer.mu.
type leaders struct {
	addr       map[uint32]string    // shard → host:port of its leader; absent: the endpoint
	clustered  bool                 // the last answer named leaders: ask again every leadersEvery
	at         time.Time            // when the last leaders request started
	refreshing bool                 // a leaders request is running
	avoid      map[string]time.Time // leaders a request failed to reach, not used before the time
}

// of returns the destination of shard's records: its leader's host:port, or "" for the
// client's endpoint.
func (l *leaders) of(shard uint32) string {
	if len(l.addr) == 0 { // a single node: no lookup
		return ""
	}
	return l.addr[shard]
}

// set takes a leaders answer at now. The client's endpoint (self) is left out, since its
// records go there anyway, and so are the addresses still avoided.
func (l *leaders) set(answer map[uint32]string, self string, now time.Time) {
	for a, until := range l.avoid {
		if !now.Before(until) {
			delete(l.avoid, a)
		}
	}
	l.clustered = len(answer) > 0
	l.addr = make(map[uint32]string, len(answer))
	for shard, a := range answer {
		if _, avoided := l.avoid[a]; a != self && !avoided {
			l.addr[shard] = a
		}
	}
}

// forget drops the leader at addr, which a request failed to reach, and avoids it for
// leadersEvery: the node the client talks to may still name it until an election ends.
func (l *leaders) forget(addr string, now time.Time) {
	for shard, a := range l.addr {
		if a == addr {
			delete(l.addr, shard)
		}
	}
	if l.avoid == nil {
		l.avoid = map[string]time.Time{}
	}
	l.avoid[addr] = now.Add(leadersEvery)
}

// followLeadersLocked learns what the answer of a request to dest, or err that replaced it,
// tells about the leaders: a request to a leader that failed on the way (connection refused
// or reset, a timeout) forgets that leader and asks for the leaders at once; otherwise, in
// cluster mode, they are asked again every leadersEvery while the producer sends. p.mu must
// be held.
func (p *Producer) followLeadersLocked(dest string, err error, now time.Time) {
	if dest != "" && errors.Is(err, errTransport) {
		p.stats.LeaderFailures++
		p.c.log.Warn("sluice producer: a shard leader is unreachable, sending through the endpoint", "stream", p.stream, "leader", dest, "err", err)
		p.leaders.forget(dest, now)
		p.refreshLeadersLocked(now)
		return
	}
	if p.leaders.clustered && now.Sub(p.leaders.at) >= leadersEvery {
		p.refreshLeadersLocked(now)
	}
}

// refreshLeadersLocked asks for the shards' leaders in the background, unless a request for
// them is running. p.mu must be held.
func (p *Producer) refreshLeadersLocked(now time.Time) {
	if p.leaders.refreshing || p.stopping || p.cfg.EndpointOnly {
		return
	}
	p.leaders.refreshing, p.leaders.at = true, now
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), p.c.cfg.RequestTimeout)
		answer, err := p.c.ShardLeaders(ctx, p.stream)
		cancel()
		p.mu.Lock()
		defer p.mu.Unlock()
		p.leaders.refreshing = false
		if err == nil {
			p.leaders.set(answer, p.c.host, time.Now())
		}
	}()
}
