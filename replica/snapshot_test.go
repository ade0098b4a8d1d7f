package replica_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-streams/sluice/multiraft"
	"github.com/sluice-streams/sluice/replica"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/stream"
)

// snapTick is the Hosts' tick in the snapshot tests: elections take a second, so that the
// fsyncs of a loaded machine do not move leadership in the middle of a test.
const snapTick = 100 * time.Millisecond

func hasVoter(ids map[uint64]struct{}, id uint64) bool {
	_, ok := ids[id]
	return ok
}

// snapOpts are the segment options of the snapshot tests: 64 KiB segments, synced, and a
// clock the test moves (now, Unix ns).
func snapOpts(now *atomic.Int64) segment.Options {
	now.Store(time.Unix(1_700_000_000, 0).UnixNano())
	return segment.Options{SegmentSize: segment.MinSegmentSize, Durability: segment.Durability{Mode: segment.Sync},
		Now: func() time.Time { return time.Unix(0, now.Load()) }}
}

// appendBytes appends batches of 20 records of size bytes each through the leader of the
// live nodes until about total bytes went in, and returns the last position. A batch that
// meets a change of leader is appended again through the new one (it may then be there
// twice, which these tests allow).
func appendBytes(t *testing.T, live []*hostNode, tag string, total, size int) uint64 {
	t.Helper()
	var last uint64
	for done, b := 0, 0; done < total; b++ {
		batch := make([]segment.Record, 20)
		for i := range batch {
			batch[i] = segment.Record{Key: []byte(fmt.Sprintf("%s-%d-%d", tag, b, i)), Data: bytes.Repeat([]byte{byte('a' + i)}, size)}
			done += size
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			err := waitLeader(t, live).log.Append(batch)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("append %s: %v", tag, err)
			}
		}
		last = batch[len(batch)-1].Seq
	}
	return last
}

// writtenFrames returns the frames l's segment log holds at positions from to to.
func writtenFrames(t *testing.T, l *replica.Log, from, to uint64) []byte {
	t.Helper()
	var out []byte
	for from <= to {
		v, err := l.Segment().ReadWritten(from, 1000, 0)
		if err != nil {
			t.Fatal(err)
		}
		if v.Count == 0 {
			v.Release()
			break
		}
		for it := v.Records(); it.Next(); {
			if r := it.Record(); r.Seq <= to {
				out = fmt.Appendf(out, "%d/%d/%x/%q/%q;", r.Seq, r.Time, r.Flags, r.Key, r.Data)
			}
		}
		from = v.Next
		v.Release()
	}
	return out
}

// waitFor polls cond (a bounded wait) and fails with what when it never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ageAndTrim appends 600 KiB, two thirds of it an hour before the rest, and trims every live
// node's log at half an hour before the end: the leader's oldest segments go. It returns the
// leader's FirstIndex, checked to have moved.
func ageAndTrim(t *testing.T, now *atomic.Int64, live []*hostNode) uint64 {
	t.Helper()
	appendBytes(t, live, "old", 400<<10, 700)
	now.Add(int64(time.Hour))
	appendBytes(t, live, "new", 200<<10, 700)
	leader := waitLeader(t, live)
	cutoff := now.Load() - int64(30*time.Minute)
	for _, n := range live {
		removed, err := n.log.Trim(cutoff)
		if err != nil || (n == leader && removed == 0) {
			t.Fatalf("node %d's Trim: %d segments removed, %v", n.id, removed, err)
		}
	}
	first, _ := leader.log.Storage().FirstIndex()
	if first <= 1 {
		t.Fatalf("leader's FirstIndex %d after retention removed segments", first)
	}
	if _, err := leader.log.Storage().Entries(first-1, first, 1<<20); err == nil {
		t.Fatalf("Entries below FirstIndex %d answered", first)
	}
	return first
}

