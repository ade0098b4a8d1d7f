package server

import (
	"errors"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/stream"
)

func TestRateLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	r := newRateLimiter(stream.Limits{Factor: 1}, func() time.Time { return now })
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

	for i := range getShardIteratorTPS {
		if err := r.allowShardIterator("s", "shardId-000000000000"); err != nil {
			t.Fatalf("GetShardIterator %d: %v", i, err)
		}
	}
	if err := r.allowShardIterator("s", "shardId-000000000000"); err == nil {
		t.Fatal("GetShardIterator over its per-shard quota")
	}
	if err := r.allowShardIterator("s", "shardId-000000000001"); err != nil {
		t.Fatalf("another shard has its own quota: %v", err)
	}

	scaled := newRateLimiter(stream.Limits{Factor: 3}, func() time.Time { return now })
	for i := range 15 {
		if err := scaled.allow("CreateStream"); err != nil {
			t.Fatalf("scaled:3, call %d: %v", i, err)
		}
	}
	if scaled.allow("CreateStream") == nil {
		t.Fatal("scaled:3 allowed a sixteenth call")
	}
	low := newRateLimiter(stream.Limits{Factor: 0.01}, func() time.Time { return now })
	for i := range 5 {
		if err := low.allow("CreateStream"); err != nil {
			t.Fatalf("scaled:0.01 keeps the kinesis quota, call %d: %v", i, err)
		}
	}
	off := newRateLimiter(stream.Limits{Off: true, Factor: 1}, time.Now)
	for range 100 {
		if err := off.allow("CreateStream"); err != nil {
			t.Fatal(err)
		}
	}
}
