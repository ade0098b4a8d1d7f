package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/sluice-streams/sluice/multiraft"
	"github.com/sluice-streams/sluice/replica"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/stream"
)

// Replication makes a node's shard logs Raft replicas: one multiraft.Host drives the group
// of every shard the node holds (OpenShardLog, the engine's ShardLog seam), its transport
// reaches the other nodes at the peer addresses membership records, the peer routes are
// served and authenticated here (HandlePeer), and records another node leads are forwarded
// to it (Forward). See docs/CLUSTER.md.
//
// Group ids. A shard's group is GroupOf(stream name, incarnation, shard id): the first 8
// bytes of FNV-1a 64 over name ‖ 0x00 ‖ incarnation (8 bytes, little-endian) ‖ shard id (4
// bytes, little-endian), 0 mapped to 1. Every node computes the same id from the catalog;
// a stream created again under its name has another incarnation and so other groups.
//
// Raft ids and the wiped-disk rule. A node is, in every group, the Raft id of its data
// directory (RaftID, node.json), registered in its membership key. The placement record
// of a shard lists its voters' Raft ids (0 in a slot whose node is not a voter yet). A node
// whose id is among them bootstraps the group with them when its replica's storage is
// empty; a node whose id is not (its directory was wiped: it has a new id; or it is a new
// replica) starts the group with no peers and waits. The group's leader treats the node of
// a slot registered under a Raft id that is not a voter as any replica to add (move.go): it
// adds the new id as a learner, promotes it once caught up in the same joint change that
// removes the slot's old id, and records the new id in the slot (SetPlacementRaft). So a
// node never votes or leads with state it forgot: its forgotten self is removed, never
// resumed.
type Replication struct {
	c    *Client
	cfg  ReplicationConfig
	host *multiraft.Host
	key  *PeerKey
	http *http.Client
	log  *slog.Logger

	kick chan struct{} // capacity 1: membership or placement changed, reconcile now
	// fullDue is set by a membership change (every group's step depends on membership) and
	// taken by the reconcile goroutine, which then reconciles every group.
	fullDue atomic.Bool

	// placements is the placement of every shard, kept by watchPlacement's watch
	// (leadership.go); also the client's (Client.placements), for placing new shards.
	placements *placementCache

	// mu guards the fields below. Writers: membership events, OpenShardLog and Close of a
	// shard log, SetEngine; readers: Forward, HandlePeer, reconcile.
	mu     sync.Mutex
	byRaft map[uint64]Node // registered nodes by Raft id
	byNode map[uint64]Node // registered nodes by node id
	groups map[multiraft.GroupID]*shardLog
	eng    *stream.Engine
	// remotes are the shards this node holds no replica of (remote.go); made by the first.
	remotes map[multiraft.GroupID]*remoteLog
	// swept are the stream directories whose kept votes OpenShardLog has looked at
	// (lifecycle.go, sweepVotes); made by the first.
	swept map[string]bool
}

// ReplicationConfig configures NewReplication.
type ReplicationConfig struct {
	NodeID  uint64 // the node's --node-id
	RaftID  uint64 // the data directory's Raft id (RaftID)
	PeerKey []byte // the cluster's peer key (EnsurePeerKey)
	Logger  *slog.Logger
	// TickInterval is the Raft tick; default 100 ms (elections after 10 ticks).
	TickInterval time.Duration
	// AppendTimeout bounds how long an append waits for its records to commit; default 5 s.
	AppendTimeout time.Duration
	// ReconcileEvery is how often the node checks its groups against placement and
	// membership when nothing changed (a leader its group's members, every node its own
	// replica's lifecycle); default 30 s. It checks sooner: at the next LeaderCheckEvery
	// after a membership change, a change of placement (it watches the placement records)
	// or the gain of a group's leadership, and every 250 ms while a change is under way in
	// one of its groups.
	ReconcileEvery time.Duration
	// LeaderCheckEvery is how often the node looks at which of its groups it leads (and
	// logs each change, "shard leadership"); this reads nothing from etcd. Default 2 s.
	LeaderCheckEvery time.Duration
	// PeerTLS, when set, makes the node reach its peers over HTTPS (peertls.go). It is
	// called as each connection to a peer is made and returns the TLS client configuration:
	// the CAs the peer's certificate is checked against, which must name the host of the
	// peer's address (Node.Peer), and the node's own certificate for a peer that asks for
	// one; a caller that reloads its certificates returns the new ones from then on. The
	// configuration is cloned, not modified. nil: plaintext HTTP.
	PeerTLS func() *tls.Config
}

