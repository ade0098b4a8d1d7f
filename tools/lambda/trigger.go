package lambda

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-streams/sluice/client"
)

// Options configures a Trigger.
type Options struct {
	// Mapping is the event source mapping (ParseMapping).
	Mapping Mapping
	// Function is the function to run; its Name, ARN and Region default to the mapping's
	// FunctionName (else the handler's file name), an ARN in the stream's account and
	// the stream's region.
	Function FunctionConfig
	// CheckpointFile keeps the trigger's progress (required).
	CheckpointFile string
	// Role is the invokeIdentityArn of the events; "" means
	// arn:aws:iam::ACCOUNT:role/sluice-lambda in the stream's account.
	Role string
	// PollInterval is the wait after a read of a shard found nothing new, unless the
	// mapping's batching window is longer; 0 means 1 s (Lambda polls an idle shard once a
	// second).
	PollInterval time.Duration
	// RetryBackoff is the wait before the first retry of a failed batch, doubled for each
	// further one up to MaxRetryBackoff; 0 means 1 s and 1 min.
	RetryBackoff, MaxRetryBackoff time.Duration
	// Logger receives failures and warnings; nil discards them.
	Logger *slog.Logger
	// Now is the clock records are aged by against MaximumRecordAgeInSeconds; nil means
	// time.Now.
	Now func() time.Time
}

// Stats counts what a trigger did. Its fields only grow.
type Stats struct {
	Invocations    uint64 // calls of the function
	Records        uint64 // records in invocations that succeeded
	FunctionErrors uint64 // invocations that failed as a whole
	PartialErrors  uint64 // invocations that reported batch item failures
	FailedBatches  uint64 // batches sent to the on-failure destination (or dropped)
	FailedRecords  uint64 // records in those batches
}

// Trigger reads a stream and invokes a function with its records, as a Lambda event
// source mapping does. See the package documentation.
type Trigger struct {
	c      *client.Client
	m      Mapping
	opts   Options
	rt     *Runtime
	cp     *checkpointer
	dest   destination
	log    *slog.Logger
	stream string

	streamARN, region, role, functionARN string

	invocations, records, funcErrors, partialErrors, failedBatches, failedRecords atomic.Uint64
}

