//go:build linux

package faults

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-streams/sluice/cluster/invariant"
	"github.com/sluice-streams/sluice/shardmap"
)

// Faults in the middle of a resharding. Each test runs three nodes (three replicas per
// shard, so every node holds every replica) under producers writing through every node,
// starts one resharding through a node that does not lead its first parent, and strikes
// while it is in flight. The resharding must then either have committed (every node lists
// the new open shards) or have been refused with a retryable error and changed nothing (the
// open shards are those from before, and every one of them takes writes again: no parent is
// left sealed). A refused one is made again until it commits. Then every node reads every
// acknowledged record back exactly once, nothing after a closed shard's ending, and the
// invariant checker reads the replicas: each parent's ending is committed and held by its
// members, no acknowledged record of a parent lies after its ending, the children hold the
// rest.

// reshardOp is one resharding: what it is, the open shards it leaves (from the open shards
// before it, in hash key order), and the call through a node's client.
type reshardOp struct {
	what    string
	after   int
	parents func(open []types.Shard) []types.Shard
	call    func(kc *kinesis.Client, open []types.Shard) error
}

// splitFirst splits the first open shard at the middle of its range.
func splitFirst(name string, before int) reshardOp {
	return reshardOp{what: "SplitShard", after: before + 1,
		parents: func(open []types.Shard) []types.Shard { return open[:1] },
		call: func(kc *kinesis.Client, open []types.Shard) error {
			r, err := rangeOf(open[0])
			if err != nil {
				return err
			}
			_, err = kc.SplitShard(context.Background(), &kinesis.SplitShardInput{StreamName: aws.String(name),
				ShardToSplit: open[0].ShardId, NewStartingHashKey: aws.String(midKey(r.Low, r.High).String())})
			return err
		}}
}

// mergeFirst merges the first two adjacent open shards.
func mergeFirst(name string, before int) reshardOp {
	return reshardOp{what: "MergeShards", after: before - 1,
		parents: func(open []types.Shard) []types.Shard { a, b := adjacent(open); return []types.Shard{a, b} },
		call: func(kc *kinesis.Client, open []types.Shard) error {
			a, b := adjacent(open)
			_, err := kc.MergeShards(context.Background(), &kinesis.MergeShardsInput{StreamName: aws.String(name),
				ShardToMerge: a.ShardId, AdjacentShardToMerge: b.ShardId})
			return err
		}}
}

// scaleTo scales the stream to target open shards (UNIFORM_SCALING): every open shard closes.
func scaleTo(name string, target int) reshardOp {
	return reshardOp{what: fmt.Sprintf("UpdateShardCount to %d", target), after: target,
		parents: func(open []types.Shard) []types.Shard { return open },
		call: func(kc *kinesis.Client, _ []types.Shard) error {
			_, err := kc.UpdateShardCount(context.Background(), &kinesis.UpdateShardCountInput{StreamName: aws.String(name),
				TargetShardCount: aws.Int32(int32(target)), ScalingType: types.ScalingTypeUniformScaling})
			return err
		}}
}

