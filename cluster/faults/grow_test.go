//go:build linux

package faults

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/cluster/invariant"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// The steps that change the cluster's shape under load: a Go client Producer beside the SDK
// producers, node additions, drains, reshards, and what the groups' leaders say their
// members are.

// produceGo adds to p a Go client Producer (default configuration, but for a record
// timeout of half the patience: it routes each shard's records to its leader and retries
// until then) whose endpoint is nd, writing about 500
// records a second, each record's data unique. A record it acknowledges is kept with its
// attempts: a retried record may be stored once per attempt (invariant.Acked.Attempts).
func (c *cluster) produceGo(p *producer, nd *node) {
	c.t.Helper()
	cl, err := client.New(client.Config{Endpoint: "http://" + nd.addr})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	var gp *client.Producer
	c.eventually(fmt.Sprintf("a Go producer through node %d", nd.id), func() error {
		gp, err = cl.NewProducer(context.Background(), p.name, client.ProducerConfig{RecordTimeout: patience / 2})
		return err
	})
	p.gos = append(p.gos, gp)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for i := 0; p.ctx.Err() == nil; i++ {
			key := fmt.Sprintf("go-%d-%d", nd.id, i)
			data := []byte("go producer of node " + strconv.Itoa(nd.id) + " record " + strconv.Itoa(i))
			err := gp.PutFunc(p.ctx, key, data, func(o client.Outcome) {
				if o.Err != nil {
					p.fail(0, "go producer")
					return
				}
				a := invariant.Acked{Seq: stream.SeqNum{Shard: stream.ShardID(o.Shard), Pos: o.Position}, Key: []byte(key), Data: data, Attempts: o.Attempts}
				p.mu.Lock()
				p.acks = append(p.acks, ack{Acked: a, at: time.Now()}) // node 0: routed by the client
				p.mu.Unlock()
			})
			if err != nil {
				return // the context ended while Put waited for room
			}
			if i%10 == 9 {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
}

// resumedOpen waits until every shard open now (as a running node lists them) has an
// acknowledgement after since, and returns how long after since the last of those first
// acknowledgements came.
func (c *cluster) resumedOpen(name string, p *producer, since time.Time) time.Duration {
	c.t.Helper()
	var open []invariant.Range
	c.eventually("ListShards", func() error {
		var err error
		open, err = c.up()[0].openShards(name)
		return err
	})
	var took time.Duration
	c.eventually(fmt.Sprintf("writes to all %d open shards resume", len(open)), func() error {
		first := map[shardmap.ShardID]time.Time{}
		for _, a := range p.acksAfter(since, 0) {
			if f, ok := first[a.Seq.Shard]; !ok || a.at.Before(f) {
				first[a.Seq.Shard] = a.at
			}
		}
		took = 0
		for _, r := range open {
			f, ok := first[r.Shard]
			if !ok {
				return fmt.Errorf("%s acknowledged no write since", r.Shard)
			}
			took = max(took, f.Sub(since))
		}
		return nil
	})
	return took
}

// addNode starts a new node with an empty data directory and waits until the controller
// places a replica on it (it balances replicas onto the least loaded node).
func (c *cluster) addNode(name string) *node {
	c.t.Helper()
	nd := c.newNode()
	nd.start()
	c.eventually(fmt.Sprintf("a replica placed on the new node %d", nd.id), func() error {
		for _, p := range c.placement(name) {
			if slices.Contains(p.Replicas, uint64(nd.id)) {
				return nil
			}
		}
		return errors.New("no placement record lists it")
	})
	return nd
}

// verb runs `sluice cluster VERB NODE` against the cluster's etcd.
func (c *cluster) verb(verb string, nd *node) {
	c.t.Helper()
	out, err := exec.Command(sluiceBin, "cluster", verb, strconv.Itoa(nd.id), "--cluster-etcd", c.etcd.Endpoints()[0]).CombinedOutput()
	if err != nil {
		c.t.Fatalf("sluice cluster %s %d: %v: %s", verb, nd.id, err, out)
	}
}

// drain drains the node with `sluice cluster drain` and waits until no placement record of
// the stream lists it, as a replica or as the preferred leader.
func (c *cluster) drain(name string, nd *node) {
	c.t.Helper()
	c.verb("drain", nd)
	c.eventually(fmt.Sprintf("node %d drained of %s's replicas", nd.id, name), func() error {
		for id, p := range c.placement(name) {
			if slices.Contains(p.Replicas, uint64(nd.id)) || p.Leader == uint64(nd.id) {
				return fmt.Errorf("%s still placed on %v, preferred leader %d", id, p.Replicas, p.Leader)
			}
		}
		return nil
	})
}

// reshard changes the stream's open shards through the AWS SDK on a running node, by one of
// UpdateShardCount (halving or doubling), SplitShard (a shard at the middle of its range) or
// MergeShards (two adjacent shards), keeping between 2 and 8 open shards, and waits until
// every running node lists the new open shards. It returns what it did.
func (c *cluster) reshard(name string, rng *rand.Rand) string {
	c.t.Helper()
	ctx := context.Background()
	via := c.up()[rng.IntN(len(c.up()))]
	var open []invariant.Range
	c.eventually("ListShards", func() error {
		var err error
		open, err = via.openShards(name)
		return err
	})
	slices.SortFunc(open, func(a, b invariant.Range) int { return a.Low.Compare(b.Low) })
	n := len(open)
	var what string
	var call func() error
	switch op := rng.IntN(3); {
	case op == 0:
		target := n * 2
		if n > 4 {
			target = (n + 1) / 2
		}
		what = fmt.Sprintf("UpdateShardCount %d → %d", n, target)
		call = func() error {
			_, err := via.kc.UpdateShardCount(ctx, &kinesis.UpdateShardCountInput{StreamName: aws.String(name),
				TargetShardCount: aws.Int32(int32(target)), ScalingType: types.ScalingTypeUniformScaling})
			return err
		}
	case op == 1 && n < 8 || n <= 2:
		r := open[rng.IntN(n)]
		mid := midKey(r.Low, r.High)
		what = fmt.Sprintf("SplitShard %s at %s", r.Shard, mid)
		call = func() error {
			_, err := via.kc.SplitShard(ctx, &kinesis.SplitShardInput{StreamName: aws.String(name),
				ShardToSplit: aws.String(r.Shard.String()), NewStartingHashKey: aws.String(mid.String())})
			return err
		}
	default:
		i := rng.IntN(n - 1)
		what = fmt.Sprintf("MergeShards %s and %s", open[i].Shard, open[i+1].Shard)
		call = func() error {
			_, err := via.kc.MergeShards(ctx, &kinesis.MergeShardsInput{StreamName: aws.String(name),
				ShardToMerge: aws.String(open[i].Shard.String()), AdjacentShardToMerge: aws.String(open[i+1].Shard.String())})
			return err
		}
	}
	// ResourceInUse: the stream is still updating from the previous reshard; a transport
	// error may have been a reshard that committed while its answer was lost, so the
	// ListShards below, not the answer, decides what happened.
	before := len(open)
	c.eventually(what+" through node "+strconv.Itoa(via.id), func() error {
		err := call()
		var ae interface{ ErrorCode() string }
		if errors.As(err, &ae) && ae.ErrorCode() == "InvalidArgumentException" {
			c.t.Fatalf("%s: %v", what, err)
		}
		if err != nil {
			if now, lerr := via.openShards(name); lerr == nil && !sameRanges(now, open) {
				return nil
			}
		}
		return err
	})
	for _, nd := range c.up() {
		c.eventually(fmt.Sprintf("node %d lists the open shards after %s", nd.id, what), func() error {
			now, err := nd.openShards(name)
			if err == nil && sameRanges(now, open) {
				err = fmt.Errorf("still the %d open shards from before", before)
			}
			return err
		})
	}
	return what
}

// sameRanges reports whether two lists of open shards name the same shards.
func sameRanges(a, b []invariant.Range) bool {
	ids := func(rs []invariant.Range) []shardmap.ShardID {
		out := make([]shardmap.ShardID, len(rs))
		for i, r := range rs {
			out[i] = r.Shard
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(ids(a), ids(b))
}

// midKey is the hash key halfway between lo and hi (inclusive ends), above lo.
func midKey(lo, hi shardmap.Key) shardmap.Key {
	a, _ := new(big.Int).SetString(lo.String(), 10)
	b, _ := new(big.Int).SetString(hi.String(), 10)
	m := a.Add(a, b)
	m.Rsh(m, 1)
	m.Add(m, big.NewInt(1))
	k, err := shardmap.ParseKey(m.String())
	if err != nil {
		panic("BUG: the middle of two hash keys is not one: " + err.Error())
	}
	return k
}

// metricLabel matches one label of a Prometheus text exposition line.
var metricLabel = regexp.MustCompile(`(\w+)="([^"]*)"`)

// members returns, per shard of the stream, the node ids of its Raft group's members as its
// leader reports them on /metrics (itself, and every member it replicates to; 0 for a member
// whose Raft id no node registers).
func (c *cluster) members(name string) (map[shardmap.ShardID][]uint64, error) {
	out := map[shardmap.ShardID][]uint64{}
	for _, nd := range c.up() {
		res, err := http.Get("http://" + nd.addr + "/metrics")
		if err != nil {
			return nil, err
		}
		leads := map[shardmap.ShardID]bool{}
		peers := map[shardmap.ShardID][]uint64{}
		lines := bufio.NewScanner(res.Body)
		lines.Buffer(nil, 1<<20)
		for lines.Scan() {
			line := lines.Text()
			metric, rest, ok := strings.Cut(line, "{")
			if !ok || metric != "sluice_raft_is_leader" && metric != "sluice_raft_replica_lag_entries" {
				continue
			}
			labels := map[string]string{}
			for _, m := range metricLabel.FindAllStringSubmatch(rest, -1) {
				labels[m[1]] = m[2]
			}
			id, err := shardmap.ParseShardID(labels["shard"])
			if labels["stream"] != name || err != nil {
				continue
			}
			switch metric {
			case "sluice_raft_is_leader":
				leads[id] = strings.HasSuffix(line, " 1")
			default:
				peer, err := strconv.ParseUint(labels["peer"], 10, 64)
				if err == nil {
					peers[id] = append(peers[id], peer)
				}
			}
		}
		res.Body.Close()
		if err := lines.Err(); err != nil {
			return nil, err
		}
		for id, l := range leads {
			if l {
				ms := append(peers[id], uint64(nd.id))
				slices.Sort(ms)
				out[id] = ms
			}
		}
	}
	return out, nil
}

// settled returns nil when every shard of the stream is led, and its leader's members are
// exactly its placement record's replicas: no move under way, no member left over.
func (c *cluster) settled(name string) error {
	ms, err := c.members(name)
	if err != nil {
		return err
	}
	for id, p := range c.placement(name) {
		want := slices.Sorted(slices.Values(p.Replicas))
		if !slices.Equal(ms[id], want) {
			return fmt.Errorf("%s: members %v, placed on %v", id, ms[id], want)
		}
	}
	return nil
}
