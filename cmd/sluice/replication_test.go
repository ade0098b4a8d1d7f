package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/cluster/etcdtest"
	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/stream"
)

// clusterNode is one `sluice serve` child process of a replication test.
type clusterNode struct {
	id   int
	addr string
	dir  string
	args []string // more flags of sluice serve
	cmd  *exec.Cmd
	// tls, when set, is the client of a node serving HTTPS (base is then https); nil:
	// http.DefaultClient over plaintext.
	tls *http.Client

	mu      sync.Mutex
	leading map[string]bool // shard id → the node's last "shard leadership" line says it leads
	exited  chan struct{}
	warns   []string // the node's last warnings and errors, logged if the test fails
	handOff string   // the node's "leadership handed off" line, when it stopped gracefully
}

func (n *clusterNode) base() string {
	if n.tls != nil {
		return "https://" + n.addr
	}
	return "http://" + n.addr
}

// client returns the HTTP client of node n's base.
func (n *clusterNode) client() *http.Client {
	if n.tls != nil {
		return n.tls
	}
	return http.DefaultClient
}

// startNode starts (or restarts, on the same address and directory) node n against etcd.
func startNode(t *testing.T, n *clusterNode, etcd string) {
	t.Helper()
	n.cmd = sluiceCmd(append([]string{"serve", "--node-id", strconv.Itoa(n.id), "--cluster-etcd", etcd, "--addr", n.addr, "--data-dir", n.dir}, n.args...)...)
	stdout, err := n.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	n.leading = map[string]bool{}
	n.exited = make(chan struct{})
	exited := n.exited
	n.mu.Unlock()
	cmd := n.cmd
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	t.Cleanup(func() {
		if t.Failed() {
			n.mu.Lock()
			defer n.mu.Unlock()
			for _, l := range n.warns {
				t.Logf("node %d: %s", n.id, l)
			}
		}
	})
	leadership := regexp.MustCompile(`msg="shard leadership" stream=\S+ shard=(\S+) leads=(true|false)`)
	go func() {
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			if m := leadership.FindStringSubmatch(lines.Text()); m != nil {
				n.mu.Lock()
				n.leading[m[1]] = m[2] == "true"
				n.mu.Unlock()
			}
			if l := lines.Text(); strings.Contains(l, `msg="leadership handed off"`) {
				n.mu.Lock()
				n.handOff = l
				n.mu.Unlock()
			}
			if l := lines.Text(); strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
				n.mu.Lock()
				n.warns = append(n.warns[max(0, len(n.warns)-49):], l)
				n.mu.Unlock()
			}
		}
	}()
	served := make(chan bool, 1)
	go func() {
		lines := bufio.NewScanner(stdout)
		ok := false
		for lines.Scan() {
			if !ok && strings.HasPrefix(lines.Text(), "sluice: serving") {
				ok = true
				served <- true
			}
		}
		if !ok {
			served <- false
		}
		cmd.Wait()
		close(exited)
	}()
	select {
	case ok := <-served:
		if !ok {
			t.Fatalf("node %d exited before it served: %v", n.id, cmd.ProcessState)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("node %d did not serve within 60s", n.id)
	}
}

// kill9 kills node n with SIGKILL and waits for it to be gone.
func (n *clusterNode) kill9() {
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// stop stops node n with SIGTERM (a clean shutdown) and waits for it.
func (n *clusterNode) stop(t *testing.T) {
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("node %d did not stop on SIGTERM", n.id)
	}
}

// leads returns the shards node n says it leads.
func (n *clusterNode) leads() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for sh, l := range n.leading {
		if l {
			out = append(out, sh)
		}
	}
	sort.Strings(out)
	return out
}

// startCluster starts a real etcd and three nodes, and creates stream name with shards
// shards through node 1, active on every node.
func startCluster(t *testing.T, name string, shards int) (string, []*clusterNode) {
	return startClusterArgs(t, name, shards)
}

// startClusterArgs is startCluster with more flags for every node's sluice serve.
func startClusterArgs(t *testing.T, name string, shards int, args ...string) (string, []*clusterNode) {
	etcd, nodes := startNodes(t, func(int) []string { return args })
	kinesis(t, nodes[0].base(), "CreateStream", map[string]any{"StreamName": name, "ShardCount": shards}, nil)
	for _, n := range nodes {
		waitLong(t, fmt.Sprintf("stream active on node %d", n.id), func() bool {
			status, _ := kinesisTry(n.base(), "DescribeStreamSummary", map[string]any{"StreamName": name}, nil)
			return status == 200
		})
	}
	return etcd, nodes
}

