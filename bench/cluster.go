package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/server/wire"
)

// The cluster suite: three `sluice serve --cluster-etcd` nodes, every shard a Raft group
// over the three, beside one single `sluice serve`, all with --durability sync and
// --limits off, each a child process on a loopback port, with the sluice binary built from
// this module. The etcd is the embedded server of package cluster, in this process (so its
// CPU is not counted as the nodes'; a production cluster runs etcd elsewhere).
//
// Producers speak the native protocol: the bench's prebuilt put requests over fasthttp, as
// the e2e suite's native puts (not the client package's Producer, whose batching would add
// to the client's CPU on the two cores the nodes share). Records go to every node in turn,
// and a node forwards those of shards another node leads to it.
//
//	limit_loopback_rtt, limit_fdatasync_4KiB_p50
//	                              as in the e2e suite, measured again here
//	single_sync_put_100B, _1KiB   the single node: native puts of 500 records over
//	                              clusterConns connections: records/s
//	single_sync_put_*_cpu         the same runs: records per CPU-second of the single node
//	cluster_put_100B, _1KiB       the same puts to the cluster, connection w to node w mod 3:
//	                              records/s against the single node's (target 0.3)
//	cluster_put_*_cpu             the same runs: records per CPU-second summed over the three
//	                              nodes (from /proc/<pid>/stat), against the single node's
//	single_sync_latency_p50, _p99 one native put of one 100 B record at a time, single node
//	cluster_put_latency_p50, _p99 the same through the three nodes in turn: against single
//	                              p50 (p99) + 2 × loopback round trip + fdatasync p50; p50's
//	                              target is 1
//	cluster_failover_ms, _max_ms  kill -9 of the node leading shard 0 while one writer puts
//	                              to it through the others: the time from the kill to the
//	                              first acknowledged put sent after it; median and max of
//	                              failoverKills kills (the node is restarted and catches up
//	                              between them), against 2 s
//	cluster_idle_cpu              three other nodes (cluster name "idle", same etcd) holding
//	                              idleStreams × idleShards shards and no traffic, once every
//	                              shard has a leader and idleSettle has passed: CPU of the
//	                              three processes as % of one core, median of three windows
//	                              of idleWindow/3, against 5 %
const (
	clusterNodes    = 3
	clusterConns    = 6 // 2 per node; the single node gets as many
	clusterShards   = 6
	clusterPutT     = 0.3
	failoverKills   = 5
	failoverTarget  = 2000 // ms (PERFORMANCE.md)
	failoverWarm    = 500 * time.Millisecond
	idleStreams     = 10
	idleShards      = 100
	idleSettle      = 5 * time.Second
	idleWindow      = 20 * time.Second
	idleCPUTarget   = 5 // % of one core
	clusterPatience = 120 * time.Second
)

// clusterBench is what the cluster suite runs against.
type clusterBench struct {
	dir     string
	profile string // -profile, passed on to every node
	bin     string
	etcd    *cluster.Embedded
	single  *childNode
	nodes   []*childNode
	idle    []*childNode
	scale   []*childNode // the cluster-scale suite's nodes (clusterscale.go)
}

