package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/cluster/etcdtest"
	"github.com/sluice-streams/sluice/cluster/invariant"
	"github.com/sluice-streams/sluice/replica"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// memNode is one cluster node in the test process: its Replication (a Raft host whose peer
// routes a net/http server on loopback serves), its membership, and an engine on the cluster's
// catalog whose shard logs are the Replication's.
type memNode struct {
	t      testing.TB
	id     uint64
	dir    string
	raftID uint64
	c      *cluster.Client
	repl   *cluster.Replication
	eng    *stream.Engine
	srv    *http.Server
	member *cluster.Member
	cancel context.CancelFunc
	closed bool
}

// testPeerKey is every test node's peer key.
var testPeerKey = []byte("0123456789abcdef0123456789abcdef")

// memOptions are the engine settings of the test nodes: no fsync (the tests kill no process)
// and small segments (the invariant checker reads whole segment files).
var memOptions = stream.Options{Limits: stream.Limits{Off: true, Factor: 1}, Durability: segment.Durability{Mode: segment.None}, SegmentSize: 4 << 20}

// startMemNode starts node id with its data in dir, registered in the cluster name of srv,
// its engine with opts (Dir, Catalog and OpenShardLog set here).
func startMemNode(t testing.TB, srv *etcdtest.Server, name string, id uint64, dir string, opts stream.Options) *memNode {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	raftID, err := cluster.RaftID(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := &memNode{t: t, id: id, dir: dir, raftID: raftID, c: dial(t, srv, name, nil)}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("node", id)
	n.repl, err = n.c.NewReplication(cluster.ReplicationConfig{NodeID: id, RaftID: raftID, PeerKey: testPeerKey, Logger: logger,
		TickInterval: 50 * time.Millisecond, LeaderCheckEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.srv = &http.Server{Handler: http.HandlerFunc(n.servePeer)}
	go n.srv.Serve(ln)
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	if n.member, err = n.c.JoinNode(ctx, cluster.Node{ID: id, Addr: ln.Addr().String(), RaftID: raftID}); err != nil {
		t.Fatal(err)
	}
	if err := n.repl.Run(ctx); err != nil {
		t.Fatal(err)
	}
	opts.Dir, opts.Catalog, opts.OpenShardLog = dir, n.c.Catalog(), n.repl.OpenShardLog
	n.eng, err = stream.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	n.repl.SetEngine(n.eng)
	t.Cleanup(n.stop)
	return n
}

// servePeer serves the peer routes as server.Server does.
func (n *memNode) servePeer(w http.ResponseWriter, req *http.Request) {
	header := func(k string) []byte {
		if v := req.Header.Get(k); v != "" {
			return []byte(v)
		}
		return nil
	}
	if req.Method == http.MethodGet {
		status, f, _ := n.repl.OpenPeerFile(req.URL.RequestURI(), header)
		w.WriteHeader(status)
		if f != nil {
			io.Copy(w, f)
			f.Close()
		}
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	status, resp := n.repl.HandlePeer(req.URL.Path, header, body)
	w.WriteHeader(status)
	w.Write(resp)
}

// stop leaves the cluster and closes the node (its files stay).
func (n *memNode) stop() {
	if n.closed {
		return
	}
	n.closed = true
	n.member.Leave()
	n.cancel()
	n.repl.Close()
	n.eng.Close()
	n.srv.Close()
}

// shardDir is the directory of the node's replica of shard 0 of stream name.
func (n *memNode) shardDir(name string) (string, error) {
	dirs, _ := filepath.Glob(filepath.Join(n.dir, "streams", name+"@*", "shard-0"))
	if len(dirs) != 1 {
		return "", fmt.Errorf("node %d: shard directories of %s: %v", n.id, name, dirs)
	}
	return dirs[0], nil
}

// deleted returns nil when the node deleted its replica of shard 0 of stream name and kept
// its term (and vote) beside where its directory was.
func (n *memNode) deleted(name string) error {
	streams, _ := filepath.Glob(filepath.Join(n.dir, "streams", name+"@*"))
	if len(streams) != 1 {
		return fmt.Errorf("node %d: directories of %s: %v", n.id, name, streams)
	}
	if _, err := os.Stat(filepath.Join(streams[0], "shard-0")); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("node %d: its replica's directory is still there (%v)", n.id, err)
	}
	term, _, ok, err := replica.ReadVote(filepath.Join(streams[0], ".vote-shard-0"))
	if err == nil && (!ok || term == 0) {
		err = fmt.Errorf("node %d: no term kept (%v, term %d)", n.id, ok, term)
	}
	return err
}

// put writes count records to stream name through the node whose engine leads its shard,
// trying the nodes in turn; it returns what was acknowledged.
func put(t testing.TB, nodes []*memNode, name, tag string, count, size int) []invariant.Acked {
	t.Helper()
	var out []invariant.Acked
	data := make([]byte, size)
	for i := 0; i < count; {
		n := min(16, count-i)
		entries := make([]stream.PutEntry, n)
		for j := range entries {
			d := slices.Clone(data)
			copy(d, fmt.Sprintf("%s-%d", tag, i+j))
			entries[j] = stream.PutEntry{PartitionKey: strconv.Itoa(i + j), Data: d}
		}
		var res []stream.PutResult
		eventuallyErr(t, "a node takes the records", func() error {
			var last error = errors.New("no node open")
			for _, nd := range nodes {
				if nd.closed {
					continue
				}
				r, err := nd.eng.PutRecords(name, entries)
				if err == nil {
					for _, x := range r {
						if x.Err != nil {
							err = x.Err
							break
						}
					}
				}
				if err == nil {
					res = r
					return nil
				}
				last = err
			}
			return last
		})
		for j, r := range res {
			out = append(out, invariant.Acked{Seq: r.Seq, Key: []byte(entries[j].PartitionKey), Data: entries[j].Data})
		}
		i += n
	}
	return out
}

// patience bounds eventuallyErr's waits: a liveness bound, not a timing claim.
// BenchmarkRestoreReplica raises it for large shards.
var patience = 60 * time.Second

// eventuallyErr calls f until it returns nil, failing the test after patience.
func eventuallyErr(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v", what, patience, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// setReplicas writes shard 0's placement record of stream name in etcd directly: replicas,
// with the Raft ids of the voters among them kept.
func setReplicas(t testing.TB, srv *etcdtest.Server, cluster_, name string, replicas []uint64) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	key := "/sluice/" + cluster_ + "/placement/" + name + "/0"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("placement %s: %v", key, err)
	}
	var v struct {
		Replicas []uint64 `json:"replicas"`
		Raft     []uint64 `json:"raft"`
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &v); err != nil {
		t.Fatal(err)
	}
	raftOf := map[uint64]uint64{}
	for i, id := range v.Replicas {
		raftOf[id] = v.Raft[i]
	}
	v.Raft = make([]uint64, len(replicas))
	for i, id := range replicas {
		v.Raft[i] = raftOf[id]
	}
	v.Replicas = replicas
	b, _ := json.Marshal(v)
	if _, err := cli.Put(ctx, key, string(b)); err != nil {
		t.Fatal(err)
	}
}

// placed returns shard 0's placement record of stream name.
func placed(t testing.TB, c *cluster.Client, name string) cluster.ShardPlacement {
	t.Helper()
	p, ok, err := c.PlacementOf(name, 0)
	if err != nil || !ok {
		t.Fatalf("placement of %s: %v, %v", name, ok, err)
	}
	return p
}

// leaderOf returns the node whose Host leads shard 0 of stream name, or nil.
func leaderOf(nodes []*memNode, name string, gen uint64) *memNode {
	gid := cluster.GroupOf(name, gen, 0)
	for _, n := range nodes {
		if !n.closed && n.repl.Host().Leader(gid) == n.raftID {
			return n
		}
	}
	return nil
}

// genOf returns the incarnation of stream name, from a node's directory of it.
func genOf(t testing.TB, n *memNode, name string) uint64 {
	t.Helper()
	dir, err := n.shardDir(name)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := strconv.ParseUint(strings.TrimPrefix(filepath.Base(filepath.Dir(dir)), name+"@"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return gen
}

// moveCluster starts etcd and four nodes; a stream of one shard is created while nodes 1 to 3
// are registered, so its replicas are theirs; node 4 starts after.
func moveCluster(t testing.TB, name string, opts stream.Options) (*etcdtest.Server, []*memNode, uint64) {
	t.Helper()
	kinds := etcdtest.Kinds(t)
	srv := etcdtest.Start(t, kinds[len(kinds)-1])
	base := t.TempDir()
	var nodes []*memNode
	for id := uint64(1); id <= 3; id++ {
		nodes = append(nodes, startMemNode(t, srv, "move", id, filepath.Join(base, strconv.FormatUint(id, 10)), opts))
	}
	if err := nodes[0].eng.CreateStream(stream.CreateStreamInput{Name: name, ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	nodes = append(nodes, startMemNode(t, srv, "move", 4, filepath.Join(base, "4"), opts))
	for _, n := range nodes {
		eventuallyErr(t, fmt.Sprintf("node %d opens the stream", n.id), func() error {
			_, err := n.eng.Describe(name)
			return err
		})
	}
	if p := placed(t, nodes[0].c, name); !slices.Equal(p.Replicas, []uint64{1, 2, 3}) {
		t.Fatalf("placement %v, want [1 2 3]", p.Replicas)
	}
	return srv, nodes, genOf(t, nodes[0], name)
}

// awaitMove waits until the group's voters are the Raft ids of replicas, the placement
// records them, and every node not in replicas deleted its replica's files.
func awaitMove(t testing.TB, nodes []*memNode, name string, gen uint64, replicas []uint64) {
	t.Helper()
	awaitVoters(t, nodes, name, gen, replicas)
	for _, n := range nodes {
		if slices.Contains(replicas, n.id) || n.closed {
			continue
		}
		eventuallyErr(t, fmt.Sprintf("node %d deletes its replica and keeps its vote", n.id), func() error {
			return n.deleted(name)
		})
	}
}

// awaitVoters waits until the group's voters are the Raft ids of replicas (no learner, no
// joint configuration) and the placement records them.
func awaitVoters(t testing.TB, nodes []*memNode, name string, gen uint64, replicas []uint64) {
	t.Helper()
	want := make([]uint64, len(replicas))
	for i, id := range replicas {
		want[i] = nodes[id-1].raftID
	}
	eventuallyErr(t, fmt.Sprintf("the placement records voters %x", want), func() error {
		p, _, err := nodes[0].c.PlacementOf(name, 0)
		if err != nil {
			return err // etcd slow to answer on a loaded machine: ask again
		}
		if !slices.Equal(p.Raft, want) {
			return fmt.Errorf("it records %x", p.Raft)
		}
		l := leaderOf(nodes, name, gen)
		if l == nil {
			return errors.New("no leader")
		}
		st, err := l.repl.Host().Status(cluster.GroupOf(name, gen, 0))
		if err != nil {
			return err
		}
		var voters []uint64
		for id := range st.Config.Voters[0] {
			voters = append(voters, id)
		}
		slices.Sort(voters)
		w := slices.Sorted(slices.Values(want))
		if !slices.Equal(voters, w) || len(st.Config.Voters[1]) > 0 || len(st.Config.Learners) > 0 {
			return fmt.Errorf("the leader's configuration is %v", st.Config)
		}
		return nil
	})
}

// check stops every node and runs the invariant checker over the replicas of holders.
func check(t *testing.T, nodes []*memNode, name string, holders []uint64, acked []invariant.Acked) {
	t.Helper()
	var dirs []string
	for _, n := range nodes {
		n.stop()
		if slices.Contains(holders, n.id) {
			dirs = append(dirs, n.dir)
		}
	}
	rep, err := invariant.Check(invariant.Input{Stream: name, Nodes: dirs, Acked: acked,
		Open: []invariant.Range{{Shard: 0, Low: shardmap.Key{}, High: shardmap.MaxKey}}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Replicas != len(holders) || rep.Committed == 0 {
		t.Fatalf("the checker read %d replicas and %d committed positions", rep.Replicas, rep.Committed)
	}
	for _, p := range rep.Problems {
		t.Error(p)
	}
}

// TestMoveReplica moves a shard's replica from node 3 to node 4 by writing its placement:
// node 4 is added as a learner, catches up and becomes a voter; node 3 is removed and deletes
// its files. Records written before and during the move are all on nodes 1, 2 and 4, byte for
// byte, and the group goes on taking writes.
func TestMoveReplica(t *testing.T) {
	const name = "moved"
	srv, nodes, gen := moveCluster(t, name, memOptions)
	acked := put(t, nodes, name, "before", 200, 1000)
	setReplicas(t, srv, "move", name, []uint64{1, 2, 4})
	acked = append(acked, put(t, nodes, name, "during", 200, 1000)...)
	awaitMove(t, nodes, name, gen, []uint64{1, 2, 4})
	acked = append(acked, put(t, nodes, name, "after", 50, 1000)...)
	check(t, nodes, name, []uint64{1, 2, 4}, acked)
}

// TestMoveAwayFromLeader moves a shard's replica off the node that leads its group: the leader
// hands its leadership to a caught-up voter that stays before it is removed, and a write
// after the move commits with node 4 in the majority (node 1 stopped).
func TestMoveAwayFromLeader(t *testing.T) {
	const name = "unled"
	srv, nodes, gen := moveCluster(t, name, memOptions)
	acked := put(t, nodes, name, "before", 100, 1000)
	var lead *memNode
	eventuallyErr(t, "a leader", func() error {
		if lead = leaderOf(nodes, name, gen); lead == nil {
			return errors.New("none")
		}
		return nil
	})
	var replicas []uint64
	for _, id := range []uint64{1, 2, 3} {
		if id != lead.id {
			replicas = append(replicas, id)
		}
	}
	replicas = append(replicas, 4)
	t.Logf("node %d leads; moving its replica to node 4: replicas %v", lead.id, replicas)
	setReplicas(t, srv, "move", name, replicas)
	awaitMove(t, nodes, name, gen, replicas)
	// With one of the two old voters left stopped, a write needs node 4's vote.
	stopped := nodes[replicas[0]-1]
	stopped.stop()
	acked = append(acked, put(t, nodes, name, "after", 50, 1000)...)
	check(t, nodes, name, replicas[1:], acked) // the stopped node missed the last records
}

// TestMoveBackKeepsVote moves a shard's replica off node 3 while node 3 leads it (so that
// node 3 voted in the term it is removed in), and back: while it holds no replica, node 3
// serves the shard's records from the other nodes (the remote log); its removed replica's
// term and vote are kept beside the deleted directory; once it is a replica again, the new
// replica never went below that term, and in that term it still holds that vote (raft
// clears a vote only with a term change), so it cannot vote twice in it.
func TestMoveBackKeepsVote(t *testing.T) {
	const name = "back"
	srv, nodes, gen := moveCluster(t, name, memOptions)
	gid := cluster.GroupOf(name, gen, 0)
	acked := put(t, nodes, name, "before", 100, 1000)
	three := nodes[2]
	eventuallyErr(t, "node 3 leads", func() error {
		if lead := leaderOf(nodes, name, gen); lead != three {
			if lead != nil {
				lead.repl.Host().TransferLeadership(gid, three.raftID)
			}
			return errors.New("not yet")
		}
		return nil
	})
	setReplicas(t, srv, "move", name, []uint64{1, 2, 4})
	awaitMove(t, nodes, name, gen, []uint64{1, 2, 4})
	vote := filepath.Join(streamDir(t, three, name), ".vote-shard-0")
	term, voted, ok, err := replica.ReadVote(vote)
	if err != nil || !ok || term == 0 || voted == 0 {
		t.Fatalf("node 3's kept vote: term %d, vote %x, %v, %v", term, voted, ok, err)
	}
	acked = append(acked, put(t, nodes, name, "away", 50, 1000)...)
	last := acked[len(acked)-1]
	eventuallyErr(t, "node 3 reads the last record from the other nodes", func() error {
		return readsAt(three, name, last)
	})

	setReplicas(t, srv, "move", name, []uint64{1, 2, 3})
	awaitMove(t, nodes, name, gen, []uint64{1, 2, 3})
	st, err := three.repl.Host().Status(gid)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetTerm() < term || st.GetTerm() == term && st.GetVote() != voted {
		t.Fatalf("node 3's new replica is at term %d with vote %x; its removed one was at term %d with vote %x", st.GetTerm(), st.GetVote(), term, voted)
	}
	if _, err := os.Stat(vote); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the kept vote is still there once the new replica started from it: %v", err)
	}
	t.Logf("removed at term %d (vote %x); back at term %d (vote %x)", term, voted, st.GetTerm(), st.GetVote())
	acked = append(acked, put(t, nodes, name, "back", 50, 1000)...)
	eventuallyErr(t, "node 3 reads the last record from its replica", func() error {
		return readsAt(three, name, acked[len(acked)-1])
	})
	check(t, nodes, name, []uint64{1, 2, 3}, acked)
}

// streamDir is the node's directory of stream name.
func streamDir(t testing.TB, n *memNode, name string) string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(n.dir, "streams", name+"@*"))
	if len(dirs) != 1 {
		t.Fatalf("node %d: directories of %s: %v", n.id, name, dirs)
	}
	return dirs[0]
}

// readsAt returns nil when the node's engine reads record a of shard 0 at its position.
func readsAt(n *memNode, name string, a invariant.Acked) error {
	recs, err := n.eng.ReadShard(stream.ReadInput{Stream: name, Shard: 0, Type: stream.AtSequenceNumber, Pos: a.Seq.Pos, MaxRecords: 1})
	if err != nil {
		return err
	}
	defer recs.Release()
	it := recs.Records.Records()
	if recs.Records.First != a.Seq.Pos || !it.Next() || !bytes.Equal(it.Record().Data, a.Data) {
		return fmt.Errorf("node %d read %d records from %d", n.id, recs.Records.Count, recs.Records.First)
	}
	return nil
}

// TestKeptVotesGoWithTheShard: the kept votes of a shard's removed replicas (one per node it
// moved off, never more) are removed once the shard leaves the stream's map — closed by a
// resharding, then pruned when retention expired it: by a node that is up, with the shard's
// log; by a node that was down meanwhile, when it opens the stream again and finds the shard
// without a placement record. None is left on any node.
func TestKeptVotesGoWithTheShard(t *testing.T) {
	const name = "pruned"
	var skew atomic.Int64 // added to the engines' clock, to age the closed shard past retention
	opts := memOptions
	opts.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	srv, nodes, gen := moveCluster(t, name, opts)
	setReplicas(t, srv, "move", name, []uint64{1, 2, 4})
	awaitMove(t, nodes, name, gen, []uint64{1, 2, 4})
	nodes = append(nodes, startMemNode(t, srv, "move", 5, t.TempDir(), opts))
	eventuallyErr(t, "node 5 opens the stream", func() error {
		_, err := nodes[4].eng.Describe(name)
		return err
	})
	setReplicas(t, srv, "move", name, []uint64{1, 2, 5})
	awaitMove(t, nodes, name, gen, []uint64{1, 2, 5})
	if got := keptVotes(t, nodes); !slices.Equal(got, []string{"3:.vote-shard-0", "4:.vote-shard-0"}) {
		t.Fatalf("kept votes after two moves: %v, want node 3's and node 4's of shard 0", got)
	}

	three := nodes[2]
	three.stop()
	if _, _, err := nodes[0].eng.UpdateShardCount(name, 2); err != nil {
		t.Fatal(err)
	}
	skew.Store(int64(48 * time.Hour)) // past the default retention, 24 h
	err := nodes[0].eng.Maintain()
	skew.Store(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if n.closed {
			continue
		}
		eventuallyErr(t, fmt.Sprintf("node %d drops shard 0", n.id), func() error {
			d, err := n.eng.Describe(name)
			if err == nil && len(d.Shards) > 0 && d.Shards[0].ID == 0 {
				err = errors.New("still listed")
			}
			return err
		})
	}
	eventuallyErr(t, "node 4 removes its kept vote with the shard", func() error {
		if got := keptVotes(t, nodes[3:4]); len(got) > 0 {
			return fmt.Errorf("left: %v", got)
		}
		return nil
	})

	nodes[2] = startMemNode(t, srv, "move", 3, three.dir, opts)
	eventuallyErr(t, "node 3 opens the stream again", func() error {
		_, err := nodes[2].eng.Describe(name)
		return err
	})
	if got := keptVotes(t, nodes); len(got) > 0 {
		t.Fatalf("kept votes left once the shard was pruned: %v", got)
	}
}

// keptVotes lists the kept votes in the nodes' stream directories, as "<node>:<file>".
func keptVotes(t testing.TB, nodes []*memNode) []string {
	t.Helper()
	var out []string
	for _, n := range nodes {
		files, err := filepath.Glob(filepath.Join(n.dir, "streams", "*", ".vote-*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			out = append(out, fmt.Sprintf("%d:%s", n.id, filepath.Base(f)))
		}
	}
	slices.Sort(out)
	return out
}
