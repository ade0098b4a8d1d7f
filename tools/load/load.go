package load

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/sluice-streams/sluice/client"
)

// startSkew is how far before the run's start the consumer groups start reading
// (AT_TIMESTAMP): a server whose clock is behind this machine's by less than this still
// hands over every record of the run. Records of earlier runs within the margin are read
// too, and counted as unexpected.
const startSkew = 5 * time.Second

// runner is one run's shared state.
type runner struct {
	cfg     Config
	ctl     *client.Client // the control plane, and the native producers
	putLogs *errorCounter  // the native producers' retried request failures
	pl      *payload
	summary client.StreamSummary
	shards  int
	start   time.Time // the first put may not come before
	// claimed counts the records producers have taken (claim); every producer adds to it.
	claimed atomic.Uint64
	prods   []*producerState
	groups  []*group
	// draining is set by Run once every producer has its last outcome; the progress
	// goroutine reads it.
	draining atomic.Bool
}

// producerState is one producer's tally. mu guards every field: the producer's goroutines
// write it (the native producer's outcomes arrive on the client's sender goroutines), the
// progress goroutine reads it, and Run reads it once the producer is done.
type producerState struct {
	mu            sync.Mutex
	hist          *hdrhistogram.Histogram
	acks          []recID
	attempted     uint64
	acked         uint64
	failed        uint64
	bytes         uint64
	requests      uint64
	throttled     uint64
	retried       uint64
	errors        map[string]uint64
	requestErrors map[string]uint64
	fatal         error
}

func newProducerState() *producerState {
	return &producerState{hist: newHistogram(), errors: map[string]uint64{}, requestErrors: map[string]uint64{}}
}

// ackLocked records an acknowledged record of n bytes after latency d. ps.mu must be held.
func (ps *producerState) ackLocked(id recID, n int, d time.Duration) {
	ps.acks = append(ps.acks, id)
	ps.acked++
	ps.bytes += uint64(n)
	recordLatency(ps.hist, d)
}

// failLocked records a record that failed for good. ps.mu must be held.
func (ps *producerState) failLocked(err error) {
	ps.failed++
	ps.errors[errName(err)]++
}

// group is one consumer group's tally. mu guards every field: the group's shard readers
// write it (one goroutine per shard, concurrently), the drain check, the progress goroutine
// and Run read it. A shard's slice in seen is only appended to, so a reader of a copy of the
// slice header taken under mu may read its elements after releasing mu.
type group struct {
	name       string
	arn        string // enhanced fan-out: the registered consumer
	mu         sync.Mutex
	seen       map[uint32][]uint64
	consumed   uint64
	bytes      uint64
	unmeasured uint64
	hist       *hdrhistogram.Histogram
	readErrors map[string]uint64
	fatal      error
	complete   bool
	drain      time.Duration
}

func newGroup(name string) *group {
	return &group{name: name, seen: map[uint32][]uint64{}, hist: newHistogram(), readErrors: map[string]uint64{}}
}

// readLocked records a record read from shard at pos, of n bytes, sent at sent (Unix
// nanoseconds) when timed, read at now. g.mu must be held.
func (g *group) readLocked(shard uint32, pos uint64, n int, sent int64, timed bool, now int64) {
	g.seen[shard] = append(g.seen[shard], pos)
	g.consumed++
	g.bytes += uint64(n)
	switch {
	case timed:
		recordLatency(g.hist, time.Duration(now-sent))
	case n < headerLen:
		g.unmeasured++
	}
}

func (g *group) readError(err error) {
	g.mu.Lock()
	g.readErrors[errName(err)]++
	g.mu.Unlock()
}

// snapshot returns the group's positions read so far, by shard: slice headers only.
func (g *group) snapshot() map[uint32][]uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	m := make(map[uint32][]uint64, len(g.seen))
	for k, v := range g.seen {
		m[k] = v
	}
	return m
}

