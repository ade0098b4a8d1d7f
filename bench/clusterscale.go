package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/stream"
)

// The cluster-scale suite: five `sluice serve --cluster-etcd --replicas 3` nodes (cluster
// name "scale", --durability sync, --limits off, --segment-size 256KiB so that 5 × 2,000
// preallocated segment files stay small, --dead-after 10s, --shard-limit 2000 above the
// default 1,024) over the embedded etcd, holding
// scaleStreams streams of scaleShardsEach shards: 2,000 shards, 6,000 replicas. Beside
// them, for the put, the cluster suite's three nodes (cluster name "bench", the same flags
// as there) with its stream of 6 shards. Every figure is read from outside the nodes:
// /proc/<pid>/stat and /proc/<pid>/status, each node's /metrics, and the placement records
// in etcd.
//
//	scale_create_s                the 50 CreateStreams, one after the other through the
//	                              nodes in turn: each one catalog transaction that places
//	                              its 40 shards (the controller's pass time is not exposed)
//	scale_leaders_s               from the first creation until every shard has exactly one
//	                              node reporting sluice_raft_is_leader 1 (a shard with two
//	                              fails the suite)
//	scale_idle_cpu                once every shard's leader reports sluice_raft_quiesced 1:
//	                              CPU of the five nodes as % of one core, median of three
//	                              windows of scaleIdleWindow/3, against 5 % of one core per
//	                              1,000 shards (PERFORMANCE.md's idle target, prorated)
//	scale_idle_cpu_per_node       the same, per node (the mean of the five)
//	scale_idle_raft_msgs          over the whole idle window: Raft messages (liveness pings
//	                              apart) the five nodes sent per second, from
//	                              sluice_raft_node_messages_sent_total minus _pings_sent_total
//	scale_rss_per_node            VmRSS of a node, median of the five, after the idle window
//	scale_rss_per_replica         (VmRSS after − VmRSS of the same node before any stream was
//	                              created) / the replicas its placement records give it,
//	                              median of the five; the note has RssAnon the same way
//	cluster3_put_100B             the cluster suite's put (native puts of 500 × 100 B over 6
//	                              connections to its three nodes): records/s
//	scale_put_100B                native puts of 500 × 100 B, each request to the node leading
//	                              the shards of one stream its records go to (explicit hash
//	                              keys: nothing forwarded), 2 connections per node: records/s
//	                              against cluster3_put_100B
//	cluster3_producer_100B        the Go client's Producer on the three nodes' stream, one
//	                              per node: records/s
//	scale_producer_100B           one Producer per stream of the five nodes (endpoint node
//	                              i mod 5), 100 B records, 10,000 keys: records/s against
//	                              cluster3_producer_100B; "n/a" with the first error if
//	                              records failed (a record is given scaleRecordTimeout)
//	scale_restore_r_s             kill -9 of a node that is not the controller: the time
//	                              until every shard's placement names 3 live nodes, each a
//	                              voter (a Raft id recorded) that the leader reports 0
//	                              entries behind; "n/a" with what was seen if that does not
//	                              happen within scaleRestoreLimit
const (
	scaleNodeCount    = 5
	scaleStreams      = 50
	scaleShardsEach   = 40
	scaleReplicas     = 3
	scaleIdleWindow   = 20 * time.Second
	scaleIdlePerKS    = 5.0 // % of one core per 1,000 shards
	scaleDeadAfter    = 10 * time.Second
	scaleRestoreLimit = 3 * time.Minute
	scalePatience     = 5 * time.Minute
	scaleKeys         = 10_000
	scaleBuffered     = 2 << 20 // each Producer's MaxBuffered
	// scaleRecordTimeout fails a Producer's record not appended in this long: on a node
	// that neither holds nor forwards a shard (before nodes serve shards they hold no
	// replica of), records would otherwise be retried for ever.
	scaleRecordTimeout = 10 * time.Second
)

