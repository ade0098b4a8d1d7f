package cluster_test

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/cluster/etcdtest"
	"github.com/sluice-streams/sluice/stream"
)

// sweepScene starts etcd and nodes 1 to 3 with opts (whose clock is skewed by skew) and
// creates, through node 1, one-shard streams "pruned", "gone" and "held" and any of extra,
// each with its replicas on the three nodes. It then stops node 3 and, while it is down,
// closes "pruned"'s shard 0 by a resharding and prunes it (retention expired: the clock
// skewed past it for one Maintain) and deletes "gone". It returns the incarnation of every
// stream, by name, from node 3's directories.
func sweepScene(t *testing.T, opts stream.Options, skew *atomic.Int64, extra ...string) (*etcdtest.Server, []*memNode, map[string]uint64) {
	t.Helper()
	kinds := etcdtest.Kinds(t)
	srv := etcdtest.Start(t, kinds[len(kinds)-1])
	base := t.TempDir()
	var nodes []*memNode
	for id := uint64(1); id <= 3; id++ {
		nodes = append(nodes, startMemNode(t, srv, "sweep", id, filepath.Join(base, strconv.FormatUint(id, 10)), opts))
	}
	names := append([]string{"pruned", "gone", "held"}, extra...)
	gens := map[string]uint64{}
	for _, name := range names {
		if err := nodes[0].eng.CreateStream(stream.CreateStreamInput{Name: name, ShardCount: 1}); err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			eventuallyErr(t, fmt.Sprintf("node %d opens %s", n.id, name), func() error {
				_, err := n.eng.Describe(name)
				return err
			})
		}
		if p := placed(t, nodes[0].c, name); !slices.Equal(p.Replicas, []uint64{1, 2, 3}) {
			t.Fatalf("placement of %s: %v, want [1 2 3]", name, p.Replicas)
		}
	}
	three := nodes[2]
	eventuallyErr(t, "node 3 holds a replica of every stream", func() error {
		for _, name := range names {
			if _, err := three.shardDir(name); err != nil {
				return err
			}
		}
		return nil
	})
	for _, name := range names {
		gens[name] = genOf(t, three, name)
	}
	three.stop()

	if _, _, err := nodes[0].eng.UpdateShardCount("pruned", 2); err != nil {
		t.Fatal(err)
	}
	skew.Store(int64(48 * time.Hour)) // past the default retention, 24 h
	err := nodes[0].eng.Maintain()
	skew.Store(0)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := nodes[0].eng.Describe("pruned"); err != nil || len(d.Shards) != 2 || d.Shards[0].ID == 0 {
		t.Fatalf("pruned's shards after Maintain: %+v, %v; want shard 0 pruned", d.Shards, err)
	}
	if err := nodes[0].eng.DeleteStream("gone", false); err != nil {
		t.Fatal(err)
	}
	return srv, nodes, gens
}

// skewedOptions are memOptions with a clock that skew moves forward.
func skewedOptions(skew *atomic.Int64) stream.Options {
	opts := memOptions
	opts.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	return opts
}

