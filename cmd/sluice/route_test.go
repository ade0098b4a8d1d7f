package main

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/shardmap"
)

// forwardedRecords returns node n's sluice_forwarded_records_total.
func forwardedRecords(t *testing.T, n *clusterNode) uint64 {
	t.Helper()
	resp, err := n.client().Get(n.base() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		if v, ok := strings.CutPrefix(lines.Text(), "sluice_forwarded_records_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("node %d: sluice_forwarded_records_total %q", n.id, v)
			}
			return uint64(f)
		}
	}
	t.Fatalf("node %d: no sluice_forwarded_records_total in /metrics (%v)", n.id, lines.Err())
	return 0
}

func sumForwarded(t *testing.T, nodes []*clusterNode) uint64 {
	t.Helper()
	var sum uint64
	for _, n := range nodes {
		sum += forwardedRecords(t, n)
	}
	return sum
}

// producerRound puts n records of tag through p and waits for each outcome; every record must
// be appended. It returns them as acknowledged.
func producerRound(t *testing.T, ctx context.Context, p *client.Producer, tag string, n int) []acked {
	t.Helper()
	fs := make([]*client.Future, n)
	for i := range fs {
		var err error
		if fs[i], err = p.Put(ctx, fmt.Sprintf("%s-%d", tag, i), fmt.Appendf(nil, "data of %s record %d", tag, i)); err != nil {
			t.Fatal(err)
		}
	}
	out := make([]acked, n)
	for i, f := range fs {
		seq, err := f.Wait(ctx)
		if err != nil {
			t.Fatalf("%s record %d: %v", tag, i, err)
		}
		out[i] = acked{key: fmt.Sprintf("%s-%d", tag, i), data: fmt.Sprintf("data of %s record %d", tag, i),
			shard: shardmap.ShardID(seq.Shard).String(), seq: seq.String()}
	}
	return out
}

