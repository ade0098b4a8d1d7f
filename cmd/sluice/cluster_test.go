package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/cluster"
)

// kinesis calls op on a node's Kinesis API (unsigned: the default account) and decodes the
// answer into out.
func kinesis(t *testing.T, base, op string, in, out any) {
	t.Helper()
	if code, b := kinesisCall(t, base, op, in, out); code != 200 {
		t.Fatalf("%s on %s: %d %s", op, base, code, b)
	}
}

// kinesisCall is kinesis that returns a status other than 200 with its body, instead of
// failing the test.
func kinesisCall(t *testing.T, base, op string, in, out any) (int, []byte) {
	t.Helper()
	body, _ := json.Marshal(in)
	req, _ := http.NewRequest("POST", base+"/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "Kinesis_20131202."+op)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return resp.StatusCode, b
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
	return 200, b
}

// metricLines returns the lines of a node's /metrics.
func metricLines(t *testing.T, url string) []string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(b), "\n")
}

// TestDevCluster runs `sluice dev-cluster --nodes 3 --zones 3`: an embedded etcd and three
// `sluice serve` child processes. A stream created through one node's Kinesis API is listed
// and described alike by the other two; one node is the controller. When a node dies (SIGKILL), dev-cluster stops the others
// and reports it.
func TestDevCluster(t *testing.T) {
	var mu sync.Mutex
	var children []*exec.Cmd
	spawn := func(args ...string) *exec.Cmd {
		c := sluiceCmd(args...)
		mu.Lock()
		children = append(children, c)
		mu.Unlock()
		return c
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- devCluster(context.Background(), devClusterConfig{nodes: 3, dataDir: t.TempDir(), replicas: 3, zones: 3}, spawn, pw, io.Discard)
		pw.Close()
	}()
	endpoint := regexp.MustCompile(`^sluice dev-cluster: node (\d): (http://\S+)$`)
	etcdLine := regexp.MustCompile(`^sluice dev-cluster: etcd on (\S+)$`)
	var nodes []string
	var etcdURL string
	lines := bufio.NewScanner(pr)
	for len(nodes) < 3 && lines.Scan() {
		if m := endpoint.FindStringSubmatch(lines.Text()); m != nil {
			nodes = append(nodes, m[2])
		}
		if m := etcdLine.FindStringSubmatch(lines.Text()); m != nil {
			etcdURL = m[1]
		}
	}
	if len(nodes) != 3 {
		t.Fatalf("dev-cluster printed %d endpoints: %v", len(nodes), <-done)
	}
	go io.Copy(io.Discard, pr)

	kinesis(t, nodes[0], "CreateStream", map[string]any{"StreamName": "shared", "ShardCount": 2}, nil)
	type described struct {
		StreamDescriptionSummary struct {
			StreamName, StreamARN, StreamStatus string
			OpenShardCount                      int
		}
	}
	var want described
	kinesis(t, nodes[0], "DescribeStreamSummary", map[string]any{"StreamName": "shared"}, &want)
	for _, base := range nodes[1:] {
		deadline := time.Now().Add(20 * time.Second)
		for {
			var list struct{ StreamNames []string }
			kinesis(t, base, "ListStreams", map[string]any{}, &list)
			if reflect.DeepEqual(list.StreamNames, []string{"shared"}) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s lists %v", base, list.StreamNames)
			}
			time.Sleep(20 * time.Millisecond)
		}
		var got described
		kinesis(t, base, "DescribeStreamSummary", map[string]any{"StreamName": "shared"}, &got)
		if got != want || got.StreamDescriptionSummary.OpenShardCount != 2 {
			t.Fatalf("%s describes %+v, node 1 %+v", base, got, want)
		}
	}

	// One node is the controller (its /metrics says so, the others' say 0), and `sluice
	// cluster status` shows it and each node in its zone.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st cluster.Status
		var out, errOut bytes.Buffer
		if code := run([]string{"cluster", "status", "--cluster-etcd", etcdURL, "-json"}, &out, &errOut); code != exitOK {
			t.Fatalf("cluster status: %d %s", code, errOut.String())
		}
		if err := json.Unmarshal(out.Bytes(), &st); err != nil {
			t.Fatal(err)
		}
		leaders := 0
		for _, base := range nodes {
			m := metricLines(t, base+"/metrics")
			if !slices.ContainsFunc(m, func(l string) bool { return strings.HasPrefix(l, "sluice_controller_placements_total ") }) {
				t.Fatalf("%s/metrics has no sluice_controller_placements_total", base)
			}
			if slices.Contains(m, "sluice_controller_leader 1") {
				leaders++
			}
		}
		if st.Controller != 0 && leaders == 1 {
			for i, n := range st.Nodes {
				if want := fmt.Sprintf("zone-%d", i+1); n.Zone != want || !n.Up || n.State != cluster.StateActive {
					t.Fatalf("node %+v: want up, active, in %s", n, want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %+v and %d nodes saying they are the controller", st, leaders)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Each node's /metrics has the Raft figures of both shards: exactly one node leads
	// each, every node knows that leader, and the leader reports both other members
	// caught up once a record is committed.
	// The shards' groups may still be electing: a put answers a retryable InternalFailure
	// until one leads, and is tried again as an SDK would.
	deadline = time.Now().Add(30 * time.Second)
	for {
		code, b := kinesisCall(t, nodes[0], "PutRecord", map[string]any{"StreamName": "shared", "PartitionKey": "k", "Data": "aGk="}, nil)
		if code == 200 {
			break
		}
		if code != 500 || time.Now().After(deadline) {
			t.Fatalf("PutRecord: %d %s", code, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for {
		err := raftMetricsAgree(t, nodes, []string{"shardId-000000000000", "shardId-000000000001"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	mu.Lock()
	victim := children[1]
	mu.Unlock()
	victim.Process.Kill()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "node 2 exited") {
			t.Fatalf("dev-cluster after node 2 died: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("dev-cluster did not stop after a node died")
	}
	for i, c := range children {
		if c.ProcessState == nil {
			t.Fatalf("node %d still runs", i+1)
		}
	}
}

// raftMetricsAgree checks the Raft figures of each shard of stream "shared" on every node's
// /metrics: one leader, known by every node as the same node id, and its report of the
// two other members 0 entries behind.
func raftMetricsAgree(t *testing.T, nodes []string, shards []string) error {
	for _, shard := range shards {
		sel := fmt.Sprintf(`{shard="%s",stream="shared"}`, shard)
		leaders, leaderNode := 0, ""
		for i, base := range nodes {
			m := metricLines(t, base+"/metrics")
			value := func(name string) string {
				for _, l := range m {
					if v, ok := strings.CutPrefix(l, name+sel+" "); ok {
						return v
					}
				}
				return ""
			}
			if value("sluice_raft_is_leader") == "1" {
				leaders++
				for _, peer := range []int{1, 2, 3} {
					if peer == i+1 {
						continue
					}
					lag := fmt.Sprintf(`sluice_raft_replica_lag_entries{peer="%d",shard="%s",stream="shared"} 0`, peer, shard)
					if !slices.Contains(m, lag) {
						return fmt.Errorf("%s leads %s and has no line %q", base, shard, lag)
					}
				}
			}
			got := value("sluice_raft_leader_node")
			if got == "" || got == "0" || leaderNode != "" && got != leaderNode {
				return fmt.Errorf("%s: %s led by node %q, another node says %q", base, shard, got, leaderNode)
			}
			leaderNode = got
			if c := value("sluice_raft_commit_index"); c == "" || c == "0" {
				return fmt.Errorf("%s: %s commit index %q", base, shard, c)
			}
		}
		if leaders != 1 {
			return fmt.Errorf("%s: %d nodes say they lead it", shard, leaders)
		}
	}
	return nil
}
