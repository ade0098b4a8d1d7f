package cluster_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/cluster/etcdtest"
	"github.com/sluice-streams/sluice/stream"
)

// eachEtcd runs f against every kind of etcd this machine has (etcdtest.Kinds).
func eachEtcd(t *testing.T, f func(t *testing.T, srv *etcdtest.Server)) {
	for _, kind := range etcdtest.Kinds(t) {
		t.Run(string(kind), func(t *testing.T) { f(t, etcdtest.Start(t, kind)) })
	}
}

func dial(t testing.TB, srv *etcdtest.Server, name string, mod func(*cluster.Config)) *cluster.Client {
	t.Helper()
	cfg := cluster.Config{Endpoints: srv.Endpoints(), Name: name, RequestTimeout: 2 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := cluster.Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// node is one engine on its own data directory with the cluster's catalog.
func node(t *testing.T, c *cluster.Client, dir string) *stream.Engine {
	t.Helper()
	e, err := stream.Open(stream.Options{Dir: dir, Catalog: c.Catalog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// eventually waits until cond holds: what another node applies arrives through etcd's
// watch, asynchronously. It fails the test after a generous deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// view is what a node answers about its streams: ListStreams, and DescribeStream and
// ListShards of each.
type view struct {
	Streams []string
	Desc    map[string]stream.StreamDescription
	Shards  map[string][]stream.ShardDescription
	Tags    map[string][]stream.Tag
}

func viewOf(t *testing.T, e *stream.Engine) view {
	v := view{Streams: e.ListStreams(), Desc: map[string]stream.StreamDescription{}, Shards: map[string][]stream.ShardDescription{},
		Tags: map[string][]stream.Tag{}}
	for _, name := range v.Streams {
		d, err := e.Describe(name)
		if err != nil {
			t.Fatal(err)
		}
		sh, err := e.ListShards(name, stream.ShardFilter{})
		if err != nil {
			t.Fatal(err)
		}
		v.Desc[name], v.Shards[name] = d, sh
		v.Tags[name], _ = e.Tags(name)
	}
	return v
}

func sameView(t *testing.T, a, b *stream.Engine, what string) {
	t.Helper()
	eventually(t, what, func() bool { return reflect.DeepEqual(viewOf(t, a), viewOf(t, b)) })
}

// TestTwoNodesShareTheCatalog: two engines, each with its own data directory, on one etcd
// catalog. What one creates, reshards, changes and deletes, the other describes and lists
// identically; a node that was closed meanwhile loads the catalog as it is now and removes
// the logs of a stream deleted while it was away.
func TestTwoNodesShareTheCatalog(t *testing.T) {
	eachEtcd(t, func(t *testing.T, srv *etcdtest.Server) {
		ca, cb := dial(t, srv, "two", nil), dial(t, srv, "two", nil)
		dirB := t.TempDir()
		a, b := node(t, ca, t.TempDir()), node(t, cb, dirB)
		if err := a.CreateStream(stream.CreateStreamInput{Name: "orders", ShardCount: 2, Tags: map[string]string{"team": "a"}}); err != nil {
			t.Fatal(err)
		}
		sameView(t, a, b, "node b describes the stream node a created")
		if got := b.ListStreams(); !reflect.DeepEqual(got, []string{"orders"}) {
			t.Fatalf("node b lists %v", got)
		}
		if _, _, err := b.UpdateShardCount("orders", 4); err != nil {
			t.Fatal(err)
		}
		sameView(t, a, b, "node a sees node b's resharding")
		d, _ := a.Describe("orders")
		if d.OpenShards != 4 || len(d.Shards) != 2+4 {
			t.Fatalf("after resharding node a describes %d open shards of %d", d.OpenShards, len(d.Shards))
		}
		// Records go to the new shards on the node that learned of them from the catalog.
		if _, err := a.PutRecord("orders", stream.PutEntry{PartitionKey: "k", Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if err := a.IncreaseRetention("orders", 48); err != nil {
			t.Fatal(err)
		}
		// A change made on b before b has seen a's would be refused (ResourceInUse: retry),
		// as the compare-and-swap demands.
		sameView(t, a, b, "node b sees node a's retention")
		if err := b.AddTags("orders", map[string]string{"env": "test"}); err != nil {
			t.Fatal(err)
		}
		sameView(t, a, b, "both see the settings changed on either")
		if d, _ := b.Describe("orders"); d.RetentionHours != 48 {
			t.Fatalf("node b reports retention %d", d.RetentionHours)
		}
		if err := b.CreateStream(stream.CreateStreamInput{Name: "gone", ShardCount: 1}); err != nil {
			t.Fatal(err)
		}
		sameView(t, a, b, "node a sees the second stream")
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := a.DeleteStream("gone", false); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Describe("gone"); !errors.Is(err, stream.ErrResourceNotFound) {
			t.Fatalf("describe a deleted stream: %v", err)
		}
		b = node(t, cb, dirB)
		sameView(t, a, b, "node b, reopened, loads the catalog")
		if got := b.ListStreams(); !reflect.DeepEqual(got, []string{"orders"}) {
			t.Fatalf("reopened node b lists %v", got)
		}
		des, err := os.ReadDir(filepath.Join(dirB, "streams"))
		if err != nil || len(des) != 1 {
			t.Fatalf("node b's stream directories after reopening: %v, %v", des, err)
		}
		if err := b.DeleteStream("orders", false); err != nil {
			t.Fatal(err)
		}
		eventually(t, "node a drops the stream node b deleted", func() bool { return len(a.ListStreams()) == 0 })
	})
}

// TestConcurrentCreateOneWins: two nodes create the same streams at once; for each name
// exactly one wins and the other is told ResourceInUse, and both end describing the winner's
// stream.
func TestConcurrentCreateOneWins(t *testing.T) {
	eachEtcd(t, func(t *testing.T, srv *etcdtest.Server) {
		nodes := []*stream.Engine{node(t, dial(t, srv, "race", nil), t.TempDir()), node(t, dial(t, srv, "race", nil), t.TempDir())}
		for i := range 10 {
			name := fmt.Sprintf("s%d", i)
			var wg sync.WaitGroup
			errs := make([]error, len(nodes))
			start := make(chan struct{})
			for j, n := range nodes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					errs[j] = n.CreateStream(stream.CreateStreamInput{Name: name, ShardCount: j + 1})
				}()
			}
			close(start)
			wg.Wait()
			won := -1
			for j, err := range errs {
				switch {
				case err == nil:
					if won >= 0 {
						t.Fatalf("%s: both nodes created it", name)
					}
					won = j
				case !errors.Is(err, stream.ErrResourceInUse):
					t.Fatalf("%s: node %d: %v, want ResourceInUse", name, j, err)
				}
			}
			if won < 0 {
				t.Fatalf("%s: neither node created it: %v", name, errs)
			}
			for j, n := range nodes {
				eventually(t, fmt.Sprintf("node %d describes %s as the winner made it", j, name), func() bool {
					d, err := n.Describe(name)
					return err == nil && d.OpenShards == won+1
				})
			}
		}
		sameView(t, nodes[0], nodes[1], "both nodes agree")
	})
}

// TestEtcdDownThenBack: with etcd stopped, a catalog change fails within the request
// timeout with a retryable InternalFailure wrapping cluster.ErrUnavailable, while records
// still go in and out of the streams already open; once etcd is back the same change
// succeeds and the other node sees it.
func TestEtcdDownThenBack(t *testing.T) {
	eachEtcd(t, func(t *testing.T, srv *etcdtest.Server) {
		short := func(c *cluster.Config) { c.RequestTimeout = 500 * time.Millisecond }
		a, b := node(t, dial(t, srv, "outage", short), t.TempDir()), node(t, dial(t, srv, "outage", short), t.TempDir())
		if err := a.CreateStream(stream.CreateStreamInput{Name: "live", ShardCount: 1}); err != nil {
			t.Fatal(err)
		}
		sameView(t, a, b, "node b sees the stream")
		srv.Stop()
		err := a.CreateStream(stream.CreateStreamInput{Name: "later", ShardCount: 1})
		if stream.KindOf(err) != stream.KindInternalFailure || !errors.Is(err, cluster.ErrUnavailable) {
			t.Fatalf("create with etcd stopped: %v, want an InternalFailure wrapping ErrUnavailable", err)
		}
		if err := a.AddTags("live", map[string]string{"k": "v"}); !errors.Is(err, cluster.ErrUnavailable) {
			t.Fatalf("tag with etcd stopped: %v", err)
		}
		if got := a.ListStreams(); !reflect.DeepEqual(got, []string{"live"}) {
			t.Fatalf("a failed creation left %v listed", got)
		}
		res, err := b.PutRecord("live", stream.PutEntry{PartitionKey: "k", Data: []byte("during the outage")})
		if err != nil {
			t.Fatalf("put with etcd stopped: %v", err)
		}
		it, err := b.GetShardIterator(stream.IteratorInput{Stream: "live", Shard: res.Shard, Type: stream.TrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := b.GetRecords(it, 10)
		if err != nil || recs.Records.Count != 1 {
			t.Fatalf("get with etcd stopped: %d records, %v", recs.Records.Count, err)
		}
		recs.Records.Release()
		srv.Start()
		// An attempt can commit in etcd and still time out on its way back (500 ms on a
		// loaded machine): the next attempt then finds the name taken, and the stream is
		// there all the same.
		var lastErr error
		eventually(t, "the creation succeeds once etcd is back", func() bool {
			lastErr = a.CreateStream(stream.CreateStreamInput{Name: "later", ShardCount: 1})
			return lastErr == nil || errors.Is(lastErr, stream.ErrResourceInUse)
		})
		if lastErr != nil {
			t.Logf("the creation committed on an attempt whose answer was lost: %v", lastErr)
		}
		if d, err := a.Describe("later"); err != nil || d.OpenShards != 1 {
			t.Fatalf("after etcd came back: %+v, %v; want the stream with 1 shard", d, err)
		}
		sameView(t, a, b, "node b sees the stream created after the outage")
		if got := b.ListStreams(); !reflect.DeepEqual(got, []string{"later", "live"}) {
			t.Fatalf("node b lists %v", got)
		}
	})
}

// TestConcurrentChangesFromTwoNodes: two nodes register consumers of one stream and tag it
// at the same moment, each change reading the same revision. etcd's compare-and-swap takes
// one save at a time; the engine runs a beaten change again on the winner's, so every call
// succeeds (as on Kinesis) and both nodes end with every consumer and tag.
func TestConcurrentChangesFromTwoNodes(t *testing.T) {
	eachEtcd(t, func(t *testing.T, srv *etcdtest.Server) {
		a, b := node(t, dial(t, srv, "changes", nil), t.TempDir()), node(t, dial(t, srv, "changes", nil), t.TempDir())
		if err := a.CreateStream(stream.CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
			t.Fatal(err)
		}
		sameView(t, a, b, "node b sees the stream")
		const rounds = 4
		var wg sync.WaitGroup
		errs := make(chan error, 4*rounds)
		for i, n := range []*stream.Engine{a, b} {
			wg.Add(2)
			go func() {
				defer wg.Done()
				for r := range rounds {
					if _, err := n.RegisterConsumer("s", fmt.Sprintf("c-%d-%d", i, r)); err != nil {
						errs <- fmt.Errorf("node %d: register: %w", i, err)
					}
				}
			}()
			go func() {
				defer wg.Done()
				for r := range rounds {
					if err := n.AddTags("s", map[string]string{fmt.Sprintf("t-%d-%d", i, r): "v"}); err != nil {
						errs <- fmt.Errorf("node %d: tag: %w", i, err)
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for i, n := range []*stream.Engine{a, b} {
			eventually(t, fmt.Sprintf("node %d to list every consumer and tag", i), func() bool {
				cs, err := n.ListConsumers("s")
				tags, terr := n.Tags("s")
				return err == nil && terr == nil && len(cs) == 2*rounds && len(tags) == 2*rounds
			})
		}
	})
}
