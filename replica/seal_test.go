package replica

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

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

// sealOpEntry is a seal (op sealOp) or unseal (unsealOp) entry at index i in term.
func sealOpEntry(i, term uint64, op uint8, token uint64) *pb.Entry {
	return &pb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(term), Type: pb.EntryNormal.Enum(), Data: sealEntry(op, token)}
}

// emptyEntry is a new leader's empty entry at index i in term.
func emptyEntry(i, term uint64) *pb.Entry {
	return &pb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(term), Type: pb.EntryNormal.Enum()}
}

// checkSealed checks that l is sealed for token with the ending last: nothing published
// above it, Seal answers it (held: nothing proposed), and Append is refused as sealed.
func checkSealed(t *testing.T, l *Log, token, last uint64, when string) {
	t.Helper()
	if tip := l.Tip(); tip != last {
		t.Fatalf("%s: Tip %d, want the sealed log's last record %d", when, tip, last)
	}
	if got, err := l.Seal(token); err != nil || got != last {
		t.Fatalf("%s: Seal(%d) = %d, %v; want %d", when, token, got, err, last)
	}
	if err := l.Append(batchOf("refused", 1)); !errors.Is(err, stream.ErrLogSealed) {
		t.Fatalf("%s: Append: %v, want stream.ErrLogSealed", when, err)
	}
}

// TestSnapshotCarriesSeal: a follower that catches up by a snapshot taken past a seal entry
// it never held learns the seal from the snapshot: it publishes nothing above it, answers
// the leader's ending (the last record before the gap the new leader's empty entry left, not
// the position before the seal entry), refuses appends, also after a restart, and applies
// the unseal entry that comes after the snapshot. A snapshot written without the seal (as
// before it was carried) still decodes.
func TestSnapshotCarriesSeal(t *testing.T) {
	leader := mustOpenLog(t, t.TempDir(), testOpts(nil))
	defer leader.Close()
	ents := []*pb.Entry{confEntry(1, 1, pb.ConfChangeType_ConfChangeAddNode, 1), confEntry(2, 1, pb.ConfChangeType_ConfChangeAddNode, 2),
		confEntry(3, 1, pb.ConfChangeType_ConfChangeAddNode, 3)}
	ents = append(ents, frameEntries(4, 96, 1, 700, t0)...) // records 4 to 99
	ents = append(ents, emptyEntry(100, 2), sealOpEntry(101, 2, sealOp, 9))
	ents = append(ents, frameEntries(102, 3, 2, 700, t0)...) // appends committed after the seal
	persistApply(t, leader, ents, hs(2, 1, 104), true)
	checkSealed(t, leader, 9, 99, "the leader")

	snap, rec := snapshotOf(t, leader)
	if rec.index != 104 || !rec.hasSeals || rec.sealLast != 99 || len(rec.seals) != 1 {
		t.Fatalf("snapshot at %d carries seal %v, %d records, ending %d; want 104, the seal entry at 101, ending 99", rec.index, rec.hasSeals, len(rec.seals), rec.sealLast)
	}
	dir := t.TempDir()
	f := mustOpenLog(t, dir, testOpts(nil))
	if err := stagedFrom(f, leader, snap); err != nil {
		t.Fatal(err)
	}
	if err := f.Persist(&raft.Ready{Snapshot: snap, HardState: hs(2, 1, 104)}); err != nil {
		t.Fatal(err)
	}
	checkSealed(t, f, 9, 99, "after the install")
	f.Close()
	f = mustOpenLog(t, dir, testOpts(nil))
	defer func() { f.Close() }()
	checkSealed(t, f, 9, 99, "after a restart")

	// The unseal entry after the snapshot ends the seal: the late appends' records are
	// published.
	persistApply(t, f, []*pb.Entry{sealOpEntry(105, 2, unsealOp, 9)}, hs(2, 1, 105), true)
	if tip := f.Tip(); tip != 104 {
		t.Fatalf("after the unseal entry: Tip %d, want 104", tip)
	}
	var nl *NotLeaderError
	if err := f.Append(batchOf("unsealed", 1)); !errors.As(err, &nl) {
		t.Fatalf("Append on the unsealed follower: %v, want a NotLeaderError", err)
	}

	// A record without the seal (written before snapshots carried it) decodes, without it.
	old := rec
	old.hasSeals, old.seals, old.sealLast = false, nil, 0
	b, err := encodeSnap(old)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeSnap(b)
	if err != nil || got.hasSeals || got.index != 104 || len(got.files) != len(rec.files) || got.tail != rec.tail {
		t.Fatalf("a snapshot without the seal: %+v, %v", got, err)
	}
	if full, _ := encodeSnap(rec); len(full) != len(b)+4+sealRecSize+8 {
		t.Fatalf("the seal takes %d bytes of the record, want %d", len(full)-len(b), 4+sealRecSize+8)
	}
}