func clusterScaleSuite(ctx context.Context, cfg config) ([]result, error) {
	cb, err := startClusterBench(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer cb.close()
	nodes, err := cb.startNodesN(ctx, "scale", scaleNodeCount, "--replicas", strconv.Itoa(scaleReplicas),
		"--segment-size", "256KiB", "--dead-after", scaleDeadAfter.String(), "--shard-limit", strconv.Itoa(scaleStreams*scaleShardsEach))
	if err != nil {
		return nil, err
	}
	etcd, err := cluster.Dial(cluster.Config{Endpoints: cb.etcd.Endpoints(), Name: "scale"})
	if err != nil {
		return nil, err
	}
	defer etcd.Close()
	if err := waitFor(ctx, clusterPatience, "five nodes registered", 100*time.Millisecond, func() error {
		m, err := etcd.Members()
		if err == nil && len(m) != scaleNodeCount {
			err = fmt.Errorf("%d registered", len(m))
		}
		return err
	}); err != nil {
		return nil, err
	}
	bare, err := memories(nodes)
	if err != nil {
		return nil, err
	}

	progress := func(format string, args ...any) {
		if cfg.progress != nil {
			fmt.Fprintf(cfg.progress, "\r%-60s", fmt.Sprintf(format, args...))
		}
	}
	progress("creating %d streams of %d shards", scaleStreams, scaleShardsEach)
	names := make([]string, scaleStreams)
	var creates []float64
	start := time.Now()
	for i := range names {
		names[i] = "scale-" + strconv.Itoa(i)
		t := time.Now()
		if err := createStream(nodes[i%len(nodes)].endpoint, names[i], scaleShardsEach); err != nil {
			return nil, fmt.Errorf("creating %s: %w", names[i], err)
		}
		creates = append(creates, time.Since(t).Seconds())
	}
	created := time.Since(start)
	progress("waiting for %d leaders", scaleStreams*scaleShardsEach)
	if err := waitFor(ctx, scalePatience, "one leader for every shard", time.Second, func() error {
		return oneLeaderEach(nodes, names)
	}); err != nil {
		return nil, err
	}
	elected := time.Since(start)
	progress("waiting for every group to quiesce")
	if err := waitFor(ctx, scalePatience, "every shard's leader quiesced", time.Second, func() error {
		return quiescedLeaders(nodes, names)
	}); err != nil {
		return nil, err
	}
	progress("idle for %v", scaleIdleWindow)
	idle, err := measureIdle(ctx, nodes)
	if err != nil {
		return nil, err
	}
	held, err := replicasHeld(etcd)
	if err != nil {
		return nil, err
	}
	loaded, err := memories(nodes)
	if err != nil {
		return nil, err
	}
	memory := perReplica(bare, loaded, held)

	progress("starting the three-node cluster")
	if cb.nodes, err = cb.startNodes(ctx, "bench"); err != nil {
		return nil, err
	}
	if err := createStream(cb.nodes[0].endpoint, e2eStream, clusterShards); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, clusterPatience, "a put through every node of the three", 50*time.Millisecond, func() error {
		return errorsOf(cb.nodes, func(n *childNode) error { return n.putNative(nativePutBody(100, e2eBatch)) })
	}); err != nil {
		return nil, err
	}
	three, err := newProducerSet(ctx, cb.nodes, slices.Repeat([]string{e2eStream}, clusterNodes))
	if err != nil {
		return nil, err
	}
	defer three.close()
	five, err := newProducerSet(ctx, nodes, names)
	if err != nil {
		return nil, err
	}
	defer five.close()
	bodies, err := leaderPuts(nodes, names)
	if err != nil {
		return nil, err
	}
	s, err := runRounds(ctx, cfg, []measurement{
		{"cluster3_put_100B", "records/s", func(ctx context.Context, d time.Duration) (float64, string, error) {
			v, _, note, err := putNodes(ctx, d, cb.nodes, 100)
			return v, note, err
		}},
		{"scale_put_100B", "records/s", func(ctx context.Context, d time.Duration) (float64, string, error) {
			return putLeaders(ctx, d, nodes, bodies)
		}},
		{"cluster3_producer_100B", "records/s", three.measure},
		{"scale_producer_100B", "records/s", five.measure},
	})
	if err != nil {
		return nil, err
	}
	for _, n := range cb.nodes {
		n.stop() // the restore below has the machine to itself
	}

	restore, err := measureRestore(ctx, nodes, etcd, names, held, progress)
	if err != nil {
		return nil, err
	}
	progress("")

	shards := float64(scaleStreams * scaleShardsEach)
	med := func(s *sampled) float64 { v, _ := s.median(); return v }
	createNote := fmt.Sprintf("%d CreateStreams of %d shards, %d nodes, --replicas %d: median %.0f ms, max %.0f ms each",
		scaleStreams, scaleShardsEach, scaleNodeCount, scaleReplicas, 1e3*median(creates), 1e3*slices.Max(creates))
	idleTarget := scaleIdlePerKS * shards / 1000
	out := []result{
		limitResult("scale_create_s", "s", &sampled{values: []float64{created.Seconds()}, note: createNote}),
		limitResult("scale_leaders_s", "s", &sampled{values: []float64{elected.Seconds()}, note: fmt.Sprintf("from the first CreateStream until each of the %.0f shards was led by exactly one node", shards)}),
		lowerResult(pathResult("scale_idle_cpu", "%", idle.cpu, idleTarget, fmt.Sprintf("%.0f %% of one core (5 %% per 1,000 shards)", idleTarget), 1)),
		limitResult("scale_idle_cpu_per_node", "%", &sampled{values: scaled(idle.cpu.values, 1.0/scaleNodeCount), note: idle.perNode}),
		limitResult("scale_idle_raft_msgs", "msgs/s", &sampled{values: []float64{idle.msgs}, note: idle.msgsNote}),
		limitResult("scale_rss_per_node", "B", &sampled{values: []float64{memory.node}, note: memory.nodeNote}),
		limitResult("scale_rss_per_replica", "B", &sampled{values: []float64{memory.replica}, note: memory.replicaNote}),
		limitResult("cluster3_put_100B", "records/s", s["cluster3_put_100B"]),
		pathResult("scale_put_100B", "records/s", s["scale_put_100B"], med(s["cluster3_put_100B"]), "cluster3_put_100B", 0),
		limitResult("cluster3_producer_100B", "records/s", s["cluster3_producer_100B"]),
		pathResult("scale_producer_100B", "records/s", s["scale_producer_100B"], med(s["cluster3_producer_100B"]), "cluster3_producer_100B", 0),
		restore,
	}
	return out, nil
}

