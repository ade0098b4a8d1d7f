package multiraft

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// transport batches the messages of every group to each peer and sends them, one POST at
// a time per peer, from one sender goroutine per peer. The loop never waits for a peer:
// it appends to the peer's queue (bounded by Config.MaxBatchBytes: the records that do not
// fit are dropped, and raft is told the peer is unreachable for their groups) and goes on.
// Close cancels the POSTs in flight.
//
// Raft invariants relied on: raft tolerates lost, duplicated and reordered messages
// (retransmitting appends and heartbeats), so dropping is safe; messages are only queued
// after their group's Persist returned (Host.handleReady), so nothing leaves the node
// before the state it depends on is durable.
type transport struct {
	h *Host

	// out is the loop's per-peer buffer of the current iteration; owned by the loop.
	out map[uint64]*outbox
	// pingDue is set by a tick: flush queues pings first (liveness.go). Loop only.
	pingDue bool

	// mu guards peers (written by SetPeer and close, read by the loop in flush).
	mu     sync.Mutex
	peers  map[uint64]*peer
	closed bool
	wg     sync.WaitGroup

	// ctx is cancelled by close, ending the POSTs in flight.
	ctx    context.Context
	cancel context.CancelFunc

	// fetchClient GETs snapshot files: Config.Client's transport without its Timeout (a
	// file may take longer than one batch; ctx bounds it).
	fetchClient *http.Client
}

// outbox is a batch being built for one peer: the loop's for the current iteration, or a
// peer's queue waiting for its sender.
type outbox struct {
	buf  []byte
	recs []record // one per record in buf, in order
}

// record locates one record of an outbox and says whose it is, for ReportUnreachable and
// ReportSnapshot when it is lost.
type record struct {
	end   int // offset in buf just past the record
	group GroupID
	snap  bool // a MsgSnap
}

func (o *outbox) reset() { o.buf, o.recs = o.buf[:0], o.recs[:0] }

// take moves o's longest prefix of records that keeps dst within limit bytes (counting
// the version byte) to dst, and returns the records that did not fit.
func (o *outbox) take(dst *outbox, limit int) (dropped []record) {
	base := len(dst.buf)
	k := 0
	for k < len(o.recs) && base+o.recs[k].end+1 <= limit {
		k++
	}
	if k > 0 {
		dst.buf = append(dst.buf, o.buf[:o.recs[k-1].end]...)
		for _, r := range o.recs[:k] {
			r.end += base
			dst.recs = append(dst.recs, r)
		}
	}
	return o.recs[k:]
}

// peer is one remote node and its sender goroutine.
type peer struct {
	id   uint64
	kick chan struct{} // capacity 1: q has something
	stop chan struct{}

	// mu guards addr and q. Writers: SetPeer (addr), the loop (appends to q), the sender
	// (takes q); reader of addr: the sender.
	mu   sync.Mutex
	addr string
	q    outbox
}

func newTransport(h *Host) *transport {
	ctx, cancel := context.WithCancel(context.Background())
	return &transport{h: h, out: make(map[uint64]*outbox), peers: make(map[uint64]*peer), ctx: ctx, cancel: cancel,
		fetchClient: &http.Client{Transport: h.cfg.Client.Transport}}
}

func (t *transport) setPeer(id uint64, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	p := t.peers[id]
	if p == nil {
		p = &peer{id: id, kick: make(chan struct{}, 1), stop: make(chan struct{})}
		t.peers[id] = p
		t.wg.Add(1)
		go t.send(p)
	}
	p.mu.Lock()
	p.addr = addr
	p.mu.Unlock()
}

func (t *transport) close() {
	t.mu.Lock()
	t.closed = true
	for _, p := range t.peers {
		close(p.stop)
	}
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
}

func (t *transport) outboxFor(to uint64) *outbox {
	o := t.out[to]
	if o == nil {
		o = &outbox{}
		t.out[to] = o
	}
	return o
}

// queue adds m, from group g, to this iteration's batch for m.To. Loop only.
func (t *transport) queue(g *group, m *raftpb.Message) {
	o := t.outboxFor(m.GetTo())
	buf, err := appendMessage(o.buf, g.id, m)
	if err != nil {
		// A raftpb.Message raft built always marshals; refuse to send a half record.
		panic(fmt.Sprintf("BUG: multiraft: marshalling a raft message: %v", err))
	}
	o.buf = buf
	o.recs = append(o.recs, record{end: len(buf), group: g.id, snap: m.GetType() == raftpb.MsgSnap})
}

// queueQuiesce adds a quiesce record to this iteration's batch for q.to. Loop only.
func (t *transport) queueQuiesce(g GroupID, q quiesce) {
	o := t.outboxFor(q.to)
	o.buf = appendQuiesce(o.buf, g, q)
	o.recs = append(o.recs, record{end: len(o.buf), group: g})
}