// tree lists every file and directory under dir, relative to it, sorted, down to depth
// levels (0: all).
func tree(t testing.TB, dir string, depth int) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if rel == "." {
			return nil
		}
		out = append(out, filepath.ToSlash(rel))
		if d.IsDir() && depth > 0 && strings.Count(rel, string(filepath.Separator))+1 >= depth {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// at names stream name's directory at its incarnation in gens, with rest under it.
func at(gens map[string]uint64, name string, rest ...string) string {
	return strings.Join(append([]string{name + "@" + strconv.FormatUint(gens[name], 10)}, rest...), "/")
}

// TestRestartSweeps: a node down while a shard of a stream was closed and pruned, another
// stream deleted and a third stream's replica moved off it finds, when it starts again,
// that the catalog names neither the pruned shard nor the deleted stream, and removes their
// directories; the replica moved away is deleted (its id is in the placement's `removed`:
// it missed its own removal), its vote kept beside it, since the shard is still in the
// catalog; a replica of a shard still in the catalog stays. Nothing else is on its disk.
func TestRestartSweeps(t *testing.T) {
	var skew atomic.Int64
	opts := skewedOptions(&skew)
	srv, nodes, gens := sweepScene(t, opts, &skew, "moved")
	three := nodes[2]
	before := tree(t, filepath.Join(three.dir, "streams"), 2)
	for _, want := range []string{at(gens, "pruned", "shard-0"), at(gens, "gone", "shard-0"), at(gens, "moved", "shard-0"), at(gens, "held", "shard-0")} {
		if !slices.Contains(before, want) {
			t.Fatalf("node 3 before its restart: %v, without %s", before, want)
		}
	}

	nodes = append(nodes, startMemNode(t, srv, "sweep", 4, filepath.Join(filepath.Dir(three.dir), "4"), opts))
	setReplicas(t, srv, "sweep", "moved", []uint64{1, 2, 4})
	awaitVoters(t, nodes, "moved", gens["moved"], []uint64{1, 2, 4})
	eventuallyErr(t, "the placement lists node 3's Raft id as removed", func() error {
		p, _, err := nodes[0].c.PlacementOf("moved", 0)
		if err == nil && !slices.Contains(p.Removed, three.raftID) {
			err = fmt.Errorf("removed: %x", p.Removed)
		}
		return err
	})

	nodes[2] = startMemNode(t, srv, "sweep", 3, three.dir, opts)
	three = nodes[2]
	// The sweep runs within the engine's Open: the pruned shard and the deleted stream are
	// gone as soon as it returned.
	for _, gone := range []string{at(gens, "pruned", "shard-0"), at(gens, "gone")} {
		if got := tree(t, filepath.Join(three.dir, "streams"), 2); slices.Contains(got, gone) {
			t.Fatalf("node 3 still holds %s once started: %v", gone, got)
		}
	}
	eventuallyErr(t, "node 3 deletes its replica moved away and keeps its vote", func() error {
		return three.deleted("moved")
	})
	// The replica's tombstone goes just after its directory: wait for it.
	want := []string{at(gens, "held"), at(gens, "held", "shard-0"), at(gens, "moved"), at(gens, "moved", ".vote-shard-0"), at(gens, "pruned")}
	eventuallyErr(t, "node 3's stream directories hold what the catalog names", func() error {
		if got := tree(t, filepath.Join(three.dir, "streams"), 2); !slices.Equal(got, want) {
			return fmt.Errorf("%v, want %v", got, want)
		}
		return nil
	})
	if got := tree(t, filepath.Join(three.dir, "streams", at(gens, "held", "shard-0")), 1); len(got) == 0 {
		t.Fatal("node 3's replica of held's shard 0 is empty")
	}
	if got := tree(t, filepath.Join(three.dir, "trash"), 0); len(got) > 0 {
		t.Fatalf("left in the trash: %v", got)
	}
	if _, err := three.eng.Describe("held"); err != nil {
		t.Fatal(err)
	}
}

// TestNoSweepWithoutEtcd: a node that cannot reach etcd when it starts fails to open its
// engine and deletes nothing, though its disk holds a pruned shard and a deleted stream;
// once etcd is back, the same start removes them.
func TestNoSweepWithoutEtcd(t *testing.T) {
	var skew atomic.Int64
	opts := skewedOptions(&skew)
	srv, nodes, gens := sweepScene(t, opts, &skew)
	for _, n := range nodes {
		n.stop()
	}
	dir := nodes[2].dir
	before := tree(t, dir, 0)
	if !slices.Contains(before, "streams/"+at(gens, "pruned", "shard-0")) || !slices.Contains(before, "streams/"+at(gens, "gone", "shard-0")) {
		t.Fatalf("node 3 before its restart: %v", before)
	}
	srv.Stop()

	c := dial(t, srv, "sweep", nil)
	raftID, err := cluster.RaftID(dir)
	if err != nil {
		t.Fatal(err)
	}
	repl, err := c.NewReplication(cluster.ReplicationConfig{NodeID: 3, RaftID: raftID, PeerKey: testPeerKey})
	if err != nil {
		t.Fatal(err)
	}
	defer repl.Close()
	o := opts
	o.Dir, o.Catalog, o.OpenShardLog = dir, c.Catalog(), repl.OpenShardLog
	if eng, err := stream.Open(o); err == nil {
		eng.Close()
		t.Fatal("the engine opened without etcd")
	}
	if after := tree(t, dir, 0); !slices.Equal(after, before) {
		t.Fatalf("node 3's files changed without etcd:\nbefore %v\nafter  %v", before, after)
	}

	srv.Start()
	three := startMemNode(t, srv, "sweep", 3, dir, opts)
	want := []string{at(gens, "held"), at(gens, "held", "shard-0"), at(gens, "pruned")}
	if got := tree(t, filepath.Join(three.dir, "streams"), 2); !slices.Equal(got, want) {
		t.Fatalf("node 3's stream directories once etcd is back: %v, want %v", got, want)
	}
}
