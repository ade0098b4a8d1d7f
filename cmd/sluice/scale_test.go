package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/cluster/etcdtest"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// scaleMetrics is what TestClusterScale reads from one node's /metrics: the unlabelled
// figures by name, and by "stream/shardId-…" the shards the node reports leading and those
// whose group it reports quiesced.
type scaleMetrics struct {
	plain    map[string]float64
	leads    map[string]bool
	quiesced map[string]bool
}

func readScaleMetrics(t *testing.T, n *clusterNode) scaleMetrics {
	t.Helper()
	m := scaleMetrics{plain: map[string]float64{}, leads: map[string]bool{}, quiesced: map[string]bool{}}
	for _, l := range metricLines(t, n.base()+"/metrics") {
		series, val, ok := strings.Cut(l, " ")
		if !ok || strings.HasPrefix(l, "#") {
			continue
		}
		name, labels, labelled := strings.Cut(series, "{")
		if !labelled {
			m.plain[name], _ = strconv.ParseFloat(val, 64)
			continue
		}
		var shard, streamName string
		for _, kv := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "shard":
				shard = strings.Trim(v, `"`)
			case "stream":
				streamName = strings.Trim(v, `"`)
			}
		}
		key := streamName + "/" + shard
		switch name {
		case "sluice_raft_is_leader":
			m.leads[key] = val == "1"
		case "sluice_raft_quiesced":
			m.quiesced[key] = val == "1"
		}
	}
	return m
}

// scaleSize is the size TestClusterScale runs at: SLUICE_SCALE_STREAMS streams (default 10)
// of SLUICE_SCALE_SHARDS shards (default 4); make nightly runs 50 × 40.
func scaleSize(t *testing.T) (streams, shards int) {
	return envInt(t, "SLUICE_SCALE_STREAMS", 10), envInt(t, "SLUICE_SCALE_SHARDS", 4)
}

// envInt reads a positive integer from the environment; def when it is unset.
func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

