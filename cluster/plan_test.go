package cluster

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/quorum"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"

	"github.com/sluice-streams/sluice/stream"
)

// member is one member of a status for planStep: its id, whether it is a learner, its Match
// and whether the leader heard from it recently.
type member struct {
	id      uint64
	learner bool
	match   uint64
	active  bool
}

// status is the leader's (id 1) status of a group with members, committed up to commit, in a
// joint configuration when outgoing is not empty.
func status(commit uint64, members []member, outgoing ...uint64) raft.Status {
	st := raft.Status{BasicStatus: raft.BasicStatus{ID: 1, HardState: &pb.HardState{Commit: new(commit)},
		SoftState: raft.SoftState{Lead: 1, RaftState: raft.StateLeader}},
		Config:   tracker.Config{Voters: quorum.JointConfig{quorum.MajorityConfig{}, nil}, Learners: map[uint64]struct{}{}},
		Progress: map[uint64]tracker.Progress{}}
	for _, m := range members {
		if m.learner {
			st.Config.Learners[m.id] = struct{}{}
		} else {
			st.Config.Voters[0][m.id] = struct{}{}
		}
		st.Progress[m.id] = tracker.Progress{Match: m.match, RecentActive: m.active, IsLearner: m.learner}
	}
	if len(outgoing) > 0 {
		st.Config.Voters[1] = quorum.MajorityConfig{}
		for _, id := range outgoing {
			st.Config.Voters[1][id] = struct{}{}
		}
	}
	return st
}