// startNodes starts a real etcd and three nodes, node i with the more flags args(i), and
// waits until the three are registered.
func startNodes(t *testing.T, args func(id int) []string) (string, []*clusterNode) {
	etcd := etcdtest.Start(t, etcdtest.Embedded).Endpoints()[0]
	var nodes []*clusterNode
	for i := 1; i <= 3; i++ {
		addr, err := freeLoopbackAddr()
		if err != nil {
			t.Fatal(err)
		}
		n := &clusterNode{id: i, addr: addr, dir: t.TempDir(), args: args(i)}
		startNode(t, n, etcd)
		nodes = append(nodes, n)
	}
	waitLong(t, "three nodes registered", func() bool {
		c, err := cluster.Dial(cluster.Config{Endpoints: []string{etcd}})
		if err != nil {
			return false
		}
		defer c.Close()
		m, err := c.Members()
		return err == nil && len(m) == 3
	})
	return etcd, nodes
}

// waitLong polls cond for up to 90 s (elections, catching up, leases) until it holds.
func waitLong(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kinesisTry is kinesis that returns the status instead of failing the test.
func kinesisTry(base, op string, in, out any) (int, string) {
	body, _ := json.Marshal(in)
	req, _ := http.NewRequest("POST", base+"/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "Kinesis_20131202."+op)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return 0, err.Error()
		}
	}
	return resp.StatusCode, string(b)
}

// acked is a record a node acknowledged: its key and data, where it landed.
type acked struct {
	key, data string
	shard     string
	seq       string
}

// putAll puts records key-0 … key-(n-1) of tag through base with PutRecords, retrying the
// records that fail, until every one is acknowledged (bounded: 90 s). It returns them.
func putAll(t *testing.T, base, name, tag string, n int) []acked {
	t.Helper()
	type rec struct{ key, data string }
	pending := make([]rec, n)
	for i := range pending {
		pending[i] = rec{fmt.Sprintf("%s-%d", tag, i), fmt.Sprintf("data of %s record %d", tag, i)}
	}
	var out []acked
	deadline := time.Now().Add(90 * time.Second)
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d records of %s never acknowledged through %s", len(pending), tag, base)
		}
		var in []map[string]any
		for _, r := range pending {
			in = append(in, map[string]any{"PartitionKey": r.key, "Data": base64.StdEncoding.EncodeToString([]byte(r.data))})
		}
		var res struct {
			Records []struct{ ShardId, SequenceNumber, ErrorCode string }
		}
		status, _ := kinesisTry(base, "PutRecords", map[string]any{"StreamName": name, "Records": in}, &res)
		if status != 200 || len(res.Records) != len(pending) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var again []rec
		for i, r := range res.Records {
			if r.ErrorCode != "" {
				again = append(again, pending[i])
				continue
			}
			out = append(out, acked{key: pending[i].key, data: pending[i].data, shard: r.ShardId, seq: r.SequenceNumber})
		}
		pending = again
	}
	return out
}

// readShard reads a shard from TRIM_HORIZON through base until it has returned every
// sequence number of want (bounded), and returns what it read, by sequence number.
func readShard(t *testing.T, base, name, shard string, want map[string]acked) map[string]acked {
	t.Helper()
	var it struct{ ShardIterator string }
	kinesis(t, base, "GetShardIterator", map[string]any{"StreamName": name, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}, &it)
	got := map[string]acked{}
	missing := func() int {
		m := 0
		for seq := range want {
			if _, ok := got[seq]; !ok {
				m++
			}
		}
		return m
	}
	deadline := time.Now().Add(90 * time.Second)
	for missing() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: shard %s: %d acknowledged records never readable", base, shard, missing())
		}
		var out struct {
			Records []struct {
				SequenceNumber, PartitionKey string
				Data                         []byte
			}
			NextShardIterator string
		}
		status, body := kinesisTry(base, "GetRecords", map[string]any{"ShardIterator": it.ShardIterator}, &out)
		if status != 200 {
			t.Logf("GetRecords on %s: %d %s", base, status, body)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for _, r := range out.Records {
			got[r.SequenceNumber] = acked{key: r.PartitionKey, data: string(r.Data), shard: shard, seq: r.SequenceNumber}
		}
		it.ShardIterator = out.NextShardIterator
		if len(out.Records) == 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return got
}

