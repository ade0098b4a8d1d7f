package server

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// TestSDKSubscribeToShard subscribes through the AWS SDK for Go v2 (an event stream over
// HTTP/1.1) and checks that records come as the initial ones and then as pushed ones.
func TestSDKSubscribeToShard(t *testing.T) {
	kc, stop := startServer(t, t.TempDir())
	defer stop()
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
				if _, err := kc.PutRecord(c, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("pushed")}); err != nil {
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