// busyRecheck is how soon the node reconciles again while a change is under way in one of
// its groups (a learner catching up, a removal awaited).
const busyRecheck = 250 * time.Millisecond

// reproposeAfter is how long a leader waits before it proposes the same configuration
// change again (the first one lost: a dropped message, a lost leadership in between).
const reproposeAfter = 3 * time.Second

// ForwardPath is the peer route of forwarded writes (server.PeerForwardPath).
const ForwardPath = "/sluice/v1/forward"

// maxPeerBody bounds a Raft batch the Host sends (the server's body limit is 16 MiB).
const maxPeerBody = 8 << 20

// NewReplication starts the node's Raft host. Start its membership with Run; Close stops it.
func (c *Client) NewReplication(cfg ReplicationConfig) (*Replication, error) {
	if cfg.RaftID == 0 || len(cfg.PeerKey) == 0 {
		return nil, errors.New("cluster: replication needs a Raft id and the peer key")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.AppendTimeout <= 0 {
		cfg.AppendTimeout = 5 * time.Second
	}
	if cfg.ReconcileEvery <= 0 {
		cfg.ReconcileEvery = 30 * time.Second
	}
	if cfg.LeaderCheckEvery <= 0 {
		cfg.LeaderCheckEvery = 2 * time.Second
	}
	key := NewPeerKey(cfg.PeerKey, nil)
	tr := peerTransport(cfg.PeerTLS)
	host, err := multiraft.NewHost(multiraft.Config{
		NodeID:        cfg.RaftID,
		TickInterval:  cfg.TickInterval,
		Client:        &http.Client{Timeout: 5 * time.Second, Transport: signer{key: key, rt: tr}},
		TLS:           cfg.PeerTLS != nil,
		MaxBatchBytes: maxPeerBody,
		Logger:        cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	r := &Replication{c: c, cfg: cfg, host: host, key: key, log: cfg.Logger,
		http: &http.Client{Timeout: 15 * time.Second, Transport: tr},
		kick: make(chan struct{}, 1), placements: c.newPlacementCache(),
		byRaft: map[uint64]Node{}, byNode: map[uint64]Node{}, groups: map[multiraft.GroupID]*shardLog{}}
	c.placements.Store(r.placements)
	return r, nil
}

// Host returns the node's Raft host.
func (r *Replication) Host() *multiraft.Host { return r.host }

// RaftID returns the node's Raft id.
func (r *Replication) RaftID() uint64 { return r.cfg.RaftID }

// SetEngine gives the engine forwarded writes are put through (once it is open).
func (r *Replication) SetEngine(eng *stream.Engine) {
	r.mu.Lock()
	r.eng = eng
	r.mu.Unlock()
}

// Close stops the Raft host (the shard logs are the engine's to close).
func (r *Replication) Close() error { return r.host.Close() }

// GroupOf returns the Raft group id of a shard (see Replication).
func GroupOf(streamName string, gen uint64, shard stream.ShardID) multiraft.GroupID {
	h := fnv.New64a()
	h.Write([]byte(streamName))
	var b [13]byte
	binary.LittleEndian.PutUint64(b[1:9], gen)
	binary.LittleEndian.PutUint32(b[9:], uint32(shard))
	h.Write(b[:])
	if id := h.Sum64(); id != 0 {
		return multiraft.GroupID(id)
	}
	return 1
}

// OpenShardLog is the engine's Options.OpenShardLog in cluster mode: the shard's replica
// (replica.Log in the shard's directory) driven by the node's Host in the shard's group.
// A shard without placement (created while no node had registered) keeps an unreplicated
// local log, as before cluster mode, and the log says so. A shard this node's own resharding
// adds is placed here first (placementToOpen): its log opens before the catalog transaction.
// A shard whose placement does not name this node, and of which it holds no replica, is
// served from its replicas on other nodes (remoteLog, remote.go); a node named in the
// placement that is not yet a voter of the group builds its replica meanwhile. What is under
// the returned log changes as the node's replica is built and removed (backing,
// lifecycle.go).
func (r *Replication) OpenShardLog(cfg stream.ShardLogConfig) (stream.ShardLog, error) {
	p, ok, err := r.c.placementToOpen(cfg.Stream, cfg.Shard)
	if err != nil {
		return nil, err
	}
	if !ok || len(p.Raft) == 0 {
		r.log.Warn("shard has no placement with Raft ids: its log is local to this node, not replicated",
			"stream", cfg.Stream, "shard", cfg.Shard.String())
		return stream.OpenSegmentLog(cfg)
	}
	if err := removeTombstone(cfg.Dir); err != nil {
		return nil, err
	}
	r.sweepVotes(cfg.Stream, filepath.Dir(cfg.Dir))
	sl := &shardLog{r: r, gid: GroupOf(cfg.Stream, cfg.Gen, cfg.Shard), cfg: cfg, stream: cfg.Stream, gen: cfg.Gen, shard: cfg.Shard}
	placed := slices.Contains(p.Replicas, r.cfg.NodeID)
	_, err = os.Stat(cfg.Dir)
	switch {
	case !placed && errors.Is(err, fs.ErrNotExist):
		sl.cur.Store(&backing{rem: r.openRemote(cfg, p)})
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, err
	default:
		b, err := r.openReplica(sl, p, nil)
		if err != nil {
			return nil, err
		}
		sl.cur.Store(b)
	}
	r.mu.Lock()
	r.groups[sl.gid] = sl
	r.mu.Unlock()
	return sl, nil
}

// openReplica opens this node's replica of s's shard, placed as p, and starts driving the
// group with it (startReplica), from the term and vote a removed replica of the group kept
// here (replica.StartFromVote). A replica whose node is one of the voters p records serves
// the shard; any other (being built, or no longer wanted and waiting to be removed) is put
// behind a remote log (rem, or one opened now when rem is nil) until it is a caught-up voter
// of a placed node (finishBuilding).
func (r *Replication) openReplica(s *shardLog, p ShardPlacement, rem *remoteLog) (*backing, error) {
	if err := removeTombstone(s.cfg.Dir); err != nil {
		return nil, err
	}
	vote := voteFile(s.cfg.Dir)
	if err := replica.StartFromVote(s.cfg.Dir, vote); err != nil {
		return nil, fmt.Errorf("cluster: starting the replica of %s/%s from its kept vote: %w", s.stream, s.shard, err)
	}
	voter := slices.Contains(p.Raft, r.cfg.RaftID)
	var peers []uint64 // not an initial voter (a wiped directory, a new replica): wait to be added
	if voter {
		for _, id := range p.Raft {
			if id != 0 { // a slot whose node is not a voter yet
				peers = append(peers, id)
			}
		}
	}
	l, err := r.startReplica(s, peers)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(vote); err != nil && !errors.Is(err, fs.ErrNotExist) {
		r.log.Warn("removing a replica's kept vote", "stream", s.stream, "shard", s.shard.String(), "err", err)
	}
	if voter && slices.Contains(p.Replicas, r.cfg.NodeID) {
		return &backing{rep: l}, nil
	}
	if rem == nil {
		rem = r.openRemote(s.cfg, p)
	}
	return &backing{rep: l, rem: rem}, nil
}

// startReplica opens the replica in s's directory and starts driving s's group with it:
// bootstrapped with peers when its storage is empty and peers is not, otherwise restarted
// from its storage, or waiting to be added.
func (r *Replication) startReplica(s *shardLog, peers []uint64) (*replica.Log, error) {
	l, err := replica.Open(s.cfg.Dir, replica.Options{Segment: s.cfg.Opts, NodeID: r.cfg.RaftID, Timeout: r.cfg.AppendTimeout})
	if err != nil {
		return nil, err
	}
	l.SetProposer(s)
	// Applied: what the replica applied before it stopped, so that raft does not apply its
	// configuration changes twice.
	if err := r.host.AddGroup(s.gid, peers, l, multiraft.GroupOptions{Applied: l.Applied()}); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// shardLog is a shard's log as the engine sees it in cluster mode: this node's replica
// (replica.Log's ShardLog, with the leader known, stream.LeaderLog, and replica's errors
// turned into the engine's), or the remote log that serves the shard from other nodes'
// replicas, or both while the replica is built (backing). What is under it changes as the
// node's replica is built and removed (lifecycle.go); the engine keeps the same shardLog.
type shardLog struct {
	r      *Replication
	gid    multiraft.GroupID
	cfg    stream.ShardLogConfig
	stream string
	gen    uint64 // the stream's incarnation
	shard  stream.ShardID

	// cur is what the calls go to. Stored by OpenShardLog, build, finishBuilding and retire
	// (under swap); loaded by every method. A method that loaded a log replaced meanwhile
	// gets segment.ErrClosed from it, as the engine's calls on a closed log do.
	cur    atomic.Pointer[backing]
	swap   sync.Mutex // serialises the changes of cur, Close and Remove
	closed bool       // under swap: Close or Remove ran; cur changes no more

	// Owned by the reconcile goroutine.
	leading  bool     // what checkLeadership last logged
	stepped  bool     // reconcile found the group's record and stepped it once (reconcileDue)
	mark     uint64   // the commit index at the leader's previous reconcile of the group (learners catch up to it)
	removing []uint64 // the Raft ids this node proposed to remove, until the placement's `removed` lists them
	// proposed is the last configuration change proposed (describeChange), at proposedAt:
	// the same change is not proposed again before reproposeAfter (raft would drop it while
	// the first is pending, appending an empty entry instead).
	proposed   string
	proposedAt time.Time
}

var _ stream.LeaderLog = (*shardLog)(nil)

// Leader is the group's leader as this node's Host knows it: the value its loop last
// published, read without waiting for the loop (the engine asks before every append;
// Propose checks leadership again in the loop).
func (s *shardLog) Leader() (uint64, bool) {
	b := s.cur.Load()
	if b.rep != nil {
		if l := s.r.host.Leader(s.gid); l != 0 || b.rem == nil {
			return l, l == s.r.cfg.RaftID
		}
	}
	return b.rem.Leader()
}

// Propose is the replica's Proposer: through the Host, on the leader only. Its errors that
// are *replica.NotLeaderError mean that raft took nothing, so the records may be put again
// (through the leader) without being stored twice.
func (s *shardLog) Propose(data [][]byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.r.cfg.AppendTimeout)
	defer cancel()
	err := s.r.host.ProposeLeader(ctx, s.gid, data)
	if nl := (*multiraft.NotLeaderError)(nil); errors.As(err, &nl) {
		return &replica.NotLeaderError{Leader: nl.Leader}
	}
	if errors.Is(err, raft.ErrProposalDropped) {
		return &replica.NotLeaderError{} // a leadership transfer or an election: retry
	}
	return err
}

// Append appends through Raft; an append refused because another node leads is an error
// wrapping *stream.NotLeaderError, which the server forwards.
func (s *shardLog) Append(batch []segment.Record) error {
	b := s.cur.Load()
	if b.rem != nil {
		if b.rep == nil || s.r.host.Leader(s.gid) != s.r.cfg.RaftID {
			return b.rem.Append(batch)
		}
	}
	err := b.rep.Append(batch)
	if nl := (*replica.NotLeaderError)(nil); errors.As(err, &nl) {
		return &stream.NotLeaderError{Leader: nl.Leader}
	}
	return err
}

// Close stops driving the group, then closes the replica and the remote log.
func (s *shardLog) Close() error {
	return s.end(stream.ShardLog.Close)
}

// Remove stops driving the group, then removes the replica's files and closes the remote log;
// the replica's kept vote goes too (the shard left the stream's map: no replica of its group
// starts again).
func (s *shardLog) Remove() error {
	err := s.end(stream.ShardLog.Remove)
	if verr := removeKeptVote(s.cfg.Dir); err == nil {
		err = verr
	}
	return err
}

// end stops driving the group and ends what is under s with f (Close or Remove).
func (s *shardLog) end(f func(stream.ShardLog) error) error {
	s.swap.Lock()
	defer s.swap.Unlock()
	s.closed = true
	s.r.drop(s.gid)
	b := s.cur.Load()
	var err error
	if b.rem != nil {
		err = f(b.rem)
	}
	if b.rep != nil {
		err = f(b.rep)
	}
	return err
}

func (r *Replication) drop(gid multiraft.GroupID) {
	r.mu.Lock()
	delete(r.groups, gid)
	r.mu.Unlock()
	_ = r.host.RemoveGroup(gid) // unknown after a Close of the host: nothing to stop
}

// Run follows membership and placement until ctx ends: each node's peer address goes to the
// Host (SetPeer), its coming and going to NodeUp and NodeDown, a leader moves its groups'
// members to their placement (move.go, the wiped-disk rule among them) and every node applies
// the replica lifecycle (lifecycle.go); see ReplicationConfig for when. It returns once the
// first membership is read.
//
// A reconcile takes the records from the placement cache (no etcd read) and steps only the
// groups that may have something to do (reconcileDue): all of them every ReconcileEvery,
// after a membership change and after the cache loaded every record; otherwise those not
// stepped yet, those whose record changed, whose leadership changed, or that had a change
// under way at their last step. So a change of one record costs each node its watch event,
// a walk of its list of groups (as each leadership check makes) and one group's step
// (BenchmarkPlacementApply).
func (r *Replication) Run(ctx context.Context) error {
	nodes, events, err := r.c.WatchMembers(ctx)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		r.nodeUp(n)
	}
	go func() {
		for ev := range events {
			if ev.Kind == NodeUp {
				r.nodeUp(ev.Node)
			} else {
				r.nodeDown(ev.Node.ID)
			}
		}
	}()
	go r.watchPlacement(ctx)
	go r.logFollowing(ctx)
	go func() {
		t := time.NewTicker(r.cfg.LeaderCheckEvery)
		defer t.Stop()
		var last time.Time // of the last reconcile of every group
		var busy map[multiraft.GroupID]bool
		recheck := time.AfterFunc(time.Hour, r.kickReconcile)
		recheck.Stop()
		defer recheck.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-r.kick:
			}
			all, flipped := r.checkLeadership()
			changed, reloaded, loaded := r.placements.take()
			if !loaded {
				continue // the watch loads the records, then kicks
			}
			full := r.fullDue.Swap(false) || reloaded || time.Since(last) >= r.cfg.ReconcileEvery
			if full {
				last = time.Now()
			}
			if due := reconcileDue(all, full, changed, flipped, busy); len(due) > 0 {
				busy = r.reconcile(due)
				if len(busy) > 0 { // a change under way: look again soon, not at the next check only
					recheck.Reset(min(busyRecheck, r.cfg.LeaderCheckEvery))
				}
			}
			led := all[:0:0]
			for _, s := range all {
				if s.leading {
					led = append(led, s)
				}
			}
			r.preferLeaders(led)
		}
	}()
	return nil
}

