package multiraft

import (
	"sync"
	"sync/atomic"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Group commit. One loop iteration handles the Readies of every group it touched in three
// passes, so that a node with many busy groups pays one round of fdatasyncs per iteration
// instead of one fdatasync after another:
//
//  1. persistReady, per group: the state machine writes the Ready (AsyncPersister.PersistAsync:
//     HardState and snapshot durable, entries written) or persists it whole (Persist). The
//     leader's MsgApps of the Ready are queued at once; flush hands them to the senders
//     before the second pass.
//  2. makeDurable: the waits of all groups run concurrently (one fdatasync per touched file;
//     at most maxSyncers at a time).
//  3. handleReady, per group: the remaining messages are queued, committed entries applied
//     (unless pass 1 applied them, below), the RawNode advanced.
//
// Committed entries that were durable here before the Ready (none of them among its
// Entries, no snapshot, no configuration change) are applied in pass 1, before the wait
// (applyEarly): their Apply acknowledges the proposals they hold without waiting for the
// fdatasync of entries proposed since, which on a busy leader is in every Ready that
// commits anything. Committed means durable on a majority, so the acknowledgement does not
// depend on this node's wait; what Apply makes readable is what is durable here (the state
// machine's rule), and these entries are. Raft needs nothing in between (RawNode.Advance
// reads nothing from the Ready; committed entries may be applied while later entries are
// being persisted).
//
// Why the MsgApps may leave before the leader's own entries are durable (Raft thesis,
// 10.2.1): the leader counts itself in the quorum of an entry only when raft steps its own
// MsgAppResp, which a RawNode without AsyncStorageWrites does in Advance, after the third
// pass; a follower acknowledges what it made durable itself. The term the MsgApps carry is in
// the HardState, durable when pass 1 returns. Every other message (votes, MsgAppResp,
// heartbeats, snapshots) waits for pass 2: it may acknowledge what the Ready persists.
//
// If a group's wait fails, the group stops (its sticky error) and nothing of its Ready but
// the MsgApps already queued is sent; followers may still commit those entries, which the
// failed leader never acknowledged to a client.

// maxSyncers bounds the goroutines making one iteration's Readies durable.
const maxSyncers = 32

// pendingReady is one group's Ready between the passes; owned by the loop.
type pendingReady struct {
	g    *group
	rd   raft.Ready
	has  bool         // rd was taken from the RawNode
	wait func() error // AsyncPersister's second step, nil when done
	err  error        // wait's result
}

// persistReady is pass 1 for r.g: it persists (or writes) r.rd and queues its MsgApps.
func (h *Host) persistReady(r *pendingReady) {
	g := r.g
	var err error
	if ap, ok := g.sm.(AsyncPersister); ok {
		r.wait, err = ap.PersistAsync(&r.rd)
	} else {
		err = g.sm.Persist(&r.rd)
	}
	if err != nil {
		r.wait = nil
		h.fail(g, "persist", err)
		return
	}
	rest := r.rd.Messages[:0]
	for _, m := range r.rd.Messages {
		if m.GetType() != raftpb.MsgApp {
			rest = append(rest, m)
			continue
		}
		h.wakeGroup(g)
		h.tr.queue(g, m)
	}
	clear(r.rd.Messages[len(rest):])
	r.rd.Messages = rest
}

// applyEarly applies r's committed entries in pass 1 when each of them was durable here
// before r (see above); handleReady then has none to apply. A group whose Apply fails stops,
// as in pass 3: none of r's messages but the MsgApps already queued are sent.
func (h *Host) applyEarly(r *pendingReady) {
	rd := &r.rd
	ce := rd.CommittedEntries
	if len(ce) == 0 || r.g.err != nil || !raft.IsEmptySnap(rd.Snapshot) {
		return
	}
	if len(rd.Entries) > 0 && rd.Entries[0].GetIndex() <= ce[len(ce)-1].GetIndex() {
		return
	}
	for _, e := range ce {
		if e.GetType() != raftpb.EntryNormal {
			return
		}
	}
	rd.CommittedEntries = nil
	h.apply(r.g, ce)
}

// makeDurable is pass 2: it hands the queued MsgApps to the senders, runs the waits of
// batch concurrently and fails the groups whose wait failed.
func (h *Host) makeDurable(batch []pendingReady) {
	h.tr.flush(false)
	var waits []int
	for i := range batch {
		if batch[i].wait != nil {
			waits = append(waits, i)
		}
	}
	switch len(waits) {
	case 0:
		return
	case 1:
		r := &batch[waits[0]]
		r.err = r.wait()
	default:
		var next atomic.Int64
		var wg sync.WaitGroup
		work := func() {
			defer wg.Done()
			for {
				k := int(next.Add(1)) - 1
				if k >= len(waits) {
					return
				}
				r := &batch[waits[k]]
				r.err = r.wait()
			}
		}
		n := min(len(waits), maxSyncers)
		wg.Add(n)
		for range n - 1 {
			go work()
		}
		work()
		wg.Wait()
	}
	for _, i := range waits {
		r := &batch[i]
		r.wait = nil
		if r.err != nil {
			h.fail(r.g, "persist", r.err)
		}
	}
}
