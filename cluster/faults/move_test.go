//go:build linux

package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	sluicecluster "github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/replica"
	"github.com/sluice-streams/sluice/stream"
)

// TestMoveReplicaUnderLoad: four nodes, a stream of two shards created while nodes 1 to 3
// are up (its replicas are theirs), writes through every node. The placement of both
// shards is changed in etcd from {1,2,3} to {1,2,4}: node 4 becomes a voter of each group
// and node 3 deletes its replicas. Then node 1 is killed: writes to both shards resume,
// which needs node 4's vote, and at the end every acknowledged record is on nodes 1, 2 and 4
// (the invariant checker over their directories).
func TestMoveReplicaUnderLoad(t *testing.T) {
	const name, shards = "move", 2
	c := newLayout(t, layout{nodes: 4})
	for _, nd := range c.nodes[:3] {
		nd.start()
	}
	c.createStream(name, shards)
	c.nodes[3].start()
	p := c.produce(name, 10)
	c.resumed(p, shards, time.Now())

	cli, err := clientv3.New(clientv3.Config{Endpoints: c.etcd.Endpoints(), DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	moved := time.Now()
	for shard := range stream.ShardID(shards) {
		setPlacement(t, cli, name, shard, []uint64{1, 2, 4})
	}
	c.awaitRecorded(name, shards, c.nodes[3])
	t.Logf("node 4 is a voter of both groups %v after the placement changed", time.Since(moved).Round(time.Millisecond))
	c.eventually("node 3 deletes its replicas", func() error {
		dirs, _ := filepath.Glob(filepath.Join(c.nodes[2].dataDir, "streams", name+"@*", "shard-*"))
		if len(dirs) != shards {
			return fmt.Errorf("shard directories %v", dirs)
		}
		for _, d := range dirs {
			side, err := replica.ReadSide(d)
			if err != nil {
				return err
			}
			if side.Term != 0 || len(side.Terms) != 0 {
				return fmt.Errorf("%s: a replica at term %d with %d term records", d, side.Term, len(side.Terms))
			}
		}
		return nil
	})
	t.Logf("node 3 deleted its replicas %v after the placement changed", time.Since(moved).Round(time.Millisecond))

	at := time.Now()
	c.nodes[0].kill()
	took := c.resumed(p, shards, at)
	t.Logf("node 1 killed: writes to both shards resumed %v later (two election timeouts: %v)", took, 2*electionTimeout)
	c.nodes[0].start()
	p.stop()
	t.Logf("producer failures: %s", p.failureSummary())
	c.finish(name, p)
}

// setPlacement writes a shard's placement record in etcd directly, as a controller would:
// replicas, with the Raft ids of the voters among them kept and 0 for the others.
func setPlacement(t *testing.T, cli *clientv3.Client, name string, shard stream.ShardID, replicas []uint64) {
	t.Helper()
	key := fmt.Sprintf("/sluice/%s/placement/%s/%d", sluicecluster.DefaultName, name, shard)
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
	raft := make([]uint64, len(replicas))
	for i, id := range replicas {
		if j := slices.Index(v.Replicas, id); j >= 0 {
			raft[i] = v.Raft[j]
		}
	}
	b, _ := json.Marshal(map[string][]uint64{"replicas": replicas, "raft": raft})
	if _, err := cli.Put(ctx, key, string(b)); err != nil {
		t.Fatal(err)
	}
}

// awaitRecorded waits until the placement of each of the stream's shards records nd's Raft
// id: nd's replica is a voter of every group, caught up when it was promoted.
func (c *cluster) awaitRecorded(name string, shards int, nd *node) {
	c.t.Helper()
	cc, err := sluicecluster.Dial(sluicecluster.Config{Endpoints: c.etcd.Endpoints()})
	if err != nil {
		c.t.Fatal(err)
	}
	defer cc.Close()
	id := nd.raftID()
	for shard := range stream.ShardID(shards) {
		c.eventually(fmt.Sprintf("%s: node %d is a voter", shard, nd.id), func() error {
			pl, ok, err := cc.PlacementOf(name, shard)
			switch {
			case err != nil:
				return err
			case !ok:
				return fmt.Errorf("no placement")
			case !slices.Contains(pl.Raft, id):
				return fmt.Errorf("the placement records Raft ids %x; node %d is %x", pl.Raft, nd.id, id)
			}
			return nil
		})
	}
}
