package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/multiraft"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/stream"
)

// Serving shards a node holds no replica of. With more nodes than replicas, a shard's
// placement names some of the nodes; on every other node OpenShardLog opens a remoteLog:
// a stream.ShardLog with no local data whose reads go to a replica over the peer read
// route (ReadPath, readwire.go) and whose appends are refused with the leader's Raft id
// (stream.LeaderLog), so that the server forwards the records to the leader as it does for
// a replica that does not lead. The engine's code for GetRecords, SubscribeToShard and the
// native get and subscribe is the same for both: it authenticates and authorizes the client
// on the node the client reached, then reads through the seam; the replica trusts the
// signed peer request.
//
// Which replica. A request goes first to the group's leader (the freshest replica: what it
// answers includes every acknowledged record), then to the other replicas of the placement
// in turn; a replica that does not hold the group answers 404 and the next is asked. When
// none answers, the placement is read again from etcd (at most every placementEvery) and
// the call fails: the engine turns it into an InternalFailure ("the shard's log failed"),
// which clients retry, with nothing of the cause.
//
// What is cached. Every answer carries the replica's tip, its time and the leader it knows.
// Tip answers from an answer younger than tipFresh, else asks; Leader from one younger than
// leaderFresh whose leader is a registered node, else asks. Changed is fed by the answers and,
// while someone takes it, by a long poll (wait until the tip passes the value the current
// channel was made at) that stops once nobody took the channel for watchIdle.
//
// Memory: an answer is read into one buffer sized by its Content-Length, refused above the
// request's own limits (maxBytes and one more record); the View aliases that buffer.
type remoteLog struct {
	r      *Replication
	stream string
	gen    uint64
	shard  stream.ShardID
	gid    multiraft.GroupID
	ctx    context.Context // ends at Close: every request is made under it
	cancel context.CancelFunc
	next   atomic.Uint32 // rotates the first follower asked

	askMu sync.Mutex // serialises the refreshes of the leader (Leader) among callers

	// mu guards the fields below; held only to read or write them, never across a request.
	mu         sync.Mutex
	closed     bool
	replicas   []uint64  // the placement's node ids
	placedAt   time.Time // when replicas was read
	leader     uint64    // the leader's Raft id in the last answer
	leaderAt   time.Time
	tip        uint64 // the highest tip any answer gave
	tipTime    int64
	tipAt      time.Time // when an answer last gave the tip
	changed    chan struct{}
	changedTip uint64    // the tip changed was made at: closed when tip passes it
	takenAt    time.Time // when Changed was last called
	watching   bool      // a watch goroutine runs
}

// Tuning of a remoteLog (see remoteLog).
const (
	remoteTimeout  = 5 * time.Second // a request to a replica, plus its long poll's wait
	tipFresh       = 100 * time.Millisecond
	leaderFresh    = time.Second
	placementEvery = 2 * time.Second
	watchIdle      = 15 * time.Second // above stream.HeartbeatInterval: a subscriber takes Changed at least that often
	watchBackoff   = 200 * time.Millisecond
)

// ReadPath is the peer route of reads from a shard's replica (server.PeerReadPath).
const ReadPath = "/sluice/v1/read"

// ErrRemoteRead is wrapped by the errors of a remoteLog whose replicas did not answer.
var ErrRemoteRead = errors.New("cluster: no replica of the shard answered")

var (
	_ stream.ShardLog  = (*remoteLog)(nil)
	_ stream.LeaderLog = (*remoteLog)(nil)
)

// openRemote opens the remoteLog of a shard whose placement p does not name this node, or
// whose replica here is not a voter yet (lifecycle.go). It asks nothing yet and creates no
// file.
func (r *Replication) openRemote(cfg stream.ShardLogConfig, p ShardPlacement) *remoteLog {
	ctx, cancel := context.WithCancel(context.Background())
	l := &remoteLog{r: r, stream: cfg.Stream, gen: cfg.Gen, shard: cfg.Shard, gid: GroupOf(cfg.Stream, cfg.Gen, cfg.Shard),
		ctx: ctx, cancel: cancel, replicas: slices.Clone(p.Replicas), placedAt: time.Now(), changed: make(chan struct{})}
	r.mu.Lock()
	if r.remotes == nil {
		r.remotes = map[multiraft.GroupID]*remoteLog{}
	}
	r.remotes[l.gid] = l
	r.mu.Unlock()
	r.log.Debug("shard served from its replicas on other nodes", "stream", cfg.Stream, "shard", cfg.Shard.String(), "replicas", p.Replicas)
	return l
}

