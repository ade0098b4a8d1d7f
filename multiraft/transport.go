package multiraft

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// transport batches the messages of every group to each peer and sends them, one POST at
// a time per peer, from one sender goroutine per peer. The loop never waits for a peer:
// it appends to the peer's queue (bounded by Config.MaxBatchBytes; over it, the messages
// are dropped and raft is told the peer is unreachable) and goes on.
//
// Raft invariants relied on: raft tolerates lost, duplicated and reordered messages
// (retransmitting appends and heartbeats), so dropping is safe; messages are only queued
// after their group's Persist returned (Host.handleReady), so nothing leaves the node
// before the state it depends on is durable.
type transport struct {
	h *Host

	// out is the loop's per-peer buffer of the current iteration; owned by the loop.
	out map[uint64]*outbox

	// mu guards peers (written by SetPeer and close, read by the loop in flush).
	mu     sync.Mutex
	peers  map[uint64]*peer
	closed bool
	wg     sync.WaitGroup
}

// outbox is what one iteration of the loop has for one peer.
type outbox struct {
	buf    []byte
	n      int       // records in buf
	groups []GroupID // groups with a message in buf, for ReportUnreachable
	snaps  []GroupID // groups with a MsgSnap in buf, for ReportSnapshot
}

func (o *outbox) reset() {
	o.buf, o.n, o.groups, o.snaps = o.buf[:0], 0, o.groups[:0], o.snaps[:0]
}

func (o *outbox) addGroup(g GroupID) {
	if k := len(o.groups); k == 0 || o.groups[k-1] != g {
		o.groups = append(o.groups, g)
	}
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
	return &transport{h: h, out: make(map[uint64]*outbox), peers: make(map[uint64]*peer)}
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
	o.n++
	o.addGroup(g.id)
	if m.GetType() == raftpb.MsgSnap {
		o.snaps = append(o.snaps, g.id)
	}
}

// queueQuiesce adds a quiesce record to this iteration's batch for q.to. Loop only.
func (t *transport) queueQuiesce(g GroupID, q quiesce) {
	o := t.outboxFor(q.to)
	o.buf = appendQuiesce(o.buf, g, q)
	o.n++
}

// flush hands every peer's batch of this iteration to its sender. Loop only.
func (t *transport) flush() {
	for to, o := range t.out {
		if o.n == 0 {
			continue
		}
		t.mu.Lock()
		p := t.peers[to]
		t.mu.Unlock()
		ok := false
		if p != nil {
			p.mu.Lock()
			if len(p.q.buf)+len(o.buf)+1 <= t.h.cfg.MaxBatchBytes {
				p.q.buf = append(p.q.buf, o.buf...)
				p.q.n += o.n
				p.q.groups = append(p.q.groups, o.groups...)
				p.q.snaps = append(p.q.snaps, o.snaps...)
				ok = true
			}
			p.mu.Unlock()
		}
		if ok {
			t.h.stats.sent.Add(uint64(o.n))
			select {
			case p.kick <- struct{}{}:
			default:
			}
		} else {
			t.h.stats.dropped.Add(uint64(o.n))
			t.h.reportFailure(to, o.groups, o.snaps)
		}
		o.reset()
	}
}

// reportFailure tells raft that messages of groups to node to were lost. Loop only.
func (h *Host) reportFailure(to uint64, groups, snaps []GroupID) {
	for _, id := range groups {
		if g := h.groups[id]; g != nil && g.err == nil {
			g.rn.ReportUnreachable(to)
		}
	}
	for _, id := range snaps {
		if g := h.groups[id]; g != nil && g.err == nil {
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
		if cur.n == 0 {
			continue
		}
		body = append(append(body[:0], batchVersion), cur.buf...)
		err := t.post(addr, body)
		h := t.h
		h.stats.posts.Add(1)
		h.stats.bytesSent.Add(uint64(len(body)))
		if err != nil {
			h.stats.postErrors.Add(1)
			h.stats.dropped.Add(uint64(cur.n))
			h.log.Debug("multiraft: send failed", "peer", p.id, "err", err)
		}
		groups, snaps := append([]GroupID(nil), cur.groups...), append([]GroupID(nil), cur.snaps...)
		if err != nil {
			_ = h.enqueue(func() { h.reportFailure(p.id, groups, snaps) })
		} else if len(snaps) > 0 {
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

// post sends one batch to addr and reads the answer to the end (so the connection is
// reused).
func (t *transport) post(addr string, body []byte) error {
	if addr == "" {
		return fmt.Errorf("no address")
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+RaftPath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", ContentType)
	resp, err := t.h.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("peer answered %s", resp.Status)
	}
	return nil
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
		if err := h.Receive(body); err != nil {
			status := http.StatusBadRequest
			if err == ErrClosed {
				status = http.StatusServiceUnavailable
			}
			http.Error(w, err.Error(), status)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
