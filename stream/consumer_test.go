package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/segment"
)

func TestConsumerRegistry(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, dir, c, "off")
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	reg, err := e.RegisterConsumer("s", "app")
	if err != nil || reg.Status != ConsumerCreating || reg.ARN != "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/app:1700000000" {
		t.Fatalf("register: %+v, %v", reg, err)
	}
	if _, err := e.RegisterConsumer("s", "app"); !errors.Is(err, ErrResourceInUse) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := e.RegisterConsumer("s", "bad name"); !errors.Is(err, ErrValidation) {
		t.Fatalf("bad name: %v", err)
	}
	for i := 1; i < MaxConsumersPerStream; i++ {
		if _, err := e.RegisterConsumer("s", fmt.Sprintf("c%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.RegisterConsumer("s", "one-too-many"); !errors.Is(err, ErrLimitExceeded) {
		t.Fatalf("21st consumer: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = testEngine(t, dir, c, "off")
	defer e.Close()
	byARN, err := e.DescribeConsumer("", "", reg.ARN)
	if err != nil || byARN.Name != "app" || byARN.Status != ConsumerActive {
		t.Fatalf("describe by ARN after restart: %+v, %v", byARN, err)
	}
	list, err := e.ListConsumers("s")
	if err != nil || len(list) != MaxConsumersPerStream {
		t.Fatalf("list: %d, %v", len(list), err)
	}
	if err := e.DeregisterConsumer("s", "app", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.DescribeConsumer("", "", reg.ARN); !errors.Is(err, ErrResourceNotFound) {
		t.Fatalf("deregistered consumer: %v", err)
	}
	// Registered again, it has a new ARN.
	c.Advance(time.Second)
	again, err := e.RegisterConsumer("s", "app")
	if err != nil || again.ARN == reg.ARN {
		t.Fatalf("re-registered: %+v, %v", again, err)
	}
}

// next calls Next with a generous bound, so that a broken wake-up fails instead of hanging.
func next(t *testing.T, sub *Subscription) (Event, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return sub.Next(ctx)
}

func eventData(ev Event) []string {
	var out []string
	it := ev.Records.Records()
	for it.Next() {
		out = append(out, string(it.Record().Data))
	}
	return out
}

func TestSubscriptionPushes(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "kinesis")
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	cons, err := e.RegisterConsumer("s", "app")
	if err != nil {
		t.Fatal(err)
	}
	put := func(data string) {
		res, err := e.PutRecords("s", []PutEntry{{PartitionKey: "k", Data: []byte(data)}})
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res[0].Err)
		}
	}
	put("a")
	sub, err := e.Subscribe(SubscribeInput{ConsumerARN: cons.ARN, Shard: 0, Type: TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := next(t, sub)
	if err != nil || strings.Join(eventData(ev), ",") != "a" {
		t.Fatalf("first event: %v %v", eventData(ev), err)
	}
	cont := ev.Continuation
	ev.Release()
	// The next event waits for an append and is woken by it.
	got := make(chan []string, 1)
	go func() {
		ev, err := sub.Next(context.Background())
		if err != nil {
			got <- []string{err.Error()}
			return
		}
		got <- eventData(ev)
		ev.Release()
	}()
	put("b")
	if d := <-got; strings.Join(d, ",") != "b" {
		t.Fatalf("pushed event: %v", d)
	}
	// A second subscription within 5 s is refused; a later one replaces the first.
	if _, err := e.Subscribe(SubscribeInput{ConsumerARN: cons.ARN, Shard: 0, Type: AfterSequenceNumber, Seq: cont}); !errors.Is(err, ErrResourceInUse) {
		t.Fatalf("second subscription within 5 s: %v", err)
	}
	c.Advance(6 * time.Second)
	sub2, err := e.Subscribe(SubscribeInput{ConsumerARN: cons.ARN, Shard: 0, Type: AfterSequenceNumber, Seq: cont})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := next(t, sub); err != io.EOF {
		t.Fatalf("replaced subscription: %v, want io.EOF", err)
	}
	ev, err = next(t, sub2)
	if err != nil || strings.Join(eventData(ev), ",") != "b" {
		t.Fatalf("resumed after the continuation number: %v %v", eventData(ev), err)
	}
	ev.Release()
	// The shard ends: an event with the children, then the end.
	if err := e.SplitShard("s", 0, mustKey(t, "1000")); err != nil {
		t.Fatal(err)
	}
	ev, err = next(t, sub2)
	if err != nil || len(ev.ChildShards) != 2 {
		t.Fatalf("end of shard event: %+v %v", ev.ChildShards, err)
	}
	if _, err := next(t, sub2); err != io.EOF {
		t.Fatalf("after the last event: %v", err)
	}
	// A subscription lasts 5 minutes.
	sub3, err := e.Subscribe(SubscribeInput{ConsumerARN: cons.ARN, Shard: 1, Type: Latest})
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(SubscriptionLifetime)
	if _, err := next(t, sub3); err != io.EOF {
		t.Fatalf("subscription past 5 minutes: %v", err)
	}
	// Deregistering the consumer ends its subscriptions.
	sub4, err := e.Subscribe(SubscribeInput{ConsumerARN: cons.ARN, Shard: 2, Type: Latest})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.DeregisterConsumer("", "", cons.ARN); err != nil {
		t.Fatal(err)
	}
	if _, err := next(t, sub4); err != io.EOF {
		t.Fatalf("subscription of a deregistered consumer: %v", err)
	}
}

// A subscription waiting for appends is woken by a resharding that closes its shard: the
// first event after the split carries the children, not a heartbeat 5 seconds later.
func TestSubscriptionWokenByReshard(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "kinesis")
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	cons, err := e.RegisterConsumer("s", "app")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := e.Subscribe(SubscribeInput{ConsumerARN: cons.ARN, Shard: 0, Type: Latest})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := make(chan Event, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		ev, err := sub.Next(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- ev
	}()
	<-started
	if err := e.SplitShard("s", 0, mustKey(t, "1000")); err != nil {
		t.Fatal(err)
	}
	ev := <-got
	if len(ev.ChildShards) != 2 {
		t.Fatalf("first event after the split: %+v, want the two children", ev)
	}
}

func TestSubscriptionsEndWithTheStream(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "off")
	for _, name := range []string{"a", "b"} {
		if err := e.CreateStream(CreateStreamInput{Name: name, ShardCount: 1}); err != nil {
			t.Fatal(err)
		}
	}
	subscribe := func(stream string) *Subscription {
		cons, err := e.RegisterConsumer(stream, "app")
		if err != nil {
			t.Fatal(err)
		}
		sub, err := e.Subscribe(SubscribeInput{ConsumerARN: cons.ARN, Shard: 0, Type: Latest})
		if err != nil {
			t.Fatal(err)
		}
		return sub
	}
	a, b := subscribe("a"), subscribe("b")
	if err := e.DeleteStream("a", true); err != nil {
		t.Fatal(err)
	}
	if _, err := next(t, a); err != io.EOF {
		t.Fatalf("subscription of a deleted stream: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := next(t, b); err != io.EOF {
		t.Fatalf("subscription after Close: %v", err)
	}
}

// A subscription or a shard iterator AT_TIMESTAMP taken while records that arrived at that
// time are being appended starts at or before them: never past a record it should read.
func TestAtTimestampWhileAppending(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e, err := Open(Options{Dir: t.TempDir(), Now: c.Now, Limits: Limits{Off: true, Factor: 1},
		Durability: segment.Durability{Mode: segment.None}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	cons, err := e.RegisterConsumer("s", "app")
	if err != nil {
		t.Fatal(err)
	}
	starts := map[string]func(at time.Time) (uint64, error){
		"subscription": func(at time.Time) (uint64, error) {
			sub, err := e.Subscribe(SubscribeInput{ConsumerARN: cons.ARN, Shard: 0, Type: AtTimestamp, Timestamp: at})
			if err != nil {
				return 0, err
			}
			sub.Close()
			return sub.pos, nil
		},
		"iterator": func(at time.Time) (uint64, error) {
			token, err := e.GetShardIterator(IteratorInput{Stream: "s", Shard: 0, Type: AtTimestamp, Timestamp: at})
			if err != nil {
				return 0, err
			}
			it, err := e.Iterator(token)
			return it.Pos, err
		},
	}
	for name, start := range starts {
		for round := range 3000 {
			c.Advance(time.Millisecond)
			at := c.Now() // every record appended so far arrived before it; the next one at it
			put := make(chan PutResult, 1)
			go func() {
				res, err := e.PutRecords("s", []PutEntry{{PartitionKey: "k", Data: []byte("x")}})
				if err != nil {
					res = []PutResult{{Err: err}}
				}
				put <- res[0]
			}()
			pos, err := start(at)
			res := <-put
			if err != nil || res.Err != nil {
				t.Fatal(err, res.Err)
			}
			if pos > res.Seq.Pos {
				t.Fatalf("%s round %d: AT_TIMESTAMP of record %d's arrival starts at %d, past it", name, round, res.Seq.Pos, pos)
			}
		}
	}
}
