//go:build linux

package faults

import (
	"context"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-streams/sluice/cluster/invariant"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// TestReshardFiveNodes is "resharding under concurrent producers loses and duplicates
// nothing" against five nodes with three replicas per shard: producers write through every
// node while a SplitShard, a MergeShards and an UpdateShardCount each run through a node
// that holds no replica of (one of) the shards it closes, so that the shards' leaders, on
// other nodes, keep taking records until the seal reaches them. Then every acknowledged
// record is read back exactly once, at its sequence number, by walking each shard from its
// start to its end through the Kinesis API; no node returns a record of a closed shard after
// its EndingSequenceNumber; and the invariant checker runs over the replicas.
func TestReshardFiveNodes(t *testing.T) {
	const name = "reshard"
	c := startCluster(t, 5)
	c.createStream(name, 2)
	p := c.produce(name, 10)
	c.resumed(p, 2, time.Now())

	// Split, merge the split's children, then scale to three shards: each through the
	// node holding the fewest replicas of the shards it closes.
	c.reshardStep(name, p, "split", func(open []types.Shard, via *node) error {
		r, err := rangeOf(open[0])
		if err != nil {
			return err
		}
		_, err = via.kc.SplitShard(context.Background(), &kinesis.SplitShardInput{StreamName: aws.String(name),
			ShardToSplit: open[0].ShardId, NewStartingHashKey: aws.String(midKey(r.Low, r.High).String())})
		return err
	}, func(open []types.Shard) []types.Shard { return open[:1] })
	c.reshardStep(name, p, "merge", func(open []types.Shard, via *node) error {
		a, b := adjacent(open)
		_, err := via.kc.MergeShards(context.Background(), &kinesis.MergeShardsInput{StreamName: aws.String(name),
			ShardToMerge: a.ShardId, AdjacentShardToMerge: b.ShardId})
		return err
	}, func(open []types.Shard) []types.Shard { a, b := adjacent(open); return []types.Shard{a, b} })
	c.reshardStep(name, p, "update shard count", func(open []types.Shard, via *node) error {
		_, err := via.kc.UpdateShardCount(context.Background(), &kinesis.UpdateShardCountInput{StreamName: aws.String(name),
			TargetShardCount: aws.Int32(3), ScalingType: types.ScalingTypeUniformScaling})
		return err
	}, func(open []types.Shard) []types.Shard { return open })
	p.stop()
	acked := p.all()
	t.Logf("%d records acknowledged; producer failures: %s", len(acked), p.failureSummary())

	all := c.readBack(name, acked)
	closed := 0
	for _, s := range all {
		if s.SequenceNumberRange.EndingSequenceNumber != nil {
			closed++
		}
	}
	t.Logf("%d shards, %d closed; every node read every acknowledged record once, nothing after an ending", len(all), closed)
	if closed < 4 {
		t.Fatalf("%d shards closed: the resharding did not happen as planned", closed)
	}
	c.finish(name, p)
}

// readBack walks every shard of the stream, open and closed, through every running node and
// fails the test unless each reads every acknowledged record once, at its sequence number,
// and nothing after a closed shard's EndingSequenceNumber (walkShard). It returns the shards
// as node 1 lists them.
func (c *cluster) readBack(name string, acked []invariant.Acked) []types.Shard {
	c.t.Helper()
	all := c.allShards(name)
	want := map[string]string{} // data → sequence number acknowledged
	last := map[string]uint64{} // shard id → position of its last acknowledged record
	for _, a := range acked {
		want[string(a.Data)] = a.Seq.String()
		id := a.Seq.Shard.String()
		last[id] = max(last[id], a.Seq.Pos)
	}
	for _, nd := range c.up() {
		got := map[string]string{} // data → sequence number read
		waited := 0
		for _, s := range all {
			c.eventually(fmt.Sprintf("node %d reads %s to its end", nd.id, aws.ToString(s.ShardId)), func() error {
				n, err := nd.walkShard(name, s, last[aws.ToString(s.ShardId)], got)
				waited += n
				return err
			})
		}
		if waited > 0 {
			c.t.Logf("node %d answered empty pages before its replicas caught up: %d", nd.id, waited)
		}
		for data, seq := range want {
			if got[data] != seq {
				c.t.Fatalf("node %d: record %q acknowledged as %s, read as %q", nd.id, data, seq, got[data])
			}
		}
	}
	return all
}

// reshardStep runs one resharding (do, through the node holding the fewest replicas of the
// shards parents picks among the open ones), waits until every node lists the new open
// shards, and until the producers were acknowledged more records on them.
func (c *cluster) reshardStep(name string, p *producer, what string, do func(open []types.Shard, via *node) error, parents func([]types.Shard) []types.Shard) {
	c.t.Helper()
	open := c.openList(name)
	closing := parents(open)
	via := c.nodes[0]
	for _, nd := range c.nodes {
		if nd.replicasOf(name, closing) < via.replicasOf(name, closing) {
			via = nd
		}
	}
	var ids []string
	for _, s := range closing {
		ids = append(ids, aws.ToString(s.ShardId))
	}
	c.t.Logf("%s of %v through node %d, which holds %d of their replicas", what, ids, via.id, via.replicasOf(name, closing))
	if err := do(open, via); err != nil {
		c.t.Fatalf("%s through node %d: %v", what, via.id, err)
	}
	var after []types.Shard
	c.eventually(fmt.Sprintf("every node lists the shards after the %s", what), func() error {
		after = c.openList(name)
		for _, nd := range c.nodes {
			open, err := nd.openShards(name)
			if err != nil {
				return err
			}
			if len(open) != len(after) {
				return fmt.Errorf("node %d lists %d open shards, node 1 %d", nd.id, len(open), len(after))
			}
		}
		for _, s := range after {
			if slices.ContainsFunc(closing, func(o types.Shard) bool { return aws.ToString(o.ShardId) == aws.ToString(s.ShardId) }) {
				return fmt.Errorf("%s still open", aws.ToString(s.ShardId))
			}
		}
		return nil
	})
	at := p.count()
	c.eventually(fmt.Sprintf("records acknowledged after the %s", what), func() error {
		if n := p.count(); n < at+300 {
			return fmt.Errorf("%d records since", n-at)
		}
		return nil
	})
}

// openList is node 1's open shards in hash key order.
func (c *cluster) openList(name string) []types.Shard {
	var open []types.Shard
	for _, s := range c.allShards(name) {
		if s.SequenceNumberRange.EndingSequenceNumber == nil {
			open = append(open, s)
		}
	}
	slices.SortFunc(open, func(a, b types.Shard) int {
		return keyOf(a.HashKeyRange.StartingHashKey).Cmp(keyOf(b.HashKeyRange.StartingHashKey))
	})
	return open
}

// allShards is every shard of the stream, open and closed, as the first running node lists
// them.
func (c *cluster) allShards(name string) []types.Shard {
	c.t.Helper()
	var out []types.Shard
	c.eventually("ListShards", func() error {
		out = out[:0]
		in := &kinesis.ListShardsInput{StreamName: aws.String(name)}
		for {
			res, err := c.up()[0].kc.ListShards(context.Background(), in)
			if err != nil {
				return err
			}
			out = append(out, res.Shards...)
			if res.NextToken == nil {
				return nil
			}
			in = &kinesis.ListShardsInput{NextToken: res.NextToken}
		}
	})
	return out
}

// replicasOf counts the shards of list whose replica the node's data directory holds.
func (nd *node) replicasOf(name string, list []types.Shard) int {
	n := 0
	for _, s := range list {
		id, err := shardmap.ParseShardID(aws.ToString(s.ShardId))
		if err != nil {
			continue
		}
		dirs, _ := filepath.Glob(filepath.Join(nd.dataDir, "streams", name+"@*", "shard-"+strconv.FormatUint(uint64(id), 10)))
		for _, d := range dirs {
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				n++
			}
		}
	}
	return n
}

