package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/cluster/etcdtest"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// fixedDemand is a node's engine as its demand publisher sees it: the same demand every
// interval.
type fixedDemand []stream.StreamDemand

func (d fixedDemand) TakeDemand() []stream.StreamDemand { return d }

// TestOnDemandSumsNodes: three nodes each publish 0.4 of a shard's capacity on one shard of
// an on-demand stream (and 0.3 on each other shard), none of them enough to split it; of
// three controllers campaigning, the elected one sums them (1.2 shards' worth on the hot
// shard) and splits that shard once, and only it; passes after change nothing. The engine
// itself (SharedDemand) never splits on its own.
func TestOnDemandSumsNodes(t *testing.T) {
	eachEtcd(t, func(t *testing.T, srv *etcdtest.Server) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := dial(t, srv, "od", nil)
		e, err := stream.Open(stream.Options{Dir: t.TempDir(), Catalog: c.Catalog(), SharedDemand: true})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if err := e.CreateStream(stream.CreateStreamInput{Name: "od", Mode: stream.ModeOnDemand}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.PutRecords("od", []stream.PutEntry{{PartitionKey: "hot", Data: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
		taken := e.TakeDemand()
		if len(taken) != 1 {
			t.Fatalf("TakeDemand = %+v", taken)
		}
		gen := taken[0].Gen
		d, _ := e.Describe("od")
		hot := d.Shards[0].ID
		for _, sh := range d.Shards {
			if sh.Range.Contains(shardmap.KeyOfString("hot")) {
				hot = sh.ID
			}
		}
		// 0.4 and 0.3 of a shard's 1,000 records/s, counted over one second.
		perNode := stream.StreamDemand{Stream: "od", Gen: gen}
		for _, sh := range d.Shards {
			n := int64(300)
			if sh.ID == hot {
				n = 400
			}
			perNode.Shards = append(perNode.Shards, stream.ShardDemand{Shard: sh.ID, Bytes: n * 100, Records: n})
		}
		for id := uint64(1); id <= 3; id++ {
			m, err := dial(t, srv, "od", nil).Join(ctx, id, "127.0.0.1:1")
			if err != nil {
				t.Fatal(err)
			}
			clock := time.Unix(1_700_000_000, 0)
			pub := m.NewDemandPublisher(fixedDemand{perNode}, func() time.Time { clock = clock.Add(time.Second); return clock })
			for range 2 { // the first starts the interval
				if err := pub.Publish(ctx); err != nil {
					t.Fatal(err)
				}
			}
		}
		var cts []*cluster.Controller
		for id := uint64(1); id <= 3; id++ {
			ct, err := dial(t, srv, "od", nil).NewController(cluster.ControllerConfig{NodeID: id, Every: 100 * time.Millisecond, Scaler: e})
			if err != nil {
				t.Fatal(err)
			}
			cctx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); ct.Run(cctx) }()
			defer func() { stop(); <-done }()
			cts = append(cts, ct)
		}
		eventually(t, "the hot shard split", func() bool { d, _ := e.Describe("od"); return d.OpenShards > 4 })
		var elected *cluster.Controller
		for _, ct := range cts {
			if ct.Metrics().Leader {
				elected = ct
			}
		}
		if elected == nil {
			t.Fatal("a split, and no controller elected")
		}
		after := elected.Metrics().ScalePasses + 3
		eventually(t, "three more scale passes", func() bool { return elected.Metrics().ScalePasses >= after })
		if err := e.Maintain(); err != nil {
			t.Fatal(err)
		}
		d, _ = e.Describe("od")
		splits := uint64(0)
		for _, ct := range cts {
			splits += ct.Metrics().OnDemandSplits
		}
		if d.OpenShards != 5 || splits != 1 {
			t.Fatalf("%d open shards, %d splits by the controllers; want 5 and 1", d.OpenShards, splits)
		}
		for _, sh := range d.Shards {
			if !sh.Open && sh.ID != hot {
				t.Fatalf("shard %s closed, not the hot %s", sh.ID, hot)
			}
		}
	})
}