func (r *Replication) nodeUp(n Node) {
	if n.RaftID == 0 {
		return
	}
	r.mu.Lock()
	old, had := r.byNode[n.ID]
	if had && old.RaftID != n.RaftID {
		delete(r.byRaft, old.RaftID)
	}
	r.byNode[n.ID], r.byRaft[n.RaftID] = n, n
	r.mu.Unlock()
	if had && old.RaftID != n.RaftID && old.RaftID != r.cfg.RaftID {
		r.host.NodeDown(old.RaftID) // the node's old self is gone for good
	}
	if n.RaftID != r.cfg.RaftID {
		r.host.SetPeer(n.RaftID, n.Peer())
		r.host.NodeUp(n.RaftID)
	}
	r.log.Debug("cluster node up", "node", n.ID, "raft_id", n.RaftID, "addr", n.Addr)
	r.fullDue.Store(true)
	r.kickReconcile()
}

func (r *Replication) nodeDown(id uint64) {
	r.mu.Lock()
	n, had := r.byNode[id]
	delete(r.byNode, id)
	if had {
		delete(r.byRaft, n.RaftID)
	}
	r.mu.Unlock()
	if had && n.RaftID != r.cfg.RaftID {
		r.host.NodeDown(n.RaftID)
	}
	r.log.Debug("cluster node down", "node", id, "raft_id", n.RaftID)
	r.fullDue.Store(true)
	r.kickReconcile()
}

