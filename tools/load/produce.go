package load

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/internal/jsonscan"
)

// Batch bounds of the Kinesis producer: PutRecords takes at most 500 records, and the
// body (base64 data, 4/3 of it) must stay well under a server's request limit.
const (
	maxBatchRecords = 500
	maxBatchBytes   = 4 << 20
)

// nativeBuffered caps the keys and data a native producer holds waiting for outcomes: about
// one Kinesis producer's batch, so that an unpaced run measures the server rather than a
// deep queue in the client (with the client's default of 64 MiB, put latency is mostly the
// time a record waits behind the others).
const nativeBuffered = 4 << 20

// pacer spaces a producer's records evenly at its share of the rate.
type pacer struct {
	start    time.Time
	end      time.Time // no record is due at or after it; zero: no end
	interval float64   // nanoseconds between records; 0: no pacing
	n        uint64    // records paced so far
}

func (r *runner) pacer() pacer {
	p := pacer{start: r.start}
	if r.cfg.Rate > 0 {
		p.interval = float64(time.Second) * float64(r.cfg.Producers) / r.cfg.Rate
	}
	if r.cfg.Duration > 0 {
		p.end = r.start.Add(r.cfg.Duration)
	}
	return p
}

// due returns when the next record may go (the zero time when unpaced), and false when it
// would be after the run's end. The end is checked here rather than left to the context's
// deadline, whose timer may fire a little late: a paced run never puts more records than
// its schedule holds.
func (p *pacer) due() (time.Time, bool) {
	if p.interval == 0 {
		return time.Time{}, true
	}
	t := p.start.Add(time.Duration(float64(p.n) * p.interval))
	return t, p.end.IsZero() || t.Before(p.end)
}

// produce runs producer i until ctx ends or the run's records are all claimed, then waits
// (for at most the drain timeout) for the outcome of every record it put.
func (r *runner) produce(ctx context.Context, i int, ps *producerState) {
	rng := rand.New(rand.NewPCG(r.cfg.Seed, uint64(i)+1))
	if r.cfg.Protocol == Kinesis {
		r.produceKinesis(ctx, rng, ps)
		return
	}
	r.produceNative(ctx, rng, ps)
}

// produceNative puts records through a client.Producer, with a callback per record.
func (r *runner) produceNative(ctx context.Context, rng *rand.Rand, ps *producerState) {
	p, err := r.ctl.NewProducer(ctx, r.cfg.Stream, client.ProducerConfig{Linger: r.cfg.Linger, MaxBuffered: nativeBuffered})
	if err != nil {
		ps.mu.Lock()
		ps.fatal = err
		ps.mu.Unlock()
		return
	}
	pace := r.pacer()
	for ctx.Err() == nil {
		if due, ok := pace.due(); !ok {
			break
		} else if !due.IsZero() {
			if sleepCtx(ctx, time.Until(due)) != nil {
				break
			}
			pace.n++
		}
		if !r.claim() {
			break
		}
		n, key := r.cfg.Size.Sample(rng), rng.IntN(len(r.pl.keys))
		sent := time.Now()
		buf := getBuf(n)
		*buf = r.pl.appendData(*buf, n, sent.UnixNano())
		err := p.PutFunc(ctx, r.pl.keys[key], *buf, func(o client.Outcome) {
			d := time.Since(sent)
			ps.mu.Lock()
			if o.Err != nil {
				ps.failLocked(o.Err)
			} else {
				ps.ackLocked(recID{o.Shard, o.Position}, n, d)
			}
			ps.mu.Unlock()
			putBuf(buf)
		})
		if err != nil {
			putBuf(buf)
			if ctx.Err() != nil {
				break // Put was waiting for buffer space when the run ended: not attempted
			}
			ps.mu.Lock()
			ps.attempted++
			ps.failLocked(err)
			ps.mu.Unlock()
			continue
		}
		ps.mu.Lock()
		ps.attempted++
		ps.mu.Unlock()
	}
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.DrainTimeout)
	defer cancel()
	_ = p.Close(closeCtx) // every record's outcome has reached its callback
	st := p.Stats()
	ps.mu.Lock()
	ps.requests, ps.throttled, ps.retried = st.Requests, st.Throttled, st.Retries
	ps.mu.Unlock()
}

// kinesisProducer is one producer of the Kinesis protocol: it builds a PutRecords batch,
// sends it, waits for the answer, and queues the refused records for a retry. It is owned by
// one goroutine.
type kinesisProducer struct {
	r       *runner
	api     *kinesisAPI
	ps      *producerState
	rng     *rand.Rand
	batch   []pending
	bytes   int       // data and keys in batch
	lingers time.Time // when the open batch must go
	retry   []pending // refused records, in order, waiting for retryAt
	retryAt time.Time
	tries   int // consecutive answers with refusals, for the backoff
	body    []byte
	results []putResult
	sc      jsonscan.Scanner
	resp    *fasthttp.Response
}

