package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/shardmap"
)

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	// Start is where shards without a checkpoint start: TrimHorizon (the zero value,
	// AtSequenceNumber, means TrimHorizon too), Latest or AtTimestamp (at StartTime). A shard
	// whose parent this consumer reads (or has a checkpoint of) starts at its beginning
	// instead, or at StartTime with AtTimestamp, so that nothing between them is lost.
	Start     Start
	StartTime time.Time
	// Checkpointer keeps the consumer's progress; nil means a new MemoryCheckpointer.
	Checkpointer Checkpointer

	// ConsumerName selects enhanced fan-out: the consumer is registered with
	// RegisterStreamConsumer (or found, if it exists) and each shard is read through a
	// native subscription. ConsumerARN selects an existing consumer instead. With neither,
	// shards are read in shared mode with native gets.
	ConsumerName string
	ConsumerARN  string

	// ReadsPerSecond paces the gets of each shard in shared mode; 0 means 5, the Kinesis
	// limit a shard's readers share.
	ReadsPerSecond float64
	// PollInterval is the wait after a get that found nothing new; 0 means 500 ms.
	PollInterval time.Duration
	// MaxRecords caps the records of one get (1…10,000); 0 means 10,000.
	MaxRecords int
	// ShardSyncInterval is how often the shard list is read again to find shards to start,
	// besides each time a shard ends; 0 means 30 s.
	ShardSyncInterval time.Duration
	// BaseBackoff and MaxBackoff bound the backoff after throttling and transient errors;
	// 0 means 100 ms and 5 s.
	BaseBackoff, MaxBackoff time.Duration

	// Raw hands records over as they are stored. By default a record holding a KPL
	// aggregated record is replaced by its user records, filtered by the shard's hash-key
	// range, as the KCL does (see Deaggregator).
	Raw bool
}

// Batch is what a Handler gets: records of one shard, in order. The Batch and its records
// (which alias the answer they came in) are valid only until the handler returns.
type Batch struct {
	Shard        uint32
	Records      []Record
	MillisBehind int64 // how far the last record is behind the shard's tip
}

// Handler handles a batch. Returning nil lets the consumer checkpoint the batch and go on;
// returning an error stops the whole consumer (Run returns it) without checkpointing it.
// A Handler is called concurrently for different shards and serially within one shard.
type Handler func(ctx context.Context, b *Batch) error

// Consumer reads every shard of a stream, in shared mode (native gets) or with enhanced
// fan-out (native subscriptions), following resharding lineage: a shard is read only once
// all its parents have been read to their end. See the package documentation.
type Consumer struct {
	c       *Client
	stream  string
	cfg     ConsumerConfig
	running atomic.Bool
}

// subscriptionLifetime is how long the server keeps a subscription; the client resubscribes
// from its continuation when it ends, and on its own if a subscription outlives it by
// subscriptionGrace.
const (
	subscriptionLifetime = 5 * time.Minute
	subscriptionGrace    = 30 * time.Second
)

// NewConsumer returns a consumer of stream. It does not contact the server until Run.
func (c *Client) NewConsumer(stream string, cfg ConsumerConfig) (*Consumer, error) {
	switch cfg.Start {
	case AtSequenceNumber:
		cfg.Start = TrimHorizon
	case TrimHorizon, Latest:
	case AtTimestamp:
		if cfg.StartTime.IsZero() || cfg.StartTime.UnixMilli() < 0 {
			return nil, fmt.Errorf("sluice: consumer: AtTimestamp needs a StartTime after 1970")
		}
	default:
		return nil, fmt.Errorf("sluice: consumer: Start %v: want TrimHorizon, Latest or AtTimestamp", cfg.Start)
	}
	if cfg.MaxRecords < 0 || cfg.MaxRecords > wire.MaxGetRecords {
		return nil, fmt.Errorf("sluice: consumer: MaxRecords %d: want 0…%d", cfg.MaxRecords, wire.MaxGetRecords)
	}
	if cfg.Checkpointer == nil {
		cfg.Checkpointer = NewMemoryCheckpointer()
	}
	if !(cfg.ReadsPerSecond > 0) {
		cfg.ReadsPerSecond = 5
	}
	cfg.PollInterval = orDur(cfg.PollInterval, 500*time.Millisecond)
	cfg.ShardSyncInterval = orDur(cfg.ShardSyncInterval, 30*time.Second)
	cfg.BaseBackoff = orDur(cfg.BaseBackoff, 100*time.Millisecond)
	cfg.MaxBackoff = max(orDur(cfg.MaxBackoff, 5*time.Second), cfg.BaseBackoff)
	return &Consumer{c: c, stream: stream, cfg: cfg}, nil
}

