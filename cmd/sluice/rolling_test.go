package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/cluster/invariant"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// rollingProducers writes through every node with the Go client's Producer (default
// configuration: retries without limit), one producer per node, each record's data unique,
// until stop; it keeps every acknowledgement and counts the records that failed.
type rollingProducers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ps     []*client.Producer

	mu     sync.Mutex
	acked  []invariant.Acked
	failed []error
}

func startRollingProducers(t *testing.T, nodes []*clusterNode, name string) *rollingProducers {
	ctx, cancel := context.WithCancel(context.Background())
	rp := &rollingProducers{cancel: cancel}
	for _, n := range nodes {
		c, err := client.New(client.Config{Endpoint: n.base()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		p, err := c.NewProducer(context.Background(), name, client.ProducerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		rp.ps = append(rp.ps, p)
		rp.wg.Add(1)
		go func() {
			defer rp.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("p%d-%d", n.id, i)
				data := []byte("data of " + key)
				err := p.PutFunc(ctx, key, data, func(o client.Outcome) {
					rp.mu.Lock()
					defer rp.mu.Unlock()
					if o.Err != nil {
						rp.failed = append(rp.failed, o.Err)
						return
					}
					rp.acked = append(rp.acked, invariant.Acked{Seq: stream.SeqNum{Shard: stream.ShardID(o.Shard), Pos: o.Position},
						Key: []byte(key), Data: data})
				})
				if err != nil {
					return // ctx ended while Put waited for room
				}
				if i%10 == 9 {
					time.Sleep(20 * time.Millisecond) // about 500 records a second per producer
				}
			}
		}()
	}
	return rp
}

// stop ends the writing and closes every producer, which waits for every record's outcome.
func (rp *rollingProducers) stop(t *testing.T) (stats []client.ProducerStats) {
	rp.cancel()
	rp.wg.Wait()
	for _, p := range rp.ps {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if err := p.Close(ctx); err != nil {
			t.Errorf("producer close: %v", err)
		}
		cancel()
		stats = append(stats, p.Stats())
	}
	return stats
}

func (rp *rollingProducers) count() int {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return len(rp.acked)
}

// preferredLeaders reads the preferred leader the controller wrote in each shard's placement
// record (it balances them over the nodes), waiting until every shard has one, and returns
// the API address each shard should be led from.
func preferredLeaders(t *testing.T, c *cluster.Client, name string, nodes []*clusterNode, shards int) map[uint32]string {
	t.Helper()
	want := map[uint32]string{}
	waitLong(t, "the controller to name every shard's preferred leader", func() bool {
		for sh := range shards {
			p, ok, err := c.PlacementOf(name, shardmap.ShardID(sh))
			if err != nil || !ok || p.Leader == 0 || int(p.Leader) > len(nodes) {
				return false
			}
			want[uint32(sh)] = nodes[p.Leader-1].addr
		}
		return true
	})
	return want
}

// waitLeaders waits until every node answers the native leaders request with the preferred
// leaders, read again at every look (the controller may move a preference while a node is
// away).
func waitLeaders(t *testing.T, c *cluster.Client, nodes []*clusterNode, name string, shards int) {
	t.Helper()
	for _, n := range nodes {
		lc, err := client.New(client.Config{Endpoint: n.base()})
		if err != nil {
			t.Fatal(err)
		}
		waitLong(t, fmt.Sprintf("node %d to see every shard led by its preferred leader", n.id), func() bool {
			want := preferredLeaders(t, c, name, nodes, shards)
			got, err := lc.ShardLeaders(context.Background(), name)
			if err != nil || len(got) != len(want) {
				return false
			}
			for sh, addr := range want {
				if got[sh] != addr {
					return false
				}
			}
			return true
		})
		lc.Close()
	}
}

// openRanges asks a node for the stream's open shards (ListShards).
func openRanges(t *testing.T, n *clusterNode, name string) []invariant.Range {
	var out struct {
		Shards []struct {
			ShardId      string
			HashKeyRange struct{ StartingHashKey, EndingHashKey string }
		}
	}
	kinesis(t, n.base(), "ListShards", map[string]any{"StreamName": name, "ShardFilter": map[string]any{"Type": "AT_LATEST"}}, &out)
	var rs []invariant.Range
	for _, s := range out.Shards {
		id, err1 := shardmap.ParseShardID(s.ShardId)
		lo, err2 := shardmap.ParseKey(s.HashKeyRange.StartingHashKey)
		hi, err3 := shardmap.ParseKey(s.HashKeyRange.EndingHashKey)
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("ListShards: shard %+v", s)
		}
		rs = append(rs, invariant.Range{Shard: id, Low: lo, High: hi})
	}
	return rs
}

// procGone reports whether process pid has exited (a zombie counts as exited).
func procGone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) == 0 || f[0] == "Z"
}