// checkReadable reads every shard through every node and checks that each acknowledged
// record is there, with its key and data.
func checkReadable(t *testing.T, nodes []*clusterNode, name string, all []acked) {
	t.Helper()
	byShard := map[string]map[string]acked{}
	for _, a := range all {
		if byShard[a.shard] == nil {
			byShard[a.shard] = map[string]acked{}
		}
		byShard[a.shard][a.seq] = a
	}
	for _, n := range nodes {
		for shard, want := range byShard {
			got := readShard(t, n.base(), name, shard, want)
			for seq, a := range want {
				if g := got[seq]; g.key != a.key || g.data != a.data {
					t.Fatalf("node %d, %s %s: read %q/%q, acknowledged %q/%q", n.id, shard, seq, g.key, g.data, a.key, a.data)
				}
			}
		}
	}
}

// shardDirs returns node n's shard directories of stream name, by shard number.
func shardDirs(t *testing.T, n *clusterNode, name string) map[string]string {
	t.Helper()
	streams, err := filepath.Glob(filepath.Join(n.dir, "streams", name+"@*"))
	if err != nil || len(streams) != 1 {
		t.Fatalf("node %d: stream directories %v (%v)", n.id, streams, err)
	}
	shards, _ := filepath.Glob(filepath.Join(streams[0], "shard-*"))
	out := map[string]string{}
	for _, d := range shards {
		out[strings.TrimPrefix(filepath.Base(d), "shard-")] = d
	}
	return out
}

// committedFramesUpTo reads a stopped node's segment files of a shard (dir) and returns
// their frames, as stored, up to and including the one at position last (every one of
// which is committed).
func committedFramesUpTo(t *testing.T, dir string, last uint64) []byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files) // names sort by base position
	var out []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for off := segment.DataOffset; off < len(b); {
			r, n, err := frame.Decode(b[off:])
			if err != nil || n == 0 {
				break
			}
			if r.Seq > last {
				return out
			}
			out = append(out, b[off:off+n]...)
			off += n
		}
	}
	return out
}

// lastPositions returns the highest acknowledged position of each shard, by shard number.
func lastPositions(t *testing.T, all []acked) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, a := range all {
		seq, err := stream.ParseSeqNum(a.seq)
		if err != nil {
			t.Fatal(err)
		}
		k := strconv.FormatUint(uint64(seq.Shard), 10)
		out[k] = max(out[k], seq.Pos)
	}
	return out
}