// Run runs a load against cfg.Endpoint and returns its report. The stream is created if it
// does not exist, consumer groups start reading, producers put until cfg.Duration or
// cfg.Records is reached (or ctx ends), then the producers get their last outcomes and the
// groups read until they have every acknowledged record, each wait bounded by
// cfg.DrainTimeout. When ctx ends, putting stops early but the run still drains and
// reports. Enhanced fan-out groups are registered as consumers named
// sluice-load-<run>-<group> and deregistered at the end. An error means the run could not
// start (ErrConfig, ErrSetup); problems found while running are in Report.Problems.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Seed == 0 {
		cfg.Seed = rand.Uint64() | 1
	}
	r := &runner{cfg: cfg, putLogs: newErrorCounter()}
	r.ctl, err = client.New(client.Config{Endpoint: cfg.Endpoint, MaxConns: max(64, 4*cfg.Producers+8),
		Logger: slog.New(r.putLogs)})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	defer r.ctl.Close()
	rep := &Report{Endpoint: cfg.Endpoint, Stream: cfg.Stream, Protocol: cfg.Protocol, FanOut: cfg.FanOut,
		Producers: cfg.Producers, Consumers: cfg.Consumers, Keys: cfg.Keys, Rate: cfg.Rate, Seed: cfg.Seed,
		Groups: []GroupReport{}, Problems: []string{}}
	setupCtx, cancelSetup := context.WithTimeout(ctx, time.Minute)
	defer cancelSetup()
	if rep.Created, err = r.ensureStream(setupCtx); err != nil {
		return nil, err
	}
	rep.Shards = r.shards
	if cfg.Size, err = cfg.Size.within(max(r.summary.MaxRecordKiB, 1024) << 10); err != nil {
		return nil, err
	}
	r.cfg.Size, rep.Size = cfg.Size, cfg.Size
	run := rand.Uint64()
	rep.Run = strconv.FormatUint(run, 16)
	r.pl = newPayload(run, cfg.Seed, cfg.Size.Max, cfg.Keys)

	for i := range cfg.Consumers {
		r.groups = append(r.groups, newGroup(strconv.Itoa(i+1)))
	}
	if cfg.FanOut == Enhanced {
		if err := r.registerConsumers(setupCtx, rep.Run); err != nil {
			return nil, err
		}
		defer r.deregisterConsumers(context.WithoutCancel(ctx))
	}
	for range cfg.Producers {
		r.prods = append(r.prods, newProducerState())
	}

	// Consumers run until the drain ends; producers until the run's bound or ctx.
	r.start = time.Now()
	readCtx, stopReading := context.WithCancel(context.WithoutCancel(ctx))
	defer stopReading()
	var readers sync.WaitGroup
	for _, g := range r.groups {
		readers.Add(1)
		go func() {
			defer readers.Done()
			err := r.consume(readCtx, g)
			if err != nil && readCtx.Err() == nil {
				g.mu.Lock()
				g.fatal = err
				g.mu.Unlock()
			}
		}()
	}
	stopProgress := r.progress()

	produceCtx := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		produceCtx, cancel = context.WithDeadline(ctx, r.start.Add(cfg.Duration))
		defer cancel()
	}
	var producers sync.WaitGroup
	for i, ps := range r.prods {
		producers.Add(1)
		go func() {
			defer producers.Done()
			r.produce(produceCtx, i, ps)
		}()
	}
	producers.Wait()
	produced := time.Now()
	r.draining.Store(true)

	logs := make([][]recID, len(r.prods))
	for i, ps := range r.prods {
		ps.mu.Lock()
		logs[i] = ps.acks
		ps.mu.Unlock()
	}
	acks := newAcked(logs)
	r.drain(ctx, acks, produced)
	stopReading()
	readers.Wait()
	stopProgress()

	r.fillPut(rep, produced.Sub(r.start))
	for _, g := range r.groups {
		rep.Groups = append(rep.Groups, r.groupReport(g, acks))
	}
	rep.judge()
	return rep, nil
}

// ensureStream describes the stream, creating it when it is missing, and waits until it is
// ACTIVE.
func (r *runner) ensureStream(ctx context.Context) (created bool, err error) {
	sum, err := r.ctl.DescribeStreamSummary(ctx, r.cfg.Stream)
	if errors.Is(err, client.ErrNotFound) {
		err = r.ctl.CreateStream(ctx, r.cfg.Stream, r.cfg.Shards)
		if errors.Is(err, client.ErrInUse) { // created meanwhile by someone else
			err = nil
		} else {
			created = err == nil
		}
		if err == nil {
			sum, err = r.ctl.DescribeStreamSummary(ctx, r.cfg.Stream)
		}
	}
	for tries := 0; err == nil && sum.Status != "ACTIVE"; tries++ {
		if err = sleepCtx(ctx, min(50*time.Millisecond<<min(tries, 5), time.Second)); err == nil {
			sum, err = r.ctl.DescribeStreamSummary(ctx, r.cfg.Stream)
		}
	}
	if err != nil {
		return false, fmt.Errorf("%w: stream %s: %v", ErrSetup, r.cfg.Stream, err)
	}
	r.summary, r.shards = sum, sum.OpenShards
	return created, nil
}

