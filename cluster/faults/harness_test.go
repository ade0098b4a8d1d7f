//go:build linux

package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/rs/zerolog"

	"github.com/sluice-streams/sluice/client"
	sluicecluster "github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/cluster/etcdtest"
	"github.com/sluice-streams/sluice/cluster/invariant"
	"github.com/sluice-streams/sluice/replica"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// electionTimeout is the nodes' Raft election timeout (multiraft's defaults: 10 ticks of
// 100 ms). Resume times are reported against twice it; no test asserts a timing.
const electionTimeout = time.Second

// patience bounds every wait for the cluster to do something it must do (elect, catch up,
// serve again); past it the test fails. It is a liveness bound, not a timing claim.
const patience = 60 * time.Second

// sluiceBin is the sluice binary TestMain builds once.
var sluiceBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sluiceBin = filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", sluiceBin, "github.com/sluice-streams/sluice/cmd/sluice")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sluice:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cluster is etcd and sluice nodes on loopback (three unless a layout says otherwise).
type cluster struct {
	t       *testing.T
	etcd    *etcdtest.Server
	layout  layout
	base    string               // the nodes' data directories and logs are under it
	proxies *toxiproxy.ApiServer // the proxies' registry
	ec      *sluicecluster.Client
	nodes   []*node // node id i is nodes[i-1]
}

// layout is how a cluster starts: its nodes, the replication factor (0: the default, 3) and
// the zones the nodes are dealt over (node i in zone-((i-1) mod zones + 1); 0: no zones).
type layout struct {
	nodes, replicas, zones int
}

// node is one `sluice serve` process (or its absence, between a kill and a restart).
type node struct {
	t        *testing.T
	id       int    // --node-id
	zone     string // --zone, when not empty
	replicas int    // --replicas, when not 0
	addr     string // --addr: the Kinesis API, reached directly by clients
	peer     string // --peer-addr: the proxy's address
	dataDir  string
	logPath  string
	etcd     string
	proxy    *toxiproxy.Proxy
	kc       *kinesis.Client

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	paused bool
	starts int // processes started
}

// startCluster starts etcd (Debian's binary when present, else the embedded server) and n
// nodes, and waits until each serves.
func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	return startLayout(t, layout{nodes: n})
}

// startLayout starts etcd and the layout's nodes, and waits until each serves.
func startLayout(t *testing.T, l layout) *cluster {
	t.Helper()
	c := newLayout(t, l)
	for _, nd := range c.nodes {
		nd.start()
	}
	return c
}

// newLayout starts etcd and makes the layout's nodes, none of them started.
func newLayout(t *testing.T, l layout) *cluster {
	t.Helper()
	kinds := etcdtest.Kinds(t)
	c := &cluster{t: t, etcd: etcdtest.Start(t, kinds[len(kinds)-1]), layout: l, base: dataBase(t),
		proxies: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())}
	ec, err := sluicecluster.Dial(sluicecluster.Config{Endpoints: c.etcd.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	c.ec = ec
	for range l.nodes {
		c.newNode()
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			nd.kill()
			nd.proxy.Stop()
		}
		if t.Failed() {
			for _, nd := range c.nodes {
				nd.dumpLog()
			}
		}
		c.ec.Close()
	})
	return c
}

// newNode adds the next node (id len(nodes)+1, an empty data directory, its proxy started)
// to the cluster without starting its process.
func (c *cluster) newNode() *node {
	t := c.t
	i := len(c.nodes) + 1
	nd := &node{t: t, id: i, replicas: c.layout.replicas, addr: freeAddr(t), dataDir: filepath.Join(c.base, fmt.Sprintf("node-%d", i)),
		logPath: filepath.Join(c.base, fmt.Sprintf("node-%d.log", i)), etcd: c.etcd.Endpoints()[0]}
	if c.layout.zones > 0 {
		nd.zone = fmt.Sprintf("zone-%d", (i-1)%c.layout.zones+1)
	}
	nd.proxy = toxiproxy.NewProxy(c.proxies, fmt.Sprintf("node-%d", i), freeAddr(t), nd.addr)
	if err := nd.proxy.Start(); err != nil {
		t.Fatal(err)
	}
	nd.peer = nd.proxy.Listen
	nd.kc = sdkClient(nd.addr)
	c.nodes = append(c.nodes, nd)
	return nd
}