// reshardFault is one scenario: a cluster of nodes nodes (three replicas per shard), the
// stream created with shards open shards, producers, op through via — of the nodes other
// than the leader of op's first parent, the one holding the fewest replicas of op's parents,
// then leading the fewest of them, then the next in id order — and fault striking (the leader, via, or whatever else
// it does) while op is in flight; fault returns what heals it. Then the outcome is judged,
// a refused op made again, everything read back and checked. When fault killed via, op's
// answer may be lost with it: a transport error is then its answer.
func reshardFault(t *testing.T, nodes int, name string, shards int32, op func(before int) reshardOp, fault func(c *cluster, leader, via *node) (heal func())) {
	c := startCluster(t, nodes)
	c.createStream(name, shards)
	p := c.produce(name, 10)
	c.resumed(p, int(shards), time.Now())

	o := op(int(shards))
	open := c.openList(name)
	before, err := c.up()[0].openShards(name)
	if err != nil {
		t.Fatal(err)
	}
	parents := o.parents(open)
	leader := c.leaderOf(name, parents[0])
	led := map[*node]int{} // parents each node leads
	for id, i := range c.leaders(name) {
		if i >= 0 && slices.ContainsFunc(parents, func(s types.Shard) bool { return aws.ToString(s.ShardId) == id.String() }) {
			led[c.nodes[i]]++
		}
	}
	var via *node
	for i := range len(c.nodes) - 1 {
		nd := c.nodes[(leader.id+i)%len(c.nodes)] // the nodes after the leader, in id order
		if via == nil || cmp.Or(cmp.Compare(nd.replicasOf(name, parents), via.replicasOf(name, parents)), cmp.Compare(led[nd], led[via])) < 0 {
			via = nd
		}
	}
	t.Logf("%s through node %d (holding %d replicas of its parents); node %d leads %s", o.what, via.id, via.replicasOf(name, parents),
		leader.id, aws.ToString(parents[0].ShardId))
	if held := via.replicasOf(name, parents); nodes > 3 && held > 0 {
		t.Fatalf("node %d holds %d replicas of the parents: with %d nodes one of those after the leader holds none", via.id, held, nodes)
	}

	done := make(chan error, 1)
	var answered atomic.Bool
	go func() {
		err := o.call(via.patient(), open)
		answered.Store(true)
		done <- err
	}()
	starts := via.startCount()
	heal := fault(c, leader, via)
	t.Logf("%s answered before the fault ended: %v", o.what, answered.Load())
	callErr := <-done
	heal()
	lost := via.startCount() != starts

	if c.judge(name, o, before, callErr, lost, p) {
		t.Logf("%s refused cleanly (%v); made again", o.what, callErr)
		c.eventually(o.what+" made again", func() error {
			err := o.call(via.patient(), open)
			if now, lerr := via.openShards(name); lerr == nil && !sameRanges(now, before) {
				return nil
			}
			return err
		})
		if c.judge(name, o, before, nil, false, p) {
			t.Fatalf("%s made again and still not committed", o.what)
		}
	}
	c.resumedOpen(name, p, time.Now())
	t.Logf("seals that outlived their resharding released: %d, as the nodes' logs say", c.logged(releasedSeal))
	p.stop()
	acked := p.all()
	t.Logf("%d records acknowledged; producer failures: %s", len(acked), p.failureSummary())
	all := c.readBack(name, acked)
	t.Logf("%d shards; every node read every acknowledged record once, nothing after an ending", len(all))
	c.finish(name, p)
}

// judge waits until every running node lists the same open shards and decides what the
// resharding did: it returns true when it was refused (the open shards are before's; then
// err must be a retryable error — or, when lost, the answer having died with the node that
// made the call, a transport error — and every open shard must take writes again), false
// when it committed (o.after open shards, none of before's parents among them).
func (c *cluster) judge(name string, o reshardOp, before []invariant.Range, err error, lost bool, p *producer) (refused bool) {
	c.t.Helper()
	var now []invariant.Range
	c.eventually("every running node lists the same open shards", func() error {
		var lerr error
		if now, lerr = c.up()[0].openShards(name); lerr != nil {
			return lerr
		}
		for _, nd := range c.up()[1:] {
			other, lerr := nd.openShards(name)
			if lerr != nil {
				return lerr
			}
			if !sameRanges(now, other) {
				return fmt.Errorf("node %d lists %d open shards, node %d %d", nd.id, len(other), c.up()[0].id, len(now))
			}
		}
		return nil
	})
	if sameRanges(now, before) {
		code := errorCode(err)
		retryable := []string{"InternalFailure", "ResourceInUseException", "LimitExceededException"}
		if lost {
			retryable = append(retryable, "connection", "timeout", "other")
		}
		if err == nil || !slices.Contains(retryable, code) {
			c.t.Fatalf("%s changed nothing and answered %v (%s), want a retryable error", o.what, err, code)
		}
		took := c.resumedOpen(name, p, time.Now())
		c.t.Logf("after the refused %s every open shard took a write within %v", o.what, took)
		return true
	}
	if len(now) != o.after {
		c.t.Fatalf("after %s: %d open shards, want %d", o.what, len(now), o.after)
	}
	if err != nil {
		c.t.Logf("%s committed; its answer was %v", o.what, err)
	}
	return false
}

// leaderOf waits until a running node leads the shard (as the nodes' files say) and returns it.
func (c *cluster) leaderOf(name string, s types.Shard) *node {
	c.t.Helper()
	id, err := shardmap.ParseShardID(aws.ToString(s.ShardId))
	if err != nil {
		c.t.Fatal(err)
	}
	var lead *node
	c.eventually("a leader of "+id.String(), func() error {
		i, ok := c.leaders(name)[id]
		if !ok || i < 0 || !slices.Contains(c.up(), c.nodes[i]) {
			return errors.New("none known")
		}
		lead = c.nodes[i]
		return nil
	})
	return lead
}

