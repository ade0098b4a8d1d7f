//go:build linux

package faults

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	sluicecluster "github.com/sluice-streams/sluice/cluster"
)

// chaosDuration is how long TestChaos injects faults: SLUICE_CHAOS_DURATION (a Go duration;
// make cluster-chaos sets it), else a short run that fits make ci.
func chaosDuration(t *testing.T) time.Duration {
	s := os.Getenv("SLUICE_CHAOS_DURATION")
	if s == "" {
		return 10 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("SLUICE_CHAOS_DURATION=%q: want a positive Go duration such as 10m", s)
	}
	return d
}

// chaosSeed is SLUICE_CHAOS_SEED when set (to replay a run), else the clock.
func chaosSeed(t *testing.T) uint64 {
	if s := os.Getenv("SLUICE_CHAOS_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("SLUICE_CHAOS_SEED=%q: want an unsigned integer", s)
		}
		return seed
	}
	return uint64(time.Now().UnixNano())
}

// chaosLayout is TestChaos's cluster: four nodes over three zones, three replicas per shard,
// so that every shard has nodes that hold no replica of it and drains have somewhere to go.
// Node additions bring it up to maxNodes.
var chaosLayout = layout{nodes: 4, replicas: 3, zones: 3}

const maxNodes = 6

// TestChaos runs rounds of faults and changes, mixed, under load from the SDK producers
// (through every node) and two Go client Producers, for chaosDuration. Each round does one
// of:
//
//   - a fault on one node (often the one leading the most shards), some rounds with etcd
//     stopped during it: kill -9 and restart; kill -9, wipe and restart; SIGSTOP and SIGCONT;
//     cut from its peers and healed. A wipe needs every group settled (its leader's members
//     are its placement's replicas); otherwise the round kills instead, since a wipe during
//     a move could take away a member the group cannot replace yet;
//   - a node added with an empty data directory (up to maxNodes): the controller places
//     replicas on it;
//   - a node drained with `sluice cluster drain` until no placement record names it, then
//     undrained;
//   - a reshard through the AWS SDK: UpdateShardCount, SplitShard or MergeShards.
//
// After every round every open shard must take writes again. At the end every fault is
// healed, every placed replica must be a voter and serve the last acknowledged record of its
// shard, and the invariant checker reads every replica of every node, the placements'
// replicas as the members. The seed is logged; SLUICE_CHAOS_SEED replays the schedule (the
// cluster's own timing still differs).
func TestChaos(t *testing.T) {
	seed := chaosSeed(t)
	t.Logf("seed %d (SLUICE_CHAOS_SEED=%d replays this run)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	c := startLayout(t, chaosLayout)
	c.createStream("chaos", shards)
	p := c.produce("chaos", 10)
	c.produceGo(p, c.nodes[0])
	c.produceGo(p, c.nodes[1])
	c.resumedOpen("chaos", p, time.Now())
	faults := []string{"kill", "wipe", "pause", "cut", "kill", "wipe", "pause", "cut", "add", "drain", "reshard"}
	done := map[string]int{}
	end := time.Now().Add(chaosDuration(t))
	for round := 0; round == 0 || time.Now().Before(end); round++ {
		fault := faults[rng.IntN(len(faults))]
		victim := c.nodes[rng.IntN(len(c.nodes))]
		if rng.IntN(2) == 0 {
			victim = c.leadingMost("chaos")
		}
		etcdDown := rng.IntN(4) == 0
		hold := electionTimeout/2 + time.Duration(rng.Int64N(int64(3*electionTimeout)))
		if fault == "add" && len(c.nodes) >= maxNodes {
			fault = "drain"
		}
		if fault == "wipe" {
			if err := c.settled("chaos"); err != nil {
				t.Logf("round %d: a wipe would wait for a settled cluster (%v): kill instead", round, err)
				fault = "kill"
			}
		}
		done[fault]++
		switch fault {
		case "add":
			nd := c.addNode("chaos")
			t.Logf("round %d: added node %d (%s); the controller placed replicas on it", round, nd.id, nd.zone)
		case "drain":
			t.Logf("round %d: drain node %d", round, victim.id)
			c.drain("chaos", victim)
			took := c.resumedOpen("chaos", p, time.Now())
			t.Logf("round %d: node %d drained from every placement record; every open shard acknowledged a write %v later; undrain", round, victim.id, took)
			c.verb("undrain", victim)
		case "reshard":
			t.Logf("round %d: %s", round, c.reshard("chaos", rng))
		default:
			c.nodeFault(round, fault, victim, hold, etcdDown)
		}
		took := c.resumedOpen("chaos", p, time.Now())
		t.Logf("round %d: every open shard acknowledged a write %v after the round ended", round, took)
		if fault == "wipe" {
			// The next round may take another node away: the wiped one must hold the log
			// first, or a majority would not.
			c.eventually("every placed replica is a voter", func() error { return c.placed("chaos") })
			c.converge("chaos", p)
		}
	}
	t.Logf("rounds: %v; %d records acknowledged; producer failures: %s", done, p.count(), p.failureSummary())
	p.stop()
	c.finish("chaos", p)
}

// nodeFault takes the victim away in one of four ways for hold, with etcd stopped meanwhile
// when etcdDown, and brings it back.
func (c *cluster) nodeFault(round int, fault string, victim *node, hold time.Duration, etcdDown bool) {
	c.t.Logf("round %d: %s node %d for %v (etcd down: %v)", round, fault, victim.id, hold, etcdDown)
	if etcdDown {
		c.etcd.Stop()
	}
	switch fault {
	case "kill", "wipe":
		victim.kill()
		if fault == "wipe" {
			victim.wipe()
		}
	case "pause":
		victim.signal(syscall.SIGSTOP)
	case "cut":
		victim.cut()
	}
	time.Sleep(hold) // the fault's length, not a synchronisation
	if etcdDown {
		c.etcd.Start()
	}
	switch fault {
	case "kill", "wipe":
		victim.start()
	case "pause":
		victim.signal(syscall.SIGCONT)
	case "cut":
		victim.heal()
	}
	if etcdDown {
		c.registered()
	}
}

// registered waits until every running node is registered in etcd again, as it is once etcd
// is back: the round ends when membership has recovered, not merely when etcd answers. A
// reshard whose catalog transaction finds no node registered places none of its new shards
// (each node then keeps a local, unreplicated log of them), so it must not run in that gap.
func (c *cluster) registered() {
	c.t.Helper()
	c.eventually("every running node registered", func() error {
		ms, err := c.ec.Members()
		if err != nil {
			return err
		}
		for _, nd := range c.up() {
			if !slices.ContainsFunc(ms, func(m sluicecluster.Node) bool { return m.ID == uint64(nd.id) }) {
				return fmt.Errorf("node %d is not registered", nd.id)
			}
		}
		return nil
	})
}
