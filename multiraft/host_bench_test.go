//go:build unix

package multiraft

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIdleGroups measures what idle groups cost: three Hosts in this process over
// loopback HTTP, 1,000 groups of three replicas each (leadership spread over the three),
// real 100 ms ticks, nothing proposed. One op is one second of wall time; cpu-ms/s is the
// process's CPU time (getrusage) per second over all three nodes, posts/s the POSTs and
// the MB/s column the bytes of Raft traffic between them. "quiesced" waits until every
// group is quiesced everywhere before measuring; "ticking" has quiescence disabled;
// "quiesced/groups=0" is three connected Hosts with no group: their tickers and the
// liveness pings (liveness.go), the floor under "quiesced".
//
//	go test -run '^$' -bench BenchmarkIdleGroups -benchtime 5x ./multiraft
func BenchmarkIdleGroups(b *testing.B) {
	for _, bc := range []struct {
		quiesce bool
		groups  int
	}{{true, 1000}, {false, 1000}, {true, 0}} {
		quiesce, groups := bc.quiesce, bc.groups
		name := "quiesced"
		if !quiesce {
			name = "ticking"
		}
		b.Run(fmt.Sprintf("%s/groups=%d", name, groups), func(b *testing.B) {
			c := newTestCluster(b, 3, func(cfg *Config) {
				cfg.Ticks = nil // the Host's own ticker, TickInterval 100 ms
				cfg.DisableQuiesce = !quiesce
			})
			ids := c.addGroups(groups, leaderByMod)
			for _, id := range ids {
				waitFor(b, "election", func() bool { return c.agreedLeader(id, c.nodes...) != 0 })
			}
			if quiesce {
				waitFor(b, "every group to quiesce", func() bool { return allQuiesced(b, ids, c.nodes...) })
			}
			total := func() (posts, bytes, msgs uint64) {
				for _, nd := range c.nodes {
					s := nd.host.Stats()
					posts += s.Posts
					bytes += s.BytesSent
					msgs += s.MessagesSent
				}
				return
			}
			b.ReportAllocs()
			b.ResetTimer()
			p0, by0, m0 := total()
			start, cpu0 := time.Now(), cpuTime(b)
			for range b.N {
				time.Sleep(time.Second)
			}
			wall, cpu := time.Since(start), cpuTime(b)-cpu0
			b.StopTimer()
			p1, by1, m1 := total()
			secs := wall.Seconds()
			b.SetBytes(int64(float64(by1-by0) / float64(b.N)))
			b.ReportMetric(float64(cpu.Milliseconds())/secs, "cpu-ms/s")
			b.ReportMetric(float64(p1-p0)/secs, "posts/s")
			b.ReportMetric(float64(m1-m0)/secs, "msgs/s")
		})
	}
}

// BenchmarkTick measures one tick of an idle node: three Hosts in this process over
// loopback HTTP, every group quiesced on all three (groups=0: none), then node 1's loop
// ticked b.N times in one turn of its loop, so that the figure is the tick alone (liveness
// bookkeeping and the groups it visits), not the loop's other work. Peers are never found
// silent (PeerTimeoutTick -1): no ping is delivered between the ticks.
//
//	go test -run '^$' -bench BenchmarkTick -benchtime 100000x ./multiraft
func BenchmarkTick(b *testing.B) {
	for _, groups := range []int{0, 1000} {
		b.Run(fmt.Sprintf("quiesced/groups=%d", groups), func(b *testing.B) {
			c := newTestCluster(b, 3, func(cfg *Config) {
				cfg.Ticks = nil // the Host's own ticker, TickInterval 100 ms
				cfg.PeerTimeoutTick = -1
			})
			ids := c.addGroups(groups, leaderByMod)
			waitFor(b, "every group to quiesce", func() bool { return allQuiesced(b, ids, c.nodes...) })
			h := c.node(1).host
			b.ReportAllocs()
			b.ResetTimer()
			err := h.call(context.Background(), func() error {
				for range b.N {
					h.tick()
				}
				return nil
			})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if !allQuiesced(b, ids, c.nodes...) {
				b.Fatal("a tick woke a quiesced group")
			}
		})
	}
}