// patient is a client of the node that waits up to patience for an answer, longer than any
// bound of the node's own (a seal waits up to 10 s for a leader, a catalog request 5 s for
// etcd): the answer is then the node's, not the client's timeout.
func (nd *node) patient() *kinesis.Client {
	return kinesis.New(nd.kc.Options(), func(o *kinesis.Options) { o.HTTPClient = &http.Client{Timeout: patience} })
}

// strikeDelay is how long after the call a fault strikes: random below 60 ms, so that runs
// cover the resharding's steps (children opened, parents sealed, the catalog saved). It is
// the fault's timing, not a synchronisation; it is logged, and so is whether the call had
// been answered by the time the fault ended.
func strikeDelay(t *testing.T) time.Duration {
	d := rand.N(60 * time.Millisecond)
	t.Logf("the fault strikes %v after the call", d)
	return d
}

// TestReshardKillParentLeader kills -9 the leader of the shard a SplitShard closes while the
// split is in flight, and restarts it.
func TestReshardKillParentLeader(t *testing.T) {
	const name = "killsplit"
	reshardFault(t, 3, name, 2, func(n int) reshardOp { return splitFirst(name, n) }, killLeader(t))
}

// TestReshardKillParentLeaderFiveNodes is TestReshardKillParentLeader on five nodes with
// three replicas per shard: the split runs through a node that holds no replica of the
// shard it closes (it seals through the leader's peer route, a remote log), and the
// leader killed is one of three replicas.
func TestReshardKillParentLeaderFiveNodes(t *testing.T) {
	const name = "killsplit5"
	reshardFault(t, 5, name, 2, func(n int) reshardOp { return splitFirst(name, n) }, killLeader(t))
}

// killLeader is the fault that kills -9 the leader of the first parent and restarts it.
func killLeader(t *testing.T) func(c *cluster, leader, _ *node) func() {
	return func(c *cluster, leader, _ *node) func() {
		time.Sleep(strikeDelay(t))
		leader.kill()
		return leader.start
	}
}

// TestReshardPauseParentLeader stops with SIGSTOP the leader of one of the shards a
// MergeShards closes while the merge is in flight, for three election timeouts, then resumes
// it.
func TestReshardPauseParentLeader(t *testing.T) {
	const name = "pausemerge"
	reshardFault(t, 3, name, 3, func(n int) reshardOp { return mergeFirst(name, n) }, func(c *cluster, leader, _ *node) func() {
		time.Sleep(strikeDelay(t))
		leader.signal(syscall.SIGSTOP)
		time.Sleep(3 * electionTimeout) // the fault's length, not a synchronisation
		return func() { leader.signal(syscall.SIGCONT) }
	})
}

// TestReshardWipeDuringMerge kills -9 the leader of one of the shards a MergeShards closes
// while the merge is in flight, wipes its data directory and starts it again while the
// merge may still run: it rejoins with a new Raft id and catches up on the parents (their
// seals) and the child.
func TestReshardWipeDuringMerge(t *testing.T) {
	const name = "wipemerge"
	reshardFault(t, 3, name, 2, func(n int) reshardOp { return mergeFirst(name, n) }, func(c *cluster, leader, _ *node) func() {
		time.Sleep(strikeDelay(t))
		leader.kill()
		leader.wipe()
		leader.start()
		return func() {}
	})
}

// TestReshardEtcdDown makes etcd unavailable for six seconds (longer than a node waits for a
// catalog request) while an UpdateShardCount is in flight. To have the outage meet the
// resharding between its seals and its catalog save, the leader of a parent is stopped
// (SIGSTOP) first, so that the seal waits, and resumed once etcd is down. The catalog
// change either commits or is refused, and a refused one leaves no parent sealed once etcd
// is back.
func TestReshardEtcdDown(t *testing.T) {
	const name = "etcdscale"
	reshardFault(t, 3, name, 2, func(int) reshardOp { return scaleTo(name, 4) }, func(c *cluster, leader, _ *node) func() {
		leader.signal(syscall.SIGSTOP)
		time.Sleep(strikeDelay(t) + electionTimeout/2) // the fault's timing, not a synchronisation
		c.etcd.Stop()
		leader.signal(syscall.SIGCONT)
		time.Sleep(6 * time.Second) // the outage's length
		c.etcd.Start()
		return c.registered
	})
}