// New returns a trigger of the mapping's stream on the server c talks to. It loads the
// checkpoint file and opens the on-failure destination; it starts no process before Run.
func New(c *client.Client, opts Options) (*Trigger, error) {
	m := opts.Mapping
	region, stream, err := parseStreamARN(m.EventSourceArn)
	if err != nil {
		return nil, fmt.Errorf("%w: EventSourceArn: %v", ErrMapping, err)
	}
	if opts.CheckpointFile == "" {
		return nil, errors.New("lambda: no checkpoint file")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = time.Second
	}
	if opts.MaxRetryBackoff <= 0 {
		opts.MaxRetryBackoff = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	account := accountOf(m.EventSourceArn)
	if opts.Role == "" {
		opts.Role = "arn:aws:iam::" + account + ":role/sluice-lambda"
	}
	fc := opts.Function
	if fc.Name == "" {
		fc.Name = m.FunctionName
	}
	if fc.Region == "" {
		fc.Region = region
	}
	rt, err := NewRuntime(fc)
	if err != nil {
		return nil, err
	}
	if rt.cfg.ARN == "" {
		rt.cfg.ARN = "arn:aws:lambda:" + region + ":" + account + ":function:" + rt.cfg.Name
	}
	t := &Trigger{c: c, m: m, opts: opts, rt: rt, log: opts.Logger, stream: stream,
		streamARN: m.EventSourceArn, region: region, role: opts.Role, functionARN: rt.cfg.ARN}
	if t.cp, err = openCheckpointer(opts.CheckpointFile, m.EventSourceArn, m.ParallelizationFactor); err != nil {
		return nil, err
	}
	t.dest = dropDestination{}
	if m.OnFailure != "" {
		if t.dest, err = newDestination(c, m.OnFailure); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Stats returns the counts so far; safe to call while Run runs.
func (t *Trigger) Stats() Stats {
	return Stats{Invocations: t.invocations.Load(), Records: t.records.Load(), FunctionErrors: t.funcErrors.Load(),
		PartialErrors: t.partialErrors.Load(), FailedBatches: t.failedBatches.Load(), FailedRecords: t.failedRecords.Load()}
}

// Run reads the stream and invokes the function until ctx ends (it returns ctx.Err()) or
// something other than the function fails: the server, the checkpoint file, the on-failure
// destination, starting the handler (it returns why). It may run again afterwards,
// resuming from the checkpoints.
func (t *Trigger) Run(ctx context.Context) error {
	cfg := client.ConsumerConfig{Checkpointer: t.cp, PollInterval: max(t.opts.PollInterval, t.m.BatchingWindow),
		MaxRecords: min(10000, t.m.BatchSize*t.m.ParallelizationFactor)}
	if t.m.BatchingWindow > 0 {
		// Lambda reads a shard at most once per batching window.
		cfg.ReadsPerSecond = min(5, 1/t.m.BatchingWindow.Seconds())
	}
	switch t.m.StartingPosition {
	case "LATEST":
		cfg.Start = client.Latest
	case "AT_TIMESTAMP":
		cfg.Start, cfg.StartTime = client.AtTimestamp, t.m.StartingTimestamp
	default:
		cfg.Start = client.TrimHorizon
	}
	co, err := t.c.NewConsumer(t.stream, cfg)
	if err != nil {
		return err
	}
	return co.Run(ctx, t.handle)
}

// Close stops the handler processes and closes the on-failure destination. Call it after
// Run returned.
func (t *Trigger) Close() error {
	err := t.rt.Close()
	if derr := t.dest.close(); err == nil {
		err = derr
	}
	return err
}

// laneOf spreads partition keys over the mapping's ParallelizationFactor lanes.
func (t *Trigger) laneOf(key []byte) int {
	if t.m.ParallelizationFactor == 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write(key)
	return int(h.Sum32() % uint32(t.m.ParallelizationFactor))
}

// handle takes what one read of a shard returned: its records, less those a lane already
// did before a restart, split into lanes by key, each lane invoked batch by batch in order
// and the lanes at once. It returns once every record succeeded or failed for good.
func (t *Trigger) handle(ctx context.Context, b *client.Batch) error {
	lanes := make([][]client.Record, t.m.ParallelizationFactor)
	for _, r := range b.Records {
		l := t.laneOf(r.Key)
		if r.Position < t.cp.laneNext(b.Shard, l) {
			continue // done before a restart
		}
		lanes[l] = append(lanes[l], r)
	}
	if len(lanes) == 1 {
		return t.runLane(ctx, b.Shard, 0, lanes[0])
	}
	var wg sync.WaitGroup
	errs := make([]error, len(lanes))
	for l, recs := range lanes {
		if len(recs) == 0 {
			continue
		}
		wg.Go(func() { errs[l] = t.runLane(ctx, b.Shard, l, recs) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// runLane invokes the function with recs, in batches of up to BatchSize records and 6 MB,
// and with tumbling windows, of one window each.
func (t *Trigger) runLane(ctx context.Context, shard uint32, lane int, recs []client.Record) error {
	buf := make([]byte, 0, 64<<10)
	for len(recs) > 0 {
		var err error
		if buf, err = t.enterWindow(ctx, shard, lane, t.windowOf(&recs[0]), buf); err != nil {
			return err
		}
		winLen := 0
		if t.m.TumblingWindow > 0 {
			buf = (&windowInvoke{shard: shard, lw: *t.cp.window(shard, lane)}).append(buf[:0], t)
			winLen = len(buf)
		}
		n := t.batchLen(recs, winLen)
		if buf, err = t.runBatch(ctx, shard, lane, recs[:n], 0, buf); err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

// batchLen returns how many records at the start of recs one invocation takes: up to
// BatchSize, all of one tumbling window, and as many as the event holds within Lambda's
// 6 MB payload with winLen bytes of window properties. The sizes are exact (eventSize), so
// batches fill as Lambda's do; the first record goes whatever its size.
func (t *Trigger) batchLen(recs []client.Record, winLen int) int {
	fixed := t.recordFixed()
	size := evEmpty + winLen - 1 // the first record has no comma before it
	n := 0
	for n < len(recs) && n < t.m.BatchSize {
		size += 1 + eventSize(&recs[n], fixed)
		if n > 0 && (size > maxPayload || t.windowOf(&recs[n]) != t.windowOf(&recs[0])) {
			break
		}
		n++
	}
	return n
}

// windowOf returns the start of r's tumbling window in Unix milliseconds: windows are
// aligned on multiples of their length since the epoch and hold the records that arrived
// in them. Without tumbling windows it is 0.
func (t *Trigger) windowOf(r *client.Record) int64 {
	if t.m.TumblingWindow <= 0 {
		return 0
	}
	w := t.m.TumblingWindow.Milliseconds()
	ms := r.Arrival.UnixMilli()
	return ms - ms%w
}

// enterWindow makes start the lane's open window. When another window was open, the
// function first gets that window's final invocation (no records, its state,
// isFinalInvokeForWindow), retried like a batch; when its retries run out it is dropped.
func (t *Trigger) enterWindow(ctx context.Context, shard uint32, lane int, start int64, buf []byte) ([]byte, error) {
	if t.m.TumblingWindow <= 0 {
		return buf, nil
	}
	open := t.cp.window(shard, lane)
	if open != nil && open.Start == start {
		return buf, nil
	}
	if open != nil {
		win := &windowInvoke{shard: shard, lw: *open, final: true}
		for attempts := 0; ; {
			buf = t.appendEvent(buf[:0], nil, win)
			t.invocations.Add(1)
			_, id, err := t.rt.Invoke(ctx, buf)
			var fe *FunctionError
			if err == nil {
				break
			}
			if !errors.As(err, &fe) {
				return buf, err
			}
			t.funcErrors.Add(1)
			attempts++
			if t.m.MaxRetries >= 0 && attempts > t.m.MaxRetries {
				t.log.Warn("lambda: the final invocation of a window failed for good", "shard", shard, "request", id, "err", fe)
				break
			}
			if err := sleep(ctx, t.retryWait(attempts)); err != nil {
				return buf, err
			}
		}
	}
	return buf, t.cp.setWindow(shard, lane, &laneWindow{Start: start})
}

// retryWait is the backoff before retry attempt.
func (t *Trigger) retryWait(attempt int) time.Duration {
	d := t.opts.RetryBackoff << min(attempt-1, 20)
	if d <= 0 || d > t.opts.MaxRetryBackoff {
		d = t.opts.MaxRetryBackoff
	}
	return d
}

// runBatch invokes the function with batch until it succeeds or fails for good, after
// attempts failed invocations of its records already. A function error bisects the batch
// when the mapping says so (the halves inherit the attempts: splitting is not a retry);
// otherwise it is retried, after a backoff, until MaximumRetryAttempts or
// MaximumRecordAgeInSeconds runs out, and then its metadata goes to the on-failure
// destination. A partial batch response completes the records before the first failed
// one and retries from it. buf is reused for the event.
func (t *Trigger) runBatch(ctx context.Context, shard uint32, lane int, batch []client.Record, attempts int, buf []byte) ([]byte, error) {
	lastID, lastErr := "", ""
	for {
		if n := t.expired(batch); n > 0 {
			if err := t.fail(ctx, shard, lane, batch[:n], condRecordAge, lastID, lastErr, attempts); err != nil {
				return buf, err
			}
			if batch = batch[n:]; len(batch) == 0 {
				return buf, nil
			}
		}
		var win *windowInvoke
		if t.m.TumblingWindow > 0 {
			win = &windowInvoke{shard: shard, lw: *t.cp.window(shard, lane)}
		}
		buf = t.appendEvent(buf[:0], batch, win)
		if len(buf) > maxPayload && len(batch) > 1 {
			// The window's state grew since batchLen sized the batch (a partial success
			// returned a longer one): the halves go one after the other.
			return t.runHalves(ctx, shard, lane, batch, attempts, buf)
		}
		t.invocations.Add(1)
		resp, id, err := t.rt.Invoke(ctx, buf)
		lastID = id
		failedAt := len(batch) // the first record that failed
		var fe *FunctionError
		switch {
		case errors.As(err, &fe):
			failedAt = 0
		case err != nil:
			return buf, err
		case t.m.ReportBatchItemFailures:
			var ok bool
			if failedAt, ok = firstFailure(resp, batch); !ok {
				fe = &FunctionError{Type: "InvalidBatchItemFailures", Message: "the batch item failures do not name records of the batch"}
				failedAt = 0
			} else if failedAt < len(batch) {
				t.partialErrors.Add(1)
			}
		}
		if failedAt > 0 {
			t.records.Add(uint64(failedAt))
			var lw *laneWindow
			if win != nil {
				lw = &laneWindow{Start: win.lw.Start, State: windowState(resp)}
			}
			if err := t.cp.done(shard, lane, batch[failedAt-1].Position, lw); err != nil {
				return buf, err
			}
			if batch = batch[failedAt:]; len(batch) == 0 {
				return buf, nil
			}
		}
		lastErr = ""
		if fe != nil {
			t.funcErrors.Add(1)
			lastErr = "Unhandled"
			t.log.Warn("lambda: function error", "shard", shard, "records", len(batch), "request", id, "err", fe)
			if t.m.BisectOnError && len(batch) > 1 {
				return t.runHalves(ctx, shard, lane, batch, attempts, buf)
			}
		}
		attempts++
		if t.m.MaxRetries >= 0 && attempts > t.m.MaxRetries {
			return buf, t.fail(ctx, shard, lane, batch, condRetriesExhausted, id, lastErr, attempts)
		}
		if err := sleep(ctx, t.retryWait(attempts)); err != nil {
			return buf, err
		}
	}
}

// runHalves runs the two halves of batch, one after the other, each with attempts.
func (t *Trigger) runHalves(ctx context.Context, shard uint32, lane int, batch []client.Record, attempts int, buf []byte) ([]byte, error) {
	half := len(batch) / 2
	buf, err := t.runBatch(ctx, shard, lane, batch[:half], attempts, buf)
	if err != nil {
		return buf, err
	}
	return t.runBatch(ctx, shard, lane, batch[half:], attempts, buf)
}

// expired returns how many records at the start of batch are older than
// MaximumRecordAgeInSeconds.
func (t *Trigger) expired(batch []client.Record) int {
	if t.m.MaxRecordAge <= 0 {
		return 0
	}
	now, n := t.opts.Now(), 0
	for n < len(batch) && now.Sub(batch[n].Arrival) > t.m.MaxRecordAge {
		n++
	}
	return n
}

// fail sends the metadata of recs, which failed for good, to the on-failure destination
// and moves the lane past them.
func (t *Trigger) fail(ctx context.Context, shard uint32, lane int, recs []client.Record, cond, requestID, funcErr string, invokes int) error {
	t.failedBatches.Add(1)
	t.failedRecords.Add(uint64(len(recs)))
	f := t.newFailureRecord(recs, cond, requestID, funcErr, invokes)
	t.log.Warn("lambda: batch failed for good", "condition", cond, "shard", f.KinesisBatchInfo.ShardID,
		"start", f.KinesisBatchInfo.StartSequenceNumber, "end", f.KinesisBatchInfo.EndSequenceNumber, "records", len(recs))
	if err := t.dest.send(ctx, f); err != nil {
		return err
	}
	return t.cp.done(shard, lane, recs[len(recs)-1].Position, nil)
}

// windowState returns the state of a tumbling window's response ({"state":{…}}), nil when
// it has none.
func windowState(resp []byte) map[string]string {
	var r struct {
		State map[string]string `json:"state"`
	}
	if json.Unmarshal(resp, &r) != nil {
		return nil
	}
	return r.State
}

// firstFailure reads a partial batch response and returns the index in batch of the
// first record it reports as failed, len(batch) for none. It returns false when the
// response is not valid JSON or names something that is not a record of the batch,
// which Lambda takes as the failure of the whole batch.
func firstFailure(resp []byte, batch []client.Record) (int, bool) {
	var r struct {
		BatchItemFailures []struct {
			ItemIdentifier *string `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
	}
	if len(resp) == 0 {
		return len(batch), true
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		return 0, false
	}
	first := len(batch)
	for _, f := range r.BatchItemFailures {
		if f.ItemIdentifier == nil {
			return 0, false
		}
		seq, err := client.ParseSeqNum(*f.ItemIdentifier)
		if err != nil {
			return 0, false
		}
		i := sort.Search(len(batch), func(i int) bool { return batch[i].Position >= seq.Position })
		if i == len(batch) || batch[i].Position != seq.Position || batch[i].Shard != seq.Shard {
			return 0, false
		}
		first = min(first, i)
	}
	return first, true
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