// dataBase is the directory the nodes' data directories and logs go in: a temporary one,
// or, when SLUICE_FAULTS_KEEP names a directory, a new directory in it that is kept when the
// test fails (for the invariant checker and `sluice inspect` to read afterwards) and
// removed when it passes.
func dataBase(t *testing.T) string {
	t.Helper()
	keep := os.Getenv("SLUICE_FAULTS_KEEP")
	if keep == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(keep, 0o755); err != nil {
		t.Fatal(err)
	}
	base, err := os.MkdirTemp(keep, strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("data directories kept in %s", base)
			return
		}
		os.RemoveAll(base)
	})
	return base
}

// handedOut are the addresses freeAddr returned in this process: a port is free once its
// listener closes, so the kernel may hand it out again before the node it was chosen for
// binds it (a layout chooses every node's address before it starts any).
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// freeAddr returns a loopback address with a free port that it never returned before.
func freeAddr(t *testing.T) string {
	handedOut.Lock()
	defer handedOut.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr
		}
	}
}

// sdkClient is an AWS SDK client of one node: unsigned (the default account), one attempt
// per call (the producers decide what to retry), and a timeout so that a call to a stopped
// process returns.
func sdkClient(addr string) *kinesis.Client {
	return kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr),
		Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1, HTTPClient: &http.Client{Timeout: 5 * time.Second}})
}

// start starts the node's process and waits until it says it serves.
func (nd *node) start() {
	nd.t.Helper()
	logf, err := os.OpenFile(nd.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		nd.t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- start %s\n", time.Now().Format(time.RFC3339Nano))
	args := []string{"serve", "--node-id", strconv.Itoa(nd.id), "--cluster-etcd", nd.etcd,
		"--addr", nd.addr, "--peer-addr", nd.peer, "--data-dir", nd.dataDir, "--limits", "off", "--segment-size", "4MiB"}
	if nd.zone != "" {
		args = append(args, "--zone", nd.zone)
	}
	if nd.replicas != 0 {
		args = append(args, "--replicas", strconv.Itoa(nd.replicas))
	}
	cmd := exec.Command(sluiceBin, args...)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		nd.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		nd.t.Fatal(err)
	}
	exited := make(chan struct{})
	ready := make(chan struct{})
	logPath := nd.logPath
	go func() {
		lf, _ := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0o600)
		lines := bufio.NewScanner(out)
		said := false
		for lines.Scan() {
			if lf != nil {
				fmt.Fprintln(lf, lines.Text())
			}
			if !said && strings.HasPrefix(lines.Text(), "sluice: serving") {
				said = true
				close(ready)
			}
		}
		if lf != nil {
			lf.Close()
		}
		cmd.Wait()
		close(exited)
	}()
	nd.mu.Lock()
	nd.cmd, nd.exited, nd.paused = cmd, exited, false
	nd.starts++
	nd.mu.Unlock()
	select {
	case <-ready:
	case <-exited:
		nd.dumpLog()
		nd.t.Fatalf("node %d exited before it served: %v", nd.id, cmd.ProcessState)
	case <-time.After(patience):
		nd.t.Fatalf("node %d did not serve within %v", nd.id, patience)
	}
}

// startCount is how many processes of the node were started.
func (nd *node) startCount() int {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.starts
}

// signal sends sig to the running process; false when there is none.
func (nd *node) signal(sig syscall.Signal) bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return false
	}
	nd.cmd.Process.Signal(sig)
	switch sig {
	case syscall.SIGSTOP:
		nd.paused = true
	case syscall.SIGCONT:
		nd.paused = false
	}
	return true
}