// Append is refused: another node appends. The engine asks Leader first and does not call
// it; a call that comes anyway gets the same error.
func (l *remoteLog) Append(batch []segment.Record) error {
	if l.isClosed() {
		return segment.ErrClosed
	}
	lead, _ := l.Leader()
	return &stream.NotLeaderError{Leader: lead}
}

// Leader returns the leader's Raft id, from the last answer when it is younger than
// leaderFresh and names a registered node, else from a replica asked now (0 when none
// answers or none knows); never here.
func (l *remoteLog) Leader() (uint64, bool) {
	if lead, ok := l.freshLeader(); ok {
		return lead, false
	}
	l.askMu.Lock()
	defer l.askMu.Unlock()
	if lead, ok := l.freshLeader(); ok { // another caller asked meanwhile
		return lead, false
	}
	if _, err := l.ask(&readRequest{op: opRead}); err != nil {
		l.r.log.Debug("asking a shard's replicas for its leader", "stream", l.stream, "shard", l.shard.String(), "err", err)
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leader, false
}

func (l *remoteLog) freshLeader() (uint64, bool) {
	l.mu.Lock()
	lead, at := l.leader, l.leaderAt
	l.mu.Unlock()
	return lead, lead != 0 && time.Since(at) < leaderFresh && l.r.registered(lead)
}

// Read reads from a replica (the leader first) and returns its frames as a View of the
// answer's buffer.
func (l *remoteLog) Read(from uint64, maxRecords, maxBytes int) (segment.View, error) {
	q := readRequest{op: opRead, from: from, records: min(max(maxRecords, 0), stream.MaxGetRecordsLimit),
		bytes: min(max(maxBytes, 0), stream.MaxGetRecordsBytes)}
	a, err := l.ask(&q)
	if err != nil {
		return segment.View{Next: from}, err
	}
	v := segment.View{Count: a.count, First: a.first, Last: a.last, LastTime: a.lastTime, Next: a.next}
	v.Replace(a.frames, a.payload)
	return v, nil
}

// Changed returns a channel closed once an answer shows the tip past the value it had when
// the channel was made; taking it starts the long poll that makes such answers come.
func (l *remoteLog) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.takenAt = time.Now()
	if !l.watching && !l.closed {
		l.watching = true
		go l.watch()
	}
	return l.changed
}

// watch long-polls a replica until its tip passes the current channel's, while the channel
// is taken (see Changed).
func (l *remoteLog) watch() {
	for {
		l.mu.Lock()
		if l.closed || time.Since(l.takenAt) > watchIdle {
			l.watching = false
			l.mu.Unlock()
			return
		}
		after := l.changedTip
		l.mu.Unlock()
		if _, err := l.ask(&readRequest{op: opRead, wait: maxReadWait, after: after}); err != nil {
			t := time.NewTimer(watchBackoff)
			select {
			case <-t.C:
			case <-l.ctx.Done():
				t.Stop()
			}
		}
	}
}