// registerConsumers registers one enhanced fan-out consumer per group, named after the run,
// and waits until each is ACTIVE.
func (r *runner) registerConsumers(ctx context.Context, run string) error {
	for _, g := range r.groups {
		name := "sluice-load-" + run + "-" + g.name
		info, err := r.ctl.RegisterStreamConsumer(ctx, r.summary.ARN, name)
		for tries := 0; err == nil && info.Status != "ACTIVE"; tries++ {
			if err = sleepCtx(ctx, min(50*time.Millisecond<<min(tries, 5), time.Second)); err == nil {
				info, err = r.ctl.DescribeStreamConsumer(ctx, r.summary.ARN, name, "")
			}
		}
		if err != nil {
			return fmt.Errorf("%w: registering consumer %s: %v", ErrSetup, name, err)
		}
		g.arn = info.ARN
	}
	return nil
}

// deregisterConsumers removes the consumers registerConsumers made; failures are ignored
// (the consumers stay registered, under names no later run reuses).
func (r *runner) deregisterConsumers(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, g := range r.groups {
		if g.arn != "" {
			_ = r.ctl.CallKinesis(ctx, "DeregisterStreamConsumer", struct{ ConsumerARN string }{g.arn}, nil)
		}
	}
}

// claim takes the next record of the run, and false once cfg.Records are taken.
func (r *runner) claim() bool {
	return r.cfg.Records == 0 || r.claimed.Add(1) <= r.cfg.Records
}

