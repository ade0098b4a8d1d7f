package cluster

import (
	"context"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluice-streams/sluice/multiraft"
)

// Leadership: where each group's leadership should be, and handing it away before a stop.
//
// Preferred leaders. A placement record may name a preferred leader ("leader": a node id,
// written by the controller). At each leadership check (ReplicationConfig.LeaderCheckEvery)
// the leader of a group whose record names another node transfers the leadership to it
// when that node is registered, not leaving, and a caught-up voter of the group (its Match
// reaches the leader's commit: multiraft.Host.CaughtUpVoters). The records are those of the
// node's placement cache, which watchPlacement keeps, so a new preference is acted on
// within about a check.
//
// Graceful stop. HandOff, called on SIGTERM or SIGINT after the node marked itself leaving
// in its registration (Member.MarkLeaving), transfers the leadership of every group the
// node leads to a caught-up voter of another registered node that is not leaving, the
// groups dealt round-robin over those nodes, and waits until it leads none or its context
// ends. Meanwhile the engine's appends to those groups are refused by raft (a transfer
// under way) and put again by the server once the new leader is known, so no write fails
// for it. A kill -9 skips all this: the others elect after an election timeout.

// handOffPoll is how often HandOff looks again at the groups the node leads.
const handOffPoll = 100 * time.Millisecond

// preferLeaders transfers the leadership of each group of led (the groups this node leads)
// whose placement, as the placement cache holds it, names a preferred leader that is
// another node, registered, not leaving, and a caught-up voter of the group.
func (r *Replication) preferLeaders(led []*shardLog) {
	if len(led) == 0 {
		return
	}
	byNode := r.nodes()
	for _, s := range led {
		p, _ := r.placements.get(ShardKey{s.stream, s.shard})
		n, up := byNode[p.Leader]
		if p.Leader == 0 || p.Leader == r.cfg.NodeID || !up || n.Leaving || n.RaftID == 0 {
			continue
		}
		voters, err := r.host.CaughtUpVoters(s.gid)
		if err != nil || !slices.Contains(voters, n.RaftID) {
			continue // not leading any more, or the preferred node is not caught up yet
		}
		if err := r.host.TransferLeader(s.gid, n.RaftID); err == nil {
			r.log.Info("transferring shard leadership to its preferred leader", "stream", s.stream, "shard", s.shard.String(), "node", p.Leader, "raft_id", n.RaftID)
		}
	}
}

