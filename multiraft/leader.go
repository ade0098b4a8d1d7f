package multiraft

import (
	"sync"
	"sync/atomic"
)

// leaderTable publishes the leader of every group this Host drives, so that Leader answers
// without a round trip through the loop (the engine asks before every append: see
// BenchmarkLeader). The loop stores a group's value when raft reports a new leader
// (SoftState in handleReady), at AddGroup, and 0 when the group fails.
//
// A value read here may be a change behind the loop; callers that act on leadership check
// it again in the loop (ProposeLeader does), so a stale value costs a refusal, never a
// wrong write.
type leaderTable struct {
	// mu guards m: written by the loop (AddGroup, RemoveGroup) and Close, read by Leader.
	// The values are written by the loop only and read by Leader; atomics.
	mu sync.RWMutex
	m  map[GroupID]*atomic.Uint64
}

// add publishes group id with leader lead and returns its value for the loop to update.
func (t *leaderTable) add(id GroupID, lead uint64) *atomic.Uint64 {
	v := new(atomic.Uint64)
	v.Store(lead)
	t.mu.Lock()
	if t.m == nil {
		t.m = make(map[GroupID]*atomic.Uint64)
	}
	t.m[id] = v
	t.mu.Unlock()
	return v
}

// remove stops publishing group id.
func (t *leaderTable) remove(id GroupID) {
	t.mu.Lock()
	delete(t.m, id)
	t.mu.Unlock()
}

// reset stops publishing every group.
func (t *leaderTable) reset() {
	t.mu.Lock()
	clear(t.m)
	t.mu.Unlock()
}

// get is the published leader of group id, 0 if none is or the group is not published.
func (t *leaderTable) get(id GroupID) uint64 {
	t.mu.RLock()
	v := t.m[id]
	t.mu.RUnlock()
	if v == nil {
		return 0
	}
	return v.Load()
}
