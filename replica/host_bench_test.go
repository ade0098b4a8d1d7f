//go:build unix

package replica_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/segment"
)

// BenchmarkAppendThroughHost measures the replicated put path in one process: three
// multiraft Hosts over loopback HTTP, one group, replicas with durability sync, writers
// calling replica.Log.Append on the leader. One op is one record (acknowledged: committed on
// a majority and durable there), so ns/op is wall time per record over all writers, allocs/op
// and B/op are per record over the three nodes, and cpu-µs/rec is the process's CPU time
// (getrusage: the three nodes' loops, transports and fdatasyncs together) per record.
// iterations/rec and posts/rec count the three Hosts' loop iterations and POSTs per record.
// "writers=1/batch=1" is one record at a time: its ns/op is the latency of one put.
//
//	go test -run '^$' -bench BenchmarkAppendThroughHost -benchtime 20000x ./replica
func BenchmarkAppendThroughHost(b *testing.B) {
	for _, bc := range []struct{ writers, batch, size int }{
		{6, 100, 100}, {6, 100, 1024}, {1, 1, 100},
	} {
		b.Run(fmt.Sprintf("writers=%d/batch=%d/size=%d", bc.writers, bc.batch, bc.size), func(b *testing.B) {
			nodes := startHostNodes(b, 3, segment.Options{Durability: segment.Durability{Mode: segment.Sync}}, 50*time.Millisecond)
			leader := waitLeader(b, nodes)
			data := make([]byte, bc.size)
			appendN := func(n int) error {
				batch := make([]segment.Record, n)
				for i := range batch {
					batch[i] = segment.Record{Key: []byte("partition-key"), Data: data}
				}
				return leader.log.Append(batch)
			}
			if err := appendN(bc.batch); err != nil { // the first commit of the term is behind us
				b.Fatal(err)
			}
			b.SetBytes(int64(bc.size))
			b.ReportAllocs()
			var left atomic.Int64
			left.Store(int64(b.N))
			var failed atomic.Pointer[error]
			var wg sync.WaitGroup
			stats := func() (iters, posts uint64) {
				for _, n := range nodes {
					st := n.host.Stats()
					iters += st.Iterations
					posts += st.Posts
				}
				return
			}
			b.ResetTimer()
			i0, p0 := stats()
			cpu0 := processCPU(b)
			for range bc.writers {
				wg.Go(func() {
					for {
						n := min(int64(bc.batch), left.Add(-int64(bc.batch))+int64(bc.batch))
						if n <= 0 {
							return
						}
						if err := appendN(int(n)); err != nil {
							failed.CompareAndSwap(nil, &err)
							return
						}
					}
				})
			}
			wg.Wait()
			cpu := processCPU(b) - cpu0
			i1, p1 := stats()
			b.StopTimer()
			if err := failed.Load(); err != nil {
				b.Fatal(*err)
			}
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/rec")
			b.ReportMetric(float64(i1-i0)/float64(b.N), "iterations/rec")
			b.ReportMetric(float64(p1-p0)/float64(b.N), "posts/rec")
		})
	}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