func clusterSuite(ctx context.Context, cfg config) ([]result, error) {
	cb, err := startClusterBench(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer cb.close()
	if cb.single, err = newChildNode(cb.bin, filepath.Join(cfg.dir, "single"), cb.serveArgs()...); err != nil {
		return nil, err
	}
	if err := cb.single.start(); err != nil {
		return nil, fmt.Errorf("the single node: %w", err)
	}
	if cb.nodes, err = cb.startNodes(ctx, "bench"); err != nil {
		return nil, err
	}
	// One node creates the cluster's stream; the others see it in etcd's catalog.
	for _, e := range []endpoint{cb.single.endpoint, cb.nodes[0].endpoint} {
		if err := createStream(e, e2eStream, clusterShards); err != nil {
			return nil, err
		}
	}
	if err := cb.warm(ctx); err != nil {
		return nil, err
	}

	cpus := map[string]*sampled{}
	put := func(name string, nodes []*childNode, size int) measurement {
		cpus[name] = &sampled{}
		return measurement{name, "records/s", func(ctx context.Context, d time.Duration) (float64, string, error) {
			v, perCPU, note, err := putNodes(ctx, d, nodes, size)
			cpus[name].values = append(cpus[name].values, perCPU)
			return v, note, err
		}}
	}
	singleP50, singleP99 := quantilePair(func(ctx context.Context, d time.Duration) (latencies, error) {
		return putLatencyNodes(ctx, d, []*childNode{cb.single})
	})
	clusterP50, clusterP99 := quantilePair(func(ctx context.Context, d time.Duration) (latencies, error) {
		return putLatencyNodes(ctx, d, cb.nodes)
	})
	ms := []measurement{
		{"limit_loopback_rtt", "µs", func(ctx context.Context, d time.Duration) (float64, string, error) {
			l, err := measureLoopbackRTT(ctx, d)
			return l.quantile(0.5), l.note(), err
		}},
		{"limit_fdatasync_4KiB_p50", "µs", func(ctx context.Context, d time.Duration) (float64, string, error) {
			l, err := measureFdatasync(ctx, filepath.Join(cfg.dir, "fsync"), d)
			return l.quantile(0.5), l.note(), err
		}},
		put("single_sync_put_100B", []*childNode{cb.single}, 100),
		put("cluster_put_100B", cb.nodes, 100),
		put("single_sync_put_1KiB", []*childNode{cb.single}, 1024),
		put("cluster_put_1KiB", cb.nodes, 1024),
		{"single_sync_latency_p50", "µs", singleP50},
		{"single_sync_latency_p99", "µs", singleP99},
		{"cluster_put_latency_p50", "µs", clusterP50},
		{"cluster_put_latency_p99", "µs", clusterP99},
	}
	s, err := runRounds(ctx, cfg, ms)
	if err != nil {
		return nil, err
	}
	failover, err := cb.failovers(ctx, cfg)
	if err != nil {
		return nil, err
	}
	idle, err := cb.idleCPU(ctx, cfg)
	if err != nil {
		return nil, err
	}

	med := func(s *sampled) float64 { v, _ := s.median(); return v }
	rtt, fsync := med(s["limit_loopback_rtt"]), med(s["limit_fdatasync_4KiB_p50"])
	lower := func(r result) result { r.LowerIsBetter = true; return r }
	out := []result{
		limitResult("limit_loopback_rtt", "µs", s["limit_loopback_rtt"]),
		limitResult("limit_fdatasync_4KiB_p50", "µs", s["limit_fdatasync_4KiB_p50"]),
	}
	for _, size := range []string{"100B", "1KiB"} {
		single, clustered := "single_sync_put_"+size, "cluster_put_"+size
		out = append(out,
			limitResult(single, "records/s", s[single]),
			limitResult(single+"_cpu", "records/s", cpus[single]),
			pathResult(clustered, "records/s", s[clustered], med(s[single]), single, clusterPutT),
			pathResult(clustered+"_cpu", "records/s", cpus[clustered], med(cpus[single]), single+"_cpu", 0),
		)
	}
	extra := 2*rtt + fsync
	out = append(out,
		limitResult("single_sync_latency_p50", "µs", s["single_sync_latency_p50"]),
		limitResult("single_sync_latency_p99", "µs", s["single_sync_latency_p99"]),
		lower(pathResult("cluster_put_latency_p50", "µs", s["cluster_put_latency_p50"], med(s["single_sync_latency_p50"])+extra,
			"single_sync_latency_p50 + 2 × limit_loopback_rtt + limit_fdatasync_4KiB_p50", 1)),
		lower(pathResult("cluster_put_latency_p99", "µs", s["cluster_put_latency_p99"], med(s["single_sync_latency_p99"])+extra,
			"single_sync_latency_p99 + 2 × limit_loopback_rtt + limit_fdatasync_4KiB_p50", 0)),
		lower(pathResult("cluster_failover_ms", "ms", failover, failoverTarget, "2 s (PERFORMANCE.md)", 1)),
		lower(pathResult("cluster_failover_max_ms", "ms", &sampled{values: []float64{slices.Max(failover.values)}, note: failover.note},
			failoverTarget, "2 s (PERFORMANCE.md)", 1)),
		lower(pathResult("cluster_idle_cpu", "%", idle, idleCPUTarget, "5 % of one core (PERFORMANCE.md)", 1)),
	)
	return out, nil
}

// startClusterBench builds the sluice binary and starts the embedded etcd: what both
// cluster suites start from.
func startClusterBench(ctx context.Context, cfg config) (*clusterBench, error) {
	dir, err := filepath.Abs(cfg.dir)
	if err != nil {
		return nil, err
	}
	cb := &clusterBench{dir: dir, profile: cfg.profile}
	if cb.bin, err = buildSluice(ctx, cfg.dir); err != nil {
		return nil, err
	}
	if cb.etcd, err = cluster.StartEmbedded(cluster.EmbeddedConfig{Dir: filepath.Join(cfg.dir, "etcd")}); err != nil {
		return nil, err
	}
	return cb, nil
}

func (cb *clusterBench) close() {
	for _, n := range slices.Concat([]*childNode{cb.single}, cb.nodes, cb.idle, cb.scale) {
		if n != nil {
			n.stop()
			cb.keepProfile(n)
		}
	}
	if cb.etcd != nil {
		cb.etcd.Close()
	}
}

// serveArgs are the serve arguments every node of the suite gets: --profile when the bench
// runs with -profile, so that a node writes its profile into its directory when it stops.
func (cb *clusterBench) serveArgs(extra ...string) []string {
	args := []string{"--limits", "off", "--durability", "sync"}
	if cb.profile != "" {
		args = append(args, "--profile", cb.profile)
	}
	return append(args, extra...)
}

// keepProfile moves a stopped node's profile into the current directory, named after the
// node's directory (cluster-bench-node-1.cpu.pprof, single-node.cpu.pprof). A node killed
// with SIGKILL wrote none; its restart's is the one kept.
func (cb *clusterBench) keepProfile(n *childNode) {
	if cb.profile == "" {
		return
	}
	rel, err := filepath.Rel(cb.dir, n.dir)
	if err != nil {
		return
	}
	name := strings.ReplaceAll(rel, string(filepath.Separator), "-")
	if n == cb.single {
		name = "single-node"
	} else {
		name = "cluster-" + name
	}
	os.Rename(filepath.Join(n.dir, cb.profile+".pprof"), name+"."+cb.profile+".pprof")
}

// startNodes starts the three nodes of the cluster called name, with extra serve arguments.
func (cb *clusterBench) startNodes(ctx context.Context, name string, extra ...string) ([]*childNode, error) {
	return cb.startNodesN(ctx, name, clusterNodes, extra...)
}

// startNodesN starts count nodes of the cluster called name, node ids 1 to count.
func (cb *clusterBench) startNodesN(ctx context.Context, name string, count int, extra ...string) ([]*childNode, error) {
	var nodes []*childNode
	for i := 1; i <= count; i++ {
		args := append([]string{"--node-id", strconv.Itoa(i), "--cluster-etcd", cb.etcd.Endpoints()[0], "--cluster-name", name}, cb.serveArgs(extra...)...)
		n, err := newChildNode(cb.bin, filepath.Join(cb.dir, name, "node-"+strconv.Itoa(i)), args...)
		if err != nil {
			return nodes, err
		}
		nodes = append(nodes, n)
		switch name {
		case "idle":
			cb.idle = nodes
		case "scale":
			cb.scale = nodes
		default:
			cb.nodes = nodes
		}
		if err := ctx.Err(); err != nil {
			return nodes, err
		}
		if err := n.start(); err != nil {
			return nodes, fmt.Errorf("node %d of cluster %s: %w", i, name, err)
		}
	}
	return nodes, nil
}

// createStream creates a stream through the Kinesis API.
func createStream(e endpoint, name string, shards int) error {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	return e.post("/", "CreateStream", []byte(`{"StreamName":"`+name+`","ShardCount":`+strconv.Itoa(shards)+`}`), resp)
}

// warm waits until a put of records to every shard succeeds through every node: each node
// knows the stream, and each shard has a leader.
func (cb *clusterBench) warm(ctx context.Context) error {
	body := nativePutBody(100, e2eBatch)
	for _, n := range append([]*childNode{cb.single}, cb.nodes...) {
		if err := waitFor(ctx, clusterPatience, "a put through "+n.addr, 50*time.Millisecond, func() error { return n.putNative(body) }); err != nil {
			return err
		}
	}
	return nil
}

// putNodes puts batches of e2eBatch records of size bytes over clusterConns connections,
// connection w to nodes[w mod len(nodes)], for d, and returns records per second and
// records per CPU-second of the nodes' processes.
func putNodes(ctx context.Context, d time.Duration, nodes []*childNode, size int) (rate, perCPU float64, note string, err error) {
	body := nativePutBody(size, e2eBatch)
	before, err := cpuTimes(nodes)
	if err != nil {
		return 0, 0, "", err
	}
	start := time.Now()
	reqs, err := parallel(ctx, d, clusterConns, func(w int) (int64, error) {
		return 1, nodes[w%len(nodes)].putNative(body)
	})
	wall := time.Since(start)
	if err != nil {
		return 0, 0, "", err
	}
	after, err := cpuTimes(nodes)
	if err != nil {
		return 0, 0, "", err
	}
	cpu := after - before
	if cpu <= 0 {
		return 0, 0, "", errors.New("the nodes used no measurable CPU time")
	}
	rate = reqs * e2eBatch
	perCPU = rate * wall.Seconds() / cpu.Seconds()
	return rate, perCPU, fmt.Sprintf("%d connections over %d node(s), batches of %d × %d B; nodes' CPU %.2f cores, %.0f records per CPU-second",
		clusterConns, len(nodes), e2eBatch, size, cpu.Seconds()/wall.Seconds(), perCPU), nil
}

// quantilePair returns two measurements of one set of latencies: the first runs f and
// returns the p50, the second returns the p99 of the first's last run without running
// anything, so that it must follow the first in the list of measurements.
func quantilePair(f func(context.Context, time.Duration) (latencies, error)) (p50, p99 func(context.Context, time.Duration) (float64, string, error)) {
	var last latencies
	p50 = func(ctx context.Context, d time.Duration) (float64, string, error) {
		l, err := f(ctx, d)
		last = l
		return l.quantile(0.5), l.note(), err
	}
	p99 = func(context.Context, time.Duration) (float64, string, error) {
		return last.quantile(0.99), last.note(), nil
	}
	return p50, p99
}

// onePut is a native put of one 100 B record; with zeroHash its explicit hash key is 0,
// which routes it to shard 0.
func onePut(zeroHash bool) []byte {
	rec := wire.PutRecord{Key: []byte(latencyKey), Data: make([]byte, 100), HasHash: zeroHash}
	b, off := wire.BeginPut(nil, e2eStream)
	b = wire.AppendPutRecord(b, &rec)
	wire.FinishPut(b, off, 1)
	return b
}

// putLatencyNodes puts one record at a time, to the nodes in turn, for d.
func putLatencyNodes(ctx context.Context, d time.Duration, nodes []*childNode) (latencies, error) {
	body := onePut(false)
	var l latencies
	start := time.Now()
	for i := 0; time.Since(start) < d && ctx.Err() == nil && len(l) < maxLatRuns; i++ {
		t := time.Now()
		if err := nodes[i%len(nodes)].putNative(body); err != nil {
			return nil, err
		}
		l = append(l, float64(time.Since(t).Nanoseconds())/1e3)
	}
	return l, ctx.Err()
}

// failovers kills the leader of shard 0 failoverKills times (failover) and returns the
// times in milliseconds.
func (cb *clusterBench) failovers(ctx context.Context, cfg config) (*sampled, error) {
	s := &sampled{}
	var notes []string
	for k := range failoverKills {
		if cfg.progress != nil {
			fmt.Fprintf(cfg.progress, "\rfailover %d/%d%-30s", k+1, failoverKills, "")
		}
		took, failed, err := cb.failover(ctx)
		if err != nil {
			return nil, fmt.Errorf("failover %d: %w", k+1, err)
		}
		s.values = append(s.values, float64(took.Microseconds())/1e3)
		notes = append(notes, fmt.Sprintf("%.0f ms (%d failed puts)", float64(took.Microseconds())/1e3, failed))
	}
	s.note = fmt.Sprintf("kill -9 of shard 0's leader, %d times: %v; the election timeout is multiraft's default (10 ticks of 100 ms)", failoverKills, notes)
	return s, nil
}

// failover finds the node leading shard 0, puts to the shard through the other nodes for
// failoverWarm (the group is busy, not quiesced), kills the leader with SIGKILL, and puts
// one record at a time through the other nodes until one is acknowledged: it returns the
// time from the kill to that acknowledgement and how many puts failed before it. Then it
// restarts the node and waits until its replica holds the acknowledged record.
func (cb *clusterBench) failover(ctx context.Context) (took time.Duration, failed int, err error) {
	leader := -1
	if err := waitFor(ctx, clusterPatience, "a leader of shard 0", 50*time.Millisecond, func() error {
		if leader = leaderOf(cb.nodes, e2eStream, 0); leader < 0 {
			var seen []string
			for _, n := range cb.nodes {
				st, _ := n.sideState(e2eStream, 0)
				seen = append(seen, fmt.Sprintf("raft id %x: term %d vote %x commit %d", n.raftID(), st.Term, st.Vote, st.Commit))
			}
			return fmt.Errorf("%w (the replicas' raft.state: %s)", errNoLeader, strings.Join(seen, "; "))
		}
		return nil
	}); err != nil {
		return 0, 0, err
	}
	var others []*childNode
	for i, n := range cb.nodes {
		if i != leader {
			others = append(others, n)
		}
	}
	body := onePut(true)
	for i, t := 0, time.Now(); time.Since(t) < failoverWarm; i++ {
		if err := others[i%len(others)].putNative(body); err != nil {
			return 0, 0, fmt.Errorf("a put before the kill: %w", err)
		}
	}
	victim := cb.nodes[leader]
	victim.kill()
	killed := time.Now()
	var pos uint64
	for i := 0; ; i++ {
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		if time.Since(killed) > clusterPatience {
			return 0, 0, fmt.Errorf("no put was acknowledged within %v of the kill", clusterPatience)
		}
		p, err := others[i%len(others)].putPosition(body)
		if err == nil {
			took, pos = time.Since(killed), p
			break
		}
		failed++
	}
	if err := victim.start(); err != nil {
		return 0, 0, fmt.Errorf("restarting the killed node: %w", err)
	}
	return took, failed, waitFor(ctx, clusterPatience, "the restarted node serves the last acknowledged record", 50*time.Millisecond, func() error {
		return victim.holds(0, pos)
	})
}

// putPosition sends a native put of one record and returns its position.
func (e endpoint) putPosition(body []byte) (uint64, error) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := e.post(wire.PathPut, "", body, resp); err != nil {
		return 0, err
	}
	a, err := wire.ReadPutAnswer(resp.Body())
	if err != nil {
		return 0, err
	}
	if a.Count != 1 || a.Failed != 0 {
		return 0, fmt.Errorf("a put of one record: %d records, %d failed", a.Count, a.Failed)
	}
	return a.Result(0).Position, nil
}

