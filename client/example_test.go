//go:build linux

// Linux only: the examples run an in-process server, whose storage builds on Linux only.

package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/server"
	"github.com/sluice-streams/sluice/stream"
)

// exampleServer starts a sluice server in-process on a loopback port, as `sluice serve`
// would run it, and returns its endpoint and a function that stops it.
func exampleServer() (endpoint string, stop func()) {
	dir, err := os.MkdirTemp("", "sluice-example")
	if err != nil {
		log.Fatal(err)
	}
	eng, err := stream.Open(stream.Options{Dir: dir, Durability: segment.Durability{Mode: segment.None}})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := server.New(eng, server.Options{})
	served := make(chan struct{})
	go func() {
		srv.Serve(ln)
		close(served)
	}()
	return "http://" + ln.Addr().String(), func() {
		srv.Shutdown()
		<-served
		eng.Close()
		os.RemoveAll(dir)
	}
}

// A producer appends records asynchronously; a consumer reads them back, shard by shard.
func Example() {
	endpoint, stop := exampleServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	c, err := client.New(client.Config{Endpoint: endpoint})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.CreateStream(ctx, "orders", 2); err != nil {
		log.Fatal(err)
	}

	p, err := c.NewProducer(ctx, "orders", client.ProducerConfig{})
	if err != nil {
		log.Fatal(err)
	}
	for i := range 6 {
		customer := fmt.Sprintf("customer-%d", i%3)
		if _, err := p.Put(ctx, customer, fmt.Appendf(nil, "order %d", i)); err != nil {
			log.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil { // flushes, and reports any record that failed
		log.Fatal(err)
	}

	co, err := c.NewConsumer("orders", client.ConsumerConfig{Start: client.TrimHorizon})
	if err != nil {
		log.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	readCtx, stopReading := context.WithCancel(ctx)
	err = co.Run(readCtx, func(_ context.Context, b *client.Batch) error {
		mu.Lock() // the handler runs concurrently for different shards
		defer mu.Unlock()
		for _, r := range b.Records {
			got = append(got, fmt.Sprintf("%s: %s", r.Key, r.Data))
		}
		if len(got) == 6 {
			stopReading()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
	// Records of one key come in order; across keys (and shards) there is no order.
	slices.SortStableFunc(got, func(a, b string) int { return cmpKey(a, b) })
	for _, s := range got {
		fmt.Println(s)
	}
	// Output:
	// customer-0: order 0
	// customer-0: order 3
	// customer-1: order 1
	// customer-1: order 4
	// customer-2: order 2
	// customer-2: order 5
}

// cmpKey compares "key: data" lines by key only.
func cmpKey(a, b string) int {
	ka, kb := a[:len("customer-0")], b[:len("customer-0")]
	switch {
	case ka < kb:
		return -1
	case ka > kb:
		return 1
	}
	return 0
}

// Each Put returns a Future with the record's sequence number, as a (shard, position) pair
// and as the 56-digit Kinesis string.
func ExampleProducer_Put() {
	endpoint, stop := exampleServer()
	defer stop()
	ctx := context.Background()
	c, err := client.New(client.Config{Endpoint: endpoint})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.CreateStream(ctx, "events", 1); err != nil {
		log.Fatal(err)
	}
	p, err := c.NewProducer(ctx, "events", client.ProducerConfig{Linger: 10 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close(ctx)
	f, err := p.Put(ctx, "sensor-7", []byte(`{"t": 21.5}`))
	if err != nil {
		log.Fatal(err)
	}
	seq, err := f.Wait(ctx) // the batch goes when its linger time is over
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("shard", seq.Shard, "position above 0:", seq.Position > 0, "Kinesis form of", len(seq.String()), "digits")
	// Output:
	// shard 0 position above 0: true Kinesis form of 56 digits
}

// A sequence number converts between the native form and the Kinesis form without the server.
func ExampleSeqNum() {
	s := client.SeqNum{Shard: 7, Position: 42}
	fmt.Println(s)
	back, err := client.ParseSeqNum(s.String())
	fmt.Println(back.Shard, back.Position, err)
	// Output:
	// 10000000000000000000000000000000000129127208515966861354
	// 7 42 <nil>
}

// A consumer with enhanced fan-out registers itself and has each shard's records pushed to
// it; checkpoints let a later run resume where this one stopped.
func ExampleConsumer_Run() {
	ctx := context.Background()
	c, err := client.New(client.Config{Endpoint: "http://127.0.0.1:4567"})
	if err != nil {
		log.Fatal(err)
	}
	checkpoints := client.NewMemoryCheckpointer() // or a Checkpointer backed by a database
	co, err := c.NewConsumer("orders", client.ConsumerConfig{
		ConsumerName: "billing",
		Start:        client.Latest,
		Checkpointer: checkpoints,
	})
	if err != nil {
		log.Fatal(err)
	}
	err = co.Run(ctx, func(ctx context.Context, b *client.Batch) error {
		for _, r := range b.Records {
			fmt.Printf("%s %s %s\n", r.SequenceNumber(), r.Key, r.Data)
		}
		return nil // the batch is checkpointed
	})
	log.Print(err)
}