// kickReconcile makes the reconcile goroutine run a pass now (membership or placement changed).
func (r *Replication) kickReconcile() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// checkLeadership returns the groups of this node, logs each change of whether it leads a
// shard ("shard leadership", leads=true|false; shardLog.leading), and returns the groups
// whose leadership it gained or lost since the last check. It reads nothing from etcd.
func (r *Replication) checkLeadership() (all []*shardLog, flipped map[multiraft.GroupID]bool) {
	r.mu.Lock()
	all = make([]*shardLog, 0, len(r.groups))
	for _, s := range r.groups {
		all = append(all, s)
	}
	r.mu.Unlock()
	for _, s := range all {
		here := false
		if s.cur.Load().rep != nil { // a remote log is never the leader: asking it would ask a replica
			_, here = s.Leader()
		}
		if here != s.leading {
			s.leading = here
			if flipped == nil {
				flipped = map[multiraft.GroupID]bool{}
			}
			flipped[s.gid] = true
			r.log.Info("shard leadership", "stream", s.stream, "shard", s.shard.String(), "leads", here)
		}
	}
	return all, flipped
}

// reconcileDue returns the groups of all a reconcile steps: every one when full is set;
// otherwise those never stepped (opened since, or without a record until now), those whose
// placement record changed (changed), whose leadership changed (flipped) or that had a
// change under way at their last step (busy).
func reconcileDue(all []*shardLog, full bool, changed map[ShardKey]struct{}, flipped, busy map[multiraft.GroupID]bool) []*shardLog {
	if full {
		return all
	}
	var due []*shardLog
	for _, s := range all {
		_, ch := changed[ShardKey{s.stream, s.shard}]
		if !s.stepped || ch || len(flipped) > 0 && flipped[s.gid] || len(busy) > 0 && busy[s.gid] {
			due = append(due, s)
		}
	}
	return due
}

