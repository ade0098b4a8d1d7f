//go:build linux

package faults

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/cluster/invariant"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// TestFiveNodesServeEveryShard runs five nodes with the default three replicas per shard: each
// shard's replicas are on three of them (its directory exists there and nowhere else), and
// the two others serve it from a replica. Producers write through every node; a
// SubscribeToShard (AWS SDK) and a native subscription (the Go client's enhanced fan-out
// consumer), both through nodes holding no replica of the shards they read, receive every
// acknowledged record, the ones put while they listened included; then every acknowledged
// record is read back through every node with GetRecords (AWS SDK), and through nodes holding
// no replica with native gets; the invariant checker runs over the replicas at the end.
func TestFiveNodesServeEveryShard(t *testing.T) {
	const name = "remote"
	c := startCluster(t, 5)
	c.createStream(name, shards)
	p := c.produce(name, 10)
	c.resumed(p, shards, time.Now())

	holders := c.replicaHolders(name)
	for id := range shardmap.ShardID(shards) {
		if len(holders[id]) != 3 {
			t.Fatalf("%s has replicas on nodes %v: want 3 of the 5", id, holders[id])
		}
	}
	remote := func(id shardmap.ShardID) []*node { // the nodes holding no replica of id
		var out []*node
		for _, nd := range c.nodes {
			if !holders[id][nd.id] {
				out = append(out, nd)
			}
		}
		return out
	}
	// The node holding the fewest replicas reads every shard with a native subscription.
	native := c.nodes[0]
	for _, nd := range c.nodes {
		if nd.holds(holders) < native.holds(holders) {
			native = nd
		}
	}
	t.Logf("replicas by shard: %v; node %d holds %d of %d shards", holders, native.id, native.holds(holders), shards)

	ctx, cancel := context.WithTimeout(context.Background(), 2*patience)
	defer cancel()
	sdkSeen := newSeen()
	sdkShard := shardmap.ShardID(0)
	sdkNode := remote(sdkShard)[0]
	go sdkSubscribe(ctx, t, sdkNode, name, sdkShard, sdkSeen)
	nativeSeen := newSeen()
	go nativeSubscribe(ctx, t, native, name, nativeSeen)

	// Records put while the subscriptions listen.
	at := p.count()
	c.eventually("more records acknowledged", func() error {
		if n := p.count(); n < at+500 {
			return fmt.Errorf("%d records since the subscriptions started", n-at)
		}
		return nil
	})
	p.stop()
	acked := p.all()
	t.Logf("%d records acknowledged; producer failures: %s", len(acked), p.failureSummary())

	c.eventually(fmt.Sprintf("the SDK subscription through node %d receives every record of %s", sdkNode.id, sdkShard), func() error {
		return sdkSeen.missing(acked, func(id shardmap.ShardID) bool { return id == sdkShard })
	})
	c.eventually(fmt.Sprintf("the native subscriptions through node %d receive every record", native.id), func() error {
		return nativeSeen.missing(acked, func(shardmap.ShardID) bool { return true })
	})
	for _, nd := range c.nodes {
		for id := range shardmap.ShardID(shards) {
			seen := newSeen()
			c.eventually(fmt.Sprintf("node %d returns every record of %s to GetRecords", nd.id, id), func() error {
				if err := nd.readAll(name, id, seen); err != nil {
					return err
				}
				return seen.missing(acked, func(s shardmap.ShardID) bool { return s == id })
			})
		}
	}
	for id := range shardmap.ShardID(shards) {
		for _, nd := range remote(id) {
			seen := newSeen()
			c.eventually(fmt.Sprintf("node %d returns every record of %s to native gets", nd.id, id), func() error {
				if err := nd.nativeReadAll(name, id, seen); err != nil {
					return err
				}
				return seen.missing(acked, func(s shardmap.ShardID) bool { return s == id })
			})
		}
	}
	cancel()
	c.finish(name, p)
	if after := c.replicaHolders(name); fmt.Sprint(after) != fmt.Sprint(holders) {
		t.Errorf("replicas by shard at the end %v, at the start %v", after, holders)
	}
}

// replicaHolders returns, per shard of the stream, the ids of the nodes whose data directory
// holds a replica of it.
func (c *cluster) replicaHolders(name string) map[shardmap.ShardID]map[int]bool {
	out := map[shardmap.ShardID]map[int]bool{}
	for _, nd := range c.nodes {
		for id := range shardmap.ShardID(shards) {
			dirs, _ := filepath.Glob(filepath.Join(nd.dataDir, "streams", name+"@*", fmt.Sprintf("shard-%d", id)))
			for _, d := range dirs {
				if fi, err := os.Stat(d); err == nil && fi.IsDir() {
					if out[id] == nil {
						out[id] = map[int]bool{}
					}
					out[id][nd.id] = true
				}
			}
		}
	}
	return out
}

// holds counts the shards the node holds a replica of.
func (nd *node) holds(holders map[shardmap.ShardID]map[int]bool) int {
	n := 0
	for _, h := range holders {
		if h[nd.id] {
			n++
		}
	}
	return n
}

// seen is the records a reader received, by sequence number; a position received twice
// with other data is an error.
type seen struct {
	mu   sync.Mutex
	recs map[string]string // sequence number → data
	err  error
}

func newSeen() *seen { return &seen{recs: map[string]string{}} }

func (s *seen) add(seq string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.recs[seq]; ok && old != string(data) {
		s.err = fmt.Errorf("%s read as %q and as %q", seq, old, data)
	}
	s.recs[seq] = string(data)
}

