package cluster

import (
	"slices"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/quorum"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
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
