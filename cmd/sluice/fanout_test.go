package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdk "github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// memBodies hands the SDK's transport request bodies read into memory (see
// server/subscribe_test.go: with the SDK's own bodies an event stream over HTTP/1.1 may lose
// its connection after the first event).
type memBodies struct{ next http.RoundTripper }

func (b memBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		data, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(data))
	}
	return b.next.RoundTrip(req)
}

// closed reports whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func fanoutSDK(n *clusterNode) *sdk.Client {
	return sdk.New(sdk.Options{Region: "us-east-1", BaseEndpoint: aws.String(n.base()), Credentials: aws.AnonymousCredentials{},
		RetryMaxAttempts: 1, HTTPClient: &http.Client{Transport: memBodies{http.DefaultTransport.(*http.Transport).Clone()}}})
}

// subscribeOnce reads one subscription of the shard on node n from after `after` (from
// the trim horizon when empty), handing each record's data to got, until the stream ends,
// fails or stop is closed; it returns the last continuation sequence number.
func subscribeOnce(n *clusterNode, arn, after string, got func(string), stop <-chan struct{}) (string, error) {
	pos := &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}
	if after != "" {
		pos = &types.StartingPosition{Type: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(after)}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, err := fanoutSDK(n).SubscribeToShard(ctx, &sdk.SubscribeToShardInput{ConsumerARN: aws.String(arn),
		ShardId: aws.String("shardId-000000000000"), StartingPosition: pos})
	if err != nil {
		return after, err
	}
	events := out.GetStream()
	defer events.Close()
	for {
		select {
		case ev, ok := <-events.Events():
			if !ok {
				return after, events.Err()
			}
			e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			if !isEvent {
				return after, fmt.Errorf("unexpected event %T", ev)
			}
			for _, r := range e.Value.Records {
				got(string(r.Data))
			}
			if c := aws.ToString(e.Value.ContinuationSequenceNumber); c != "" {
				after = c
			}
		case <-stop:
			return after, nil
		}
	}
}

// TestFanOutAcrossLeaderChanges subscribes to a shard (SubscribeToShard, the AWS SDK for Go
// v2) on three real `sluice serve` processes while records are put throughout: first on
// the shard's leader, which is killed with SIGKILL (the subscriber resumes from its last
// ContinuationSequenceNumber on another node), then on a follower while the new leader is
// stopped with SIGTERM (its leadership transferred). Every acknowledged record is received,
// and no record is received twice.
func TestFanOutAcrossLeaderChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and three servers")
	}
	const name = "fanout"
	etcd, nodes := startClusterArgs(t, name, 1, "--limits", "off")
	var sum struct{ StreamDescriptionSummary struct{ StreamARN string } }
	kinesis(t, nodes[0].base(), "DescribeStreamSummary", map[string]any{"StreamName": name}, &sum)
	var reg struct{ Consumer struct{ ConsumerARN string } }
	kinesis(t, nodes[0].base(), "RegisterStreamConsumer", map[string]any{"StreamARN": sum.StreamDescriptionSummary.StreamARN, "ConsumerName": "app"}, &reg)
	arn := reg.Consumer.ConsumerARN
	leader := func() *clusterNode {
		var l *clusterNode
		waitLong(t, "a leader of the shard", func() bool {
			for _, n := range nodes {
				if len(n.leads()) == 1 {
					l = n
					return true
				}
			}
			return false
		})
		return l
	}

	var mu sync.Mutex
	acked := map[string]bool{}
	seen := map[string]int{}
	up := map[int]bool{1: true, 2: true, 3: true}
	stopPut := make(chan struct{})
	putDone := make(chan struct{})
	go func() { // puts one record at a time through the live nodes in turn
		defer close(putDone)
		for i := 0; !closed(stopPut); i++ {
			n := nodes[i%3]
			mu.Lock()
			live := up[n.id]
			mu.Unlock()
			if !live {
				continue
			}
			data := "record-" + strconv.Itoa(i)
			var out struct{ SequenceNumber string }
			status, _ := kinesisTry(n.base(), "PutRecord", map[string]any{"StreamName": name, "PartitionKey": data, "Data": []byte(data)}, &out)
			if status == 200 {
				mu.Lock()
				acked[data] = true
				mu.Unlock()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	got := func(data string) {
		mu.Lock()
		seen[data]++
		mu.Unlock()
	}
	received := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(seen)
	}
	// subscribe follows the shard through the given nodes in turn, resuming each time from
	// the last continuation, until stop is closed.
	after := ""
	subscribe := func(on []*clusterNode, stop <-chan struct{}) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; !closed(stop); i++ {
				var err error
				if after, err = subscribeOnce(on[i%len(on)], arn, after, got, stop); err != nil {
					var inUse *types.ResourceInUseException
					if !errors.As(err, &inUse) {
						t.Logf("subscription on node %d ended: %v", on[i%len(on)].id, err)
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		}()
		return done
	}

	// 1. Subscribed on the leader, which is killed.
	l1 := leader()
	var others []*clusterNode
	for _, n := range nodes {
		if n != l1 {
			others = append(others, n)
		}
	}
	stop1 := make(chan struct{})
	done1 := subscribe(append([]*clusterNode{l1}, others...), stop1)
	waitLong(t, "records received from the leader", func() bool { return received() >= 100 })
	mu.Lock()
	up[l1.id] = false
	mu.Unlock()
	l1.kill9()
	t.Logf("killed node %d, the shard's leader, under its subscriber", l1.id)
	n := received()
	waitLong(t, "records received after the kill", func() bool { return received() >= n+100 })
	close(stop1)
	<-done1
	startNode(t, l1, etcd)
	mu.Lock()
	up[l1.id] = true
	mu.Unlock()

	// 2. Subscribed on a follower while the leader stops gracefully.
	l2 := leader()
	var follower *clusterNode
	for _, n := range nodes {
		if n != l2 {
			follower = n
		}
	}
	stop2 := make(chan struct{})
	done2 := subscribe([]*clusterNode{follower}, stop2)
	n = received()
	waitLong(t, "records received on the follower", func() bool { return received() >= n+100 })
	mu.Lock()
	up[l2.id] = false
	mu.Unlock()
	l2.stop(t)
	t.Logf("stopped node %d, the shard's leader, with SIGTERM; subscribed on node %d", l2.id, follower.id)
	n = received()
	waitLong(t, "records received after the leader stopped", func() bool { return received() >= n+100 })
	close(stopPut)
	<-putDone
	waitLong(t, "every acknowledged record received", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for d := range acked {
			if seen[d] == 0 {
				return false
			}
		}
		return true
	})
	close(stop2)
	<-done2
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d records acknowledged, %d distinct received", len(acked), len(seen))
	for d, k := range seen {
		if k != 1 {
			t.Errorf("record %s received %d times", d, k)
		}
	}
}