// TestPlanStep: the leader's decisions in a move, one step at a time.
func TestPlanStep(t *testing.T) {
	up := func(id, match uint64) member { return member{id: id, match: match, active: true} }
	learner := func(id, match uint64) member { return member{id: id, learner: true, match: match, active: true} }
	down := func(id, match uint64) member { return member{id: id, match: match} }
	for _, tc := range []struct {
		name     string
		st       raft.Status
		want     []uint64 // the Raft id each slot wants
		recorded []uint64
		mark     uint64
		removed  []uint64 // the placement's removed
		removing []uint64 // the ids the leader proposed to remove
		kind     stepKind
		raft     []uint64 // stepRecord
		gone     []uint64 // stepRecord: removed
		change   string   // stepConf: describeChange
		to       uint64   // stepTransfer
	}{
		{name: "settled", st: status(10, []member{up(1, 10), up(2, 10), up(3, 10)}),
			want: []uint64{1, 2, 3}, recorded: []uint64{1, 2, 3}, kind: stepNone},
		{name: "joint configuration", st: status(10, []member{up(1, 10), up(2, 10), up(4, 10)}, 1, 2, 3),
			want: []uint64{1, 2, 4}, recorded: []uint64{1, 2, 0}, kind: stepWait},
		{name: "a new slot is recorded as no voter", st: status(10, []member{up(1, 10), up(2, 10), up(3, 10)}),
			want: []uint64{1, 2, 4}, recorded: []uint64{1, 2, 3}, kind: stepRecord, raft: []uint64{1, 2, 0}},
		{name: "a wanted id is added as a learner", st: status(10, []member{up(1, 10), up(2, 10), up(3, 10)}),
			want: []uint64{1, 2, 4}, recorded: []uint64{1, 2, 0}, kind: stepConf, change: "add-learner 4"},
		{name: "a learner behind is waited for", st: status(10, []member{up(1, 10), up(2, 10), up(3, 10), learner(4, 3)}),
			want: []uint64{1, 2, 4}, recorded: []uint64{1, 2, 0}, mark: 8, kind: stepWait},
		{name: "a learner at the previous commit is caught up", st: status(10, []member{up(1, 10), up(2, 10), up(3, 10), learner(4, 8)}),
			want: []uint64{1, 2, 4}, recorded: []uint64{1, 2, 0}, mark: 8, kind: stepConf, change: "add-voter 4, remove 3"},
		{name: "a silent learner is not caught up", st: status(10, []member{up(1, 10), up(2, 10), up(3, 10), {id: 4, learner: true, match: 10}}),
			want: []uint64{1, 2, 4}, recorded: []uint64{1, 2, 0}, kind: stepWait},
		{name: "the voter removed with a promotion is one not caught up", st: status(10, []member{up(1, 10), up(2, 10), up(3, 10), down(5, 7), learner(4, 10)}),
			want: []uint64{1, 2, 4}, recorded: []uint64{1, 2, 0}, kind: stepConf, change: "add-voter 4, remove 5"},
		{name: "promotion alone when no voter is unwanted", st: status(10, []member{up(1, 10), up(2, 10), learner(4, 10)}),
			want: []uint64{1, 2, 4}, recorded: []uint64{1, 2, 0}, kind: stepConf, change: "add-voter 4"},
		{name: "the voters are recorded", st: status(10, []member{up(1, 10), up(2, 10), up(4, 10)}),
			want: []uint64{1, 2, 4}, recorded: []uint64{1, 2, 0}, kind: stepRecord, raft: []uint64{1, 2, 4}},
		{name: "an unwanted learner is removed", st: status(10, []member{up(1, 10), up(2, 10), up(4, 10), learner(3, 10)}),
			want: []uint64{1, 2, 4}, recorded: []uint64{1, 2, 4}, kind: stepConf, change: "remove 3"},
		{name: "an unwanted leader hands over to a caught-up wanted voter", st: status(10, []member{up(1, 10), down(2, 10), up(3, 10), up(4, 10)}),
			want: []uint64{2, 3, 4}, recorded: []uint64{2, 3, 4}, kind: stepTransfer, to: 3},
		{name: "an unwanted leader with no caught-up wanted voter waits", st: status(10, []member{up(1, 10), down(2, 10), up(3, 9), down(4, 10)}),
			want: []uint64{2, 3, 4}, recorded: []uint64{2, 3, 4}, kind: stepWait},
		{name: "an unwanted voter goes once every wanted one is a voter", st: status(10, []member{up(1, 10), up(2, 10), up(3, 10), up(4, 10)}),
			want: []uint64{1, 2, 4}, recorded: []uint64{1, 2, 4}, kind: stepConf, change: "remove 3"},
		{name: "no removal below a quorum of caught-up voters", st: status(10, []member{up(1, 10), down(2, 4), up(3, 10), down(4, 4)}),
			want: []uint64{1, 2, 4}, recorded: []uint64{1, 2, 4}, kind: stepWait},
		{name: "no removal while a wanted node never registered", st: status(10, []member{up(1, 10), up(2, 10), up(3, 10)}),
			want: []uint64{1, 2, 0}, recorded: []uint64{1, 2, 0}, kind: stepNone},
		{name: "a wiped node's new id replaces its old one", st: status(10, []member{up(1, 10), up(2, 10), down(3, 6), learner(9, 10)}),
			want: []uint64{1, 2, 9}, recorded: []uint64{1, 2, 0}, kind: stepConf, change: "add-voter 9, remove 3"},
		{name: "a removal the leader made is recorded once applied", st: status(10, []member{up(1, 10), up(2, 10), up(4, 10)}),
			want: []uint64{1, 2, 4}, recorded: []uint64{1, 2, 4}, removing: []uint64{3}, kind: stepRecord, raft: []uint64{1, 2, 4}, gone: []uint64{3}},
		{name: "a removal not applied yet is not recorded", st: status(10, []member{up(1, 10), up(2, 10), up(3, 10), up(4, 10)}),
			want: []uint64{1, 2, 4}, recorded: []uint64{1, 2, 4}, removing: []uint64{3}, kind: stepConf, change: "remove 3"},
		{name: "a removed id wanted again leaves the record", st: status(10, []member{up(1, 10), up(2, 10), up(4, 10)}),
			want: []uint64{1, 3, 4}, recorded: []uint64{1, 0, 4}, removed: []uint64{3, 5}, kind: stepRecord, raft: []uint64{1, 0, 4}, gone: []uint64{5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := planStep(tc.st, 1, tc.want, tc.recorded, tc.mark, tc.removed, tc.removing)
			if got.kind != tc.kind {
				t.Fatalf("step %d (%s), want %d", got.kind, got.why, tc.kind)
			}
			switch got.kind {
			case stepRecord:
				if !slices.Equal(got.raft, tc.raft) || !slices.Equal(got.removed, tc.gone) {
					t.Fatalf("records %v removed %v, want %v removed %v", got.raft, got.removed, tc.raft, tc.gone)
				}
			case stepConf:
				if c := describeChange(got.cc); c != tc.change {
					t.Fatalf("change %q, want %q", c, tc.change)
				}
			case stepTransfer:
				if got.to != tc.to {
					t.Fatalf("transfer to %d, want %d", got.to, tc.to)
				}
			}
		})
	}
}