// walkShard reads shard s through the node from its start: a closed shard to its end (no
// next iterator), an open one until caught up past last (the position of its last
// acknowledged record). Every record goes into got (data → sequence number); a record read
// twice, or one of a closed shard after its EndingSequenceNumber, is an error. A closed
// shard is read once more after its ending: nothing may come.
//
// A replica that has not caught up yet (one just healed from a cut) answers an empty page
// with an iterator at the same position, as Kinesis may: the walk follows that iterator, as
// a consumer would, for at most patience. It never starts again from the shard's start
// meanwhile, so an iterator that moved past a record it did not return leaves that record
// unread and fails the test. waited is how many such empty pages it followed.
func (nd *node) walkShard(name string, s types.Shard, last uint64, got map[string]string) (waited int, err error) {
	ctx := context.Background()
	ending := aws.ToString(s.SequenceNumberRange.EndingSequenceNumber)
	it, err := nd.kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: s.ShardId,
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		return waited, err
	}
	read := map[string]string{}
	var at uint64 // position of the last record read, 0 before the first
	deadline := time.Now().Add(patience)
	iter := it.ShardIterator
	for iter != nil {
		res, err := nd.kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			return waited, err
		}
		for _, r := range res.Records {
			seq := aws.ToString(r.SequenceNumber)
			if ending != "" && posOf(ending) < posOf(seq) {
				return waited, fmt.Errorf("closed shard %s returned %s after its ending %s", aws.ToString(s.ShardId), seq, ending)
			}
			if prev, dup := read[string(r.Data)]; dup || got[string(r.Data)] != "" {
				return waited, fmt.Errorf("record %q read twice (%s, %s%s)", r.Data, prev, got[string(r.Data)], seq)
			}
			read[string(r.Data)] = seq
			at = max(at, posOf(seq))
		}
		if len(res.Records) == 0 && res.NextShardIterator != nil {
			if ending == "" && at >= last && aws.ToInt64(res.MillisBehindLatest) == 0 {
				break
			}
			if time.Now().After(deadline) {
				return waited, fmt.Errorf("%s read to position %d, its last acknowledged record is at %d: nothing more for %v",
					aws.ToString(s.ShardId), at, last, patience)
			}
			waited++
			time.Sleep(100 * time.Millisecond) // the replica catching up
		}
		iter = res.NextShardIterator
	}
	if ending != "" {
		after, err := nd.kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: s.ShardId,
			ShardIteratorType: types.ShardIteratorTypeAfterSequenceNumber, StartingSequenceNumber: aws.String(ending)})
		if err != nil {
			return waited, err
		}
		res, err := nd.kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: after.ShardIterator})
		if err != nil {
			return waited, err
		}
		if len(res.Records) > 0 || res.NextShardIterator != nil {
			return waited, fmt.Errorf("closed shard %s: %d records and a next iterator %v after its ending %s", aws.ToString(s.ShardId),
				len(res.Records), res.NextShardIterator != nil, ending)
		}
	}
	for data, seq := range read {
		got[data] = seq
	}
	return waited, nil
}

