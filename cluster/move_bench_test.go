package cluster_test

import (
	"flag"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/multiraft"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/stream"
)

var restoreBytes = flag.Int64("restore-bytes", 32<<20, "BenchmarkRestoreReplica: bytes of record data in the shard whose replica moves")

// BenchmarkRestoreReplica measures the time to restore a shard's replication factor: from
// the change of the placement that moves a replica to a node without one (node 3 → node 4,
// then back) until that node is a caught-up voter and the placement records it
// (awaitMove's first wait). The shard holds -restore-bytes of records written beforehand
// (128 KiB each) on nodes with the serve defaults (sync durability, 64 MiB segments);
// the new replica catches up from the leader's log. One op is one move: its bytes are the
// shard's records.
func BenchmarkRestoreReplica(b *testing.B) {
	const name = "restore"
	defer func(p time.Duration) { patience = p }(patience)
	patience = 20 * time.Minute // a move of 1 GiB on a loaded machine
	opts := stream.Options{Limits: stream.Limits{Off: true, Factor: 1}, Durability: segment.Durability{Mode: segment.Sync}, SegmentSize: 64 << 20}
	srv, nodes, gen := moveCluster(b, name, opts)
	const size = 128 << 10
	count := int(*restoreBytes / size)
	start := time.Now()
	put(b, nodes, name, "fill", count, size)
	b.Logf("%d records of %d bytes written in %v", count, size, time.Since(start).Round(time.Millisecond))
	b.SetBytes(int64(count) * size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		to := []uint64{1, 2, 4}
		if i%2 == 1 {
			to = []uint64{1, 2, 3}
		}
		at := time.Now()
		before := make([]multiraft.Stats, len(nodes))
		for j, n := range nodes {
			before[j] = n.repl.Host().Stats()
		}
		setReplicas(b, srv, "move", name, to)
		awaitVoters(b, nodes, name, gen, to)
		b.Logf("move %d to %v: a caught-up voter after %v", i, to, time.Since(at).Round(time.Millisecond))
		for j, n := range nodes {
			st := n.repl.Host().Stats()
			b.Logf("node %d: %d MB sent in %d POSTs, %d messages sent, %d dropped", n.id, (st.BytesSent-before[j].BytesSent)>>20,
				st.Posts-before[j].Posts, st.MessagesSent-before[j].MessagesSent, st.MessagesDropped-before[j].MessagesDropped)
		}
		b.StopTimer()
		awaitMove(b, nodes, name, gen, to) // the other node's files deleted before the next move
		b.StartTimer()
	}
}
