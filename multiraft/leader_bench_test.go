package multiraft

import (
	"context"
	"testing"
	"time"
)

// BenchmarkLeader compares Leader, which reads the published value (leader.go), with the
// round trip through the loop it replaced (what Leader cost before), on a Host driving
// one single-voter group that it leads. One op is one lookup of one leader id (8 bytes).
//
//	go test -run '^$' -bench BenchmarkLeader ./multiraft
func BenchmarkLeader(b *testing.B) {
	ticks := make(chan time.Time)
	h, err := NewHost(Config{NodeID: 1, Ticks: ticks})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	if err := h.AddGroup(1, []uint64{1}, newMemSM(), GroupOptions{}); err != nil {
		b.Fatal(err)
	}
	if err := h.Campaign(1); err != nil {
		b.Fatal(err)
	}
	waitFor(b, "the group to elect", func() bool { return h.Leader(1) == 1 })
	viaLoop := func() uint64 {
		var lead uint64
		_ = h.withGroup(context.Background(), 1, func(g *group) error {
			lead = g.rn.BasicStatus().Lead
			return nil
		})
		return lead
	}
	for _, bc := range []struct {
		name   string
		leader func() uint64
	}{
		{"published", func() uint64 { return h.Leader(1) }},
		{"loop", viaLoop},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(8)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if bc.leader() != 1 {
						b.Error("wrong leader")
						return
					}
				}
			})
		})
	}
}