// TestRendezvousScore: the score computed without fmt is FNV-1a 64 of
// "<stream>/<shard>/<id>", as it was when formatted, so the placer's tie-breaks are those
// it always made.
func TestRendezvousScore(t *testing.T) {
	for _, name := range []string{"", "s", "stream-0042", "a-much-longer-stream-name_with.dots"} {
		for _, shard := range []stream.ShardID{0, 1, 9, 10, 99, 12345, 1<<32 - 1} {
			base := rendezvousBase(name, shard)
			for _, id := range []uint64{0, 1, 7, 10, 101, 1 << 40, 1<<64 - 1} {
				h := fnv.New64a()
				fmt.Fprintf(h, "%s/%d/%d", name, shard, id)
				if got, want := rendezvousScore(base, id), h.Sum64(); got != want {
					t.Fatalf("score of %q/%d/%d: %#x, want %#x", name, shard, id, got, want)
				}
			}
		}
	}
}

// planByScans is the controller's plan as it was first written, every choice a scan of all
// the records: each replica move tried scans them for one holding hi, each leadership chain
// searched scans them for each node. TestPlanMatchesScans holds plan to the same decisions.
func (v *view) planByScans(max int, moveForBalance bool) []change {
	pl := v.placer()
	zoneRule := pl.zones() >= v.replicas
	ps := newPlanState(v.records, max)
	desired, leader := ps.desired, ps.leader
	for i := range desired {
		desired[i] = slices.Clone(desired[i])
	}
	v.repairAll(pl, ps, zoneRule)
	if moveForBalance {
		balance(pl.nodes, pl.load, func(hi, lo uint64) bool {
			for i, d := range desired {
				if !ps.can(i) || !slices.Contains(d, hi) || slices.Contains(d, lo) || !spreadKept(pl, d, hi, lo, zoneRule) {
					continue
				}
				d[slices.Index(d, hi)] = lo
				slices.Sort(d)
				ps.mark(i)
				return true
			}
			return false
		})
	}
	v.replaceLeaders(pl, ps)
	balance(pl.nodes, pl.leads, func(hi, lo uint64) bool {
		prev := map[uint64]leaderVia{hi: {}}
		queue := []uint64{hi}
		var path []leaderStep
	search:
		for len(queue) > 0 {
			a := queue[0]
			queue = queue[1:]
			for i, d := range desired {
				if leader[i] != a || !ps.can(i) {
					continue
				}
				for _, b := range d {
					if _, seen := prev[b]; seen || !v.eligible(b) {
						continue
					}
					prev[b] = leaderVia{from: a, step: leaderStep{record: i, to: b}}
					if b == lo {
						for n := lo; n != hi; n = prev[n].from {
							path = append(path, prev[n].step)
						}
						slices.Reverse(path)
						break search
					}
					queue = append(queue, b)
				}
			}
		}
		if !ps.fits(path) {
			return false
		}
		for _, st := range path {
			leader[st.record] = st.to
			ps.mark(st.record)
		}
		return true
	})
	var out []change
	for _, i := range ps.list {
		r := v.records[i]
		if !slices.Equal(desired[i], r.p.Replicas) || leader[i] != r.p.Leader {
			out = append(out, change{key: r.key, next: ShardPlacement{Replicas: desired[i], Leader: leader[i]}})
		}
	}
	return out
}