// produceKinesis puts records with PutRecords, one request at a time.
func (r *runner) produceKinesis(ctx context.Context, rng *rand.Rand, ps *producerState) {
	api, err := newKinesisAPI(r.cfg.Endpoint, 2)
	if err != nil {
		ps.mu.Lock()
		ps.fatal = err
		ps.mu.Unlock()
		return
	}
	defer api.close()
	kp := &kinesisProducer{r: r, api: api, ps: ps, rng: rng, resp: fasthttp.AcquireResponse()}
	defer fasthttp.ReleaseResponse(kp.resp)
	pace := r.pacer()
	// After putting stops, retries go on until every record has an outcome or the drain
	// timeout passes.
	var closeBy time.Time
	closeCtx := context.WithoutCancel(ctx)
	for {
		now := time.Now()
		producing := ctx.Err() == nil
		if !producing && closeBy.IsZero() {
			closeBy = now.Add(r.cfg.DrainTimeout)
		}
		if !producing && now.After(closeBy) {
			break
		}
		kp.takeRetries(now)
		var due time.Time
		if producing && !kp.full(0) {
			var ok bool
			due, ok = pace.due()
			if !ok {
				ctx = doneCtx // the schedule is over: putting is over
				continue
			}
			if !due.After(now) {
				if !r.claim() {
					ctx = doneCtx // every record is claimed: putting is over
					continue
				}
				pace.n++
				kp.add(pending{sent: now.UnixNano(), key: int32(rng.IntN(len(r.pl.keys))), size: int32(r.cfg.Size.Sample(rng))}, now)
				continue
			}
		}
		// Send when the batch is full, lingered long enough, or nothing more will join it
		// before its linger time.
		if len(kp.batch) > 0 && (kp.full(0) || !producing || !now.Before(kp.lingers) || due.After(kp.lingers)) {
			kp.send(closeCtx)
			continue
		}
		if len(kp.batch) == 0 && len(kp.retry) == 0 && !producing {
			break
		}
		// Wait for the first of: the next record's time, the linger time, the retry time,
		// the end of putting.
		wake := due
		if len(kp.batch) > 0 && (wake.IsZero() || kp.lingers.Before(wake)) {
			wake = kp.lingers
		}
		if len(kp.retry) > 0 && (wake.IsZero() || kp.retryAt.Before(wake)) {
			wake = kp.retryAt
		}
		if !producing && (wake.IsZero() || closeBy.Before(wake)) {
			wake = closeBy
		}
		waitCtx := ctx
		if !producing {
			waitCtx = closeCtx
		}
		if wake.IsZero() {
			<-waitCtx.Done()
		} else {
			_ = sleepCtx(waitCtx, time.Until(wake))
		}
	}
	// The drain timeout passed: what is left fails.
	ps.mu.Lock()
	for range len(kp.batch) + len(kp.retry) {
		ps.failLocked(client.ErrClosed)
	}
	ps.mu.Unlock()
}

// doneCtx is an ended context: the Kinesis producer's ctx once every record is claimed.
var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// full reports whether the batch cannot take a record of n more bytes.
func (kp *kinesisProducer) full(n int) bool {
	return len(kp.batch) >= maxBatchRecords || len(kp.batch) > 0 && kp.bytes+n > maxBatchBytes
}

// add puts a new record into the batch and counts it attempted.
func (kp *kinesisProducer) add(p pending, now time.Time) {
	kp.ps.mu.Lock()
	kp.ps.attempted++
	kp.ps.mu.Unlock()
	kp.push(p, now)
}

func (kp *kinesisProducer) push(p pending, now time.Time) {
	if len(kp.batch) == 0 {
		kp.lingers = now.Add(kp.r.cfg.Linger)
	}
	kp.batch = append(kp.batch, p)
	kp.bytes += int(p.size) + len(kp.r.pl.keys[p.key])
}

// takeRetries moves the records waiting for a retry into the batch once their time came,
// ahead of new ones.
func (kp *kinesisProducer) takeRetries(now time.Time) {
	if len(kp.retry) == 0 || now.Before(kp.retryAt) {
		return
	}
	i := 0
	for ; i < len(kp.retry); i++ {
		p := kp.retry[i]
		if kp.full(int(p.size) + len(kp.r.pl.keys[p.key])) {
			break
		}
		kp.push(p, now)
	}
	kp.retry = append(kp.retry[:0], kp.retry[i:]...)
	if len(kp.batch) > 0 {
		kp.lingers = now // retried records do not linger again
	}
}

// send sends the batch and settles each record's outcome: acknowledged, queued for a retry,
// or failed.
func (kp *kinesisProducer) send(ctx context.Context) {
	batch := kp.batch
	kp.body = kp.r.pl.appendPutRecords(kp.body[:0], kp.r.cfg.Stream, batch)
	err := kp.api.call(ctx, "PutRecords", kp.body, kp.resp)
	now := time.Now()
	if err == nil {
		kp.results, err = decodePutRecords(&kp.sc, kp.resp.Body(), kp.results)
		if err == nil && len(kp.results) != len(batch) {
			err = errBadAnswer
		}
		if err != nil {
			err = errors.Join(errBadAnswer, err)
		}
	}
	ps := kp.ps
	refused := len(kp.retry)
	ps.mu.Lock()
	ps.requests++
	switch {
	case err != nil && retryable(err):
		ps.requestErrors[errName(err)]++
		ps.retried += uint64(len(batch))
		kp.retry = append(kp.retry, batch...)
	case err != nil:
		for range batch {
			ps.failLocked(err)
		}
	default:
		for i, res := range kp.results {
			p := batch[i]
			switch res.err {
			case "":
				ps.ackLocked(res.id, int(p.size), now.Sub(time.Unix(0, p.sent)))
			case "ProvisionedThroughputExceededException", "InternalFailure":
				if res.err == "ProvisionedThroughputExceededException" {
					ps.throttled++
				}
				ps.retried++
				kp.retry = append(kp.retry, p)
			default:
				ps.failLocked(&apiError{Op: "PutRecords", Name: res.err})
			}
		}
	}
	ps.mu.Unlock()
	if len(kp.retry) > refused {
		kp.retryAt = now.Add(backoff(kp.tries, 20*time.Millisecond, time.Second))
		kp.tries++
	} else {
		kp.tries = 0
	}
	kp.batch, kp.bytes = kp.batch[:0], 0
}
