//go:build linux

package faults

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	sluicecluster "github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/replica"
	"github.com/sluice-streams/sluice/stream"
)

// TestMoveReplicaUnderLoad: four nodes, a stream of two shards created while nodes 1 to 3
// are up (its replicas are theirs), writes through every node. Node 4 starts with no
// replica (it serves both shards through the remote log); the controller may move a replica
// to it. Node 3 is drained (`sluice cluster drain`): the controller places both shards on
// {1,2,4}, node 4 becomes a voter of each group, and node 3 deletes its replicas, keeps their
// votes and serves both shards through the remote log, its writes forwarded without a
// failure. Then node 1 is killed: writes to both shards resume, which needs node 4's vote,
// and at the end every acknowledged record is on every replica the placement names (the
// invariant checker over every node's directory).
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

	moved := time.Now()
	c.drain(name, c.nodes[2])
	c.awaitRecorded(name, shards, c.nodes[3])
	t.Logf("node 4 is a voter of both groups %v after the drain began", time.Since(moved).Round(time.Millisecond))
	c.eventually("node 3 deletes its replicas and keeps their votes", func() error {
		dirs, _ := filepath.Glob(filepath.Join(c.nodes[2].dataDir, "streams", name+"@*", "shard-*"))
		if len(dirs) != 0 {
			return fmt.Errorf("shard directories %v", dirs)
		}
		votes, _ := filepath.Glob(filepath.Join(c.nodes[2].dataDir, "streams", name+"@*", ".vote-shard-*"))
		if len(votes) != shards {
			return fmt.Errorf("kept votes %v", votes)
		}
		for _, v := range votes {
			if term, _, _, err := replica.ReadVote(v); err != nil || term == 0 {
				return fmt.Errorf("%s: term %d (%v)", v, term, err)
			}
		}
		return nil
	})
	t.Logf("node 3 deleted its replicas %v after the drain began", time.Since(moved).Round(time.Millisecond))
	t.Logf("failures through node 3 (a replica, then none) and node 4 (none, then a replica) until now: %v, %v",
		p.failuresThrough(3), p.failuresThrough(4))
	// Node 3 holds no replica now: its writes are forwarded and acknowledged.
	removed := time.Now()
	c.eventually("records acknowledged through node 3 after it deleted its replicas", func() error {
		if n := p.acksThrough(3, removed); n < 100 {
			return fmt.Errorf("%d", n)
		}
		return nil
	})
	before := p.failuresThrough(3)

	if after := p.failuresThrough(3); !maps.Equal(after, before) {
		t.Errorf("writes through node 3, which holds no replica and switches no more, failed: %v, before %v", after, before)
	}
	at := time.Now()
	c.nodes[0].kill()
	took := c.resumed(p, shards, at)
	t.Logf("node 1 killed: writes to both shards resumed %v later (two election timeouts: %v)", took, 2*electionTimeout)
	c.nodes[0].start()
	p.stop()
	t.Logf("producer failures: %s; through node 1: %v, 2: %v, 3: %v, 4: %v", p.failureSummary(),
		p.failuresThrough(1), p.failuresThrough(2), p.failuresThrough(3), p.failuresThrough(4))
	c.finish(name, p)
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
