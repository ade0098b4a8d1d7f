package server

import (
	"errors"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

func TestRateLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	r := newRateLimiter(stream.Limits{Factor: 1}, "123456789012", func() time.Time { return now })
	for i := range 5 {
		if err := r.allow("CreateStream"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	var ae apiError
	if err := r.allow("CreateStream"); !errors.As(err, &ae) || ae.name() != "LimitExceededException" {
		t.Fatalf("sixth call in a second: %v", err)
	}
	if err := r.allow("DeleteStream"); err != nil {
		t.Fatalf("another operation has its own quota: %v", err)
	}
	if err := r.allow("PutRecords"); err != nil {
		t.Fatalf("data-plane operations are the engine's: %v", err)
	}
	now = now.Add(200 * time.Millisecond) // one call's worth
	if err := r.allow("CreateStream"); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	if err := r.allow("CreateStream"); err == nil {
		t.Fatal("refilled more than the elapsed time allows")
	}

	// GetShardIterator: per shard, keyed by the parsed id, so two spellings of one shard
	// share a bucket; over it, ProvisionedThroughputExceededException.
	for i, spelling := range []string{"shardId-000000000001", "shardId-1", "shardId-01", "shardId-000000000001", "shardId-1"} {
		id, err := shardmap.ParseShardID(spelling)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.allowShardIterator("s", id); err != nil {
			t.Fatalf("GetShardIterator %d (%s): %v", i, spelling, err)
		}
	}
	if err := r.allowShardIterator("s", 1); !errors.As(err, &ae) || ae.name() != "ProvisionedThroughputExceededException" ||
		ae.msg != "Rate exceeded for shard shardId-000000000001 in stream s under account 123456789012." {
		t.Fatalf("GetShardIterator over its per-shard quota: %v", err)
	}
	if err := r.allowShardIterator("s", 2); err != nil {
		t.Fatalf("another shard has its own quota: %v", err)
	}
	if err := r.allowShardIterator("t", 1); err != nil {
		t.Fatalf("a shard of another stream has its own quota: %v", err)
	}

	scaled := newRateLimiter(stream.Limits{Factor: 3}, "123456789012", func() time.Time { return now })
	for i := range 15 {
		if err := scaled.allow("CreateStream"); err != nil {
			t.Fatalf("scaled:3, call %d: %v", i, err)
		}
	}
	if scaled.allow("CreateStream") == nil {
		t.Fatal("scaled:3 allowed a sixteenth call")
	}
	low := newRateLimiter(stream.Limits{Factor: 0.01}, "123456789012", func() time.Time { return now })
	for i := range 5 {
		if err := low.allow("CreateStream"); err != nil {
			t.Fatalf("scaled:0.01 keeps the kinesis quota, call %d: %v", i, err)
		}
	}
	off := newRateLimiter(stream.Limits{Off: true, Factor: 1}, "123456789012", time.Now)
	for range 100 {
		if err := off.allow("CreateStream"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRateLimiterScopes checks that each quota is counted where Kinesis counts it: a
// per-stream one per stream (ListStreamConsumers, 5/s per stream), a per-account one across
// streams (DescribeStream, 10/s per account), with messages that say which.
func TestRateLimiterScopes(t *testing.T) {
	now := time.Unix(1000, 0)
	r := newRateLimiter(stream.Limits{Factor: 1}, "123456789012", func() time.Time { return now })
	var ae apiError
	for i := range 5 {
		if err := r.allowStream("ListStreamConsumers", "a"); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if err := r.allowStream("ListStreamConsumers", "a"); !errors.As(err, &ae) || ae.name() != "LimitExceededException" ||
		ae.msg != "Rate exceeded for ListStreamConsumers on stream a under account 123456789012 (5 calls per second per stream)." {
		t.Fatalf("sixth call on one stream: %v", err)
	}
	if err := r.allowStream("ListStreamConsumers", "b"); err != nil {
		t.Fatalf("another stream has its own quota: %v", err)
	}
	if err := r.allow("ListStreamConsumers"); err != nil {
		t.Fatalf("a per-stream quota is not counted per account: %v", err)
	}
	for i := range 10 {
		if err := r.allow("DescribeStream"); err != nil {
			t.Fatalf("DescribeStream %d: %v", i, err)
		}
	}
	if err := r.allow("DescribeStream"); !errors.As(err, &ae) ||
		ae.msg != "Rate exceeded for DescribeStream under account 123456789012 (10 calls per second per account)." {
		t.Fatalf("eleventh DescribeStream: %v", err)
	}
	if err := r.allowStream("DescribeStream", "a"); err != nil {
		t.Fatalf("a per-account quota is not counted per stream: %v", err)
	}
	for op, q := range controlPlane {
		if q.tps <= 0 {
			t.Errorf("%s: quota %v", op, q.tps)
		}
		if _, ok := operations[op]; !ok {
			t.Errorf("%s is not an operation", op)
		}
	}
}

// TestConsumerQuotaStream: a consumer operation called by ConsumerARN alone counts against
// the quota of the stream the ARN names, as one called by StreamARN and ConsumerName does.
func TestConsumerQuotaStream(t *testing.T) {
	for _, tc := range []struct {
		ref  consumerRef
		name string
		want string
	}{
		{consumerRef{StreamARN: "arn:aws:kinesis:us-east-1:123456789012:stream/s", ConsumerName: "c"}, "s", "s"},
		{consumerRef{ConsumerARN: "arn:aws:kinesis:us-east-1:123456789012:stream/orders/consumer/app:1700000000"}, "", "orders"},
		{consumerRef{ConsumerARN: "garbage"}, "", "garbage"},
	} {
		if got := tc.ref.quotaStream(tc.name); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.ref, got, tc.want)
		}
	}
}
