package multiraft

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// TestTransferLeader: a quiesced group's leader hands its leadership to the voter it names,
// which every node then agrees on; a follower asked to transfer is refused with the leader
// it knows, and the new leader lists the old one among its caught-up voters.
func TestTransferLeader(t *testing.T) {
	c, ids := ledByNode1(t, 2)
	waitFor(t, "every group to quiesce everywhere", func() bool { return allQuiesced(t, ids, c.nodes...) })
	id := ids[0]

	var nl *NotLeaderError
	if err := c.node(2).host.TransferLeader(id, 3); !errors.As(err, &nl) || nl.Leader != 1 {
		t.Fatalf("TransferLeader on a follower: %v, want a NotLeaderError naming node 1", err)
	}
	if _, err := c.node(3).host.CaughtUpVoters(id); !errors.As(err, &nl) {
		t.Fatalf("CaughtUpVoters on a follower: %v, want a NotLeaderError", err)
	}
	voters, err := c.node(1).host.CaughtUpVoters(id)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Sort(voters); !slices.Equal(voters, []uint64{2, 3}) {
		t.Fatalf("caught-up voters of a quiesced group: %v, want [2 3]", voters)
	}
	if _, err := c.node(3).host.ActiveVoters(id); !errors.As(err, &nl) {
		t.Fatalf("ActiveVoters on a follower: %v, want a NotLeaderError", err)
	}
	waitFor(t, "the leader to have heard from both followers", func() bool {
		active, err := c.node(1).host.ActiveVoters(id)
		slices.Sort(active)
		return err == nil && slices.Equal(active, []uint64{2, 3})
	})

	if err := c.node(1).host.TransferLeader(id, 3); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node 3 to lead the group", func() bool { return c.agreedLeader(id, c.nodes...) == 3 })
	if l := c.agreedLeader(ids[1], c.nodes...); l != 1 {
		t.Fatalf("the other group's leader is %d, want 1 still", l)
	}
	c.proposeOnLeader(id, []byte("after"))
	waitFor(t, "the entry to apply everywhere", func() bool { return hasApplied(id, [][]byte{[]byte("after")}, c.nodes...) })
	waitFor(t, "node 1 to be a caught-up voter of node 3", func() bool {
		v, err := c.node(3).host.CaughtUpVoters(id)
		return err == nil && slices.Contains(v, 1)
	})
}

// TestRemovedLeaderStepsDown: a configuration change that removes the group's leader
// makes it step down once applied, and the two voters left elect one of them, which takes
// proposals. (Left leading, a leader that is no member drops every proposal and, hearing
// from its followers, never loses the leadership.) Run with the group kept ticking (the
// cluster hands a leadership away before it removes the leader's member, and a leader
// removed by a change that raced with a transfer to it is removed while writes flow) and
// with the group quiesced everywhere before the change, its leader's node then no longer
// driving it (as a node does once it finds its replica removed).
func TestRemovedLeaderStepsDown(t *testing.T) {
	for _, quiesced := range []bool{false, true} {
		t.Run(fmt.Sprintf("quiesced=%v", quiesced), func(t *testing.T) {
			c := newTestCluster(t, 3, func(cfg *Config) { cfg.DisableQuiesce = !quiesced })
			t.Cleanup(c.tickEvery(10 * time.Millisecond))
			ids := c.addGroups(1, func(GroupID) uint64 { return 1 })
			c.leadAll(ids, 1)
			id := ids[0]
			if quiesced {
				waitFor(t, "the group to quiesce everywhere", func() bool { return allQuiesced(t, ids, c.nodes...) })
			}
			cc := &raftpb.ConfChange{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: new(uint64(1))}
			if err := c.node(1).host.ProposeConfChange(context.Background(), id, cc); err != nil {
				t.Fatal(err)
			}
			if quiesced {
				waitFor(t, "node 1 to apply its removal", func() bool {
					st, err := c.node(1).host.Status(id)
					return err == nil && !hasVoter(st.Config.Voters[0], 1) && len(st.Config.Voters[1]) == 0
				})
				if err := c.node(1).host.RemoveGroup(id); err != nil {
					t.Fatal(err)
				}
			}
			electedAmongTheRest(t, c, id)
		})
	}
}

// TestRemovedGroupHandsOff: the leader's node stops driving a group quiesced everywhere
// (RemoveGroup), while it lives on, pings its peers and is never reported down: its
// followers, which nothing else would wake, elect one of them, which takes proposals. The
// other group it leads stays led by it and quiesced.
func TestRemovedGroupHandsOff(t *testing.T) {
	c, ids := ledByNode1(t, 2)
	waitFor(t, "every group to quiesce everywhere", func() bool { return allQuiesced(t, ids, c.nodes...) })
	if err := c.node(1).host.RemoveGroup(ids[0]); err != nil {
		t.Fatal(err)
	}
	electedAmongTheRest(t, c, ids[0])
	if l := c.agreedLeader(ids[1], c.nodes...); l != 1 {
		t.Fatalf("the other group's leader is %d, want 1 still", l)
	}
	waitFor(t, "the other group to be quiesced everywhere", func() bool { return allQuiesced(t, ids[1:], c.nodes...) })
	if s := c.node(2).host.Stats(); s.PeersSilent != 0 {
		t.Fatalf("node 2 found a peer silent %d times: the test shows nothing", s.PeersSilent)
	}
}

// electedAmongTheRest waits until nodes 2 and 3 agree that one of them leads group id, and
// that it takes a proposal both apply.
func electedAmongTheRest(t *testing.T, c *testCluster, id GroupID) {
	t.Helper()
	rest := c.nodes[1:]
	waitFor(t, "nodes 2 and 3 to agree on a leader among them", func() bool {
		l := c.agreedLeader(id, rest...)
		return l == 2 || l == 3
	})
	lead := c.agreedLeader(id, rest...)
	waitFor(t, "the new leader to take a proposal", func() bool {
		return c.node(lead).host.Propose(context.Background(), id, [][]byte{[]byte("after")}) == nil
	})
	waitFor(t, "both voters to apply it", func() bool {
		for _, nd := range rest {
			got := nd.sms[id].appliedData()
			if len(got) == 0 || string(got[len(got)-1]) != "after" {
				return false
			}
		}
		return true
	})
}

// hasVoter reports whether id is in a configuration's voters.
func hasVoter(voters map[uint64]struct{}, id uint64) bool {
	_, ok := voters[id]
	return ok
}