// TestSnapshotThroughHost: three replicas over loopback HTTP; the leader's retention removes
// its oldest segments, so a fourth replica added by a conf change cannot be sent the log from
// the start. It catches up through a snapshot: the sealed segment files fetched from the
// leader are byte-identical to the leader's, the tail frames match, its FirstIndex is the
// snapshot's, and the records appended afterwards replicate to it. After a restart it comes
// back with the same configuration (the four voters) and the same frames.
func TestSnapshotThroughHost(t *testing.T) {
	var now atomic.Int64
	so := snapOpts(&now)
	nodes := startHostNodes(t, 3, so, snapTick)
	first := ageAndTrim(t, &now, nodes)
	n4 := addBySnapshot(t, nodes, so)
	leader := waitLeader(t, nodes) // the snapshot's sender, leadership not having moved meanwhile
	snapFirst, _ := n4.log.Storage().FirstIndex()
	if snapFirst < first {
		t.Fatalf("node 4's FirstIndex %d is below the leader's %d", snapFirst, first)
	}

	// The shipped segment files are the leader's, byte for byte.
	shipped, err := n4.log.Segment().SealedUpTo(snapFirst - 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(shipped) == 0 {
		t.Fatal("node 4 received no sealed segment file")
	}
	for _, f := range shipped {
		got, err := os.ReadFile(filepath.Join(n4.log.Segment().Dir(), f.Name))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(leader.log.Segment().Dir(), f.Name))
		if err != nil {
			t.Fatalf("node 4 holds %s, the leader does not: %v", f.Name, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("segment %s differs from the leader's (%d vs %d bytes)", f.Name, len(got), len(want))
		}
	}

	t.Logf("leader FirstIndex %d; node 4 FirstIndex %d, %d files shipped (%d to %d)", first, snapFirst, len(shipped), shipped[0].First, shipped[len(shipped)-1].Last)
	// New records replicate to it; every frame it holds is the leader's.
	last := appendBytes(t, nodes, "after", 20*100, 100)
	waitFor(t, "node 4 publishes the new records", func() bool { return n4.log.Tip() >= last })
	from := shipped[0].First
	if got, want := writtenFrames(t, n4.log, from, last), writtenFrames(t, leader.log, from, last); !bytes.Equal(got, want) || len(got) == 0 {
		t.Fatalf("node 4's frames from %d to %d differ from the leader's (%d vs %d bytes)", from, last, len(got), len(want))
	}
	if got := committedFrames(t, n4.log, last); len(got) == 0 {
		t.Fatal("nothing readable on node 4")
	}

	// A restart keeps the snapshot, the frames and the configuration.
	dir4 := n4.log.Segment().Dir()
	n4.stop()
	l, err := replica.Open(dir4, replica.Options{NodeID: 4, Segment: so})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if f, _ := l.Storage().FirstIndex(); f != snapFirst {
		t.Fatalf("FirstIndex %d after the restart, want %d", f, snapFirst)
	}
	_, cs, err := l.Storage().InitialState()
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.GetVoters()) != 4 {
		t.Fatalf("voters after the restart: %v, want 4", cs.GetVoters())
	}
	if got, want := writtenFrames(t, l, from, last), writtenFrames(t, leader.log, from, last); !bytes.Equal(got, want) {
		t.Fatal("node 4's frames changed across the restart")
	}
}

// TestSnapshotToRestartedFollower: a follower stopped while the leader appends, and while the
// leader's retention removes what it lacks, comes back (a new Host over the same directory)
// and is caught up by a snapshot that replaces its old log; its frames are then the leader's
// and new records reach it.
func TestSnapshotToRestartedFollower(t *testing.T) {
	var now atomic.Int64
	so := snapOpts(&now)
	nodes := startHostNodes(t, 3, so, snapTick)
	early := appendBytes(t, nodes, "early", 20*100, 100)
	leader := waitLeader(t, nodes)
	var lag *hostNode
	var live []*hostNode
	for _, n := range nodes {
		if n != leader && lag == nil {
			lag = n
			continue
		}
		live = append(live, n)
	}
	waitFor(t, "the follower has the early records", func() bool { return lag.log.Tip() >= early })
	dir := lag.log.Segment().Dir()
	lag.stop()
	first := ageAndTrim(t, &now, live)

	back := newHostNode(t, lag.id, dir, so, snapTick)
	for _, n := range live {
		n.host.SetPeer(back.id, back.addr)
		back.host.SetPeer(n.id, n.addr)
	}
	if got, _ := back.log.Storage().LastIndex(); got >= first {
		t.Fatalf("the restarted follower's LastIndex %d reaches the leader's FirstIndex %d: no snapshot needed", got, first)
	}
	if err := back.host.AddGroup(group, []uint64{1, 2, 3}, back.log, multiraft.GroupOptions{Applied: back.log.Applied()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the restarted follower installs a snapshot", func() bool {
		f, _ := back.log.Storage().FirstIndex()
		return f >= first
	})
	last := appendBytes(t, live, "after", 20*100, 100)
	leader = waitLeader(t, live)
	waitFor(t, "the restarted follower publishes the new records", func() bool { return back.log.Tip() >= last })
	from := back.log.Segment().FirstPos()
	if got, want := writtenFrames(t, back.log, from, last), writtenFrames(t, leader.log, from, last); !bytes.Equal(got, want) || len(got) == 0 {
		t.Fatalf("the restarted follower's frames from %d differ from the leader's (%d vs %d bytes)", from, len(got), len(want))
	}
	v, err := back.log.Read(0, 1, 0)
	if err != nil || v.Count == 0 || v.First < first {
		t.Fatalf("oldest readable record on the follower: %d (%v); want the leader's oldest retained, %d or above", v.First, err, first)
	}
	v.Release()
}