// TestClusterReplicates runs three `sluice serve` processes on a real etcd: a stream of 4
// shards created through node 1 takes PutRecords through every node (the records of shards
// another node leads are forwarded), and every acknowledged record is read back through
// every node. Then the node leading the most shards is killed with SIGKILL: writes through
// the other two resume; it restarts and catches up. Finally, with every node stopped, the
// three replicas of each shard hold byte-identical frames up to its last acknowledged
// position.
func TestClusterReplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three servers")
	}
	const name = "replicated"
	etcd, nodes := startCluster(t, name, 4)
	var all []acked
	for _, n := range nodes {
		all = append(all, putAll(t, n.base(), name, fmt.Sprintf("via-%d", n.id), 60)...)
	}
	checkReadable(t, nodes, name, all)

	// An iterator at a number acknowledged through one node, used on another, is accepted
	// and never goes backwards: it returns that record once the node has it.
	first := all[len(all)-1]
	for _, n := range nodes {
		var it struct{ ShardIterator string }
		kinesis(t, n.base(), "GetShardIterator", map[string]any{"StreamName": name, "ShardId": first.shard,
			"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": first.seq}, &it)
		var out struct {
			Records []struct{ SequenceNumber string }
		}
		waitLong(t, "the record at its sequence number", func() bool {
			kinesis(t, n.base(), "GetRecords", map[string]any{"ShardIterator": it.ShardIterator}, &out)
			return len(out.Records) > 0
		})
		if out.Records[0].SequenceNumber != first.seq {
			t.Fatalf("node %d: AT_SEQUENCE_NUMBER %s starts at %s", n.id, first.seq, out.Records[0].SequenceNumber)
		}
	}

	// Every shard has a leader; kill -9 the node leading the most.
	waitLong(t, "a leader for every shard", func() bool {
		total := 0
		for _, n := range nodes {
			total += len(n.leads())
		}
		return total == 4
	})
	victim := nodes[0]
	for _, n := range nodes[1:] {
		if len(n.leads()) > len(victim.leads()) {
			victim = n
		}
	}
	t.Logf("node %d leads %v: killing it with SIGKILL", victim.id, victim.leads())
	var live []*clusterNode
	for _, n := range nodes {
		if n != victim {
			live = append(live, n)
		}
	}
	led := map[string]bool{}
	for _, sh := range victim.leads() {
		led[sh] = true
	}
	killed := time.Now()
	victim.kill9()
	var after []acked
	for i := 0; len(led) > 0; i++ {
		got := putAll(t, live[0].base(), name, fmt.Sprintf("after-kill-%d", i), 1)
		if led[got[0].shard] {
			t.Logf("%s (led by the killed node): first write acknowledged %v after the kill -9",
				got[0].shard, time.Since(killed).Round(time.Millisecond))
			delete(led, got[0].shard)
		}
		after = append(after, got...)
	}
	after = append(after, putAll(t, live[1].base(), name, "after-kill-2", 40)...)
	all = append(all, after...)
	checkReadable(t, live, name, all)

	// The killed node restarts and catches up.
	startNode(t, victim, etcd)
	all = append(all, putAll(t, victim.base(), name, "after-restart", 40)...)
	checkReadable(t, nodes, name, all)

	for _, n := range nodes {
		n.stop(t)
	}
	last := lastPositions(t, all)
	dirs := [3]map[string]string{}
	for i, n := range nodes {
		dirs[i] = shardDirs(t, n, name)
	}
	for shard, pos := range last {
		want := committedFramesUpTo(t, dirs[0][shard], pos)
		if len(want) == 0 {
			t.Fatalf("shard %s: no frames up to %d on node 1", shard, pos)
		}
		for i := 1; i < 3; i++ {
			if got := committedFramesUpTo(t, dirs[i][shard], pos); !bytes.Equal(got, want) {
				t.Fatalf("shard %s: node %d's frames up to %d differ from node 1's (%d vs %d bytes)", shard, i+1, pos, len(got), len(want))
			}
		}
	}
}

// TestClusterWipedNodeRejoins wipes a node's data directory while it is down: it comes
// back under a new Raft id, is never a voter with its old identity, and the shards' leaders
// replace its old member by the new one, which catches up from their logs: every record
// acknowledged before and after is readable through it, and writes through it succeed.
func TestClusterWipedNodeRejoins(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three servers")
	}
	const name = "wiped"
	etcd, nodes := startCluster(t, name, 2)
	all := putAll(t, nodes[0].base(), name, "before", 60)
	checkReadable(t, nodes, name, all)

	victim := nodes[2]
	oldID, err := cluster.RaftID(victim.dir)
	if err != nil {
		t.Fatal(err)
	}
	victim.kill9()
	entries, _ := os.ReadDir(victim.dir)
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(victim.dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	all = append(all, putAll(t, nodes[0].base(), name, "while-down", 30)...)
	startNode(t, victim, etcd)
	newID, err := cluster.RaftID(victim.dir)
	if err != nil {
		t.Fatal(err)
	}
	if newID == oldID {
		t.Fatalf("the wiped directory came back with its old Raft id %d", oldID)
	}
	checkReadable(t, nodes, name, all)
	c, err := cluster.Dial(cluster.Config{Endpoints: []string{etcd}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for shard := stream.ShardID(0); shard < 2; shard++ {
		waitLong(t, "the placement to name the new Raft id", func() bool {
			p, ok, err := c.PlacementOf(name, shard)
			if err != nil || !ok {
				return false
			}
			for _, id := range p.Raft {
				if id == oldID {
					return false
				}
			}
			for _, id := range p.Raft {
				if id == newID {
					return true
				}
			}
			return false
		})
	}
	all = append(all, putAll(t, victim.base(), name, "through-rejoined", 30)...)
	checkReadable(t, nodes, name, all)
}