// lowerResult marks a result whose target is a ratio not to exceed.
func lowerResult(r result) result { r.LowerIsBetter = true; return r }

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

func scaled(v []float64, f float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x * f
	}
	return out
}

// errorsOf calls f on every node and returns the first error.
func errorsOf(nodes []*childNode, f func(*childNode) error) error {
	for _, n := range nodes {
		if err := f(n); err != nil {
			return err
		}
	}
	return nil
}

// shardKeys are the shards of streams names, as the metrics label them: shard i of names[j]
// at j × scaleShardsEach + i.
func shardKeys(names []string) []scaleShard {
	var out []scaleShard
	for _, name := range names {
		for sh := range scaleShardsEach {
			out = append(out, scaleShard{name, stream.ShardID(sh).String()})
		}
	}
	return out
}

// shardFiguresOf scrapes the running nodes and returns, for each shard of names (in
// shardKeys order), its figures on each node (nil where a node reports none or is stopped).
func shardFiguresOf(nodes []*childNode, names []string) ([][]*shardFigures, error) {
	ms, err := scrapeAll(nodes)
	if err != nil {
		return nil, err
	}
	keys := shardKeys(names)
	out := make([][]*shardFigures, len(keys))
	for i, k := range keys {
		out[i] = make([]*shardFigures, len(ms))
		for j, m := range ms {
			if m != nil {
				out[i][j] = m.shards[k]
			}
		}
	}
	return out, nil
}

// leaderOfFigures returns the index of the node reporting that it leads the shard and how
// many nodes do.
func leaderOfFigures(figs []*shardFigures) (leader, leaders int) {
	leader = -1
	for i, f := range figs {
		if f != nil && f.leader {
			leader = i
			leaders++
		}
	}
	return leader, leaders
}