// TestClusterScale: five `sluice serve` processes (--replicas 3) and a real etcd; streams
// created through the nodes in turn (10 × 4 shards here, 50 × 40 = 2,000 shards under make
// nightly). Then:
//   - every placement record names three distinct registered nodes, the shards spread so
//     that each node holds some;
//   - every shard has exactly one node reporting sluice_raft_is_leader 1;
//   - a record put to every stream (through any node) is read back through every node,
//     those that hold no replica of its shard included;
//   - idle: once every leader reports its group quiesced, the nodes come to send no Raft
//     message but the liveness pings: a window of at least 20 pings per node pair (two
//     ticks' worth of every peer's pings, counted from the nodes' /metrics, not timed)
//     comes in which the Raft messages the five nodes sent number fewer than one per ten
//     shards (a cluster whose groups heartbeat sends tens per shard in such a window);
//   - every shard still has exactly one leader.
func TestClusterScale(t *testing.T) {
	const nodeCount = 5
	streams, shards := scaleSize(t)
	total := streams * shards
	etcd := etcdtest.Start(t, etcdtest.Embedded).Endpoints()[0]
	var nodes []*clusterNode
	for i := 1; i <= nodeCount; i++ {
		addr, err := freeLoopbackAddr()
		if err != nil {
			t.Fatal(err)
		}
		n := &clusterNode{id: i, addr: addr, dir: t.TempDir(), args: []string{"--replicas", "3", "--segment-size", "256KiB", "--limits", "off", "--shard-limit", strconv.Itoa(total)}}
		startNode(t, n, etcd)
		nodes = append(nodes, n)
	}
	c, err := cluster.Dial(cluster.Config{Endpoints: []string{etcd}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitLong(t, "five nodes registered", func() bool {
		m, err := c.Members()
		return err == nil && len(m) == nodeCount
	})

	names := make([]string, streams)
	for i := range names {
		names[i] = fmt.Sprintf("scale-%d", i)
		kinesis(t, nodes[i%nodeCount].base(), "CreateStream", map[string]any{"StreamName": names[i], "ShardCount": shards}, nil)
	}

	all, err := c.AllPlacements()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != total {
		t.Fatalf("%d placement records for %d shards", len(all), total)
	}
	held := map[uint64]int{}
	for k, p := range all {
		ids := slices.Clone(p.Replicas)
		slices.Sort(ids)
		if len(ids) != 3 || len(slices.Compact(ids)) != 3 || ids[0] < 1 || ids[2] > nodeCount {
			t.Fatalf("%s/%d placed on %v: want 3 distinct nodes of 1…%d", k.Stream, k.Shard, p.Replicas, nodeCount)
		}
		for _, id := range ids {
			held[id]++
		}
	}
	for id := uint64(1); id <= nodeCount; id++ {
		if held[id] == 0 {
			t.Fatalf("node %d holds no replica: %v", id, held)
		}
	}
	t.Logf("replicas per node: %v", held)

	keys := make([]string, 0, total)
	for _, name := range names {
		for sh := range shards {
			keys = append(keys, name+"/"+stream.ShardID(sh).String())
		}
	}
	var ms []scaleMetrics
	scrape := func() {
		ms = ms[:0]
		for _, n := range nodes {
			ms = append(ms, readScaleMetrics(t, n))
		}
	}
	leaders := func(key string) (n int) {
		for _, m := range ms {
			if m.leads[key] {
				n++
			}
		}
		return n
	}
	waitLong(t, "one leader for every shard", func() bool {
		scrape()
		for _, k := range keys {
			if leaders(k) != 1 {
				return false
			}
		}
		return true
	})

	// Each stream's record goes to one of its shards (stream i's shard i mod shards, by its
	// explicit hash key) through node i mod 5, whether or not it holds a replica of it, and
	// is read back through every node: those without a replica serve it from one.
	for i, name := range names {
		var list struct {
			Shards []struct {
				ShardId      string
				HashKeyRange struct{ StartingHashKey string }
			}
		}
		kinesis(t, nodes[0].base(), "ListShards", map[string]any{"StreamName": name}, &list)
		sh := list.Shards[i%len(list.Shards)]
		id, err := shardmap.ParseShardID(sh.ShardId)
		if err != nil {
			t.Fatal(err)
		}
		if len(all[cluster.ShardKey{Stream: name, Shard: id}].Replicas) != 3 {
			t.Fatalf("%s %s: placed on %v", name, sh.ShardId, all[cluster.ShardKey{Stream: name, Shard: id}].Replicas)
		}
		in := nodes[i%len(nodes)]
		put := acked{key: "rec-" + name, data: "data of " + name, shard: sh.ShardId}
		var out struct{ ShardId, SequenceNumber string }
		waitLong(t, "a record put to "+name, func() bool {
			status, _ := kinesisTry(in.base(), "PutRecord", map[string]any{"StreamName": name, "PartitionKey": put.key,
				"ExplicitHashKey": sh.HashKeyRange.StartingHashKey, "Data": []byte(put.data)}, &out)
			return status == 200
		})
		if out.ShardId != put.shard {
			t.Fatalf("%s: the record went to %s, not %s", name, out.ShardId, put.shard)
		}
		put.seq = out.SequenceNumber
		for _, n := range nodes {
			got := readShard(t, n.base(), name, put.shard, map[string]acked{put.seq: put})
			if g := got[put.seq]; g.key != put.key || g.data != put.data {
				t.Fatalf("node %d, %s %s: read %q/%q, put %q/%q", n.id, name, put.shard, g.key, g.data, put.key, put.data)
			}
		}
	}

	waitLong(t, "every shard's leader quiesced", func() bool {
		scrape()
		for _, k := range keys {
			for _, m := range ms {
				if m.leads[k] && !m.quiesced[k] {
					return false
				}
			}
		}
		return true
	})
	sum := func(name string) (v float64) {
		for _, m := range ms {
			v += m.plain[name]
		}
		return v
	}
	// Followers still answer the leaders' last messages for a moment after the leaders
	// quiesce: windows are counted until one is quiet.
	const pairs = nodeCount * (nodeCount - 1)
	var pings, raftMsgs float64
	msgs0, pings0 := sum("sluice_raft_node_messages_sent_total"), sum("sluice_raft_node_pings_sent_total")
	windows := 0
	waitLong(t, "a window of 20 pings per node pair with fewer Raft messages than a tenth of the shards", func() bool {
		scrape()
		pings = sum("sluice_raft_node_pings_sent_total") - pings0
		if pings < 20*pairs {
			return false
		}
		windows++
		raftMsgs = sum("sluice_raft_node_messages_sent_total") - msgs0 - pings
		msgs0, pings0 = sum("sluice_raft_node_messages_sent_total"), sum("sluice_raft_node_pings_sent_total")
		return raftMsgs*10 < float64(total)
	})
	t.Logf("idle: %.0f pings and %.0f Raft messages sent by the five nodes in window %d, %d shards", pings, raftMsgs, windows, total)
	for _, k := range keys {
		if l := leaders(k); l != 1 {
			t.Fatalf("%s: %d nodes report they lead it", k, l)
		}
	}
}

// TestServeShardLimit: --shard-limit N refuses a CreateStream that would open more than N
// shards with LimitExceededException and creates nothing; N = 0 is a usage error.
func TestServeShardLimit(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if status := run([]string{"serve", "--data-dir", t.TempDir(), "--shard-limit", "0"}, &stdout, &stderr); status != exitUsage {
		t.Fatalf("--shard-limit 0: status %d, want %d\nstderr: %s", status, exitUsage, &stderr)
	}
	if !strings.Contains(stderr.String(), "--shard-limit must be positive") {
		t.Fatalf("--shard-limit 0: stderr %q", &stderr)
	}
	p := startServeProc(t, t.TempDir(), "--shard-limit", "3")
	kinesis(t, p.base, "CreateStream", map[string]any{"StreamName": "two", "ShardCount": 2}, nil)
	status, body := kinesisTry(p.base, "CreateStream", map[string]any{"StreamName": "more", "ShardCount": 2}, nil)
	if status != 400 || !strings.Contains(body, "LimitExceededException") || !strings.Contains(body, "Limit: 3") {
		t.Fatalf("a fourth shard over --shard-limit 3: %d %s", status, body)
	}
	if status, _ := kinesisTry(p.base, "DescribeStreamSummary", map[string]any{"StreamName": "more"}, nil); status != 400 {
		t.Fatalf("the refused stream exists: DescribeStreamSummary answered %d", status)
	}
}
