package replica

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/stream"
)

// sealApplied waits until every node that is up has applied a seal, and returns the seal
// entry's index they agree on.
func (c *cluster) sealApplied() uint64 {
	c.t.Helper()
	for range 5000 {
		ats := map[uint64]bool{}
		for _, n := range c.nodes {
			if n.down {
				continue
			}
			n.log.mu.Lock()
			ats[n.log.seal.hold.at] = true
			n.log.mu.Unlock()
		}
		if len(ats) == 1 && !ats[0] {
			for at := range ats {
				return at
			}
		}
		<-time.After(time.Millisecond)
	}
	c.t.Fatal("the seal did not apply on every replica")
	return 0
}

// nothingAbove checks that no replica publishes a record above last: Tip at most last, and
// a read from last+1 empty.
func (c *cluster) nothingAbove(last uint64) {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.down {
			continue
		}
		if tip := n.log.Tip(); tip > last {
			c.t.Fatalf("node %d publishes up to %d, past the sealed log's last record %d", n.id, tip, last)
		}
		v, err := n.log.Read(last+1, 1000, 1<<20)
		if err != nil {
			c.t.Fatal(err)
		}
		if v.Count != 0 {
			c.t.Fatalf("node %d reads %d records after the sealed log's last record %d (first %d)", n.id, v.Count, last, v.First)
		}
		v.Release()
	}
}

func batchOf(prefix string, n int) []segment.Record {
	b := make([]segment.Record, n)
	for i := range b {
		key := fmt.Sprintf("%s-%d", prefix, i)
		b[i] = segment.Record{Key: []byte(key), Data: []byte(key)}
	}
	return b
}

// TestSeal seals a group: an append whose entries land right after the seal entry is not
// acknowledged and never published on any replica; Seal returns the last record before the
// seal, again for a second holder and after every replica restarted; appends are refused
// while sealed, also after one of two holders unsealed, and resume after the last Unseal.
func TestSeal(t *testing.T) {
	c := newCluster(t)
	a := &acked{recs: map[string]uint64{}}
	lead := c.leader()
	c.appendOK(lead, a, "before", 10, 3)

	// The seal entry and an append's entries proposed in one turn of the loop: the append's
	// entries are committed after the seal, on every replica.
	lead.log.mu.Lock()
	orig := lead.log.proposer
	lead.log.mu.Unlock()
	lead.log.SetProposer(proposerFunc(func(data [][]byte) error {
		var err error
		c.do(func() {
			if err = lead.rn.Propose(sealEntry(sealOp, 7)); err != nil {
				return
			}
			for _, d := range data {
				if err = lead.rn.Propose(d); err != nil {
					return
				}
			}
		})
		return err
	}))
	late := batchOf("late", 4)
	if err := lead.log.Append(late); !errors.Is(err, stream.ErrLogSealed) {
		t.Fatalf("Append committed after the seal: %v, want stream.ErrLogSealed", err)
	}
	lead.log.SetProposer(orig)
	at := c.sealApplied()
	last, err := lead.log.Seal(7) // held already by the entry proposed above
	if err != nil {
		t.Fatal(err)
	}
	if last != a.max || at != a.max+1 {
		t.Fatalf("Seal: last %d, seal entry at %d; want last %d, the seal right after it", last, at, a.max)
	}
	if got := lead.log.Segment().LastPos(); got <= at {
		t.Fatalf("the late append's frames are not in the log (last frame %d, seal at %d): the test shows nothing", got, at)
	}
	c.nothingAbove(last)
	c.check(a, c.converge(last))

	// Sealed: another Seal (another resharding's token) holds the same seal, and appends
	// are refused without a proposal.
	if again, err := lead.log.Seal(8); err != nil || again != last {
		t.Fatalf("second Seal: %d, %v; want %d", again, err, last)
	}
	if err := lead.log.Append(batchOf("refused", 2)); !errors.Is(err, stream.ErrLogSealed) {
		t.Fatalf("Append on a sealed log: %v, want stream.ErrLogSealed", err)
	}

	// Every replica restarts: the seal is kept.
	c.do(func() {
		for _, n := range c.nodes {
			if err := n.log.Close(); err != nil {
				t.Error(err)
			}
			c.start(n)
		}
	})
	if got := c.sealApplied(); got != at {
		t.Fatalf("after a restart the seal is at %d, want %d", got, at)
	}
	lead = c.leader()
	c.nothingAbove(last)
	if again, err := lead.log.Seal(7); err != nil || again != last {
		t.Fatalf("Seal after a restart: %d, %v; want %d", again, err, last)
	}
	if err := lead.log.Append(batchOf("refused-after-restart", 2)); !errors.Is(err, stream.ErrLogSealed) {
		t.Fatalf("Append on a sealed log after a restart: %v, want stream.ErrLogSealed", err)
	}

	// Unseal of one holder: still sealed; of the last: appends are acknowledged again,
	// after the seal.
	if err := lead.log.Unseal(8); err != nil {
		t.Fatal(err)
	}
	if got := c.sealApplied(); got != at {
		t.Fatalf("with one holder left the seal is at %d, want %d", got, at)
	}
	if err := lead.log.Append(batchOf("refused-one-holder", 2)); !errors.Is(err, stream.ErrLogSealed) {
		t.Fatalf("Append with one holder left: %v, want stream.ErrLogSealed", err)
	}
	if err := lead.log.Unseal(7); err != nil {
		t.Fatal(err)
	}
	c.appendOK(lead, a, "after", 5, 2)
	if pos := a.recs["after-0-0"]; pos <= at {
		t.Fatalf("the first record after Unseal is at %d, not after the seal at %d", pos, at)
	}
	c.check(a, c.converge(a.max))
}

// TestSealUnderAppends seals the leader while producers append concurrently: every
// acknowledged record is at or below the position Seal returned, every append after it
// fails with stream.ErrLogSealed, and no replica publishes past it.
func TestSealUnderAppends(t *testing.T) {
	c := newCluster(t)
	lead := c.leader()
	a := &acked{recs: map[string]uint64{}}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		count    int
		sealed   = make(chan struct{})
		failures []error
	)
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; ; b++ {
				batch := batchOf(fmt.Sprintf("p%d-%d", p, b), 3)
				err := lead.log.Append(batch)
				mu.Lock()
				switch {
				case err == nil:
					for _, r := range batch {
						a.recs[string(r.Key)] = r.Seq
						a.max = max(a.max, r.Seq)
					}
					count++
				case !errors.Is(err, stream.ErrLogSealed):
					failures = append(failures, err)
				}
				mu.Unlock()
				if err != nil {
					select {
					case <-sealed:
						return // refused after the seal: done
					default:
					}
				}
			}
		}()
	}
	for {
		mu.Lock()
		n := count
		mu.Unlock()
		if n >= 40 {
			break
		}
		<-time.After(time.Millisecond)
	}
	last, err := lead.log.Seal(1)
	close(sealed)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("appends failed other than by the seal: %v", failures)
	}
	for key, pos := range a.recs {
		if pos > last {
			t.Fatalf("record %q acknowledged at %d, after the sealed log's last record %d", key, pos, last)
		}
	}
	c.sealApplied()
	c.nothingAbove(last)
	c.check(a, c.converge(last))
	if again, err := lead.log.Seal(2); err != nil || again != last {
		t.Fatalf("second Seal: %d, %v; want %d", again, err, last)
	}
}