// wait waits for the process to exit and forgets it.
func (nd *node) wait() {
	nd.mu.Lock()
	exited := nd.exited
	nd.mu.Unlock()
	if exited == nil {
		return
	}
	<-exited
	nd.mu.Lock()
	nd.cmd, nd.exited = nil, nil
	nd.mu.Unlock()
}

// kill kills the process with SIGKILL (a stopped one too) and waits for it.
func (nd *node) kill() {
	if nd.signal(syscall.SIGKILL) {
		nd.wait()
	}
}

// stop stops the process cleanly (SIGTERM; SIGKILL if it does not exit within patience).
func (nd *node) stop() {
	nd.signal(syscall.SIGCONT)
	if !nd.signal(syscall.SIGTERM) {
		return
	}
	nd.mu.Lock()
	exited := nd.exited
	nd.mu.Unlock()
	select {
	case <-exited:
	case <-time.After(patience):
		nd.t.Errorf("node %d did not stop on SIGTERM within %v", nd.id, patience)
		nd.signal(syscall.SIGKILL)
	}
	nd.wait()
}

// wipe removes the node's data directory; the node must be down.
func (nd *node) wipe() {
	nd.t.Helper()
	nd.mu.Lock()
	up := nd.cmd != nil
	nd.mu.Unlock()
	if up {
		nd.t.Fatalf("BUG: wipe of node %d while it runs", nd.id)
	}
	if err := os.RemoveAll(nd.dataDir); err != nil {
		nd.t.Fatal(err)
	}
}

// cut stops the node's proxy: nothing the other nodes send reaches it. heal starts it again.
func (nd *node) cut() { nd.proxy.Stop() }

func (nd *node) heal() {
	nd.t.Helper()
	if err := nd.proxy.Start(); err != nil {
		nd.t.Fatalf("healing node %d's proxy: %v", nd.id, err)
	}
}

func (nd *node) dumpLog() {
	b, _ := os.ReadFile(nd.logPath)
	const max = 16 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	nd.t.Logf("node %d's log (the end):\n%s", nd.id, b)
}

// raftID is the Raft member id in the node's node.json (0 when there is none).
func (nd *node) raftID() uint64 {
	b, err := os.ReadFile(filepath.Join(nd.dataDir, "node.json"))
	if err != nil {
		return 0
	}
	var v struct {
		RaftID uint64 `json:"raft_id"`
	}
	json.Unmarshal(b, &v)
	return v.RaftID
}

// up returns the nodes whose process runs and is not stopped.
func (c *cluster) up() []*node {
	var out []*node
	for _, nd := range c.nodes {
		nd.mu.Lock()
		if nd.cmd != nil && !nd.paused {
			out = append(out, nd)
		}
		nd.mu.Unlock()
	}
	return out
}

// leaders guesses, from the files of the running nodes, which node leads each shard of the
// stream: a leader has voted for itself (its raft.state's vote is its own Raft id) in the
// highest term any replica of the shard has seen. With PreVote, a candidate that reached a
// term almost always won it. It returns the leader's index in c.nodes per shard, -1 when no
// node qualifies.
func (c *cluster) leaders(name string) map[shardmap.ShardID]int {
	type seen struct {
		node int
		st   replica.SideState
	}
	byShard := map[shardmap.ShardID][]seen{}
	for i, nd := range c.nodes {
		dirs, _ := filepath.Glob(filepath.Join(nd.dataDir, "streams", name+"@*", "shard-*"))
		for _, d := range dirs {
			id, err := strconv.ParseUint(strings.TrimPrefix(filepath.Base(d), "shard-"), 10, 32)
			if err != nil {
				continue
			}
			st, err := replica.ReadSide(d)
			if err != nil {
				continue
			}
			byShard[shardmap.ShardID(id)] = append(byShard[shardmap.ShardID(id)], seen{i, st})
		}
	}
	out := map[shardmap.ShardID]int{}
	for id, ss := range byShard {
		var top uint64
		for _, s := range ss {
			top = max(top, s.st.Term)
		}
		out[id] = -1
		for _, s := range ss {
			if s.st.Term == top && s.st.Vote != 0 && s.st.Vote == c.nodes[s.node].raftID() {
				out[id] = s.node
			}
		}
	}
	return out
}

