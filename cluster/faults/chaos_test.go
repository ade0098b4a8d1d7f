//go:build linux

package faults

import (
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
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

// TestChaos runs rounds of faults, mixed, under load, for chaosDuration: each round picks one
// node (often the one leading the most shards) and one fault — kill -9 and restart, kill -9,
// wipe and restart, SIGSTOP and SIGCONT, cut from its peers and healed — and, some rounds,
// stops etcd during it. Between rounds every shard must take writes again. At the end the
// invariant checker reads every replica. The seed is logged; SLUICE_CHAOS_SEED replays it.
func TestChaos(t *testing.T) {
	seed := chaosSeed(t)
	t.Logf("seed %d (SLUICE_CHAOS_SEED=%d replays this run)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	c := startCluster(t, 3)
	c.createStream("chaos", shards)
	p := c.produce("chaos", 10)
	c.resumed(p, shards, time.Now())
	faults := []string{"kill", "wipe", "pause", "cut"}
	end := time.Now().Add(chaosDuration(t))
	for round := 0; round == 0 || time.Now().Before(end); round++ {
		victim := c.nodes[rng.IntN(len(c.nodes))]
		if rng.IntN(2) == 0 {
			victim = c.leadingMost("chaos")
		}
		fault := faults[rng.IntN(len(faults))]
		etcdDown := rng.IntN(4) == 0
		hold := electionTimeout/2 + time.Duration(rng.Int64N(int64(3*electionTimeout)))
		t.Logf("round %d: %s node %d for %v (etcd down: %v)", round, fault, victim.id, hold, etcdDown)
		if etcdDown {
			c.etcd.Stop()
		}
		old := victim.raftID()
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
		took := c.resumed(p, shards, time.Now())
		t.Logf("round %d: every shard acknowledged a write %v after the fault ended", round, took)
		if fault == "wipe" {
			// The next round may take another node away: the wiped one must hold the log
			// and be a voter in place of its old id first, or a majority would not.
			c.converge("chaos", p)
			c.replaced("chaos", victim, old)
		}
	}
	t.Logf("%d records acknowledged; producer failures: %s", p.count(), p.failureSummary())
	p.stop()
	c.finish("chaos", p)
}
