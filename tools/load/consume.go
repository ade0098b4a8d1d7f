package load

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/internal/jsonscan"
	"github.com/sluice-streams/sluice/shardmap"
)

// consume runs consumer group g until ctx ends; an error other than ctx's is the group's
// failure.
func (r *runner) consume(ctx context.Context, g *group) error {
	if r.cfg.Protocol == Kinesis {
		return r.consumeKinesis(ctx, g)
	}
	return r.consumeNative(ctx, g)
}

// consumeNative reads the stream with a client.Consumer, shared or through the group's
// enhanced fan-out consumer.
func (r *runner) consumeNative(ctx context.Context, g *group) error {
	counter := &errorCounter{add: func(name string) {
		g.mu.Lock()
		g.readErrors[name]++
		g.mu.Unlock()
	}}
	c, err := client.New(client.Config{Endpoint: r.cfg.Endpoint, Logger: slog.New(counter)})
	if err != nil {
		return err
	}
	defer c.Close()
	co, err := c.NewConsumer(r.cfg.Stream, client.ConsumerConfig{
		Start: client.AtTimestamp, StartTime: r.start.Add(-startSkew), ConsumerARN: g.arn,
		ReadsPerSecond: r.cfg.ReadsPerSecond, PollInterval: r.cfg.PollInterval,
	})
	if err != nil {
		return err
	}
	run := r.pl.run
	return co.Run(ctx, func(_ context.Context, b *client.Batch) error {
		now := time.Now().UnixNano()
		g.mu.Lock()
		for i := range b.Records {
			rec := &b.Records[i]
			sent, timed := readHeader(rec.Data, run)
			g.readLocked(b.Shard, rec.Position, len(rec.Data), sent, timed, now)
		}
		g.mu.Unlock()
		return nil
	})
}

// consumeKinesis reads every shard of the stream through the Kinesis API, one goroutine
// per shard, starting the children of a shard when it ends (without waiting for their other
// parent: the run verifies what is read, not its order across shards).
func (r *runner) consumeKinesis(ctx context.Context, g *group) error {
	api, err := newKinesisAPI(r.cfg.Endpoint, 4*r.shards+4)
	if err != nil {
		return err
	}
	defer api.close()
	shards, err := r.ctl.ListShards(ctx, r.cfg.Stream)
	if err != nil {
		return err
	}
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	started := map[string]bool{}
	var start func(id string)
	start = func(id string) {
		mu.Lock()
		seen := started[id]
		started[id] = true
		mu.Unlock()
		if seen {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			read := r.readShared
			if g.arn != "" {
				read = r.readSubscribed
			}
			children, err := read(ctx, api, g, id)
			if err != nil {
				if ctx.Err() == nil {
					fail(err)
				}
				return
			}
			for _, c := range children {
				start(c)
			}
		}()
	}
	for _, s := range shards {
		start(shardmap.ShardID(s.ID).String())
	}
	<-ctx.Done()
	wg.Wait()
	return context.Cause(ctx)
}

// shardIterator returns an iterator of a shard: AT_TIMESTAMP of the group's start, or
// AFTER_SEQUENCE_NUMBER after when given.
func (r *runner) shardIterator(ctx context.Context, shard, after string) (string, error) {
	in := struct {
		StreamName             string
		ShardId                string
		ShardIteratorType      string
		StartingSequenceNumber string  `json:",omitempty"`
		Timestamp              float64 `json:",omitempty"`
	}{StreamName: r.cfg.Stream, ShardId: shard, ShardIteratorType: "AT_TIMESTAMP"}
	if after != "" {
		in.ShardIteratorType, in.StartingSequenceNumber = "AFTER_SEQUENCE_NUMBER", after
	} else {
		in.Timestamp = float64(r.start.Add(-startSkew).UnixMilli()) / 1000
	}
	var out struct{ ShardIterator string }
	err := r.ctl.CallKinesis(ctx, "GetShardIterator", in, &out)
	return out.ShardIterator, err
}