// TestSealAfterItsUnseal: a token's seal entry that applies after its unseal entry (a Seal
// retried, or still proposed on the leader, after its resharding gave up and unsealed)
// seals nothing: records after it are published and acknowledged, Seal with that token
// fails with ErrSealCancelled and Unseal returns at once, also after a restart and on a
// follower that installs a snapshot taken past both. Another token's seal still seals.
func TestSealAfterItsUnseal(t *testing.T) {
	dir := t.TempDir()
	l := mustOpenLog(t, dir, testOpts(nil))
	ents := []*pb.Entry{confEntry(1, 1, pb.ConfChangeType_ConfChangeAddNode, 1)}
	ents = append(ents, frameEntries(2, 9, 1, 100, t0)...) // records 2 to 10
	ents = append(ents, sealOpEntry(11, 1, unsealOp, 7), sealOpEntry(12, 1, sealOp, 7))
	ents = append(ents, frameEntries(13, 3, 1, 100, t0)...) // records 13 to 15
	persistApply(t, l, ents, hs(1, 1, 15), true)
	check := func(l *Log, when string) {
		t.Helper()
		if tip := l.Tip(); tip != 15 {
			t.Fatalf("%s: Tip %d, want 15: a seal entry applied after its unseal sealed the log", when, tip)
		}
		if _, err := l.Seal(7); !errors.Is(err, ErrSealCancelled) {
			t.Fatalf("%s: Seal of an unsealed token: %v, want ErrSealCancelled", when, err)
		}
		if err := l.Unseal(7); err != nil { // no proposer: it must find its unseal applied
			t.Fatalf("%s: Unseal of an unsealed token: %v", when, err)
		}
		var nl *NotLeaderError
		if err := l.Append(batchOf("open", 1)); !errors.As(err, &nl) {
			t.Fatalf("%s: Append: %v, want a NotLeaderError (not sealed)", when, err)
		}
	}
	check(l, "applied")
	l.Close()
	l = mustOpenLog(t, dir, testOpts(nil))
	defer l.Close()
	check(l, "after a restart")

	snap, _ := snapshotOf(t, l)
	f := mustOpenLog(t, t.TempDir(), testOpts(nil))
	defer f.Close()
	if err := stagedFrom(f, l, snap); err != nil {
		t.Fatal(err)
	}
	if err := f.Persist(&raft.Ready{Snapshot: snap, HardState: hs(1, 1, 15)}); err != nil {
		t.Fatal(err)
	}
	check(f, "on a follower after the install")
	// Token 7's seal entry proposed again after the snapshot: still nothing; token 8's seals.
	persistApply(t, f, []*pb.Entry{sealOpEntry(16, 1, sealOp, 7)}, hs(1, 1, 16), true)
	check(f, "after another seal entry of the unsealed token")
	persistApply(t, f, append([]*pb.Entry{sealOpEntry(17, 1, sealOp, 8)}, frameEntries(18, 2, 1, 100, t0)...), hs(1, 1, 19), true)
	checkSealed(t, f, 8, 15, "sealed by another token")
}

// TestSealAfterItsUnsealReplicated: on three replicas, a resharding's unseal entry commits
// before its own seal entry (both proposed on the leader in one turn, as when a Seal still
// running on the leader for a caller that gave up proposes again after the caller's Unseal
// applied). Every replica finds the token cancelled and the log unsealed: appends are
// acknowledged after both entries, and Seal with the token fails with ErrSealCancelled.
func TestSealAfterItsUnsealReplicated(t *testing.T) {
	c := newCluster(t)
	a := &acked{recs: map[string]uint64{}}
	lead := c.leader()
	c.appendOK(lead, a, "before", 3, 2)
	c.do(func() {
		for _, op := range []uint8{unsealOp, sealOp} {
			if err := lead.rn.Propose(sealEntry(op, 7)); err != nil {
				t.Error(err)
			}
		}
	})
	for _, n := range c.nodes {
		for k := 0; ; k++ {
			n.log.mu.Lock()
			cancelled, at := slices.Contains(n.log.seal.hold.cancelled, 7), n.log.seal.hold.at
			n.log.mu.Unlock()
			if cancelled {
				if at != 0 {
					t.Fatalf("node %d: sealed at %d by a seal entry applied after its unseal", n.id, at)
				}
				break
			}
			if k == 5000 {
				t.Fatalf("node %d did not apply the unseal entry", n.id)
			}
			<-time.After(time.Millisecond)
		}
	}
	c.appendOK(lead, a, "after", 3, 2)
	if _, err := lead.log.Seal(7); !errors.Is(err, ErrSealCancelled) {
		t.Fatalf("Seal with the unsealed token: %v, want ErrSealCancelled", err)
	}
	c.check(a, c.converge(a.max))
}

// TestStaleSeals: StaleSeals names the tokens holding the seal in force, those that have
// held it for the age asked and no others, and forgets a token once its unseal applied.
func TestStaleSeals(t *testing.T) {
	c := newCluster(t)
	lead := c.leader()
	if got := lead.log.StaleSeals(0); len(got) != 0 {
		t.Fatalf("StaleSeals of a log never sealed: %v", got)
	}
	for _, token := range []uint64{5, 9} {
		if _, err := lead.log.Seal(token); err != nil {
			t.Fatal(err)
		}
	}
	if got := lead.log.StaleSeals(0); !slices.Equal(got, []uint64{5, 9}) {
		t.Fatalf("StaleSeals(0) after two Seals: %v, want [5 9]", got)
	}
	if got := lead.log.StaleSeals(time.Hour); len(got) != 0 {
		t.Fatalf("StaleSeals(1h) of seals made by this test: %v, want none", got)
	}
	if err := lead.log.Unseal(5); err != nil {
		t.Fatal(err)
	}
	if got := lead.log.StaleSeals(0); !slices.Equal(got, []uint64{9}) {
		t.Fatalf("StaleSeals(0) after Unseal(5): %v, want [9]", got)
	}
	if err := lead.log.Unseal(9); err != nil {
		t.Fatal(err)
	}
	if got := lead.log.StaleSeals(0); len(got) != 0 {
		t.Fatalf("StaleSeals(0) once every holder unsealed: %v, want none", got)
	}
}
