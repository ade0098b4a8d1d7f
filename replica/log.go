package replica

import (
	"bytes"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/internal/vfs"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/stream"
)

// Proposer submits proposals to the Raft group this replica belongs to, through the loop
// that drives the group's RawNode (multiraft.Host.Propose, or a test's driver). Propose
// returns an error wrapping ErrNotLeader (a *NotLeaderError) when this replica does not lead.
type Proposer interface {
	Propose(data [][]byte) error
}

// Options configure a replica's Log.
type Options struct {
	// Segment configures the segment log; Replicated is set by Open.
	Segment segment.Options
	// NodeID is this replica's Raft id; it makes proposal tokens unique.
	NodeID uint64
	// Timeout bounds how long Append waits for its entries to commit; 0 means 10 s.
	Timeout time.Duration
}

// Log is one shard's replicated log on this replica: a stream.ShardLog whose Append proposes
// through Raft, and the state machine (Storage, Persist, Apply) of the shard's Raft group.
type Log struct {
	storage *Storage // and the segment log, storage.segLog()
	opts    Options

	mu       sync.Mutex // guards the fields below
	proposer Proposer
	next     uint64                 // next proposal token
	byToken  map[uint64]*pendingRec // proposals not yet persisted here
	byIndex  map[uint64]*pendingRec // proposals persisted, waiting for commit
	seal     sealState              // seal.go
}

var _ stream.ShardLog = (*Log)(nil)

// pendingRec is one record of an Append waiting for its commit.
type pendingRec struct {
	p     *proposal
	i     int
	index uint64
	term  uint64
}

// proposed reports whether rec, an entry's record carrying r's token, is the record r
// proposed. A token names a proposal on this replica only: another node's, or one this node
// made before a restart (its counter starts again), may carry the same token; such an entry
// does not settle r, which would otherwise be acknowledged at another record's position.
func (r *pendingRec) proposed(rec *frame.Record) bool {
	b := &r.p.batch[r.i]
	return rec.Time == b.Time && rec.Flags == b.Flags && bytes.Equal(rec.Key, b.Key) && bytes.Equal(rec.Data, b.Data)
}

// proposal is one Append call.
type proposal struct {
	batch []segment.Record
	left  int
	done  chan error // buffered, one send
}