// Tip returns the replica's tip from an answer younger than tipFresh, else asks one; when
// none answers, the highest tip known.
func (l *remoteLog) Tip() uint64 {
	l.mu.Lock()
	tip, at := l.tip, l.tipAt
	l.mu.Unlock()
	if time.Since(at) < tipFresh {
		return tip
	}
	if _, err := l.ask(&readRequest{op: opRead}); err != nil {
		l.r.log.Debug("asking a shard's replicas for its tip", "stream", l.stream, "shard", l.shard.String(), "err", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tip
}

// TipTime returns the time of the tip Tip last returned (the engine asks it right after).
func (l *remoteLog) TipTime() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tipTime
}

// SeqAtTime asks a replica.
func (l *remoteLog) SeqAtTime(unixNano int64) (uint64, bool, error) {
	a, err := l.ask(&readRequest{op: opSeqAtTime, at: unixNano})
	return a.seq, a.found, err
}

// Oldest asks a replica.
func (l *remoteLog) Oldest() (uint64, bool, error) {
	a, err := l.ask(&readRequest{op: opOldest})
	return a.seq, a.found, err
}

// Trim removes nothing: the replicas trim their own logs.
func (l *remoteLog) Trim(int64) (int, error) { return 0, nil }

// Hide hides nothing here: the replicas' engines hide what their retention expired.
func (l *remoteLog) Hide(int64) {}

// UnmapIdle has nothing mapped.
func (l *remoteLog) UnmapIdle() int { return 0 }

// Close ends the log: requests under way are cancelled, the channel Changed gave is closed,
// later calls fail with segment.ErrClosed. Views taken before stay valid (they alias answers' buffers).
func (l *remoteLog) Close() error {
	l.mu.Lock()
	was := l.closed
	if !was {
		l.closed = true
		close(l.changed) // wakes the waiters: they find the log closed, or the shard's log switched (lifecycle.go)
		l.changed, l.changedTip = make(chan struct{}), ^uint64(0)
	}
	l.mu.Unlock()
	if was {
		return segment.ErrClosed
	}
	l.cancel()
	l.r.mu.Lock()
	if l.r.remotes[l.gid] == l {
		delete(l.r.remotes, l.gid)
	}
	l.r.mu.Unlock()
	return nil
}

// Remove closes the log; it has no storage of its own to delete.
func (l *remoteLog) Remove() error { return l.Close() }

func (l *remoteLog) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// observe takes what an answer says of the leader and the tip; a tip past the current
// Changed channel's closes it and makes the next.
func (l *remoteLog) observe(a *readAnswer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	l.leader, l.leaderAt = a.leader, now
	if a.tip >= l.tip {
		l.tip, l.tipTime = a.tip, a.tipTime
	}
	l.tipAt = now
	if l.tip > l.changedTip {
		close(l.changed)
		l.changed, l.changedTip = make(chan struct{}), l.tip
	}
}

// ask sends q, for this log's shard, to the replicas in turn (targets) until one answers,
// and observes the answer.
func (l *remoteLog) ask(q *readRequest) (readAnswer, error) {
	if l.isClosed() {
		return readAnswer{}, segment.ErrClosed
	}
	q.stream, q.gen, q.shard = l.stream, l.gen, l.shard
	body := appendReadRequest(nil, q)
	var last error
	for _, n := range l.targets() {
		a, err := l.r.askReplica(l.ctx, n, q, body)
		if err == nil {
			l.observe(&a)
			return a, nil
		}
		if l.ctx.Err() != nil {
			return readAnswer{}, segment.ErrClosed
		}
		last = err
	}
	l.refreshPlacement()
	if last == nil {
		last = errors.New("none of its replicas' nodes is registered")
	}
	return readAnswer{}, fmt.Errorf("%w: stream %s shard %s: %w", ErrRemoteRead, l.stream, l.shard, last)
}

// targets returns the registered nodes of the placement's replicas: the leader's first when
// it is one of them, then the others from a rotating start.
func (l *remoteLog) targets() []Node {
	l.mu.Lock()
	replicas, lead := l.replicas, l.leader
	l.mu.Unlock()
	out := make([]Node, 0, len(replicas))
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	leadNode, ok := l.r.byRaft[lead]
	if ok && lead != 0 && slices.Contains(replicas, leadNode.ID) {
		out = append(out, leadNode)
	}
	start := int(l.next.Add(1))
	for i := range replicas {
		id := replicas[(start+i)%len(replicas)]
		if n, up := l.r.byNode[id]; up && id != l.r.cfg.NodeID && (len(out) == 0 || out[0].ID != id) {
			out = append(out, n)
		}
	}
	return out
}

// refreshPlacement reads the shard's placement again, at most every placementEvery: the
// replicas may have moved.
func (l *remoteLog) refreshPlacement() {
	l.mu.Lock()
	due := time.Since(l.placedAt) >= placementEvery
	if due {
		l.placedAt = time.Now()
	}
	l.mu.Unlock()
	if !due {
		return
	}
	p, ok, err := l.r.c.PlacementOf(l.stream, l.shard)
	if err != nil || !ok {
		return // no news: keep the replicas known
	}
	l.mu.Lock()
	l.replicas = slices.Clone(p.Replicas)
	l.mu.Unlock()
}

// registered reports whether a node with Raft id raftID holds a membership key.
func (r *Replication) registered(raftID uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.byRaft[raftID]
	return ok
}

// askReplica sends one peer read (body, the encoding of q) to node n and decodes its answer.
func (r *Replication) askReplica(ctx context.Context, n Node, q *readRequest, body []byte) (readAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout+q.wait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.peerURL(n, ReadPath), bytes.NewReader(body))
	if err != nil {
		return readAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	r.key.Sign(req.Header, ReadPath, body)
	resp, err := r.http.Do(req)
	if err != nil {
		return readAnswer{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // keep the connection for the next request
		return readAnswer{}, fmt.Errorf("node %d answered %s: %q", n.ID, resp.Status, bytes.TrimSpace(msg))
	}
	limit := int64(64 + maxStreamName) // the header of an answer without frames
	if q.op == opRead && q.records > 0 {
		limit += int64(q.bytes) + frame.MaxSize // about maxBytes: one record may pass it
	}
	if resp.ContentLength < 0 || resp.ContentLength > limit {
		return readAnswer{}, fmt.Errorf("node %d answered %d bytes, more than %d or unsized", n.ID, resp.ContentLength, limit)
	}
	b := make([]byte, resp.ContentLength)
	if _, err := io.ReadFull(resp.Body, b); err != nil {
		return readAnswer{}, err
	}
	a, err := decodeReadAnswer(b, q)
	if err != nil {
		return readAnswer{}, fmt.Errorf("node %d's answer: %w", n.ID, err)
	}
	return a, nil
}

// serveRead answers a peer read from this node's replica of the shard (see readwire.go).
func (r *Replication) serveRead(body []byte) (int, []byte) {
	q, err := decodeReadRequest(body)
	if err != nil {
		return http.StatusBadRequest, []byte("malformed read: " + err.Error() + "\n")
	}
	s := r.replicaOf(q.stream, q.gen, q.shard)
	if s == nil || !s.serving() {
		return http.StatusNotFound, noReplicaHere
	}
	a := readAnswer{next: q.from}
	var v *segment.View
	switch q.op {
	case opRead:
		if q.wait > 0 {
			waitAbove(s, q.after, q.wait)
		}
		if q.records > 0 {
			view, err := s.Read(q.from, q.records, q.bytes)
			if err != nil {
				return r.readFailed(q, err)
			}
			defer view.Release()
			v = &view
		}
	case opSeqAtTime:
		a.seq, a.found, err = s.SeqAtTime(q.at)
	case opOldest:
		a.seq, a.found, err = s.Oldest()
	}
	if err != nil {
		return r.readFailed(q, err)
	}
	a.leader, a.tip, a.tipTime = r.host.Leader(s.gid), s.Tip(), s.TipTime()
	return http.StatusOK, appendReadAnswer(nil, q.op, &a, v)
}

// readFailed answers a peer read whose replica failed: 503 when it is closing, else 500;
// the cause stays in this node's log.
func (r *Replication) readFailed(q readRequest, err error) (int, []byte) {
	if errors.Is(err, segment.ErrClosed) {
		return http.StatusServiceUnavailable, []byte("the shard's replica is closing\n")
	}
	r.log.Warn("serving a peer read", "stream", q.stream, "shard", q.shard.String(), "err", err)
	return http.StatusInternalServerError, []byte("the shard's replica failed\n")
}

// waitAbove waits until the log's tip is above after, at most wait.
func waitAbove(l stream.ShardLog, after uint64, wait time.Duration) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		ch := l.Changed() // taken before the tip is read: no append is missed
		if l.Tip() > after {
			return
		}
		select {
		case <-ch:
		case <-t.C:
			return
		}
	}
}