// reconcile makes one step, in every group of groups (groups of this node), towards its
// placement record (from the placement cache): in a group this node leads, reconcileGroup's
// step of a move; in the others, the replica lifecycle (settle). It returns the groups with a
// change under way (another step is due soon).
func (r *Replication) reconcile(groups []*shardLog) (busy map[multiraft.GroupID]bool) {
	busy = map[multiraft.GroupID]bool{}
	byNode := r.nodes()
	for _, s := range groups {
		p, ok := r.placements.get(ShardKey{s.stream, s.shard})
		if !ok {
			continue
		}
		s.stepped = true
		var more bool
		var err error
		switch {
		case s.cur.Load().rep == nil:
			err = r.build(s, p)
		case s.leading:
			more, err = r.reconcileGroup(s, p, byNode)
		default:
			more, err = r.settle(s, p)
		}
		if err == nil {
			var built bool
			built, err = r.finishBuilding(s, p)
			more = more || !built
		}
		if err != nil {
			r.log.Warn("reconciling a shard's replicas", "stream", s.stream, "shard", s.shard.String(), "err", err)
		}
		if more || err != nil {
			busy[s.gid] = true
		}
	}
	return busy
}

// reconcileGroup makes at most one step of a move (move.go) in group s, which this node
// leads, towards placement p and membership byNode: the Raft id a slot wants is the one its
// node is registered under, or, for a node not registered now, the one the slot records. It
// reports whether a change is under way (made now, or by an earlier pass).
func (r *Replication) reconcileGroup(s *shardLog, p ShardPlacement, byNode map[uint64]Node) (busy bool, err error) {
	if len(p.Raft) != len(p.Replicas) {
		return false, nil
	}
	st, err := r.host.Status(s.gid)
	if err != nil {
		return false, err
	}
	if st.RaftState != raft.StateLeader {
		return r.settle(s, p) // it lost the leadership since the check (handed it over, say)
	}
	want := make([]uint64, len(p.Replicas))
	for i, nodeID := range p.Replicas {
		want[i] = p.Raft[i]
		if n, up := byNode[nodeID]; up && n.RaftID != 0 {
			want[i] = n.RaftID
		}
	}
	mark := s.mark
	s.mark = st.GetCommit()
	s.removing = slices.DeleteFunc(s.removing, func(id uint64) bool { return slices.Contains(p.Removed, id) })
	sp := planStep(st, r.cfg.RaftID, want, p.Raft, mark, p.Removed, s.removing)
	attrs := []any{"stream", s.stream, "shard", s.shard.String(), "why", sp.why}
	switch sp.kind {
	case stepNone:
		return false, nil
	case stepRecord:
		q := p
		q.Raft, q.Removed = sp.raft, sp.removed
		if ok, err := r.c.SetPlacementRaft(s.stream, s.shard, q); err != nil || !ok {
			return true, err // !ok: the record changed meanwhile; the next pass reads it again
		}
		r.log.Info("shard placement records the group's members", append(attrs, "replicas", p.Replicas, "raft_ids", sp.raft, "removed", sp.removed)...)
	case stepConf:
		change := describeChange(sp.cc)
		if change == s.proposed && time.Since(s.proposedAt) < reproposeAfter {
			return true, nil // proposed a moment ago: being committed or applied
		}
		s.proposed, s.proposedAt = change, time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.log.Info("changing a shard's replicas", append(attrs, "change", change)...)
		for _, c := range sp.cc.Changes {
			if id := c.GetNodeId(); c.GetType() == raftpb.ConfChangeRemoveNode && !slices.Contains(s.removing, id) {
				s.removing = append(s.removing, id)
			}
		}
		return true, r.host.ProposeConfChange(ctx, s.gid, sp.cc)
	case stepTransfer:
		r.log.Info("transferring a shard's leadership", append(attrs, "to_raft_id", sp.to)...)
		return true, r.host.TransferLeadership(s.gid, sp.to)
	}
	return true, nil // stepWait
}

