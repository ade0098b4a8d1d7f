package main

import (
	"encoding/base64"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestClusterOnDemandScales: three `sluice serve` nodes (--limits scaled:0.1: a shard takes
// 100 records a second) and an on-demand stream of 4 shards, written through every node at
// about 300 records a second each: each node below the 400 its 4 shards take, the three
// together above. The shards' leaders count the demand, every node publishes it, and the
// elected controller sums it and splits: the open shard count grows on every node, every
// split is counted by a controller (sluice_controller_ondemand_splits_total), and every
// record acknowledged meanwhile is read back through every node.
func TestClusterOnDemandScales(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three servers")
	}
	const name = "ondemand"
	_, nodes := startClusterArgs(t, "side", 1, "--limits", "scaled:0.1")
	kinesis(t, nodes[0].base(), "CreateStream", map[string]any{"StreamName": name,
		"StreamModeDetails": map[string]any{"StreamMode": "ON_DEMAND"}}, nil)
	openShards := func(n *clusterNode) int {
		var out struct {
			StreamDescriptionSummary struct {
				StreamStatus   string
				OpenShardCount int
			}
		}
		if status, _ := kinesisTry(n.base(), "DescribeStreamSummary", map[string]any{"StreamName": name}, &out); status != 200 ||
			out.StreamDescriptionSummary.StreamStatus != "ACTIVE" {
			return 0
		}
		return out.StreamDescriptionSummary.OpenShardCount
	}
	for _, n := range nodes {
		waitLong(t, fmt.Sprintf("the stream active on node %d", n.id), func() bool { return openShards(n) == 4 })
	}

	var mu sync.Mutex
	var all []acked
	throttled := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, n := range nodes {
		for w := range 2 { // two writers a node, 50 records every 333 ms each: 300 records a second
			wg.Add(1)
			go func() {
				defer wg.Done()
				tick := time.NewTicker(time.Second / 3)
				defer tick.Stop()
				for batch := 0; ; batch++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					var in []map[string]any
					var keys, data []string
					for i := range 50 {
						k, d := fmt.Sprintf("n%d-w%d-b%d-%d", n.id, w, batch, i), fmt.Sprintf("record %d of batch %d", i, batch)
						keys, data = append(keys, k), append(data, d)
						in = append(in, map[string]any{"PartitionKey": k, "Data": base64.StdEncoding.EncodeToString([]byte(d))})
					}
					var res struct {
						Records []struct{ ShardId, SequenceNumber, ErrorCode string }
					}
					if status, _ := kinesisTry(n.base(), "PutRecords", map[string]any{"StreamName": name, "Records": in}, &res); status != 200 || len(res.Records) != len(in) {
						continue
					}
					mu.Lock()
					for i, r := range res.Records {
						switch r.ErrorCode {
						case "":
							all = append(all, acked{key: keys[i], data: data[i], shard: r.ShardId, seq: r.SequenceNumber})
						case "ProvisionedThroughputExceededException":
							throttled++
						}
					}
					mu.Unlock()
				}
			}()
		}
	}
	waitLong(t, "the on-demand stream to grow past 4 open shards", func() bool { return openShards(nodes[0]) > 4 })
	close(stop)
	wg.Wait()
	for _, n := range nodes {
		waitLong(t, fmt.Sprintf("node %d to list the new shards", n.id), func() bool { return openShards(n) > 4 })
	}
	// Every split is the controller's: the nodes' split counters add up to the shards gained.
	splits := func() int {
		sum := 0
		for _, n := range nodes {
			for _, l := range metricLines(t, n.base()+"/metrics") {
				var v float64
				if _, err := fmt.Sscanf(l, "sluice_controller_ondemand_splits_total %g", &v); err == nil {
					sum += int(v)
				}
			}
		}
		return sum
	}
	waitLong(t, "the controllers' splits to account for every shard gained", func() bool { return splits() == openShards(nodes[0])-4 })
	t.Logf("%d open shards, %d splits by the controller; %d records acknowledged, %d throttled", openShards(nodes[0]), splits(), len(all), throttled)
	checkReadable(t, nodes, name, all)
}