// oneLeaderEach returns nil when every shard of names has exactly one running node
// reporting that it leads it; an error saying how many have none, and naming a shard with
// two, otherwise.
func oneLeaderEach(nodes []*childNode, names []string) error {
	shards, err := shardFiguresOf(nodes, names)
	if err != nil {
		return err
	}
	none := 0
	for i, figs := range shards {
		switch _, n := leaderOfFigures(figs); {
		case n == 0:
			none++
		case n > 1:
			k := shardKeys(names)[i]
			return fmt.Errorf("%s %s: %d nodes report they lead it", k.stream, k.shard, n)
		}
	}
	if none > 0 {
		return fmt.Errorf("%d shards without a leader", none)
	}
	return nil
}

// quiescedLeaders returns nil when every shard's leader reports its group quiesced.
func quiescedLeaders(nodes []*childNode, names []string) error {
	shards, err := shardFiguresOf(nodes, names)
	if err != nil {
		return err
	}
	busy := 0
	for _, figs := range shards {
		if l, _ := leaderOfFigures(figs); l >= 0 && !figs[l].quiesced {
			busy++
		}
	}
	if busy > 0 {
		return fmt.Errorf("%d leaders not quiesced", busy)
	}
	return nil
}

// idleFigures are the idle window's figures.
type idleFigures struct {
	cpu      *sampled // % of one core, the five nodes together, per window
	perNode  string
	msgs     float64 // Raft messages per second, pings apart, the five nodes together
	msgsNote string
}