// Open opens the replica of a shard in dir: its segment log (replicated mode) and its Raft
// side files.
func Open(dir string, opts Options) (*Log, error) {
	so := opts.Segment
	so.Replicated = true
	if so.FS == nil {
		so.FS = vfs.OS
	}
	if err := prepareDir(dir, so); err != nil {
		return nil, err
	}
	seg, err := segment.Open(dir, so)
	if err != nil {
		return nil, err
	}
	st, err := openStorage(seg, dir, so)
	var sealed sealHold // the seal in force as of Applied (seal.go)
	if err == nil {
		applied := st.Applied()
		sealed = st.sealsAt(applied)
		err = seg.Publish(sealed.limit(applied)) // committed and durable before the restart
	}
	if err != nil {
		seg.Close()
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	l := &Log{storage: st, opts: opts, next: 1,
		byToken: map[uint64]*pendingRec{}, byIndex: map[uint64]*pendingRec{}}
	var last uint64
	if sealed.at != 0 {
		last = st.sealLast(sealed.at)
	}
	l.setSealLocked(sealed, last) // l is not shared yet
	return l, nil
}

// SetProposer sets how Append submits proposals.
func (l *Log) SetProposer(p Proposer) {
	l.mu.Lock()
	l.proposer = p
	l.mu.Unlock()
}

// Storage returns the group's raft.Storage.
func (l *Log) Storage() raft.Storage { return l.storage }

// RaftStorage returns the group's storage with its extra methods (SetConfState).
func (l *Log) RaftStorage() *Storage { return l.storage }

// Segment returns the segment log under the replica (tests and tools compare its frames).
// A snapshot install replaces it with another.
func (l *Log) Segment() *segment.Log { return l.storage.segLog() }

// Applied is the index to start the group's RawNode from (multiraft.GroupOptions.Applied):
// the commit index stored before a restart, whose configuration InitialState returns.
func (l *Log) Applied() uint64 { return l.storage.Applied() }

// Persist makes rd's entries and HardState durable before the driver sends rd.Messages.
func (l *Log) Persist(rd *raft.Ready) error {
	wait, err := l.PersistAsync(rd)
	if err != nil || wait == nil {
		return err
	}
	return wait()
}

// PersistAsync is Persist in two steps (multiraft.AsyncPersister): when it returns, rd's
// HardState, snapshot and side-file records are durable and its frames are written; wait
// (nil if there is nothing to wait for) returns once the frames are durable too, by one
// fdatasync of the active segment file shared with whatever else was written to it.
func (l *Log) PersistAsync(rd *raft.Ready) (wait func() error, err error) {
	wait, err = l.storage.persist(rd, func(rec *frame.Record, index, term uint64) {
		l.mu.Lock()
		if r := l.byToken[rec.Seq]; r != nil && r.proposed(rec) {
			delete(l.byToken, rec.Seq)
			if old := l.byIndex[index]; old != nil {
				l.finishLocked(old, false)
			}
			r.index, r.term = index, term
			l.byIndex[index] = r
		}
		l.mu.Unlock()
	})
	if i := rd.Snapshot.GetMetadata().GetIndex(); err == nil && i > 0 {
		l.noteInstalled(i) // the seal the snapshot carries (seal.go)
	}
	return wait, err
}

// Apply is given the committed entries after Persist: it publishes the records committed
// and durable here (none above a seal in force, seal.go), and acknowledges the Appends whose
// entries all committed in their term, outside a seal.
func (l *Log) Apply(committed []*pb.Entry) error {
	if len(committed) == 0 {
		return nil
	}
	last := committed[len(committed)-1].GetIndex()
	before := l.storage.sealsAt(committed[0].GetIndex() - 1)
	after := before
	for _, e := range committed {
		after = after.next(e)
	}
	var sealLast uint64
	if after.at != 0 {
		sealLast = l.storage.sealLast(after.at)
	}
	if err := l.storage.segLog().Publish(after.limit(last)); err != nil {
		return err
	}
	l.storage.setApplied(last)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.noteSealsLocked(committed, after, sealLast)
	sealed := before
	for _, e := range committed {
		sealed = sealed.next(e)
		if r := l.byIndex[e.GetIndex()]; r != nil {
			delete(l.byIndex, e.GetIndex())
			if sealed.at != 0 {
				l.failLocked(r, sealedError(e.GetIndex(), sealed.at))
				continue
			}
			l.finishLocked(r, r.term == e.GetTerm())
		}
	}
	return nil
}

// finishLocked settles one record of a proposal. Called with l.mu held.
func (l *Log) finishLocked(r *pendingRec, ok bool) {
	p := r.p
	if p.left <= 0 {
		return
	}
	if !ok {
		p.left = 0
		p.done <- fmt.Errorf("%w: position %d", ErrNotCommitted, r.index)
		return
	}
	p.batch[r.i].Seq = r.index
	if p.left--; p.left == 0 {
		p.done <- nil
	}
}

// Append proposes one Raft entry per record (its frame, arrival time now, seq a proposal
// token) and returns nil once every entry committed in the term it was proposed in, with the
// positions in batch[i].Seq and the arrival times in batch[i].Time. Not the leader: a
// *NotLeaderError; not committed in time or in its term: ErrNotCommitted (retryable; the
// records may still commit, so a retry may duplicate them). Sealed here, or an entry
// committed after a seal: an error wrapping stream.ErrLogSealed (seal.go).
func (l *Log) Append(batch []segment.Record) error {
	if len(batch) == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	if t := l.opts.Segment.Now; t != nil {
		now = t().UnixNano()
	}
	p := &proposal{batch: batch, left: len(batch), done: make(chan error, 1)}
	data := make([][]byte, len(batch))
	l.mu.Lock()
	if at := l.seal.hold.at; at != 0 {
		l.mu.Unlock()
		return fmt.Errorf("%w: sealed at %d", stream.ErrLogSealed, at)
	}
	proposer := l.proposer
	recs := make([]*pendingRec, len(batch))
	for i := range batch {
		r := &batch[i]
		if len(r.Key) > frame.MaxKeyLen || len(r.Data) > frame.MaxDataLen {
			l.mu.Unlock()
			return fmt.Errorf("%w: record %d", segment.ErrTooLarge, i)
		}
		token := 1<<63 | l.opts.NodeID<<40 | l.next
		l.next++
		r.Time = now
		data[i] = frame.Append(nil, &frame.Record{Seq: token, Time: now, Flags: r.Flags, Key: r.Key, Data: r.Data})
		recs[i] = &pendingRec{p: p, i: i}
		l.byToken[token] = recs[i]
	}
	l.mu.Unlock()
	forget := func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for tok, r := range l.byToken {
			if r.p == p {
				delete(l.byToken, tok)
			}
		}
		for idx, r := range l.byIndex {
			if r.p == p {
				delete(l.byIndex, idx)
			}
		}
		p.left = 0
	}
	if proposer == nil {
		forget()
		return &NotLeaderError{}
	}
	if err := proposer.Propose(data); err != nil {
		forget()
		return err
	}
	t := time.NewTimer(l.opts.Timeout)
	defer t.Stop()
	select {
	case err := <-p.done:
		if err != nil {
			forget()
		}
		return err
	case <-t.C:
		forget()
		select {
		case err := <-p.done: // settled meanwhile
			return err
		default:
		}
		return fmt.Errorf("%w: not committed within %v", ErrNotCommitted, l.opts.Timeout)
	}
}

