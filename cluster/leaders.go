package cluster

import "github.com/sluice-streams/sluice/stream"

// Leaders is the server's LeaderLocator: the API address of the node leading each shard of
// streamName that this node holds a replica of, as its Raft host knows the leader. A shard
// in an election (no leader known), or led by a node whose membership key is gone (its
// lease expired: it is down), is absent; the client sends its records to the node it
// already talks to, which forwards them.
//
// The stream's shard logs are collected under r.mu; their leaders are asked outside it,
// since each answer is a turn of the Host's loop.
func (r *Replication) Leaders(streamName string) map[stream.ShardID]string {
	r.mu.Lock()
	var logs []*shardLog
	for _, s := range r.groups {
		if s.stream == streamName && s.cur.Load().rep != nil { // a remote log is in r.remotes
			logs = append(logs, s)
		}
	}
	var remotes []*remoteLog
	for _, l := range r.remotes {
		if l.stream == streamName {
			remotes = append(remotes, l)
		}
	}
	r.mu.Unlock()
	lead := make(map[stream.ShardID]uint64, len(logs)+len(remotes))
	for _, l := range remotes {
		l.mu.Lock()
		if l.leader != 0 {
			lead[l.shard] = l.leader
		}
		l.mu.Unlock()
	}
	for _, s := range logs {
		if id, _ := s.Leader(); id != 0 {
			lead[s.shard] = id
		}
	}
	out := make(map[stream.ShardID]string, len(lead))
	r.mu.Lock()
	defer r.mu.Unlock()
	for shard, id := range lead {
		if n, ok := r.byRaft[id]; ok && n.Addr != "" {
			out[shard] = n.Addr
		}
	}
	return out
}