// leadingMost returns the running node that leads the most shards of the stream (by leaders),
// or the first running node when none is known to lead.
func (c *cluster) leadingMost(name string) *node {
	count := map[int]int{}
	for _, n := range c.leaders(name) {
		if n >= 0 {
			count[n]++
		}
	}
	var best *node
	for _, nd := range c.up() {
		i := nd.id - 1
		if best == nil || count[i] > count[best.id-1] {
			best = nd
		}
	}
	c.t.Logf("node %d leads %d of the shards of %s, as its files say", best.id, count[best.id-1], name)
	return best
}

// createStream creates a stream through node 1 and waits until every running node lists its
// open shards.
func (c *cluster) createStream(name string, shards int32) {
	c.t.Helper()
	ctx := context.Background()
	if _, err := c.nodes[0].kc.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(shards)}); err != nil {
		c.t.Fatal(err)
	}
	for _, nd := range c.up() {
		c.eventually(fmt.Sprintf("node %d lists %d open shards of %s", nd.id, shards, name), func() error {
			open, err := nd.openShards(name)
			if err == nil && len(open) != int(shards) {
				err = fmt.Errorf("%d open shards", len(open))
			}
			return err
		})
	}
}

// openShards asks the node for the stream's open shards.
func (nd *node) openShards(name string) ([]invariant.Range, error) {
	var out []invariant.Range
	in := &kinesis.ListShardsInput{StreamName: aws.String(name)}
	for {
		res, err := nd.kc.ListShards(context.Background(), in)
		if err != nil {
			return nil, err
		}
		for _, s := range res.Shards {
			if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
				continue
			}
			r, err := rangeOf(s)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		if res.NextToken == nil {
			return out, nil
		}
		in = &kinesis.ListShardsInput{NextToken: res.NextToken}
	}
}

func rangeOf(s types.Shard) (invariant.Range, error) {
	id, err := shardmap.ParseShardID(aws.ToString(s.ShardId))
	if err != nil {
		return invariant.Range{}, err
	}
	lo, err := shardmap.ParseKey(aws.ToString(s.HashKeyRange.StartingHashKey))
	if err != nil {
		return invariant.Range{}, err
	}
	hi, err := shardmap.ParseKey(aws.ToString(s.HashKeyRange.EndingHashKey))
	return invariant.Range{Shard: id, Low: lo, High: hi}, err
}