// shardStatus is where a shard stands in one Run.
type shardStatus uint8

const (
	shardWaiting shardStatus = iota // not started: its parents are not all done
	shardRunning
	shardDone
)

// runState is the coordinator's view of the shards, owned by Run's goroutine.
type runState struct {
	shards map[uint32]shardmap.Shard
	status map[uint32]shardStatus
	cps    map[uint32]*Checkpoint // nil entry: no checkpoint
	read   map[uint32]bool        // read (or partly read) by this consumer, now or before
}

// shardResult is what a shard's reader reports when it stops.
type shardResult struct {
	shard uint32
	err   error
}

// Run reads the stream and calls h for each batch until ctx ends (it returns ctx.Err()), h
// returns an error (it returns that error), or reading fails for good (it returns why). It
// waits for every shard's reader to stop before returning. A Consumer runs once at a time;
// after Run returns it may run again, resuming from its checkpoints.
func (co *Consumer) Run(ctx context.Context, h Handler) error {
	if !co.running.CompareAndSwap(false, true) {
		return errors.New("sluice: consumer: already running")
	}
	defer co.running.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	arn := co.cfg.ConsumerARN
	if arn != "" || co.cfg.ConsumerName != "" {
		var err error
		if arn, err = co.fanOutConsumer(ctx); err != nil {
			return err
		}
	}
	st := &runState{shards: map[uint32]shardmap.Shard{}, status: map[uint32]shardStatus{},
		cps: map[uint32]*Checkpoint{}, read: map[uint32]bool{}}
	if err := co.sync(ctx, st); err != nil {
		return err
	}
	results := make(chan shardResult)
	var wg sync.WaitGroup
	defer wg.Wait()
	running := 0
	launch := func() error {
		starts, err := co.plan(ctx, st)
		for _, s := range starts {
			st.status[s.id] = shardRunning
			st.read[s.id] = true
			running++
			wg.Add(1)
			go func() {
				defer wg.Done()
				var err error
				if arn != "" {
					err = co.readFanOut(ctx, arn, s, h)
				} else {
					err = co.readShared(ctx, s, h)
				}
				results <- shardResult{s.id, err}
			}()
		}
		return err
	}
	var failure error
	stop := func(err error) {
		if failure == nil {
			failure = err
		}
		cancel()
	}
	if err := launch(); err != nil {
		stop(err)
	}
	tick := time.NewTicker(co.cfg.ShardSyncInterval)
	defer tick.Stop()
	for {
		if failure != nil {
			for ; running > 0; running-- {
				<-results
			}
			return failure
		}
		select {
		case r := <-results:
			running--
			if r.err != nil {
				stop(r.err)
				continue
			}
			st.status[r.shard] = shardDone
			// The shard ended: learn its children and their other parents.
			if err := co.sync(ctx, st); err != nil && ctx.Err() == nil {
				co.c.log.Warn("sluice consumer: listing shards", "stream", co.stream, "err", err)
			}
			if err := launch(); err != nil {
				stop(err)
			}
		case <-tick.C:
			if err := co.sync(ctx, st); err != nil && ctx.Err() == nil {
				co.c.log.Warn("sluice consumer: listing shards", "stream", co.stream, "err", err)
			}
			if err := launch(); err != nil {
				stop(err)
			}
		case <-ctx.Done():
			stop(ctx.Err())
		}
	}
}

// sync reads the shard list and the checkpoints of shards seen for the first time.
func (co *Consumer) sync(ctx context.Context, st *runState) error {
	shards, err := co.c.ListShards(ctx, co.stream)
	if err != nil {
		return err
	}
	for _, s := range shards {
		id := uint32(s.ID)
		if _, seen := st.shards[id]; !seen {
			cp, ok, err := co.cfg.Checkpointer.Get(ctx, id)
			if err != nil {
				return fmt.Errorf("sluice consumer: checkpoint of shard %d: %w", id, err)
			}
			if ok {
				st.cps[id] = &cp
				st.read[id] = true
				if cp.Ended {
					st.status[id] = shardDone
				}
			}
		}
		st.shards[id] = s
	}
	return nil
}

// shardStart is where a shard's reader starts.
type shardStart struct {
	id    uint32
	start Start
	value uint64
	rng   shardmap.Range // the shard's hash keys, to filter de-aggregated user records
}