// producerRate puts n 100-byte records through a new producer of c (cfg) and returns the
// records a second from the first Put to the end of Close, and the records forwarded
// between nodes meanwhile.
func producerRate(t *testing.T, ctx context.Context, c *client.Client, nodes []*clusterNode, name string, cfg client.ProducerConfig, n int) (float64, uint64) {
	t.Helper()
	p, err := c.NewProducer(ctx, name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	fw := sumForwarded(t, nodes)
	var failed atomic.Int64
	count := func(o client.Outcome) {
		if o.Err != nil {
			failed.Add(1)
		}
	}
	data := make([]byte, 100)
	start := time.Now()
	for i := range n {
		if err := p.PutFunc(ctx, "key-"+strconv.Itoa(i%10000), data, count); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil || failed.Load() != 0 {
		t.Fatalf("%d records failed: %v", failed.Load(), err)
	}
	rate := float64(n) / time.Since(start).Seconds()
	return rate, sumForwarded(t, nodes) - fw
}

// TestClusterProducerRoutesToLeaders runs three `sluice serve` processes on a real etcd
// (limits off) and a Producer whose endpoint is the node leading the fewest of 4 shards: it
// sends each shard's records straight to its leader, so no node forwards any
// (sluice_forwarded_records_total stays put on every node), while a producer with
// EndpointOnly makes the endpoint forward. It logs both producers' records a second. Then
// another node leading shards is killed with SIGKILL while the producer sends: its requests
// to the dead leader fail, the leader is forgotten and its records go through the endpoint,
// every record still succeeds, the producer learns the new leaders (a later round is not
// forwarded), and every acknowledged record is read back through both live nodes.
func TestClusterProducerRoutesToLeaders(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three servers")
	}
	const name = "routed"
	_, nodes := startClusterArgs(t, name, 4, "--limits", "off")
	waitLong(t, "a leader for every shard", func() bool {
		total := 0
		for _, n := range nodes {
			total += len(n.leads())
		}
		return total == 4
	})
	entry := nodes[0]
	for _, n := range nodes[1:] {
		if len(n.leads()) < len(entry.leads()) {
			entry = n
		}
	}
	c, err := client.New(client.Config{Endpoint: entry.base(), Unsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	leaders := func() map[uint32]string {
		m, err := c.ShardLeaders(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	waitLong(t, "the endpoint to know every shard's leader", func() bool { return len(leaders()) == 4 })
	t.Logf("endpoint node %d; leaders %v", entry.id, leaders())

	newProducer := func() *client.Producer {
		p, err := c.NewProducer(ctx, name, client.ProducerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := newProducer()
	defer func() { p.Close(context.Background()) }()
	var all []acked
	// noForwarding puts rounds of records until one is forwarded by no node of live; a round
	// that was may only be one during which the leaders changed (an election on a loaded
	// machine), and then another round is tried, at most 3, by a new producer: the one that
	// saw the change asks for the leaders again only every 2 s, and its next round could still
	// go to the leader before the change, which forwards it.
	noForwarding := func(what string, live []*clusterNode) {
		t.Helper()
		for try := 1; ; try++ {
			if try > 1 {
				if err := p.Close(ctx); err != nil {
					t.Fatal(err)
				}
				p = newProducer()
			}
			before, fw := leaders(), sumForwarded(t, live)
			all = append(all, producerRound(t, ctx, p, fmt.Sprintf("%s-%d", what, try), 200)...)
			n, after := sumForwarded(t, live)-fw, leaders()
			if n == 0 {
				return
			}
			if maps.Equal(before, after) || try == 3 {
				t.Fatalf("%s: %d records forwarded between nodes with leaders %v before and %v after", what, n, before, after)
			}
			t.Logf("%s: %d records forwarded while the leaders changed from %v to %v: again", what, n, before, after)
		}
	}
	noForwarding("routed", nodes)

	// The figure: records a second through the leaders and through the endpoint alone, in
	// turns, on the same cluster; SLUICE_ROUTE_RECORDS records a turn (docs/CLUSTER.md's
	// figure took 50,000), else 5,000, which a -race run puts in reasonable time.
	figureRecords := 5000
	if v := os.Getenv("SLUICE_ROUTE_RECORDS"); v != "" {
		if figureRecords, err = strconv.Atoi(v); err != nil || figureRecords < 1 {
			t.Fatalf("SLUICE_ROUTE_RECORDS=%q: want a count of records", v)
		}
	}
	for turn := 1; turn <= 3; turn++ {
		routed, fwRouted := producerRate(t, ctx, c, nodes, name, client.ProducerConfig{}, figureRecords)
		via, fwVia := producerRate(t, ctx, c, nodes, name, client.ProducerConfig{EndpointOnly: true}, figureRecords)
		t.Logf("turn %d, %d records of 100 B: to the leaders %.0f records/s (%d forwarded); through node %d alone %.0f records/s (%d forwarded)",
			turn, figureRecords, routed, fwRouted, entry.id, via, fwVia)
		if fwVia == 0 {
			t.Fatalf("with EndpointOnly no record was forwarded, though node %d leads %d of 4 shards", entry.id, len(entry.leads()))
		}
	}

	// kill -9 a node leading shards (not the endpoint) while the producer sends.
	var victim *clusterNode
	var live []*clusterNode
	for _, n := range nodes {
		if n != entry && (victim == nil || len(n.leads()) > len(victim.leads())) {
			victim = n
		}
	}
	for _, n := range nodes {
		if n != victim {
			live = append(live, n)
		}
	}
	t.Logf("node %d leads %v: killing it with SIGKILL", victim.id, victim.leads())
	failures := p.Stats().LeaderFailures
	victim.kill9()
	for i := 0; p.Stats().LeaderFailures == failures; i++ {
		if i == 50 {
			t.Fatal("no request to the killed leader failed in 50 rounds")
		}
		all = append(all, producerRound(t, ctx, p, fmt.Sprintf("after-kill-%d", i), 50)...)
	}
	waitLong(t, "the endpoint to know a live leader for every shard", func() bool {
		m := leaders()
		for _, a := range m {
			if a == victim.addr {
				return false
			}
		}
		return len(m) == 4
	})
	// Send for longer than the producer's leaders refresh period, so that it asks again.
	for start := time.Now(); time.Since(start) < 3*time.Second; {
		all = append(all, producerRound(t, ctx, p, fmt.Sprintf("learning-%d", len(all)), 50)...)
	}
	noForwarding("after-kill", live)
	t.Logf("producer: %+v", p.Stats())
	checkReadable(t, live, name, all)
}