// drain waits until every group has read every acknowledged record, a group failed, or
// the drain timeout passed, checking more and more slowly (from 5 ms to 200 ms apart).
func (r *runner) drain(ctx context.Context, acks acked, produced time.Time) {
	deadline := produced.Add(r.cfg.DrainTimeout)
	wait := 5 * time.Millisecond
	ctx = context.WithoutCancel(ctx)
	for {
		pending := 0
		for _, g := range r.groups {
			g.mu.Lock()
			done := g.complete || g.fatal != nil
			g.mu.Unlock()
			if done {
				continue
			}
			if v, _ := acks.verify(g.snapshot()); v.Missing > 0 {
				pending++
				continue
			}
			g.mu.Lock()
			g.complete, g.drain = true, time.Since(produced)
			g.mu.Unlock()
		}
		if pending == 0 || !time.Now().Before(deadline) {
			return
		}
		_ = sleepCtx(ctx, min(wait, time.Until(deadline)))
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// progress calls cfg.Progress every ProgressInterval until the returned function is called.
func (r *runner) progress() (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(r.cfg.ProgressInterval)
		defer t.Stop()
		put, e2e := newHistogram(), newHistogram()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			put.Reset()
			e2e.Reset()
			p := Progress{Elapsed: time.Since(r.start), Draining: r.draining.Load()}
			for _, ps := range r.prods {
				ps.mu.Lock()
				p.Acknowledged += ps.acked
				p.Failed += ps.failed
				p.Bytes += ps.bytes
				p.Throttled += ps.throttled
				put.Merge(ps.hist)
				ps.mu.Unlock()
			}
			for i, g := range r.groups {
				g.mu.Lock()
				if i == 0 || g.consumed < p.Consumed {
					p.Consumed = g.consumed
				}
				e2e.Merge(g.hist)
				g.mu.Unlock()
			}
			p.PutP99, p.EndToEndP99 = p99(put), p99(e2e)
			r.cfg.Progress(p)
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

// fillPut adds up the producers into rep.Put.
func (r *runner) fillPut(rep *Report, elapsed time.Duration) {
	p := &rep.Put
	p.Seconds = elapsed.Seconds()
	p.Errors, p.RequestErrors = map[string]uint64{}, r.putLogs.counts()
	h := newHistogram()
	for i, ps := range r.prods {
		ps.mu.Lock()
		p.Attempted += ps.attempted
		p.Acknowledged += ps.acked
		p.Failed += ps.failed
		p.Bytes += ps.bytes
		p.Requests += ps.requests
		p.Throttled += ps.throttled
		p.Retried += ps.retried
		for k, v := range ps.errors {
			p.Errors[k] += v
		}
		for k, v := range ps.requestErrors {
			p.RequestErrors[k] += v
		}
		h.Merge(ps.hist)
		if ps.fatal != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("producer %d failed: %v", i+1, ps.fatal))
		}
		ps.mu.Unlock()
	}
	p.Latency = summarize(h)
	if s := elapsed.Seconds(); s > 0 {
		p.RecordsPerSec = float64(p.Acknowledged) / s
		p.MBPerSec = float64(p.Bytes) / s / 1e6
	}
}

// groupReport verifies g against acks, with everything it read.
func (r *runner) groupReport(g *group, acks acked) GroupReport {
	v, missing := acks.verify(g.snapshot())
	g.mu.Lock()
	defer g.mu.Unlock()
	gr := GroupReport{Name: g.name, Consumed: g.consumed, Bytes: g.bytes, Verdict: v, MissingShards: missing, Complete: g.complete,
		ReadErrors: g.readErrors, Latency: summarize(g.hist), Unmeasured: g.unmeasured}
	if g.complete {
		gr.DrainSeconds = g.drain.Seconds()
	}
	if g.fatal != nil {
		gr.Error = g.fatal.Error()
	}
	return gr
}

// errName names an error for the report's tallies: the Kinesis error name of a refusal,
// NetworkError for a failed exchange, Timeout and Canceled for a context that ended,
// Closed for a record a producer gave up on when it closed.
func errName(err error) string {
	var ce *client.Error
	var ae *apiError
	var ne *netError
	var nerr net.Error
	switch {
	case errors.As(err, &ce):
		return ce.Name
	case errors.As(err, &ae):
		return ae.Name
	case errors.Is(err, client.ErrClosed):
		return "Closed"
	case errors.Is(err, context.DeadlineExceeded):
		return "Timeout"
	case errors.Is(err, context.Canceled):
		return "Canceled"
	case errors.As(err, &ne), errors.As(err, &nerr):
		return "NetworkError"
	case errors.Is(err, errEvent), errors.Is(err, errBadAnswer):
		return "MalformedAnswer"
	}
	return "Error"
}

// errBadAnswer reports an answer that did not decode.
var errBadAnswer = errors.New("malformed answer")

// retryable reports whether an error of the Kinesis protocol is worth another attempt:
// throttling, a server-side failure, a failed exchange.
func retryable(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		switch ae.Name {
		case "ProvisionedThroughputExceededException", "LimitExceededException", "InternalFailure",
			"ServiceUnavailable", "ThrottlingException", "KMSThrottlingException":
			return true
		}
		return ae.Status >= 500
	}
	var ne *netError
	return errors.As(err, &ne) || errors.Is(err, errEvent) || errors.Is(err, errBadAnswer)
}

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// backoff returns the wait before retry attempt+1: base·2^attempt capped at limit, half of
// it random.
func backoff(attempt int, base, limit time.Duration) time.Duration {
	d := limit
	if attempt < 30 && base<<attempt < limit {
		d = base << attempt
	}
	return d/2 + rand.N(d/2+1)
}

// errorCounter is a slog.Handler that counts the client package's warnings by the name of
// the error they carry (their "err" attribute): the failures the client retried on its own.
type errorCounter struct {
	mu sync.Mutex
	n  map[string]uint64
	// add, when set, receives each count instead (a consumer group's tally).
	add func(name string)
}

func newErrorCounter() *errorCounter { return &errorCounter{n: map[string]uint64{}} }

func (c *errorCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *errorCounter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *errorCounter) WithGroup(string) slog.Handler            { return c }

func (c *errorCounter) Handle(_ context.Context, rec slog.Record) error {
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key != "err" {
			return true
		}
		name := "Error"
		if err, ok := a.Value.Any().(error); ok {
			name = errName(err)
		}
		if c.add != nil {
			c.add(name)
			return false
		}
		c.mu.Lock()
		c.n[name]++
		c.mu.Unlock()
		return false
	})
	return nil
}

func (c *errorCounter) counts() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}