// eventually calls f until it returns nil, failing the test after patience.
func (c *cluster) eventually(what string, f func() error) {
	c.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: not after %v: %v", what, patience, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// converge waits until every running node its placement record lists as a replica of a
// shard serves the last record acknowledged there: its replica caught up.
func (c *cluster) converge(name string, p *producer) {
	c.t.Helper()
	last := p.lastPerShard()
	// With etcd stopped (TestEtcdDown) the records cannot be read: then every node up is
	// taken for a replica, which holds while there are no more nodes than replicas.
	placed, err := c.placementOnce(name)
	if err != nil && len(c.nodes) > max(c.layout.replicas, 3) {
		c.t.Fatalf("reading the placement of %s: %v", name, err)
	}
	for id, a := range last {
		if err == nil && len(placed[id].Raft) == 0 {
			c.t.Fatalf("%s holds acknowledged records and has no replicated placement (%+v)", id, placed[id])
		}
		for _, nd := range c.up() {
			if err == nil && !slices.Contains(placed[id].Replicas, uint64(nd.id)) {
				continue
			}
			c.eventually(fmt.Sprintf("node %d serves %s up to %s", nd.id, id, a.Seq), func() error {
				return nd.serves(name, id, a)
			})
		}
	}
}

// placement reads the placement record of every shard of the stream.
func (c *cluster) placement(name string) map[shardmap.ShardID]sluicecluster.ShardPlacement {
	c.t.Helper()
	var out map[shardmap.ShardID]sluicecluster.ShardPlacement
	c.eventually("reading the placement records", func() error {
		var err error
		out, err = c.placementOnce(name)
		return err
	})
	return out
}

// placementOnce is one attempt of placement.
func (c *cluster) placementOnce(name string) (map[shardmap.ShardID]sluicecluster.ShardPlacement, error) {
	all, err := c.ec.AllPlacements()
	if err != nil {
		return nil, err
	}
	out := map[shardmap.ShardID]sluicecluster.ShardPlacement{}
	for k, p := range all {
		if k.Stream == name {
			out[k.Shard] = p
		}
	}
	return out, nil
}

// placed returns nil when every replica of every placement record of the stream is a voter
// under its node's current Raft id: the groups' leaders made the records' changes.
func (c *cluster) placed(name string) error {
	for id, p := range c.placement(name) {
		for i, n := range p.Replicas {
			if n == 0 || int(n) > len(c.nodes) {
				return fmt.Errorf("%s: placed on node %d, which the test did not start", id, n)
			}
			if len(p.Raft) != len(p.Replicas) || p.Raft[i] != c.nodes[n-1].raftID() {
				return fmt.Errorf("%s: replicas %v, Raft ids %v: node %d is not a voter yet", id, p.Replicas, p.Raft, n)
			}
		}
	}
	return nil
}

// replaced waits until the placement of every shard of the stream names the wiped node nd
// under its new Raft id and no longer under old: each shard's leader replaced the member
// (the placement is rewritten once the new id is a voter and the old one is not). Until
// then a group may count four voters, two of them the wiped node's, and one more node
// down would leave it without a majority.
func (c *cluster) replaced(name string, nd *node, old uint64) {
	c.t.Helper()
	cl, err := sluicecluster.Dial(sluicecluster.Config{Endpoints: c.etcd.Endpoints()})
	if err != nil {
		c.t.Fatal(err)
	}
	defer cl.Close()
	now := nd.raftID()
	for shard := stream.ShardID(0); shard < shards; shard++ {
		c.eventually(fmt.Sprintf("shard %d's placement names node %d's Raft id %d instead of %d", shard, nd.id, now, old), func() error {
			p, ok, err := cl.PlacementOf(name, shard)
			switch {
			case err != nil:
				return err
			case !ok:
				return errors.New("no placement")
			case slices.Contains(p.Raft, old) || !slices.Contains(p.Raft, now):
				return fmt.Errorf("placement %v", p.Raft)
			}
			return nil
		})
	}
}

// serves returns nil when the node returns the record a from a read at its sequence number.
func (nd *node) serves(name string, id shardmap.ShardID, a invariant.Acked) error {
	ctx := context.Background()
	it, err := nd.kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: aws.String(id.String()),
		ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: aws.String(a.Seq.String())})
	if err != nil {
		return err
	}
	res, err := nd.kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(1)})
	if err != nil {
		return err
	}
	if len(res.Records) == 0 {
		return errors.New("no record yet")
	}
	if got := aws.ToString(res.Records[0].SequenceNumber); got != a.Seq.String() || string(res.Records[0].Data) != string(a.Data) {
		return fmt.Errorf("read %s %q, want %s %q", got, res.Records[0].Data, a.Seq, a.Data)
	}
	return nil
}

