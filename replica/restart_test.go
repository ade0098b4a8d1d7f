package replica

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"

	"github.com/sluice-streams/sluice/segment"
)

// TestRestartsUnderLoad appends through whichever replica leads while, round after round, a
// random replica stops as kill -9 would stop it (its Log abandoned, not closed: its files
// hold what it wrote) and opens again from its directory, its retention cutoff set and a
// read made before it hears from the others, as the engine and a client may. Afterwards
// the committed logs are byte-identical, every acknowledged record is there once, at its
// position, and every replica serves it from a read at that position.
func TestRestartsUnderLoad(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	c := newCluster(t)
	c.leader()
	a := &acked{recs: map[string]uint64{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for b := 0; ; b++ {
			select {
			case <-stop:
				return
			default:
			}
			var l *Log
			c.do(func() {
				for _, n := range c.nodes {
					if !n.down && n.rn.BasicStatus().RaftState == raft.StateLeader {
						l = n.log
					}
				}
			})
			if l == nil {
				time.Sleep(time.Millisecond)
				continue
			}
			batch := make([]segment.Record, 1+b%4)
			for i := range batch {
				key := fmt.Sprintf("r-%d-%d", b, i)
				batch[i] = segment.Record{Key: []byte(key), Data: []byte("data of " + key)}
			}
			if l.Append(batch) != nil {
				continue // not acknowledged: it may or may not be stored
			}
			a.mu.Lock()
			for _, r := range batch {
				a.recs[string(r.Key)] = r.Seq
				a.max = max(a.max, r.Seq)
			}
			a.mu.Unlock()
		}
	}()

	cutoff := time.Now().Add(-time.Hour).UnixNano()
	for range 10 {
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		victim := c.nodes[1+rng.Uint64N(3)]
		c.do(func() {
			victim.down = true
			c.start(victim) // the old Log is abandoned as it is
			victim.log.Hide(cutoff)
			v, err := victim.log.Read(1, 1, 0)
			if err != nil {
				t.Errorf("node %d: read right after the restart: %v", victim.id, err)
			}
			v.Release()
		})
		time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		c.do(func() { victim.down = false })
	}
	close(stop)
	wg.Wait()
	if len(a.recs) == 0 {
		t.Fatal("nothing acknowledged")
	}
	tip := c.converge(a.max)
	t.Logf("%d records acknowledged, tip %d", len(a.recs), tip)
	c.check(a, tip)
	for _, n := range c.nodes {
		for key, pos := range a.recs {
			v, err := n.log.Read(pos, 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			it := v.Records()
			if !it.Next() || it.Record().Seq != pos || string(it.Record().Key) != key {
				t.Fatalf("node %d: read at %d does not return %q (%d records from %d)", n.id, pos, key, v.Count, v.First)
			}
			v.Release()
		}
	}
}