// flush hands every peer's batch of this iteration to its sender, as much of it as the
// peer's queue has room for; the rest is dropped. The end of an iteration flushes with
// pings (a tick's pings then go to the peers nothing else was queued for, in the same POST
// as everything else the iteration queued); the early flush of group commit's MsgApps does
// not, or a ping would leave alone, ahead of the batch it could have ridden in. Loop only.
func (t *transport) flush(pings bool) {
	if pings && t.pingDue {
		t.pingDue = false
		t.queuePings()
	}
	for to, o := range t.out {
		if len(o.recs) == 0 {
			continue
		}
		t.mu.Lock()
		p := t.peers[to]
		t.mu.Unlock()
		dropped := o.recs
		if p != nil {
			p.mu.Lock()
			dropped = o.take(&p.q, t.h.cfg.MaxBatchBytes)
			p.mu.Unlock()
			if n := len(o.recs) - len(dropped); n > 0 {
				t.h.stats.sent.Add(uint64(n))
				select {
				case p.kick <- struct{}{}:
				default:
				}
			}
		}
		if len(dropped) > 0 {
			t.h.stats.dropped.Add(uint64(len(dropped)))
			t.h.reportFailure(to, dropped)
		}
		o.reset()
	}
}

// reportFailure tells raft that the records recs to node to were lost: the peer is
// unreachable for their groups, and their snapshots failed. Loop only.
func (h *Host) reportFailure(to uint64, recs []record) {
	var last GroupID
	for i, r := range recs {
		g := h.groups[r.group]
		if g == nil || g.err != nil {
			continue
		}
		if i == 0 || r.group != last {
			g.rn.ReportUnreachable(to)
			last = r.group
		}
		if r.snap {
			g.rn.ReportSnapshot(to, raft.SnapshotFailure)
		}
	}
}

// send is p's sender goroutine: it takes whatever the loop queued for p since the last
// POST and sends it as one batch.
func (t *transport) send(p *peer) {
	defer t.wg.Done()
	var cur outbox
	body := make([]byte, 0, 4096)
	for {
		select {
		case <-p.stop:
			return
		case <-p.kick:
		}
		p.mu.Lock()
		addr := p.addr
		cur, p.q = p.q, cur
		p.q.reset()
		p.mu.Unlock()
		if len(cur.recs) == 0 {
			continue
		}
		body = append(append(body[:0], batchVersion), cur.buf...)
		status, err := t.post(addr, body)
		h := t.h
		h.stats.posts.Add(1)
		h.stats.bytesSent.Add(uint64(len(body)))
		if pl := h.live.get(p.id); pl != nil {
			pl.sendOK.Store(err == nil)
			if status == http.StatusAccepted {
				pl.heard.Store(true) // the peer vouched (liveness.go)
			}
		}
		if err != nil {
			h.stats.postErrors.Add(1)
			h.stats.dropped.Add(uint64(len(cur.recs)))
			h.log.Debug("multiraft: send failed", "peer", p.id, "err", err)
			lost := slices.Clone(cur.recs)
			_ = h.enqueue(func() { h.reportFailure(p.id, lost) })
			continue
		}
		var snaps []GroupID
		for _, r := range cur.recs {
			if r.snap {
				snaps = append(snaps, r.group)
			}
		}
		if len(snaps) > 0 {
			_ = h.enqueue(func() {
				for _, id := range snaps {
					if g := h.groups[id]; g != nil && g.err == nil {
						g.rn.ReportSnapshot(p.id, raft.SnapshotFinish)
					}
				}
			})
		}
	}
}

// PeerURL returns the URL of path on the peer at addr (host:port): https when tls is set,
// else http. It is the one place the nodes' own requests (Raft batches, snapshot files,
// forwarded writes, remote reads, seals) get their scheme.
func PeerURL(tls bool, addr, path string) string {
	if tls {
		return "https://" + addr + path
	}
	return "http://" + addr + path
}

// post sends one batch to addr, reads the answer to the end (so the connection is
// reused) and returns its status.
func (t *transport) post(addr string, body []byte) (int, error) {
	if addr == "" {
		return 0, fmt.Errorf("no address")
	}
	req, err := http.NewRequestWithContext(t.ctx, http.MethodPost, PeerURL(t.h.cfg.TLS, addr, RaftPath), bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set(LivenessHeader, livenessAnswers)
	resp, err := t.h.cfg.Client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("peer answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// Handler serves RaftPath with Receive, for a net/http server (the sluice server mounts
// Receive on its own fasthttp listener instead). It refuses bodies over MaxBatchBytes.
func (h *Host) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(h.cfg.MaxBatchBytes)+1))
		if err != nil {
			http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
			return
		}
		status, err := h.Answer(body, r.Header.Get(LivenessHeader))
		if err != nil {
			status := http.StatusBadRequest
			if errors.Is(err, ErrClosed) {
				status = http.StatusServiceUnavailable
			}
			http.Error(w, err.Error(), status)
			return
		}
		w.WriteHeader(status)
	})
}