// TestRollingRestart runs three `sluice serve` processes on a real etcd (a stream of 4
// shards, each shard's placement naming the preferred leader the controller spread over
// the nodes, which the leaders transfer to), three Go Producers writing through the three nodes throughout
// (default retries), and tools/rolling-restart, which restarts every node in turn with
// SIGTERM. It checks that each node led no shard when it stopped (its "leadership handed
// off" line), that no record failed in any producer, that the preferred leaders lead
// again afterwards, and, all nodes stopped, the invariant checker over their data
// directories: every acknowledged record stored once where its sequence number says, and
// the replicas identical.
func TestRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three servers, and restarts each")
	}
	const name, shards = "rolling", 4
	etcd, nodes := startClusterArgs(t, name, shards, "--limits", "off")
	ec, err := cluster.Dial(cluster.Config{Endpoints: []string{etcd}})
	if err != nil {
		t.Fatal(err)
	}
	defer ec.Close()
	waitLeaders(t, ec, nodes, name, shards)

	rp := startRollingProducers(t, nodes, name)
	waitLong(t, "records acknowledged before the restarts", func() bool { return rp.count() >= 500 })

	args := []string{"-t", "90", "-l", t.TempDir()}
	for _, n := range nodes {
		args = append(args, strconv.Itoa(n.cmd.Process.Pid))
	}
	script, err := filepath.Abs("../../tools/rolling-restart/rolling-restart")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	before := rp.count()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var restarted []int
	restartedAs := regexp.MustCompile(`^restarted (\d+) as (\d+)$`)
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if m := restartedAs.FindStringSubmatch(lines.Text()); m != nil {
			pid, _ := strconv.Atoi(m[2])
			restarted = append(restarted, pid)
			t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
		}
	}
	if err := cmd.Wait(); err != nil || len(restarted) != len(nodes) {
		t.Fatalf("rolling-restart: %v; restarted %v", err, restarted)
	}
	during := rp.count() - before
	for _, n := range nodes {
		n.mu.Lock()
		line := n.handOff
		n.mu.Unlock()
		t.Logf("node %d: %s", n.id, line)
		if !strings.Contains(line, "still_leading=0 ") {
			t.Errorf("node %d stopped still leading shards, or did not say: %q", n.id, line)
		}
	}
	waitLeaders(t, ec, nodes, name, shards)
	after := rp.count()
	waitLong(t, "records acknowledged after the restarts", func() bool { return rp.count() >= after+500 })
	stats := rp.stop(t)
	rp.mu.Lock()
	defer rp.mu.Unlock()
	t.Logf("%d records acknowledged, %d of them during the restarts", len(rp.acked), during)
	for i, s := range stats {
		t.Logf("producer %d: %+v", i+1, s)
		if s.Failed != 0 {
			t.Errorf("producer %d: %d records failed", i+1, s.Failed)
		}
	}
	for i, err := range rp.failed[:min(len(rp.failed), 5)] {
		t.Errorf("failed record %d: %v", i, err)
	}

	open := openRanges(t, nodes[0], name)
	for _, pid := range restarted {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	for _, pid := range restarted {
		waitLong(t, fmt.Sprintf("process %d to exit", pid), func() bool { return procGone(pid) })
	}
	var dirs []string
	for _, n := range nodes {
		dirs = append(dirs, n.dir)
	}
	rep, err := invariant.Check(invariant.Input{Stream: name, Nodes: dirs, Acked: rp.acked, Open: open})
	if err != nil {
		t.Fatalf("invariant checker: %v", err)
	}
	t.Logf("invariant checker: %d shards, %d replicas, %d frames compared, %d committed positions", rep.Shards, rep.Replicas, rep.Frames, rep.Committed)
	for _, p := range rep.Problems {
		t.Error(p)
	}
}
