package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-streams/sluice/stream"
)

// bufferedBodies hands the transport request bodies read into memory, whose Close cannot
// fail. With the SDK's own bodies, about one SubscribeToShard in ten over HTTP/1.1 lost its
// connection right after the first event ("use of closed network connection" on the
// client's side, nothing on the server's): net/http's write loop closes a connection when
// closing a request body fails, and the SDK's body is closed by the SDK too once the
// operation returns, which for an event stream is as soon as the response headers arrive. A
// fast server makes the two race. With buffered bodies, 60 runs of 60 passed.
type bufferedBodies struct{ next http.RoundTripper }

func (b bufferedBodies) RoundTrip(req *http.Request) (*http.Response, error) {
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

// TestSDKSubscribeToShard subscribes through the AWS SDK for Go v2 (an event stream over
// HTTP/1.1) and checks that records come as the initial ones and then as pushed ones.
func TestSDKSubscribeToShard(t *testing.T) {
	kc, stop := startServer(t, t.TempDir())
	defer stop()
	kc = kinesis.New(kc.Options(), func(o *kinesis.Options) {
		o.HTTPClient = &http.Client{Transport: bufferedBodies{http.DefaultTransport.(*http.Transport).Clone()}}
	})
	c := ctx(t)
	if _, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	sum, err := kc.DescribeStreamSummary(c, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := kc.RegisterStreamConsumer(c, &kinesis.RegisterStreamConsumerInput{StreamARN: sum.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String("app")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.PutRecord(c, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	out, err := kc.SubscribeToShard(c, &kinesis.SubscribeToShardInput{ConsumerARN: reg.Consumer.ConsumerARN, ShardId: aws.String("shardId-000000000000"),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}})
	if err != nil {
		t.Fatal(err)
	}
	events := out.GetStream()
	defer events.Close()
	var got []string
	pushed := false
	deadline := time.After(20 * time.Second)
	for len(got) < 2 {
		select {
		case ev, ok := <-events.Events():
			if !ok {
				t.Fatalf("stream ended after %v: %v", got, events.Err())
			}
			e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			if !isEvent {
				t.Fatalf("unexpected event %T", ev)
			}
			if aws.ToString(e.Value.ContinuationSequenceNumber) == "" {
				t.Fatal("event without a ContinuationSequenceNumber")
			}
			for _, r := range e.Value.Records {
				got = append(got, string(r.Data))
			}
			if !pushed && len(got) == 1 {
				pushed = true
				kc2 := kinesis.New(kc.Options())
				if _, err := kc2.PutRecord(c, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("pushed")}); err != nil {
					t.Fatal(err)
				}
			}
		case <-deadline:
			t.Fatalf("no pushed record; got %v", got)
		}
	}
	if got[0] != "before" || got[1] != "pushed" {
		t.Fatalf("records %v", got)
	}
	// A second subscription within 5 seconds is refused with the typed error.
	_, err = kc.SubscribeToShard(c, &kinesis.SubscribeToShardInput{ConsumerARN: reg.Consumer.ConsumerARN, ShardId: aws.String("shardId-000000000000"),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}})
	var inUse *types.ResourceInUseException
	if !errors.As(err, &inUse) {
		t.Fatalf("second subscription: %v", err)
	}
}

// A subscription that arrives after Shutdown has ended the open ones is ended at once.
func TestSubscriptionAfterShutdownEnds(t *testing.T) {
	eng := openTestEngine(t, 1)
	srv := New(eng, Options{})
	cons, err := eng.RegisterConsumer("s", "late")
	if err != nil {
		t.Fatal(err)
	}
	srv.subMu.Lock()
	srv.shuttingDown = true // what Shutdown sets before it closes the open subscriptions
	srv.subMu.Unlock()
	sub, err := eng.Subscribe(stream.SubscribeInput{ConsumerARN: cons.ARN, Shard: 0, Type: stream.Latest})
	if err != nil {
		t.Fatal(err)
	}
	srv.trackSubscription(sub)
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := sub.Next(c); err != io.EOF {
		t.Fatalf("a subscription tracked during shutdown: %v, want io.EOF", err)
	}
	if len(srv.subs) != 0 {
		t.Fatalf("%d subscriptions tracked during shutdown", len(srv.subs))
	}
}

// writeSizes records the size of every write it is given, and the bytes.
type writeSizes struct {
	sizes []int
	got   bytes.Buffer
}

func (w *writeSizes) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	return w.got.Write(p)
}

// TestWriteEventChunks: an event message reaches the body stream whole and in order, in
// writes of at most eventChunk bytes (the body stream's pipe copies and queues each write:
// a whole event per write let a stalled subscription hold several events).
func TestWriteEventChunks(t *testing.T) {
	for _, n := range []int{1, eventChunk - 1, eventChunk, 3*eventChunk + 17, 4 << 20} {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(i * 31)
		}
		var w writeSizes
		if err := writeEvent(bufio.NewWriter(&w), msg); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w.got.Bytes(), msg) {
			t.Fatalf("%d bytes: %d written, or other bytes", n, w.got.Len())
		}
		for _, k := range w.sizes {
			if k > eventChunk {
				t.Fatalf("%d bytes: a write of %d, more than %d", n, k, eventChunk)
			}
		}
	}
}