// finish lets the cluster converge, takes ListShards from a running node (the open shards
// and the closed shards' endings), stops every node cleanly, and runs the invariant checker
// over their data directories.
func (c *cluster) finish(name string, p *producer) {
	c.t.Helper()
	for _, nd := range c.nodes {
		nd.signal(syscall.SIGCONT)
		if !nd.proxy.Enabled {
			nd.heal()
		}
	}
	c.eventually("every placed replica is a voter", func() error { return c.placed(name) })
	c.converge(name, p)
	var open []invariant.Range
	c.eventually("ListShards", func() error {
		var err error
		open, err = c.up()[0].openShards(name)
		return err
	})
	endings := c.endings(name)
	if err := c.settled(name); err != nil {
		c.t.Logf("the groups' members are not their placements' replicas: %v", err)
	}
	members := map[shardmap.ShardID][]int{}
	for id, pl := range c.placement(name) {
		for _, n := range pl.Replicas {
			members[id] = append(members[id], int(n))
		}
	}
	for _, nd := range c.nodes {
		nd.stop()
	}
	acked := p.all()
	rep, err := invariant.Check(invariant.Input{Stream: name, Nodes: c.dataDirs(), Acked: acked, Open: open, Members: members, Endings: endings})
	if err != nil {
		c.t.Fatalf("invariant checker: %v", err)
	}
	c.t.Logf("invariant checker: %d acknowledged records, %d shards, %d replicas (%d not members), %d frames compared, %d committed positions, %d records stored again by their producer's retries",
		len(acked), rep.Shards, rep.Replicas, rep.Others, rep.Frames, rep.Committed, rep.Retried)
	for _, pr := range rep.Problems {
		c.t.Error(pr)
	}
}

func (c *cluster) dataDirs() []string {
	var out []string
	for _, nd := range c.nodes {
		out = append(out, nd.dataDir)
	}
	return out
}

// ack is one acknowledged record and when the acknowledgement came, through which node.
type ack struct {
	invariant.Acked
	at   time.Time
	node int
}

// producer writes records through every node (one goroutine each, PutRecords of batch
// records with random partition keys) and keeps every acknowledgement. Every attempt's data
// is unique, so that the checker can tell a record stored twice. Go client Producers may be
// added to it (produceGo).
type producer struct {
	t      *testing.T
	name   string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	gos    []*client.Producer // written before their goroutines start, and by stop

	mu       sync.Mutex
	acks     []ack
	failures map[string]int         // error code → count
	through  map[int]map[string]int // node id → error code → count
}

func (c *cluster) produce(name string, batch int) *producer {
	ctx, cancel := context.WithCancel(context.Background())
	p := &producer{t: c.t, name: name, ctx: ctx, cancel: cancel, failures: map[string]int{}, through: map[int]map[string]int{}}
	for _, nd := range c.nodes {
		p.wg.Add(1)
		go p.run(ctx, nd, batch)
	}
	c.t.Cleanup(p.stop)
	if os.Getenv("SLUICE_FAULTS_KEEP") != "" {
		// Runs after p.stop (cleanups run last first): every acknowledgement is in.
		c.t.Cleanup(func() {
			if c.t.Failed() {
				b, _ := json.Marshal(p.all())
				os.WriteFile(filepath.Join(c.base, name+".acked.json"), b, 0o600)
			}
		})
	}
	return p
}

func (p *producer) run(ctx context.Context, nd *node, batch int) {
	defer p.wg.Done()
	for n := 0; ctx.Err() == nil; n++ {
		entries := make([]types.PutRecordsRequestEntry, batch)
		for i := range entries {
			entries[i] = types.PutRecordsRequestEntry{
				PartitionKey: aws.String(fmt.Sprintf("key-%d-%d-%d", nd.id, n, i)),
				Data:         fmt.Appendf(nil, "node %d attempt %d record %d", nd.id, n, i),
			}
		}
		res, err := nd.kc.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String(p.name), Records: entries})
		now := time.Now()
		if err != nil {
			p.fail(nd.id, errorCode(err))
			if ctx.Err() == nil {
				time.Sleep(20 * time.Millisecond)
			}
			continue
		}
		for i, r := range res.Records {
			if r.ErrorCode != nil {
				p.fail(nd.id, *r.ErrorCode)
				continue
			}
			a, err := ackOf(r, entries[i])
			if err != nil {
				p.t.Errorf("node %d acknowledged a record with %v", nd.id, err)
				continue
			}
			p.mu.Lock()
			p.acks = append(p.acks, ack{Acked: a, at: now, node: nd.id})
			p.mu.Unlock()
		}
	}
}