// watchPlacement keeps the node's placement cache (placementCache: one range read, then the
// watch's events, a range read again only after etcd compacted past the watch) and makes the
// reconcile goroutine run a pass after every change under placement/ (a preferred leader
// named, replicas changed), until ctx ends. The pass steps the groups whose records changed
// (Run). Once it ends, the cache is no longer ready for placing new shards (counts): nothing
// keeps it.
func (r *Replication) watchPlacement(ctx context.Context) {
	defer r.placements.invalidate()
	for ctx.Err() == nil {
		if from, err := r.placements.resume(ctx); err != nil {
			r.log.Warn("reading the placement of shards", "err", err)
		} else {
			r.kickReconcile()
			wctx, cancel := context.WithCancel(ctx)
			for resp := range r.c.cli.Watch(clientv3.WithRequireLeader(wctx), r.c.prefix+"placement/", clientv3.WithPrefix(), clientv3.WithRev(from)) {
				if resp.CompactRevision != 0 {
					r.placements.invalidate()
				}
				if resp.Err() != nil {
					break
				}
				if err := r.placements.apply(resp.Events); err != nil {
					r.log.Warn("a placement record that is none: its shard is left as it is", "err", err)
				}
				if len(resp.Events) > 0 {
					r.kickReconcile()
				}
			}
			cancel()
		}
		select { // the watch failed (etcd unreachable, compacted): watch again shortly
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
	}
}

// HandOff transfers the leadership of every group this node leads to caught-up voters on
// other registered nodes that are not leaving, round-robin over those nodes, and waits
// until the node leads no group or ctx ends. It returns how many groups the node still
// leads, and logs the outcome ("leadership handed off", still_leading=N). It returns at
// once when no group it leads has a voter to hand to.
func (r *Replication) HandOff(ctx context.Context) (stillLeading int) {
	start := time.Now()
	target := map[multiraft.GroupID]uint64{} // the transfer asked for each group
	next := 0                                // round-robin over the candidates
	t := time.NewTicker(handOffPoll)
	defer t.Stop()
	defer func() {
		r.log.Info("leadership handed off", "transferred", len(target), "still_leading", stillLeading, "took", time.Since(start).Round(time.Millisecond))
	}()
	for {
		led := r.ledNow()
		if len(led) == 0 {
			return 0
		}
		for _, s := range led {
			// A group with no voter to hand to now (the node that restarted before this one
			// not heard from yet) is asked again at the next poll, until ctx ends.
			voters := r.handOffVoters(s.gid)
			if len(voters) == 0 {
				continue
			}
			to, asked := target[s.gid]
			if !asked || !slices.Contains(voters, to) {
				to = voters[next%len(voters)]
				next++
			}
			// Asking again for the same transferee is harmless while raft transfers, and
			// starts the transfer again after raft abandoned one (an election timeout).
			if r.host.TransferLeader(s.gid, to) == nil {
				target[s.gid] = to
			}
		}
		select {
		case <-ctx.Done():
			return len(r.ledNow())
		case <-t.C:
		}
	}
}

// ledNow returns the groups this node leads, as its Host last published.
func (r *Replication) ledNow() []*shardLog {
	r.mu.Lock()
	defer r.mu.Unlock()
	var led []*shardLog
	for _, s := range r.groups {
		if s.cur.Load().rep == nil {
			continue // a remote log: no replica here to lead
		}
		if _, here := s.Leader(); here {
			led = append(led, s)
		}
	}
	return led
}

// handOffVoters returns, sorted, the voters of group gid (which this node leads) it heard
// from lately that are registered nodes other than this one and not leaving. Not only the
// caught-up ones: under load every follower trails the newest commit by the entries in
// flight, and raft catches the transferee up before it hands over.
func (r *Replication) handOffVoters(gid multiraft.GroupID) []uint64 {
	voters, err := r.host.ActiveVoters(gid)
	if err != nil {
		return nil
	}
	r.mu.Lock()
	voters = slices.DeleteFunc(voters, func(id uint64) bool {
		n, up := r.byRaft[id]
		return !up || n.Leaving
	})
	r.mu.Unlock()
	slices.Sort(voters)
	return voters
}

// logFollowing logs "replicas following their leaders" once, the first time, after the
// engine opened its shard logs, that every group the node drives knows its leader and has applied everything it knows to be committed
// (tools/rolling-restart waits for this line before it restarts the next node), checking
// every handOffPoll until ctx ends. A follower that lags learns the leader's commit index
// only as it catches up, so the line can come before it has every entry; no leadership
// goes to it meanwhile, since transfers pick caught-up voters only.
func (r *Replication) logFollowing(ctx context.Context) {
	start := time.Now()
	t := time.NewTicker(handOffPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		opened := r.eng != nil // the engine opened every shard log (SetEngine)
		all := make([]*shardLog, 0, len(r.groups))
		for _, s := range r.groups {
			if s.serving() { // a replica being built follows once it serves
				all = append(all, s)
			}
		}
		r.mu.Unlock()
		following := opened
		for _, s := range all {
			st, err := r.host.Status(s.gid)
			if err != nil || st.Lead == 0 || st.Applied < st.GetCommit() {
				following = false
				break
			}
		}
		if following {
			r.log.Info("replicas following their leaders", "groups", len(all), "took", time.Since(start).Round(time.Millisecond))
			return
		}
	}
}