// plan returns the shards to start now, by ascending id, and marks the closed shards that a
// Latest start skips as done. A shard starts once every parent still listed is done.
func (co *Consumer) plan(ctx context.Context, st *runState) ([]shardStart, error) {
	var out []shardStart
	// Ids ascend from parents to children, so one pass in id order settles a whole lineage
	// of skipped shards.
	ids := make([]uint32, 0, len(st.shards))
	for id := range st.shards {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if st.status[id] != shardWaiting {
			continue
		}
		s := st.shards[id]
		parentRead, ready := false, true
		for _, p := range [2]uint32{uint32(s.Parent), uint32(s.AdjacentParent)} {
			if p == uint32(shardmap.NoParent) {
				continue
			}
			if _, listed := st.shards[p]; !listed {
				continue // gone with retention: nothing of it to read
			}
			parentRead = parentRead || st.read[p]
			if st.status[p] != shardDone {
				ready = false
			}
		}
		if !ready {
			continue
		}
		ss := shardStart{id: id, rng: s.Range}
		switch cp := st.cps[id]; {
		case cp != nil:
			ss.start, ss.value = AfterSequenceNumber, cp.Position
		case co.cfg.Start == AtTimestamp:
			ss.start, ss.value = AtTimestamp, uint64(co.cfg.StartTime.UnixMilli())
		case parentRead || co.cfg.Start == TrimHorizon:
			ss.start = TrimHorizon
		case !s.Open: // Latest, and nothing before it read: nothing of it to read
			st.status[id] = shardDone
			continue
		default:
			ss.start = Latest
		}
		out = append(out, ss)
	}
	return out, ctx.Err()
}

// shardProgress is a reader's position in its shard, shared by both modes.
type shardProgress struct {
	co      *Consumer
	id      uint32
	last    uint64 // the last record handled
	hasLast bool
	batch   Batch
	rng     shardmap.Range
	deagg   Deaggregator
}

func (co *Consumer) progress(s shardStart) *shardProgress {
	p := &shardProgress{co: co, id: s.id, rng: s.rng}
	if s.start == AfterSequenceNumber {
		p.last, p.hasLast = s.value, true
	}
	p.batch.Shard = s.id
	return p
}

// deliver hands the records not handled yet to h, de-aggregated unless Raw, and checkpoints
// them. Records at or before the last handled position (a resubscription's overlap) are
// dropped. The user records of an aggregated record are handed over in one batch, so that a
// checkpoint never falls between them.
func (p *shardProgress) deliver(ctx context.Context, recs []Record, behind int64, h Handler) error {
	if !p.co.cfg.Raw {
		recs = p.deagg.Records(recs, p.rng)
	}
	if p.hasLast {
		i := 0
		for i < len(recs) && recs[i].Position <= p.last {
			i++
		}
		recs = recs[i:]
	}
	if len(recs) == 0 {
		return nil
	}
	p.batch.Records, p.batch.MillisBehind = recs, behind
	err := h(ctx, &p.batch)
	p.batch.Records = nil
	if err != nil {
		return err
	}
	p.last, p.hasLast = recs[len(recs)-1].Position, true
	return p.co.cfg.Checkpointer.Set(ctx, p.id, Checkpoint{Position: p.last})
}

// anchor checkpoints the position a Latest start found, before any record: a restart then
// resumes there instead of at a later Latest.
func (p *shardProgress) anchor(ctx context.Context, next uint64) error {
	if p.hasLast || next == 0 {
		return nil
	}
	p.last, p.hasLast = next-1, true
	return p.co.cfg.Checkpointer.Set(ctx, p.id, Checkpoint{Position: p.last})
}

// end checkpoints the shard as read to its end.
func (p *shardProgress) end(ctx context.Context) error {
	return p.co.cfg.Checkpointer.Set(ctx, p.id, Checkpoint{Position: p.last, Ended: true})
}

// readShared reads one shard with native gets until its end.
func (co *Consumer) readShared(ctx context.Context, s shardStart, h Handler) error {
	p := co.progress(s)
	out := &GetOutput{}
	defer out.Release()
	gap := time.Duration(float64(time.Second) / co.cfg.ReadsPerSecond)
	start, value := s.start, s.value
	var last time.Time
	tries := 0
	for {
		if err := sleepCtx(ctx, gap-time.Since(last)); err != nil {
			return err
		}
		last = time.Now()
		err := co.c.getInto(ctx, co.stream, GetInput{Shard: s.id, Start: start, Value: value, MaxRecords: co.cfg.MaxRecords}, out)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !retryable(err) {
				return fmt.Errorf("sluice consumer: shard %d: %w", s.id, err)
			}
			if !errors.Is(err, ErrThrottled) {
				co.c.log.Warn("sluice consumer: get failed, retrying", "stream", co.stream, "shard", s.id, "err", err)
			}
			if err := sleepCtx(ctx, backoff(tries, co.cfg.BaseBackoff, co.cfg.MaxBackoff)); err != nil {
				return err
			}
			tries++
			continue
		}
		tries = 0
		if err := p.deliver(ctx, out.Records, out.MillisBehind, h); err != nil {
			return err
		}
		if start == Latest {
			if err := p.anchor(ctx, out.Next); err != nil {
				return err
			}
		}
		start, value = AtSequenceNumber, out.Next
		if out.ShardEnd {
			return p.end(ctx)
		}
		if len(out.Records) == 0 {
			if err := sleepCtx(ctx, co.cfg.PollInterval); err != nil {
				return err
			}
		}
	}
}