// Read returns the committed records from from (segment.Log.Read). The view pins its
// segment's mapping until Release.
func (l *Log) Read(from uint64, maxRecords, maxBytes int) (segment.View, error) {
	return l.storage.segLog().Read(from, maxRecords, maxBytes)
}

// Changed is closed when the published tip moves.
func (l *Log) Changed() <-chan struct{} { return l.storage.segLog().Changed() }

// Tip is the last committed position readable here.
func (l *Log) Tip() uint64 { return l.storage.segLog().Tip() }

// TipTime is the arrival time of the record at Tip.
func (l *Log) TipTime() int64 { return l.storage.segLog().TipTime() }

// SeqAtTime returns the first readable position that arrived at or after t.
func (l *Log) SeqAtTime(t int64) (uint64, bool, error) { return l.storage.segLog().SeqAtTime(t) }

// Oldest returns the first readable position.
func (l *Log) Oldest() (uint64, bool, error) { return l.storage.segLog().Oldest() }

// Trim applies retention to this replica's segment log: segments whose records all arrived
// before cutoff go, as far as they are published (applied). FirstIndex moves past them, and
// raft.snap records it; a follower that needs what went gets a snapshot.
func (l *Log) Trim(cutoff int64) (int, error) {
	n, err := l.storage.segLog().Trim(cutoff)
	if n > 0 {
		if cerr := l.storage.noteCompacted(); err == nil {
			err = cerr
		}
	}
	return n, err
}

// Hide hides the records before cutoff without reading the segment log now (segment.Log.Hide).
func (l *Log) Hide(cutoff int64) { l.storage.segLog().Hide(cutoff) }

// UnmapIdle unmaps idle sealed segments.
func (l *Log) UnmapIdle() int { return l.storage.segLog().UnmapIdle() }

// Close closes the segment log; proposals still waiting fail.
func (l *Log) Close() error {
	l.mu.Lock()
	for _, r := range l.byIndex {
		l.finishLocked(r, false)
	}
	for _, r := range l.byToken {
		l.finishLocked(r, false)
	}
	l.byToken, l.byIndex = map[uint64]*pendingRec{}, map[uint64]*pendingRec{}
	l.mu.Unlock()
	return l.storage.segLog().Close()
}

// Remove closes the log and deletes its directory's files.
func (l *Log) Remove() error {
	l.Close()
	return l.storage.segLog().Remove()
}