// missing returns an error naming an acknowledged record of a shard want selects that was not
// received, or received with other data.
func (s *seen) missing(acked []invariant.Acked, want func(shardmap.ShardID) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	n := 0
	for _, a := range acked {
		if !want(a.Seq.Shard) {
			continue
		}
		got, ok := s.recs[a.Seq.String()]
		if !ok {
			return fmt.Errorf("%s not received (%d of the shards' records were)", a.Seq, n)
		}
		if got != string(a.Data) {
			return fmt.Errorf("%s received as %q, acknowledged as %q", a.Seq, got, a.Data)
		}
		n++
	}
	return nil
}

// readAll reads the shard from its start through the node's Kinesis API into seen.
func (nd *node) readAll(name string, id shardmap.ShardID, seen *seen) error {
	ctx := context.Background()
	it, err := nd.kc.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: aws.String(id.String()),
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		return err
	}
	iter := it.ShardIterator
	for iter != nil {
		res, err := nd.kc.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			return err
		}
		for _, r := range res.Records {
			seen.add(aws.ToString(r.SequenceNumber), r.Data)
		}
		if len(res.Records) == 0 || aws.ToInt64(res.MillisBehindLatest) == 0 {
			return nil
		}
		iter = res.NextShardIterator
	}
	return nil
}

// nativeReadAll reads the shard from its start with native gets through the node.
func (nd *node) nativeReadAll(name string, id shardmap.ShardID, seen *seen) error {
	cl, err := client.New(client.Config{Endpoint: "http://" + nd.addr, Unsigned: true})
	if err != nil {
		return err
	}
	defer cl.Close()
	in := client.GetInput{Shard: uint32(id), Start: client.TrimHorizon}
	for {
		out, err := cl.GetRecords(context.Background(), name, in)
		if err != nil {
			return err
		}
		for _, r := range out.Records {
			seen.add(streamSeq(id, r.Position), r.Data)
		}
		done := len(out.Records) == 0 || out.MillisBehind == 0
		in = client.GetInput{Shard: uint32(id), Start: client.AtSequenceNumber, Value: out.Next}
		out.Release()
		if done {
			return nil
		}
	}
}

// sdkSubscribe subscribes to the shard through the node with the AWS SDK, from its start,
// until ctx ends, adding every record received to seen (resubscribing after its
// continuation when a subscription ends).
func sdkSubscribe(ctx context.Context, t *testing.T, nd *node, name string, id shardmap.ShardID, seen *seen) {
	kc := kinesis.New(nd.kc.Options(), func(o *kinesis.Options) {
		o.HTTPClient = &http.Client{Transport: bufferedBodies{http.DefaultTransport}}
	})
	arn := registerConsumer(ctx, t, kc, name, "sdk")
	if arn == "" {
		return
	}
	start := &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}
	for ctx.Err() == nil {
		out, err := kc.SubscribeToShard(ctx, &kinesis.SubscribeToShardInput{ConsumerARN: aws.String(arn), ShardId: aws.String(id.String()), StartingPosition: start})
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		events := out.GetStream()
		for ev := range events.Events() {
			e, ok := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			if !ok {
				continue
			}
			for _, r := range e.Value.Records {
				seen.add(aws.ToString(r.SequenceNumber), r.Data)
			}
			if cont := aws.ToString(e.Value.ContinuationSequenceNumber); cont != "" {
				start = &types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(cont)}
			}
		}
		events.Close()
	}
}

// nativeSubscribe reads every shard with the Go client's enhanced fan-out consumer (native
// subscriptions) through the node until ctx ends.
func nativeSubscribe(ctx context.Context, t *testing.T, nd *node, name string, seen *seen) {
	cl, err := client.New(client.Config{Endpoint: "http://" + nd.addr, Unsigned: true})
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	cons, err := cl.NewConsumer(name, client.ConsumerConfig{ConsumerName: "native", Raw: true})
	if err != nil {
		t.Error(err)
		return
	}
	err = cons.Run(ctx, func(_ context.Context, b *client.Batch) error {
		for _, r := range b.Records {
			seen.add(streamSeq(shardmap.ShardID(b.Shard), r.Position), r.Data)
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		t.Errorf("native consumer through node %d: %v", nd.id, err)
	}
}

// registerConsumer registers a consumer of the stream and returns its ARN ("" after failing
// the test).
func registerConsumer(ctx context.Context, t *testing.T, kc *kinesis.Client, name, consumer string) string {
	sum, err := kc.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	if err != nil {
		t.Error(err)
		return ""
	}
	reg, err := kc.RegisterStreamConsumer(ctx, &kinesis.RegisterStreamConsumerInput{StreamARN: sum.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String(consumer)})
	if err != nil {
		t.Error(err)
		return ""
	}
	return aws.ToString(reg.Consumer.ConsumerARN)
}

// streamSeq is the Kinesis sequence number of a record of shard id at position pos.
func streamSeq(id shardmap.ShardID, pos uint64) string {
	return stream.SeqNum{Shard: id, Pos: pos}.String()
}

// bufferedBodies sends each request's body with its length rather than chunked: the SDK
// streams SubscribeToShard's body.
type bufferedBodies struct{ next http.RoundTripper }

func (b bufferedBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		data, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(data))
		req.ContentLength = int64(len(data))
	}
	return b.next.RoundTrip(req)
}