// addBySnapshot adds a fourth replica, empty, to the group of nodes, whose leader's retention
// removed its oldest entries, and waits until it installed a snapshot (proposing the conf
// change again if a change of leader lost it).
func addBySnapshot(t *testing.T, nodes []*hostNode, so segment.Options) *hostNode {
	t.Helper()
	n4 := newHostNode(t, 4, t.TempDir(), so, snapTick)
	for _, n := range nodes {
		n.host.SetPeer(4, n4.addr)
		n4.host.SetPeer(n.id, n.addr)
	}
	if err := n4.host.AddGroup(group, nil, n4.log, multiraft.GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	cc := &pb.ConfChange{Type: pb.ConfChangeType_ConfChangeAddNode.Enum(), NodeId: proto.Uint64(4)}
	var proposed time.Time
	waitFor(t, "node 4 installs a snapshot", func() bool {
		if f, _ := n4.log.Storage().FirstIndex(); f > 1 {
			return true
		}
		if st, err := waitLeader(t, nodes).host.Status(group); err == nil && !hasVoter(st.Config.Voters.IDs(), 4) && time.Since(proposed) > 2*time.Second {
			proposed = time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = waitLeader(t, nodes).host.ProposeConfChange(ctx, group, cc) // again if a change of leader lost it
		}
		return false
	})
	return n4
}

// TestSnapshotCarriesSealThroughHost: three replicas; the leader's retention removes its
// oldest segments, then it seals the log; a fourth replica added afterwards is caught up by
// a snapshot taken past the seal entry: it publishes nothing above the leader's ending,
// Seal answers that ending without proposing (the token holds the seal there), and appends
// are refused as sealed.
func TestSnapshotCarriesSealThroughHost(t *testing.T) {
	var now atomic.Int64
	so := snapOpts(&now)
	nodes := startHostNodes(t, 3, so, snapTick)
	ageAndTrim(t, &now, nodes)
	leader := waitLeader(t, nodes)
	last, err := leader.log.Seal(42)
	if err != nil {
		t.Fatal(err)
	}
	sealedBy, _ := leader.log.Storage().LastIndex() // the seal entry is at or below it

	n4 := addBySnapshot(t, nodes, so)
	if f, _ := n4.log.Storage().FirstIndex(); f <= sealedBy {
		t.Fatalf("node 4's snapshot is at %d, not past the seal entry (at or below %d): the test shows nothing", f-1, sealedBy)
	}
	// The install is seen (FirstIndex) while the loop's iteration that persists it may still
	// be running; a call on the loop returns after that iteration.
	if _, err := n4.host.Status(group); err != nil {
		t.Fatal(err)
	}
	n4.log.SetProposer(nil) // a Seal that had to propose would fail
	if got, err := n4.log.Seal(42); err != nil || got != last {
		t.Fatalf("Seal on the replica caught up by a snapshot: %d, %v; want the leader's ending %d", got, err, last)
	}
	if tip := n4.log.Tip(); tip != last {
		t.Fatalf("the replica caught up by a snapshot publishes up to %d, want the ending %d", tip, last)
	}
	if err := n4.log.Append([]segment.Record{{Key: []byte("k"), Data: []byte("late")}}); !errors.Is(err, stream.ErrLogSealed) {
		t.Fatalf("Append on the replica caught up by a snapshot: %v, want stream.ErrLogSealed", err)
	}
}