// holds returns nil when the node returns a record from a native get of the shard at pos.
func (e endpoint) holds(shard uint32, pos uint64) error {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	req := wire.GetRequest{Stream: []byte(e2eStream), Shard: shard, Start: wire.AtSequenceNumber, Value: pos, MaxBytes: 1 << 10}
	if err := e.post(wire.PathGet, "", wire.AppendGetRequest(nil, &req), resp); err != nil {
		return err
	}
	if n, err := strconv.Atoi(string(resp.Header.Peek(wire.HeaderCount))); err != nil || n == 0 {
		return fmt.Errorf("no record at position %d of shard %d yet", pos, shard)
	}
	return nil
}

// idleCPU starts the idle cluster, creates its streams, waits until every shard has a
// leader and idleSettle has passed, and measures the nodes' CPU in three windows.
func (cb *clusterBench) idleCPU(ctx context.Context, cfg config) (*sampled, error) {
	if cfg.progress != nil {
		fmt.Fprintf(cfg.progress, "\ridle cluster: %d shards%-20s", idleStreams*idleShards, "")
	}
	// Idle shards are never written: small segment files keep the 3 × 1,000 preallocated
	// files small.
	nodes, err := cb.startNodes(ctx, "idle", "--segment-size", "1MiB")
	if err != nil {
		return nil, err
	}
	names := make([]string, idleStreams)
	for i := range names {
		names[i] = "idle-" + strconv.Itoa(i)
		if err := createStream(nodes[0].endpoint, names[i], idleShards); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	err = waitFor(ctx, clusterPatience, "a leader for every idle shard", time.Second, func() error {
		missing := 0
		for _, name := range names {
			for shard := range idleShards {
				if leaderOf(nodes, name, shard) < 0 {
					missing++
				}
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d shards without a leader", missing)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	elected := time.Since(start)
	select {
	case <-time.After(idleSettle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s := &sampled{}
	wholeBefore, err := cpuTimes(nodes)
	if err != nil {
		return nil, err
	}
	selfBefore, err := selfCPUTime()
	if err != nil {
		return nil, err
	}
	wholeStart := time.Now()
	for range rounds {
		before, err := cpuTimes(nodes)
		if err != nil {
			return nil, err
		}
		t := time.Now()
		select {
		case <-time.After(idleWindow / rounds):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		after, err := cpuTimes(nodes)
		if err != nil {
			return nil, err
		}
		s.values = append(s.values, 100*(after-before).Seconds()/time.Since(t).Seconds())
	}
	wholeAfter, err := cpuTimes(nodes)
	if err != nil {
		return nil, err
	}
	selfAfter, err := selfCPUTime()
	if err != nil {
		return nil, err
	}
	wall := time.Since(wholeStart).Seconds()
	s.note = fmt.Sprintf("%d streams × %d shards on 3 nodes; every shard had a leader %.1f s after the creations, then %v of rest; "+
		"over the whole %v: %.2f %% of one core (±%d ms resolution); this process (the embedded etcd and the bench) %.2f %%",
		idleStreams, idleShards, elected.Seconds(), idleSettle, idleWindow, 100*(wholeAfter-wholeBefore).Seconds()/wall,
		1000/clockTicksPerS, 100*(selfAfter-selfBefore).Seconds()/wall)
	return s, nil
}