// measureIdle measures the nodes' CPU in three windows and their Raft traffic over the
// three.
func measureIdle(ctx context.Context, nodes []*childNode) (*idleFigures, error) {
	before, err := scrapeAll(nodes)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	cpu := &sampled{}
	perNode := make([][]float64, len(nodes)) // % of one core, per window
	for range rounds {
		t := time.Now()
		c0, err := nodeCPUTimes(nodes)
		if err != nil {
			return nil, err
		}
		select {
		case <-time.After(scaleIdleWindow / rounds):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c1, err := nodeCPUTimes(nodes)
		if err != nil {
			return nil, err
		}
		wall, sum := time.Since(t).Seconds(), 0.0
		for i := range nodes {
			v := 100 * (c1[i] - c0[i]).Seconds() / wall
			perNode[i] = append(perNode[i], v)
			sum += v
		}
		cpu.values = append(cpu.values, sum)
	}
	wall := time.Since(start).Seconds()
	after, err := scrapeAll(nodes)
	if err != nil {
		return nil, err
	}
	var each []string
	for _, v := range perNode {
		each = append(each, fmt.Sprintf("%.2f", median(v)))
	}
	rate := func(name string) float64 { return (sumPlain(after, name) - sumPlain(before, name)) / wall }
	msgs := rate("sluice_raft_node_messages_sent_total") - rate("sluice_raft_node_pings_sent_total")
	return &idleFigures{
		cpu:     cpu,
		perNode: fmt.Sprintf("each node, median of the windows: %s %% of one core (±%d ms resolution)", strings.Join(each, ", "), 1000/clockTicksPerS),
		msgs:    msgs,
		msgsNote: fmt.Sprintf("over %v, five nodes together: %.1f Raft messages/s, %.1f liveness pings/s, %.1f POSTs/s, %.0f B/s sent",
			scaleIdleWindow, msgs, rate("sluice_raft_node_pings_sent_total"), rate("sluice_raft_node_posts_total"), rate("sluice_raft_node_sent_bytes_total")),
	}, nil
}

// nodeCPUTimes is the CPU time each node's process has used.
func nodeCPUTimes(nodes []*childNode) ([]time.Duration, error) {
	out := make([]time.Duration, len(nodes))
	for i, n := range nodes {
		var err error
		if out[i], err = cpuTime(n.pid()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// memory is a node's resident memory: VmRSS and its anonymous part, bytes.
type memory struct{ rss, anon float64 }

func memories(nodes []*childNode) ([]memory, error) {
	out := make([]memory, len(nodes))
	for i, n := range nodes {
		pid := strconv.Itoa(n.pid())
		var err1, err2 error
		out[i].rss, err1 = procMemory(pid, "VmRSS")
		out[i].anon, err2 = procMemory(pid, "RssAnon")
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// replicasHeld counts the replicas the placement records give each node id.
func replicasHeld(c *cluster.Client) (map[uint64]int, error) {
	all, err := c.AllPlacements()
	if err != nil {
		return nil, err
	}
	held := map[uint64]int{}
	for _, p := range all {
		for _, id := range p.Replicas {
			held[id]++
		}
	}
	return held, nil
}

// memoryFigures are the memory results.
type memoryFigures struct {
	node, replica         float64
	nodeNote, replicaNote string
}

// perReplica turns the nodes' memory before any stream and after into the memory results.
// Node i is node id i+1.
func perReplica(bare, loaded []memory, held map[uint64]int) memoryFigures {
	var rss, rssPer, anonPer []float64
	var each []string
	for i := range loaded {
		n := float64(held[uint64(i+1)])
		rss = append(rss, loaded[i].rss)
		rssPer = append(rssPer, (loaded[i].rss-bare[i].rss)/n)
		anonPer = append(anonPer, (loaded[i].anon-bare[i].anon)/n)
		each = append(each, fmt.Sprintf("node %d: %.0f replicas, %.1f → %.1f MiB (anon %.1f → %.1f)",
			i+1, n, bare[i].rss/(1<<20), loaded[i].rss/(1<<20), bare[i].anon/(1<<20), loaded[i].anon/(1<<20)))
	}
	groups := float64(scaleStreams * scaleShardsEach)
	return memoryFigures{
		node:     median(rss),
		nodeNote: strings.Join(each, "; "),
		replica:  median(rssPer),
		replicaNote: fmt.Sprintf("VmRSS per replica held, median of the nodes: %.1f KiB; RssAnon per replica held: %.1f KiB; "+
			"every node opens a group for each of the %.0f shards (replica or not), so per group opened: %.1f KiB VmRSS",
			median(rssPer)/1024, median(anonPer)/1024, groups, median(rssPer)*median(heldCounts(held))/groups/1024),
	}
}

func heldCounts(held map[uint64]int) []float64 {
	var out []float64
	for _, n := range held {
		out = append(out, float64(n))
	}
	return out
}

// producerSet is one Go client Producer per stream of streams, the i-th through nodes[i mod
// len(nodes)], each writing 100 B records under scaleKeys keys.
type producerSet struct {
	clients []*client.Client
	ps      []*client.Producer
	keys    []string
}

func newProducerSet(ctx context.Context, nodes []*childNode, streams []string) (*producerSet, error) {
	s := &producerSet{keys: make([]string, scaleKeys)}
	for i := range s.keys {
		s.keys[i] = "key-" + strconv.Itoa(i)
	}
	for i, name := range streams {
		c, err := client.New(client.Config{Endpoint: "http://" + nodes[i%len(nodes)].addr})
		if err != nil {
			s.close()
			return nil, err
		}
		s.clients = append(s.clients, c)
		p, err := c.NewProducer(ctx, name, client.ProducerConfig{MaxBuffered: scaleBuffered, RecordTimeout: scaleRecordTimeout})
		if err != nil {
			s.close()
			return nil, err
		}
		s.ps = append(s.ps, p)
	}
	return s, nil
}

func (s *producerSet) close() {
	ctx, cancel := context.WithTimeout(context.Background(), scaleRecordTimeout)
	defer cancel()
	for _, p := range s.ps {
		p.Close(ctx)
	}
	for _, c := range s.clients {
		c.Close()
	}
}

func (s *producerSet) appended() (n uint64) {
	for _, p := range s.ps {
		n += p.Stats().Appended
	}
	return n
}

// measure puts records through every producer for d, then flushes them all: records
// appended per second, the flush included.
func (s *producerSet) measure(ctx context.Context, d time.Duration) (float64, string, error) {
	data := make([]byte, 100)
	fillPattern(data)
	before := s.appended()
	start := time.Now()
	run, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var failed atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for w, p := range s.ps {
		wg.Go(func() {
			for i := w; run.Err() == nil; i++ {
				err := p.PutFunc(run, s.keys[i%len(s.keys)], data, func(o client.Outcome) {
					if o.Err != nil && failed.Add(1) == 1 {
						firstErr.Store(&o.Err)
					}
				})
				if err != nil {
					return // the run ended while Put waited for room
				}
			}
		})
	}
	wg.Wait()
	for _, p := range s.ps {
		p.Flush(ctx) // a record that failed is counted by its callback
	}
	wall := time.Since(start)
	if e := firstErr.Load(); e != nil {
		return 0, fmt.Sprintf(notApplicable+"%d records failed after %v of attempts, the first with: %v", failed.Load(), scaleRecordTimeout, *e), ctx.Err()
	}
	rate := float64(s.appended()-before) / wall.Seconds()
	return rate, fmt.Sprintf("%d producers (MaxBuffered %d MiB each), 100 B records, %d keys; the flush after %v included",
		len(s.ps), scaleBuffered>>20, scaleKeys, d), nil
}

// leaderPuts returns, for each node, native put requests of e2eBatch records of 100 B, one
// per stream whose shards it leads (as the nodes' /metrics say), each record carrying the
// starting hash key of one of those shards in turn: records no node forwards.
func leaderPuts(nodes []*childNode, names []string) ([][][]byte, error) {
	shards, err := shardFiguresOf(nodes, names)
	if err != nil {
		return nil, err
	}
	data := make([]byte, 100)
	fillPattern(data)
	out := make([][][]byte, len(nodes))
	for j, name := range names {
		starts, err := startingHashKeys(nodes[0].endpoint, name)
		if err != nil {
			return nil, err
		}
		led := make([][][16]byte, len(nodes))
		for sh := range scaleShardsEach {
			l, _ := leaderOfFigures(shards[j*scaleShardsEach+sh])
			if l < 0 {
				return nil, fmt.Errorf("%s shard %d: %w", name, sh, errNoLeader)
			}
			led[l] = append(led[l], starts[sh])
		}
		for n, hashes := range led {
			if len(hashes) == 0 {
				continue
			}
			b, off := wire.BeginPut(nil, name)
			for i := range e2eBatch {
				b = wire.AppendPutRecord(b, &wire.PutRecord{Key: []byte("key-" + strconv.Itoa(i)), Data: data, HashKey: hashes[i%len(hashes)], HasHash: true})
			}
			wire.FinishPut(b, off, e2eBatch)
			out[n] = append(out[n], b)
		}
	}
	return out, nil
}

// startingHashKeys returns the starting hash key of each shard of a stream, by shard id,
// big-endian (ListShards through the Kinesis API).
func startingHashKeys(e endpoint, name string) ([][16]byte, error) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := e.post("/", "ListShards", []byte(`{"StreamName":"`+name+`"}`), resp); err != nil {
		return nil, err
	}
	var list struct {
		Shards []struct {
			ShardId      string
			HashKeyRange struct{ StartingHashKey string }
		}
	}
	if err := json.Unmarshal(resp.Body(), &list); err != nil {
		return nil, err
	}
	out := make([][16]byte, len(list.Shards))
	for i, sh := range list.Shards {
		v, ok := new(big.Int).SetString(sh.HashKeyRange.StartingHashKey, 10)
		if !ok || v.BitLen() > 128 || sh.ShardId != stream.ShardID(i).String() {
			return nil, fmt.Errorf("ListShards of %s: shard %d is %s from %q", name, i, sh.ShardId, sh.HashKeyRange.StartingHashKey)
		}
		v.FillBytes(out[i][:])
	}
	return out, nil
}

// putLeaders sends the requests of leaderPuts over 2 connections per node, for d, and
// returns records per second.
func putLeaders(ctx context.Context, d time.Duration, nodes []*childNode, bodies [][][]byte) (float64, string, error) {
	conns := 2 * len(nodes)
	sent := make([]int, conns) // per connection: written by its worker only
	reqs, err := parallel(ctx, d, conns, func(w int) (int64, error) {
		n := w % len(nodes)
		body := bodies[n][sent[w]%len(bodies[n])]
		sent[w]++
		return 1, nodes[n].putNative(body)
	})
	return reqs * e2eBatch, fmt.Sprintf("%d connections over %d nodes, each request %d × 100 B to the shards of one stream its node leads", conns, len(nodes), e2eBatch), err
}

// measureRestore kills a node that is not the controller and waits until every shard
// again has scaleReplicas caught-up voters on live nodes (restored).
func measureRestore(ctx context.Context, nodes []*childNode, etcd *cluster.Client, names []string, held map[uint64]int, progress func(string, ...any)) (result, error) {
	ms, err := scrapeAll(nodes)
	if err != nil {
		return result{}, err
	}
	victim := len(nodes) - 1
	for victim > 0 && ms[victim].plain["sluice_controller_leader"] == 1 {
		victim--
	}
	dead := uint64(victim + 1)
	nodes[victim].kill()
	killed := time.Now()
	var last restoreState
	for time.Since(killed) < scaleRestoreLimit {
		if err := ctx.Err(); err != nil {
			return result{}, err
		}
		if last, err = restored(nodes, etcd, names, dead); err != nil {
			return result{}, err
		}
		progress("restore after kill -9 of node %d: %d/%d shards", dead, last.ok, scaleStreams*scaleShardsEach)
		if last.ok == scaleStreams*scaleShardsEach {
			took := time.Since(killed)
			return result{Name: "scale_restore_r_s", Value: took.Seconds(), Unit: "s", Samples: []float64{took.Seconds()},
				Note: fmt.Sprintf("kill -9 of node %d (held %d replicas), --dead-after %v: every shard has %d caught-up voters on live nodes",
					dead, held[dead], scaleDeadAfter, scaleReplicas)}, nil
		}
		time.Sleep(time.Second)
	}
	return result{Name: "scale_restore_r_s", Unit: "s",
		Note: fmt.Sprintf(notApplicable+"%v after kill -9 of node %d (--dead-after %v), %d of %d shards have %d caught-up voters on live nodes; "+
			"%d placement records still name the killed node, %d name a live node not yet a voter or behind",
			scaleRestoreLimit, dead, scaleDeadAfter, last.ok, scaleStreams*scaleShardsEach, scaleReplicas, last.victimHeld, last.waiting)}, nil
}

// restoreState is what restored saw.
type restoreState struct {
	ok         int // shards with scaleReplicas caught-up voters on live nodes
	victimHeld int // placement records naming the killed node
	waiting    int // placement records on live nodes with a slot not (yet) a caught-up voter
}

// restored counts the shards whose placement names scaleReplicas live nodes, each with a
// Raft id recorded (a voter), whose leader (a live node) reports each other replica's node
// 0 entries behind.
func restored(nodes []*childNode, etcd *cluster.Client, names []string, dead uint64) (restoreState, error) {
	var st restoreState
	shards, err := shardFiguresOf(nodes, names)
	if err != nil {
		return st, err
	}
	all, err := etcd.AllPlacements()
	if err != nil {
		return st, err
	}
	for i, k := range shardKeys(names) {
		p := all[cluster.ShardKey{Stream: k.stream, Shard: stream.ShardID(i % scaleShardsEach)}]
		if slices.Contains(p.Replicas, dead) {
			st.victimHeld++
			continue
		}
		if len(p.Replicas) != scaleReplicas || len(p.Raft) != scaleReplicas || slices.Contains(p.Raft, 0) {
			st.waiting++
			continue
		}
		l, _ := leaderOfFigures(shards[i])
		caughtUp := l >= 0 && slices.Contains(p.Replicas, uint64(l+1))
		for _, id := range p.Replicas {
			if lag, ok := shards[i][max(l, 0)].lagOf(id); caughtUp && id != uint64(l+1) && (!ok || lag != 0) {
				caughtUp = false
			}
		}
		if caughtUp {
			st.ok++
		} else {
			st.waiting++
		}
	}
	return st, nil
}

// lagOf is the entries member node id is behind, as the leader f reports it.
func (f *shardFigures) lagOf(id uint64) (float64, bool) {
	if f == nil {
		return 0, false
	}
	v, ok := f.lag[strconv.FormatUint(id, 10)]
	return v, ok
}