// signer signs every request of the Host's transport with the peer key.
type signer struct {
	key *PeerKey
	rt  http.RoundTripper
}

func (s signer) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.GetBody = nil
	s.key.Sign(out.Header, out.URL.RequestURI(), body) // a GET's query is signed too
	return s.rt.RoundTrip(out)
}

// HandlePeer serves the peer routes (server.Peer): a request not signed with the cluster's
// key is refused with 403 and nothing of it is used.
func (r *Replication) HandlePeer(path string, header func(string) []byte, body []byte) (int, []byte) {
	if err := r.key.Verify(header, path, body); err != nil {
		r.log.Debug("peer request refused", "path", path, "err", err)
		return http.StatusForbidden, []byte("peer request refused: not signed with the cluster's peer key\n")
	}
	switch path {
	case multiraft.RaftPath:
		status, err := r.host.Answer(body, string(header(multiraft.LivenessHeader)))
		if err != nil {
			if errors.Is(err, multiraft.ErrClosed) {
				return http.StatusServiceUnavailable, nil
			}
			return http.StatusBadRequest, []byte("malformed batch\n")
		}
		return status, nil
	case ForwardPath:
		return r.serveForward(body)
	case ReadPath:
		return r.serveRead(body)
	case SealPath:
		return r.serveSeal(body)
	}
	return http.StatusNotFound, nil
}

