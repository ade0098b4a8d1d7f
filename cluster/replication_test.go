package cluster

import (
	"slices"
	"testing"

	"github.com/sluice-streams/sluice/multiraft"
)

// TestReconcileDue: a reconcile steps every group when it is full, and otherwise only the
// groups never stepped, those whose record changed, whose leadership changed or that were
// busy; none when nothing happened.
func TestReconcileDue(t *testing.T) {
	var all []*shardLog
	for i, key := range []ShardKey{{"a", 0}, {"a", 1}, {"b", 0}, {"b", 1}, {"c", 7}} {
		all = append(all, &shardLog{stream: key.Stream, shard: key.Shard, gid: multiraft.GroupID(i + 1), stepped: true})
	}
	ids := func(due []*shardLog) []multiraft.GroupID {
		var out []multiraft.GroupID
		for _, s := range due {
			out = append(out, s.gid)
		}
		return out
	}
	type set = map[multiraft.GroupID]bool
	for _, tc := range []struct {
		name          string
		full          bool
		changed       []ShardKey
		flipped, busy set
		unstepped     multiraft.GroupID
		want          []multiraft.GroupID
	}{
		{name: "nothing"},
		{name: "full", full: true, want: []multiraft.GroupID{1, 2, 3, 4, 5}},
		{name: "a record changed", changed: []ShardKey{{"b", 0}}, want: []multiraft.GroupID{3}},
		{name: "a record of a shard the node has not opened", changed: []ShardKey{{"z", 0}}},
		{name: "records changed, a leadership, a busy group", changed: []ShardKey{{"a", 1}, {"c", 7}},
			flipped: set{4: true}, busy: set{2: true, 1: true}, want: []multiraft.GroupID{1, 2, 4, 5}},
		{name: "a group never stepped", unstepped: 3, want: []multiraft.GroupID{3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, s := range all {
				s.stepped = s.gid != tc.unstepped
			}
			changed := map[ShardKey]struct{}{}
			for _, k := range tc.changed {
				changed[k] = struct{}{}
			}
			if got := ids(reconcileDue(all, tc.full, changed, tc.flipped, tc.busy)); !slices.Equal(got, tc.want) {
				t.Fatalf("due %v, want %v", got, tc.want)
			}
		})
	}
}