func ackOf(r types.PutRecordsResultEntry, e types.PutRecordsRequestEntry) (invariant.Acked, error) {
	seq, err := stream.ParseSeqNum(aws.ToString(r.SequenceNumber))
	if err != nil {
		return invariant.Acked{}, err
	}
	id, err := shardmap.ParseShardID(aws.ToString(r.ShardId))
	if err != nil {
		return invariant.Acked{}, err
	}
	if id != seq.Shard {
		return invariant.Acked{}, fmt.Errorf("shard %s and sequence number %s of shard %s", id, seq, seq.Shard)
	}
	return invariant.Acked{Seq: seq, Key: []byte(aws.ToString(e.PartitionKey)), Data: e.Data}, nil
}

func (p *producer) fail(node int, code string) {
	p.mu.Lock()
	p.failures[code]++
	if p.through[node] == nil {
		p.through[node] = map[string]int{}
	}
	p.through[node][code]++
	p.mu.Unlock()
}

// failuresThrough is the failures of the producer writing through node id, by error code.
func (p *producer) failuresThrough(id int) map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.through[id])
}

// acksThrough counts the records acknowledged through node id at or after since.
func (p *producer) acksThrough(id int, since time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, a := range p.acks {
		if a.node == id && !a.at.Before(since) {
			n++
		}
	}
	return n
}

// errorCode is the AWS error name of an SDK error, or a short description of a transport
// error.
func errorCode(err error) string {
	var ae interface{ ErrorCode() string }
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return "connection"
	}
	return "other"
}

// stop stops the producers and waits for them; a Go client Producer is closed, which waits
// (up to patience) for the outcome of every record it took.
func (p *producer) stop() {
	p.cancel()
	p.wg.Wait()
	for _, gp := range p.gos {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		if err := gp.Close(ctx); err != nil {
			p.t.Logf("closing a Go producer: %v", err)
		}
		cancel()
	}
	p.gos = nil
}

func (p *producer) all() []invariant.Acked {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]invariant.Acked, len(p.acks))
	for i, a := range p.acks {
		out[i] = a.Acked
	}
	return out
}

func (p *producer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acks)
}

func (p *producer) lastPerShard() map[shardmap.ShardID]invariant.Acked {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[shardmap.ShardID]invariant.Acked{}
	for _, a := range p.acks {
		if a.Seq.Pos > out[a.Seq.Shard].Seq.Pos {
			out[a.Seq.Shard] = a.Acked
		}
	}
	return out
}

// acksAfter returns the acknowledgements that came after t, through any node (node 0) or
// through the given node.
func (p *producer) acksAfter(t time.Time, node int) []ack {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []ack
	for _, a := range p.acks {
		if a.at.After(t) && (node == 0 || a.node == node) {
			out = append(out, a)
		}
	}
	return out
}

// resumed waits until every one of the stream's shards has an acknowledgement after since,
// and returns how long after since the last of those first acknowledgements came.
func (c *cluster) resumed(p *producer, shards int, since time.Time) time.Duration {
	c.t.Helper()
	var took time.Duration
	c.eventually(fmt.Sprintf("writes to all %d shards resume", shards), func() error {
		first := map[shardmap.ShardID]time.Time{}
		for _, a := range p.acksAfter(since, 0) {
			if f, ok := first[a.Seq.Shard]; !ok || a.at.Before(f) {
				first[a.Seq.Shard] = a.at
			}
		}
		if len(first) < shards {
			return fmt.Errorf("%d of %d shards acknowledged a write since", len(first), shards)
		}
		took = 0
		for _, f := range first {
			took = max(took, f.Sub(since))
		}
		return nil
	})
	return took
}

// failureSummary is the producers' failures by error code, for the log.
func (p *producer) failureSummary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, _ := json.Marshal(p.failures)
	return string(b)
}