// OpenPeerFile serves a snapshot file to another node (server.PeerFiles): a request not
// signed with the cluster's key (its path and query) is refused with 403.
func (r *Replication) OpenPeerFile(uri string, header func(string) []byte) (int, io.ReadCloser, int64) {
	if err := r.key.Verify(header, uri, nil); err != nil {
		r.log.Debug("peer request refused", "path", uri, "err", err)
		return http.StatusForbidden, nil, 0
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil || u.Path != multiraft.SnapshotPath {
		return http.StatusNotFound, nil, 0
	}
	q := u.Query()
	id, err := strconv.ParseUint(q.Get("group"), 10, 64)
	if err != nil {
		return http.StatusBadRequest, nil, 0
	}
	f, size, err := r.host.OpenSnapshotFile(multiraft.GroupID(id), q.Get("file"))
	switch {
	case errors.Is(err, multiraft.ErrClosed):
		return http.StatusServiceUnavailable, nil, 0
	case err != nil:
		return http.StatusNotFound, nil, 0 // no detail of the node's files
	}
	return http.StatusOK, f, size
}

// serveForward puts the records another node forwarded (already authorised there).
func (r *Replication) serveForward(body []byte) (int, []byte) {
	r.mu.Lock()
	eng := r.eng
	r.mu.Unlock()
	if eng == nil {
		return http.StatusServiceUnavailable, []byte("starting\n")
	}
	fw, err := decodeForward(body)
	if err != nil {
		return http.StatusBadRequest, []byte("malformed forward: " + err.Error() + "\n")
	}
	res, err := eng.PutRecords(fw.stream, fw.entries)
	if err != nil {
		return http.StatusConflict, []byte(stream.KindOf(err).String() + "\n")
	}
	return http.StatusOK, appendForwardResults(nil, res)
}

// ErrForward is wrapped by Forward's errors when the leader did not take the records; the
// errors after it may have taken some wrap stream.ErrUnknownOutcome instead.
var ErrForward = errors.New("cluster: forwarded write not taken")

// Forward sends records of shard to the node whose Raft id is leader, which puts them (the
// server's Peer.Forward). The leader routes them on its own shard map.
func (r *Replication) Forward(streamName string, shard stream.ShardID, leader uint64, entries []stream.PutEntry) ([]stream.PutResult, error) {
	r.mu.Lock()
	n, ok := r.byRaft[leader]
	r.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: leader %d is not registered", ErrForward, leader)
	}
	body := appendForward(nil, streamName, shard, entries)
	req, err := http.NewRequest(http.MethodPost, r.peerURL(n, ForwardPath), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	r.key.Sign(req.Header, ForwardPath, body)
	resp, err := r.http.Do(req)
	if err != nil {
		if notSent(err) {
			return nil, fmt.Errorf("%w: %w", ErrForward, err)
		}
		return nil, fmt.Errorf("%w: %w", stream.ErrUnknownOutcome, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxPeerBody))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", stream.ErrUnknownOutcome, err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable:
		// the leader failed while handling the records: some may be stored
		return nil, fmt.Errorf("%w: leader answered %s", stream.ErrUnknownOutcome, resp.Status)
	default: // refused before the engine took anything (signature, format, starting, stream)
		return nil, fmt.Errorf("%w: leader answered %s", ErrForward, resp.Status)
	}
	res, err := decodeForwardResults(out, len(entries))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", stream.ErrUnknownOutcome, err)
	}
	return res, nil
}

// notSent reports whether err, from an HTTP request, came before any byte of the request was
// written: the connection could not be made.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// nodes returns a copy of the registered nodes by id, taken under r.mu.
func (r *Replication) nodes() map[uint64]Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.byNode)
}