// readFanOut reads one shard through subscriptions until its end, resubscribing from the
// continuation when a subscription ends or fails.
func (co *Consumer) readFanOut(ctx context.Context, arn string, s shardStart, h Handler) error {
	p := co.progress(s)
	start, value := s.start, s.value
	var recs []Record
	tries := 0
	retry := func(err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, ErrInUse) && !errors.Is(err, ErrThrottled) {
			co.c.log.Warn("sluice consumer: subscription failed, resubscribing", "stream", co.stream, "shard", s.id, "err", err)
		}
		d := backoff(tries, co.cfg.BaseBackoff, co.cfg.MaxBackoff)
		tries++
		return sleepCtx(ctx, d)
	}
	for {
		sub, err := co.c.subscribe(ctx, arn, s.id, start, value)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// ResourceInUse: the previous subscription is still registered (the server
			// refuses a new one within 5 s of it).
			if !retryable(err) && !errors.Is(err, ErrInUse) {
				return fmt.Errorf("sluice consumer: shard %d: %w", s.id, err)
			}
			if err := retry(err); err != nil {
				return err
			}
			continue
		}
		began := time.Now()
		ended, err := func() (bool, error) {
			defer sub.close()
			for {
				m, err := sub.next()
				if err != nil {
					return false, err
				}
				switch m.Type {
				case wire.MsgRecords:
					tries = 0
					if recs, err = appendFrames(recs[:0], m.Frames, s.id); err != nil {
						return false, wrapTransport(err)
					}
					if err := p.deliver(ctx, recs, m.MillisBehind, h); err != nil {
						return false, &handlerError{err}
					}
					clear(recs)
					if start == Latest {
						if err := p.anchor(ctx, m.Continuation); err != nil {
							return false, &handlerError{err}
						}
					}
					start, value = AtSequenceNumber, m.Continuation
				case wire.MsgEnd:
					return true, nil
				case wire.MsgError:
					return false, &Error{Code: m.Code, Name: m.Code.Name(), Message: m.Message, Op: "subscribe"}
				}
				if time.Since(began) > subscriptionLifetime+subscriptionGrace {
					return false, io.EOF // the server should have ended it: start afresh
				}
			}
		}()
		if ended {
			return p.end(ctx)
		}
		var he *handlerError
		switch {
		case errors.As(err, &he):
			return he.err
		case errors.Is(err, io.EOF):
			// The subscription's lifetime is over: resubscribe from the continuation.
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case retryable(err) || errors.Is(err, ErrInUse):
			if err := retry(err); err != nil {
				return err
			}
		default:
			return fmt.Errorf("sluice consumer: shard %d: %w", s.id, err)
		}
	}
}

// handlerError carries an error of the handler or the checkpointer out of a subscription
// loop, to end the reader rather than resubscribe.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }

// fanOutConsumer returns the ARN of the enhanced fan-out consumer, registering it when
// named and new, and waits until it is ACTIVE.
func (co *Consumer) fanOutConsumer(ctx context.Context) (string, error) {
	var info ConsumerInfo
	var err error
	if co.cfg.ConsumerARN != "" {
		info, err = co.c.DescribeStreamConsumer(ctx, "", "", co.cfg.ConsumerARN)
	} else {
		var sum StreamSummary
		if sum, err = co.c.DescribeStreamSummary(ctx, co.stream); err != nil {
			return "", err
		}
		info, err = co.c.RegisterStreamConsumer(ctx, sum.ARN, co.cfg.ConsumerName)
		if errors.Is(err, ErrInUse) {
			info, err = co.c.DescribeStreamConsumer(ctx, sum.ARN, co.cfg.ConsumerName, "")
		}
	}
	for tries := 0; err == nil && info.Status != "ACTIVE"; tries++ {
		if info.Status == "DELETING" {
			return "", fmt.Errorf("sluice consumer: consumer %s is being deleted", info.ARN)
		}
		if err := sleepCtx(ctx, backoff(tries, 100*time.Millisecond, time.Second)); err != nil {
			return "", err
		}
		info, err = co.c.DescribeStreamConsumer(ctx, "", "", info.ARN)
	}
	if err != nil {
		return "", err
	}
	return info.ARN, nil
}