// TestPlanMatchesScans: on seeded random clusters (1 to 12 nodes in 1 to 4 zones, some
// down, draining or dead, 1 to 3 replicas, records placed at random, some with a missing,
// foreign or duplicated replica, no leader or a wrong one), plan, with its indexes, makes
// exactly the changes planByScans makes, for bounds from 1 to every record, with and
// without balancing moves; and it leaves the view's records as it found them.
func TestPlanMatchesScans(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	for round := range 300 {
		v := randomView(rng)
		before := slices.Clone(v.records)
		for i := range before {
			before[i].p.Replicas = slices.Clone(before[i].p.Replicas)
		}
		for _, max := range []int{1, 2, 8, len(v.records) + 1} {
			for _, move := range []bool{false, true} {
				got := v.plan(max, move)
				want := v.planByScans(max, move)
				if len(got) != len(want) {
					t.Fatalf("round %d, max %d, moves %v: %d changes, want %d:\n%v\n%v", round, max, move, len(got), len(want), got, want)
				}
				for i := range got {
					if got[i].key != want[i].key || !slices.Equal(got[i].next.Replicas, want[i].next.Replicas) || got[i].next.Leader != want[i].next.Leader {
						t.Fatalf("round %d, max %d, moves %v: change %d is %v %+v, want %v %+v", round, max, move, i, got[i].key, got[i].next, want[i].key, want[i].next)
					}
				}
				for i, r := range v.records {
					if !slices.Equal(r.p.Replicas, before[i].p.Replicas) {
						t.Fatalf("round %d: plan changed the view's record %v to %v", round, before[i], r)
					}
				}
			}
		}
	}
}

// randomView is a random cluster for TestPlanMatchesScans.
func randomView(rng *rand.Rand) *view {
	nodes := 1 + rng.IntN(12)
	zones := 1 + rng.IntN(4)
	v := &view{up: map[uint64]Node{}, roster: map[uint64]RosterEntry{}, replicas: 1 + rng.IntN(3)}
	for id := uint64(1); id <= uint64(nodes); id++ {
		zone := "z" + strconv.Itoa(rng.IntN(zones))
		state := StateActive
		switch rng.IntN(8) {
		case 0:
			state = StateDraining
		case 1:
			state = StateDead
		}
		if state != StateDead && rng.IntN(6) != 0 {
			v.up[id] = Node{ID: id, Zone: zone}
		}
		v.roster[id] = RosterEntry{ID: id, Zone: zone, State: state}
	}
	shards := 1 + rng.IntN(60)
	for sh := range shards {
		var p ShardPlacement
		n := rng.IntN(v.replicas + 2)
		for range n {
			id := uint64(1 + rng.IntN(nodes+1)) // node nodes+1 never joined
			if rng.IntN(4) != 0 && slices.Contains(p.Replicas, id) {
				continue
			}
			p.Replicas = append(p.Replicas, id)
		}
		if rng.IntN(5) != 0 {
			slices.Sort(p.Replicas)
		}
		switch {
		case len(p.Replicas) > 0 && rng.IntN(4) != 0:
			p.Leader = p.Replicas[rng.IntN(len(p.Replicas))]
		case rng.IntN(2) == 0:
			p.Leader = uint64(1 + rng.IntN(nodes))
		}
		v.records = append(v.records, record{ShardKey{"s" + strconv.Itoa(sh%3), stream.ShardID(sh)}, p})
	}
	slices.SortFunc(v.records, func(a, b record) int {
		if a.key.Stream != b.key.Stream {
			return strings.Compare(a.key.Stream, b.key.Stream)
		}
		return cmp.Compare(a.key.Shard, b.key.Shard)
	})
	return v
}
