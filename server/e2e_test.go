package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/stream"
)

// startServer runs a server on a loopback port over an engine in dir and returns a real AWS
// SDK client pointed at it.
func startServer(t *testing.T, dir string) (*kinesis.Client, func()) {
	t.Helper()
	eng, err := stream.Open(stream.Options{Dir: dir, Durability: segment.Durability{Mode: segment.Sync},
		SegmentSize: segment.MinSegmentSize, Limits: stream.Limits{Factor: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(eng, Options{})
	go srv.Serve(ln)
	client := kinesis.New(kinesis.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String("http://" + ln.Addr().String()),
		Credentials:      aws.AnonymousCredentials{},
		RetryMaxAttempts: 1,
	})
	return client, func() {
		srv.Shutdown()
		eng.Close()
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestSDKStreamLifecycle(t *testing.T) {
	dir := t.TempDir()
	kc, stop := startServer(t, dir)
	c := ctx(t)
	if _, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: aws.String("orders"), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	var inUse *types.ResourceInUseException
	if _, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: aws.String("orders"), ShardCount: aws.Int32(2)}); !errors.As(err, &inUse) {
		t.Fatalf("second CreateStream: %v", err)
	}
	var notFound *types.ResourceNotFoundException
	if _, err := kc.DescribeStream(c, &kinesis.DescribeStreamInput{StreamName: aws.String("nope")}); !errors.As(err, &notFound) {
		t.Fatalf("DescribeStream of a missing stream: %v", err)
	}
	d, err := kc.DescribeStream(c, &kinesis.DescribeStreamInput{StreamName: aws.String("orders")})
	if err != nil || d.StreamDescription.StreamStatus != types.StreamStatusActive || len(d.StreamDescription.Shards) != 2 {
		t.Fatalf("DescribeStream: %+v %v", d, err)
	}
	arn := d.StreamDescription.StreamARN
	one, err := kc.PutRecord(c, &kinesis.PutRecordInput{StreamARN: arn, PartitionKey: aws.String("alice"), Data: []byte("first")})
	if err != nil {
		t.Fatal(err)
	}
	var entries []types.PutRecordsRequestEntry
	for i := range 20 {
		entries = append(entries, types.PutRecordsRequestEntry{PartitionKey: aws.String(fmt.Sprintf("user-%d", i)), Data: []byte(fmt.Sprintf("r%d", i))})
	}
	many, err := kc.PutRecords(c, &kinesis.PutRecordsInput{StreamName: aws.String("orders"), Records: entries})
	if err != nil || aws.ToInt32(many.FailedRecordCount) != 0 || len(many.Records) != 20 {
		t.Fatalf("PutRecords: %+v %v", many, err)
	}
	// Read every shard from TRIM_HORIZON and find all 21 records with their numbers.
	want := map[string]string{aws.ToString(one.SequenceNumber): "first"}
	for i, r := range many.Records {
		want[aws.ToString(r.SequenceNumber)] = fmt.Sprintf("r%d", i)
	}
	readAll := func(kc *kinesis.Client) map[string]string {
		got := map[string]string{}
		shards, err := kc.ListShards(c, &kinesis.ListShardsInput{StreamName: aws.String("orders")})
		if err != nil {
			t.Fatal(err)
		}
		for _, sh := range shards.Shards {
			it, err := kc.GetShardIterator(c, &kinesis.GetShardIteratorInput{StreamName: aws.String("orders"), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
			if err != nil {
				t.Fatal(err)
			}
			next := it.ShardIterator
			for range 100 {
				r, err := kc.GetRecords(c, &kinesis.GetRecordsInput{ShardIterator: next})
				if err != nil {
					t.Fatal(err)
				}
				for _, rec := range r.Records {
					got[aws.ToString(rec.SequenceNumber)] = string(rec.Data)
					if rec.ApproximateArrivalTimestamp == nil || rec.ApproximateArrivalTimestamp.IsZero() {
						t.Fatal("record without an arrival time")
					}
				}
				if len(r.Records) == 0 || r.NextShardIterator == nil {
					break
				}
				next = r.NextShardIterator
			}
		}
		return got
	}
	got := readAll(kc)
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for seq, data := range want {
		if got[seq] != data {
			t.Fatalf("record %s: %q, want %q", seq, got[seq], data)
		}
	}
	// Data survives a restart of the server.
	stop()
	kc, stop = startServer(t, dir)
	defer stop()
	if got := readAll(kc); len(got) != len(want) {
		t.Fatalf("after restart: %d records, want %d", len(got), len(want))
	}
	// Resharding lineage.
	if _, err := kc.SplitShard(c, &kinesis.SplitShardInput{StreamName: aws.String("orders"), ShardToSplit: aws.String("shardId-000000000000"),
		NewStartingHashKey: aws.String("85070591730234615865843651857942052864")}); err != nil {
		t.Fatal(err)
	}
	shards, err := kc.ListShards(c, &kinesis.ListShardsInput{StreamName: aws.String("orders")})
	if err != nil || len(shards.Shards) != 4 || aws.ToString(shards.Shards[2].ParentShardId) != "shardId-000000000000" {
		t.Fatalf("ListShards after a split: %+v %v", shards, err)
	}
	if shards.Shards[0].SequenceNumberRange.EndingSequenceNumber == nil {
		t.Fatal("the split parent has no EndingSequenceNumber")
	}
	// Errors come back typed.
	var invalid *types.InvalidArgumentException
	if _, err := kc.GetShardIterator(c, &kinesis.GetShardIteratorInput{StreamName: aws.String("orders"), ShardId: aws.String("shardId-000000000001"),
		ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, StartingSequenceNumber: one.SequenceNumber}); !errors.As(err, &invalid) && aws.ToString(one.ShardId) != "shardId-000000000001" {
		t.Fatalf("a sequence number of another shard: %v", err)
	}
	if _, err := kc.GetRecords(c, &kinesis.GetRecordsInput{ShardIterator: aws.String("not-an-iterator")}); !errors.As(err, &invalid) {
		t.Fatalf("a forged iterator: %v", err)
	}
	if _, err := kc.IncreaseStreamRetentionPeriod(c, &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: aws.String("orders"), RetentionPeriodHours: aws.Int32(9000)}); !errors.As(err, &invalid) {
		t.Fatalf("retention beyond a year: %v", err)
	}
	if _, err := kc.DeleteStream(c, &kinesis.DeleteStreamInput{StreamName: aws.String("orders")}); err != nil {
		t.Fatal(err)
	}
	list, err := kc.ListStreams(c, &kinesis.ListStreamsInput{})
	if err != nil || len(list.StreamNames) != 0 {
		t.Fatalf("ListStreams after delete: %+v %v", list, err)
	}
}

func TestSDKConsumersAndTags(t *testing.T) {
	kc, stop := startServer(t, t.TempDir())
	defer stop()
	c := ctx(t)
	if _, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	sum, err := kc.DescribeStreamSummary(c, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	if err != nil || aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount) != 1 {
		t.Fatalf("summary: %+v %v", sum, err)
	}
	arn := sum.StreamDescriptionSummary.StreamARN
	reg, err := kc.RegisterStreamConsumer(c, &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("app")})
	if err != nil || reg.Consumer.ConsumerStatus != types.ConsumerStatusCreating {
		t.Fatalf("register: %+v %v", reg, err)
	}
	desc, err := kc.DescribeStreamConsumer(c, &kinesis.DescribeStreamConsumerInput{ConsumerARN: reg.Consumer.ConsumerARN})
	if err != nil || desc.ConsumerDescription.ConsumerStatus != types.ConsumerStatusActive {
		t.Fatalf("describe consumer: %+v %v", desc, err)
	}
	if _, err := kc.AddTagsToStream(c, &kinesis.AddTagsToStreamInput{StreamName: aws.String("s"), Tags: map[string]string{"team": "data"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := kc.ListTagsForStream(c, &kinesis.ListTagsForStreamInput{StreamName: aws.String("s")})
	if err != nil || len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Value) != "data" {
		t.Fatalf("tags: %+v %v", tags, err)
	}
	var limit *types.LimitExceededException
	if _, err := kc.UpdateShardCount(c, &kinesis.UpdateShardCountInput{StreamName: aws.String("s"), TargetShardCount: aws.Int32(3), ScalingType: types.ScalingTypeUniformScaling}); !errors.As(err, &limit) {
		t.Fatalf("tripling the shards: %v", err)
	}
	if _, err := kc.UpdateShardCount(c, &kinesis.UpdateShardCountInput{StreamName: aws.String("s"), TargetShardCount: aws.Int32(2), ScalingType: types.ScalingTypeUniformScaling}); err != nil {
		t.Fatal(err)
	}
	res, err := kc.PutRecord(c, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: bytes.Repeat([]byte("x"), 10)})
	if err != nil || aws.ToString(res.ShardId) == "shardId-000000000000" {
		t.Fatalf("put after scaling went to %v: %v", aws.ToString(res.ShardId), err)
	}
}