// adjacent returns the first two open shards (in hash key order) whose ranges touch.
func adjacent(open []types.Shard) (types.Shard, types.Shard) {
	for i := 0; i+1 < len(open); i++ {
		end := keyOf(open[i].HashKeyRange.EndingHashKey)
		if end.Add(end, big.NewInt(1)).Cmp(keyOf(open[i+1].HashKeyRange.StartingHashKey)) == 0 {
			return open[i], open[i+1]
		}
	}
	return open[0], open[0]
}

// endings is the ending position of every closed shard of the stream (from its
// EndingSequenceNumber, as allShards lists them), for the invariant checker.
func (c *cluster) endings(name string) map[shardmap.ShardID]uint64 {
	out := map[shardmap.ShardID]uint64{}
	for _, s := range c.allShards(name) {
		if end := s.SequenceNumberRange.EndingSequenceNumber; end != nil {
			sn, err := stream.ParseSeqNum(*end)
			if err != nil {
				c.t.Fatalf("%s: EndingSequenceNumber %q: %v", aws.ToString(s.ShardId), *end, err)
			}
			out[sn.Shard] = sn.Pos
		}
	}
	return out
}

// posOf is a sequence number's position in its shard (0 if it does not parse).
func posOf(seq string) uint64 {
	sn, err := stream.ParseSeqNum(seq)
	if err != nil {
		return 0
	}
	return sn.Pos
}

// keyOf parses a decimal hash key.
func keyOf(s *string) *big.Int {
	v, ok := new(big.Int).SetString(strings.TrimSpace(aws.ToString(s)), 10)
	if !ok {
		return new(big.Int)
	}
	return v
}