// TestReshardKillCaller kills -9 the node an UpdateShardCount (4 to 2 shards: every shard
// closes) runs on while the change is in flight, and restarts it. To have the kill meet the
// change between its seals and its catalog save, the third node (neither the caller nor the
// leader of shard 0, which the engine seals first, in id order) is stopped (SIGSTOP) first
// when it leads a parent, so that the change waits on that parent's seal; the caller is
// killed once shard 0's leader holds its seal entry (its raft.seal), and the third node is
// resumed: a seal request it had taken may still apply then. Nobody knows the dead
// resharding's token: the parents' leaders release the seals that outlived it
// (stream.StaleSealLog), so that no parent the catalog has open stays sealed.
func TestReshardKillCaller(t *testing.T) {
	const name = "killcaller"
	reshardFault(t, 3, name, 4, func(int) reshardOp { return scaleTo(name, 2) }, func(c *cluster, leader, via *node) func() {
		var third *node // the node neither leading shard 0 nor the caller
		for _, nd := range c.nodes {
			if nd != leader && nd != via {
				third = nd
			}
		}
		if slices.Contains(slices.Collect(maps.Values(c.leaders(name))), third.id-1) {
			third.signal(syscall.SIGSTOP)
			deadline := time.Now().Add(10 * time.Second)
			for !leader.hasSealFile(name, 0) && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			t.Logf("node %d stopped; node %d holds shard 0's seal entry: %v", third.id, leader.id, leader.hasSealFile(name, 0))
		} else {
			t.Logf("node %d leads no parent: the kill strikes at random", third.id)
			time.Sleep(strikeDelay(t))
		}
		via.kill()
		third.signal(syscall.SIGCONT)
		return via.start
	})
}

// hasSealFile reports whether the node's replica of the shard holds a seal or unseal entry
// (its raft.seal file exists).
func (nd *node) hasSealFile(name string, shard shardmap.ShardID) bool {
	files, _ := filepath.Glob(filepath.Join(nd.dataDir, "streams", name+"@*", "shard-"+strconv.FormatUint(uint64(shard), 10), "raft.seal"))
	return len(files) > 0
}

// TestReshardPauseCaller stops with SIGSTOP the node a SplitShard runs on (not the leader of
// the shard it closes) while the split is in flight, for four election timeouts (past a
// seal's try on another node, 3 s), then resumes it: the split goes on where it stopped.
func TestReshardPauseCaller(t *testing.T) {
	const name = "pausecaller"
	reshardFault(t, 3, name, 2, func(n int) reshardOp { return splitFirst(name, n) }, func(c *cluster, _, via *node) func() {
		time.Sleep(strikeDelay(t))
		via.signal(syscall.SIGSTOP)
		time.Sleep(4 * electionTimeout) // the fault's length, not a synchronisation
		via.signal(syscall.SIGCONT)     // here, not in heal: heal runs once the call answered, which the stopped node cannot
		return func() {}
	})
}

// TestReshardCutParentLeader cuts the leader of the shard a SplitShard closes off with its
// proxy while the split is in flight, for three election timeouts: nothing the node
// running the split sends (its seal) reaches the leader, nor do its followers' answers; the
// others elect, and the seal goes to the new leader. Then the cut heals.
func TestReshardCutParentLeader(t *testing.T) {
	const name = "cutsplit"
	reshardFault(t, 3, name, 2, func(n int) reshardOp { return splitFirst(name, n) }, func(c *cluster, leader, _ *node) func() {
		time.Sleep(strikeDelay(t))
		leader.cut()
		time.Sleep(3 * electionTimeout) // the fault's length, not a synchronisation
		return leader.heal
	})
}

// releasedSeal is what a node logs when it unseals an open shard whose resharding never
// saved its change (stream's releaseStaleSeals).
const releasedSeal = "unsealing an open shard whose resharding never saved its change"

// logged counts the lines of the nodes' logs that contain s. The count is reported, never
// asserted: outcomes decide.
func (c *cluster) logged(s string) int {
	n := 0
	for _, nd := range c.nodes {
		b, _ := os.ReadFile(nd.logPath)
		n += strings.Count(string(b), s)
	}
	return n
}