// readShared reads one shard with GetRecords until its end, and returns its children.
func (r *runner) readShared(ctx context.Context, api *kinesisAPI, g *group, name string) ([]string, error) {
	shard := shardOf([]byte(name))
	iter, err := r.shardIterator(ctx, name, "")
	if err != nil {
		return nil, err
	}
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	var (
		sc    jsonscan.Scanner
		body  []byte
		recs  []readRecord
		after string // the last record's sequence number
		last  time.Time
		tries int
	)
	gap := time.Duration(float64(time.Second) / r.cfg.ReadsPerSecond)
	for {
		if err := sleepCtx(ctx, gap-time.Since(last)); err != nil {
			return nil, err
		}
		last = time.Now()
		body = append(body[:0], `{"ShardIterator":`...)
		body = jsonscan.AppendString(body, iter)
		body = append(body, `,"Limit":10000}`...)
		err := api.call(ctx, "GetRecords", body, resp)
		var ans recordsAnswer
		if err == nil {
			recs = recs[:0]
			ans, err = decodeRecords(&sc, resp.Body(), shard, r.pl.run, func(rec *readRecord) { recs = append(recs, *rec) })
			if err != nil {
				err = errors.Join(errBadAnswer, err)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var ae *apiError
			switch {
			case errors.As(err, &ae) && ae.Name == "ExpiredIteratorException":
				g.readError(err)
				if iter, err = r.shardIterator(ctx, name, after); err != nil {
					return nil, err
				}
				continue
			case !retryable(err):
				return nil, err
			}
			g.readError(err)
			if err := sleepCtx(ctx, backoff(tries, 100*time.Millisecond, 5*time.Second)); err != nil {
				return nil, err
			}
			tries++
			continue
		}
		tries = 0
		g.recordAll(shard, recs)
		if ans.last != "" {
			after = ans.last
		}
		if ans.next == "" {
			return ans.children, nil
		}
		iter = ans.next
		if len(recs) == 0 {
			if err := sleepCtx(ctx, r.cfg.PollInterval); err != nil {
				return nil, err
			}
		}
	}
}

// recordAll records the records read from shard in one answer.
func (g *group) recordAll(shard uint32, recs []readRecord) {
	now := time.Now().UnixNano()
	g.mu.Lock()
	for i := range recs {
		g.readLocked(shard, recs[i].pos, recs[i].n, recs[i].sent, recs[i].timed, now)
	}
	g.mu.Unlock()
}

// readSubscribed reads one shard through SubscribeToShard until its end, resubscribing
// after the last event's continuation when a subscription ends, and returns its children.
func (r *runner) readSubscribed(ctx context.Context, api *kinesisAPI, g *group, name string) ([]string, error) {
	shard := shardOf([]byte(name))
	var (
		sc    jsonscan.Scanner
		recs  []readRecord
		after string // the continuation to resubscribe after
		body  []byte
		tries int
	)
	for {
		body = append(body[:0], `{"ConsumerARN":`...)
		body = jsonscan.AppendString(body, g.arn)
		body = append(body, `,"ShardId":`...)
		body = jsonscan.AppendString(body, name)
		if after != "" {
			body = append(body, `,"StartingPosition":{"Type":"AFTER_SEQUENCE_NUMBER","SequenceNumber":`...)
			body = jsonscan.AppendString(body, after)
		} else {
			ms := r.start.Add(-startSkew).UnixMilli()
			body = append(body, `,"StartingPosition":{"Type":"AT_TIMESTAMP","Timestamp":`...)
			body = strconv.AppendFloat(body, float64(ms)/1000, 'f', 3, 64)
		}
		body = append(body, "}}"...)
		sub, err := api.subscribe(ctx, body)
		var children []string
		ended := false
		if err == nil {
			ended, children, err = func() (bool, []string, error) {
				defer sub.close()
				for {
					ev, err := sub.next()
					if err != nil {
						return false, nil, err
					}
					if string(ev.eventType) != "SubscribeToShardEvent" {
						continue
					}
					recs = recs[:0]
					ans, err := decodeRecords(&sc, ev.payload, shard, r.pl.run, func(rec *readRecord) { recs = append(recs, *rec) })
					if err != nil {
						return false, nil, errors.Join(errBadAnswer, err)
					}
					tries = 0
					g.recordAll(shard, recs)
					if ans.next != "" {
						after = ans.next
					}
					if ans.next == "" || len(ans.children) > 0 {
						return true, ans.children, nil
					}
				}
			}()
		}
		switch {
		case ended:
			return children, nil
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, io.EOF):
			// The subscription's lifetime is over: resubscribe (the server may refuse for a
			// few seconds with ResourceInUseException, retried below).
			continue
		}
		var ae *apiError
		if !retryable(err) && !(errors.As(err, &ae) && ae.Name == "ResourceInUseException") {
			return nil, err
		}
		g.readError(err)
		if err := sleepCtx(ctx, backoff(tries, 100*time.Millisecond, 5*time.Second)); err != nil {
			return nil, err
		}
		tries++
	}
}
