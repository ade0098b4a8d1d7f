package cluster

import (
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// A move is how a group's leader converges the group's members to its placement's replicas
// (docs/CLUSTER.md, "Moving replicas"): a Raft id the placement wants that is not a member
// is added as a learner; a learner caught up is promoted to voter, in the same joint change
// that removes a voter no longer wanted when there is one; a leader that is not wanted hands
// its leadership to a caught-up voter that is; a voter no longer wanted goes once every wanted
// id is a voter. One change is made at a time and none leaves fewer caught-up voters than a
// quorum of the new configuration. After each applied change the leader records the voters
// in the placement (`raft`, aligned to `replicas`, 0 where the slot's node is not a voter).

// stepKind is what planStep decided.
type stepKind int

const (
	stepNone     stepKind = iota // nothing to do, or nothing possible yet
	stepWait                     // a change is under way (a learner catching up, a joint configuration)
	stepRecord                   // write the voters into the placement record
	stepConf                     // propose the configuration change cc
	stepTransfer                 // transfer the leadership to the voter to
)

// maxRemoved bounds a placement's `removed` (placement.go).
const maxRemoved = 8

// step is one decision of planStep.
type step struct {
	kind    stepKind
	raft    []uint64             // stepRecord: the placement's new `raft`
	removed []uint64             // stepRecord: the placement's new `removed`
	cc      *raftpb.ConfChangeV2 // stepConf
	to      uint64               // stepTransfer
	why     string               // for the log
}

// planStep decides the leader's next step in a group. st is the group's status on its leader
// (self); want is the Raft id each slot of the placement's replicas wants (0: unknown, the
// slot's node never registered); recorded is the placement's `raft`; mark is a commit index
// a learner must have reached to count as caught up (the commit index at the leader's
// previous check: a learner under load trails the newest commit by the entries in flight);
// removed is the placement's `removed`, removing the ids this leader proposed to remove.
func planStep(st raft.Status, self uint64, want, recorded []uint64, mark uint64, removed, removing []uint64) step {
	voters := st.Config.Voters[0]
	if len(st.Config.Voters[1]) > 0 {
		return step{kind: stepWait, why: "a joint configuration is being left"}
	}
	isVoter := func(id uint64) bool { _, ok := voters[id]; return ok }
	isLearner := func(id uint64) bool { _, ok := st.Config.Learners[id]; return ok }
	wanted := func(id uint64) bool { return id != 0 && slices.Contains(want, id) }
	// A voter is caught up when it has every committed entry and the leader heard from it
	// recently; a learner when it reached mark (or the commit index).
	caughtVoter := func(id uint64) bool {
		pr, ok := st.Progress[id]
		return id == self || ok && pr.Match >= st.GetCommit() && pr.RecentActive
	}
	caughtLearner := func(id uint64) bool {
		pr, ok := st.Progress[id]
		return ok && pr.RecentActive && (pr.Match >= st.GetCommit() || mark > 0 && pr.Match >= mark)
	}

	// The record first: it says which slots' nodes are voters.
	rec := make([]uint64, len(want))
	for i, id := range want {
		if isVoter(id) {
			rec[i] = id
		}
	}
	var gone []uint64
	for _, id := range slices.Concat(removed, removing) {
		if id != 0 && !isVoter(id) && !isLearner(id) && !wanted(id) && !slices.Contains(gone, id) {
			gone = append(gone, id)
		}
	}
	gone = gone[max(0, len(gone)-maxRemoved):]
	if !slices.Equal(rec, recorded) || !slices.Equal(gone, removed) {
		return step{kind: stepRecord, raft: rec, removed: gone, why: "the members changed"}
	}

	// A learner no longer wanted is removed.
	for _, id := range sortedIDs(st.Config.Learners) {
		if !wanted(id) {
			return step{kind: stepConf, cc: confChange(remove(id)), why: fmt.Sprintf("learner %x is no longer wanted", id)}
		}
	}
	// A wanted id that is not a member is added as a learner.
	for _, id := range want {
		if id != 0 && !isVoter(id) && !isLearner(id) {
			return step{kind: stepConf, cc: confChange(addLearner(id)), why: fmt.Sprintf("%x is wanted", id)}
		}
	}
	// The voters no longer wanted; the first to go is the least useful: one not caught up.
	var unwanted []uint64
	for _, id := range sortedIDs(voters) {
		if !wanted(id) && id != self {
			unwanted = append(unwanted, id)
		}
	}
	slices.SortStableFunc(unwanted, func(a, b uint64) int {
		ca, cb := caughtVoter(a), caughtVoter(b)
		switch {
		case ca == cb:
			return 0
		case cb:
			return -1
		}
		return 1
	})
	// quorumKept reports whether the caught-up voters of voters, with add and without drop,
	// are a majority of that configuration (add is caught up).
	quorumKept := func(add, drop uint64) bool {
		n, caught := 0, 0
		for id := range voters {
			if id == drop {
				continue
			}
			n++
			if caughtVoter(id) {
				caught++
			}
		}
		if add != 0 {
			n, caught = n+1, caught+1
		}
		return n > 0 && caught >= quorumOf(n)
	}
	// A wanted learner caught up is promoted, with a voter no longer wanted removed in the
	// same (joint) change.
	waiting := false
	for _, id := range want {
		if id == 0 || !isLearner(id) {
			continue
		}
		if !caughtLearner(id) {
			waiting = true
			continue
		}
		for _, v := range unwanted {
			if quorumKept(id, v) {
				return step{kind: stepConf, cc: confChange(addVoter(id), remove(v)), why: fmt.Sprintf("learner %x caught up; voter %x is no longer wanted", id, v)}
			}
		}
		return step{kind: stepConf, cc: confChange(addVoter(id)), why: fmt.Sprintf("learner %x caught up", id)}
	}
	if waiting {
		return step{kind: stepWait, why: "a learner is catching up"}
	}
	// Every wanted member is a voter from here on, or unknown (a node never registered).
	if !wanted(self) {
		for _, id := range want {
			if id != 0 && id != self && isVoter(id) && caughtVoter(id) {
				return step{kind: stepTransfer, to: id, why: "the leader's node is no longer wanted"}
			}
		}
		return step{kind: stepWait, why: "the leader's node is no longer wanted; no wanted voter is caught up"}
	}
	if slices.Contains(want, 0) {
		return step{kind: stepNone} // a wanted node never registered: keep the voters there are
	}
	for _, v := range unwanted {
		if quorumKept(0, v) {
			return step{kind: stepConf, cc: confChange(remove(v)), why: fmt.Sprintf("voter %x is no longer wanted", v)}
		}
	}
	if len(unwanted) > 0 {
		return step{kind: stepWait, why: "a voter is no longer wanted; removing it now would leave too few caught-up voters"}
	}
	return step{kind: stepNone}
}

func sortedIDs(set map[uint64]struct{}) []uint64 {
	out := make([]uint64, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func confChange(changes ...*raftpb.ConfChangeSingle) *raftpb.ConfChangeV2 {
	return &raftpb.ConfChangeV2{Changes: changes} // two changes: joint, left automatically
}

func addLearner(id uint64) *raftpb.ConfChangeSingle {
	return &raftpb.ConfChangeSingle{Type: raftpb.ConfChangeAddLearnerNode.Enum(), NodeId: &id}
}

func addVoter(id uint64) *raftpb.ConfChangeSingle {
	return &raftpb.ConfChangeSingle{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: &id}
}

func remove(id uint64) *raftpb.ConfChangeSingle {
	return &raftpb.ConfChangeSingle{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: &id}
}

// describeChange is cc for the log: "add-learner 3f2a, remove 9b1c".
func describeChange(cc *raftpb.ConfChangeV2) string {
	out := ""
	for i, c := range cc.Changes {
		if i > 0 {
			out += ", "
		}
		switch c.GetType() {
		case raftpb.ConfChangeAddLearnerNode:
			out += "add-learner "
		case raftpb.ConfChangeAddNode:
			out += "add-voter "
		case raftpb.ConfChangeRemoveNode:
			out += "remove "
		default:
			out += c.GetType().String() + " "
		}
		out += fmt.Sprintf("%x", c.GetNodeId())
	}
	return out
}
