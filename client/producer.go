package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/shardmap"
)

// ProducerConfig configures a Producer. The zero value is usable.
type ProducerConfig struct {
	// Linger is how long a batch waits for more records before it is sent; 0 means 5 ms.
	Linger time.Duration
	// MaxBatchRecords caps the records of one put request: 1…500, 0 means 500.
	MaxBatchRecords int
	// MaxBatchBytes caps the keys and data of one put request: up to 10 MiB, 0 means 5 MiB.
	MaxBatchBytes int
	// MaxBuffered caps the bytes (keys and data) of the records Put and still waiting for
	// their outcome; Put blocks while it is reached. 0 means 64 MiB.
	MaxBuffered int
	// MaxInFlight is how many put requests may run at once; 0 means 4.
	MaxInFlight int
	// BaseBackoff and MaxBackoff bound the exponential backoff (with jitter) before a retry;
	// 0 means 20 ms and 1 s.
	BaseBackoff, MaxBackoff time.Duration
	// RecordTimeout fails a record still not appended this long after its Put with its last
	// error; 0 means no limit (Close's context bounds the wait instead).
	RecordTimeout time.Duration
	// MaxAttempts fails a record after this many refused attempts; 0 means no limit.
	MaxAttempts int
	// Unordered lets records of one partition key be sent together and overtake each other
	// on retries. By default a record is not sent while an earlier record of the same key is
	// in flight or waiting to be retried, which keeps each key's records in Put order but
	// sends one record per key per request.
	Unordered bool
	// Aggregate packs the records bound for one shard into KPL aggregated records (package
	// kpl), as the KPL does: many small records then cost one record of the stream. See the
	// package documentation, Aggregation.
	Aggregate bool
	// MaxAggregateBytes caps the data of one aggregated record; 0 or more than the stream's
	// maximum record size (1 MiB by default) means that maximum.
	MaxAggregateBytes int
	// EndpointOnly sends every record to the client's endpoint. By default, in cluster mode,
	// each shard's records go straight to the node leading the shard (see the package
	// documentation, Cluster); set it when the client can reach only its endpoint, which then
	// forwards the records of shards it does not lead.
	EndpointOnly bool
}

// Outcome is what became of a record: where it was appended, or the error that ended its
// attempts.
type Outcome struct {
	SeqNum         // shard and position; zero when Err is set
	Err      error // nil once appended
	Attempts int   // put requests that carried the record
	// Aggregated is set when the record was appended inside a KPL aggregated record (with
	// ProducerConfig.Aggregate), at SeqNum; SubSeq is its index there.
	Aggregated bool
	SubSeq     uint64
}

// Future is the pending outcome of a record given to Put.
type Future struct {
	r    rec
	done chan struct{}
}

// Done is closed once the outcome is known.
func (f *Future) Done() <-chan struct{} { return f.done }

// Outcome returns the record's outcome, and false while it is not known yet.
func (f *Future) Outcome() (Outcome, bool) {
	select {
	case <-f.done:
		return f.r.out, true
	default:
		return Outcome{}, false
	}
}

// Wait waits for the record's outcome: its sequence number, or the error that ended its
// attempts. If ctx ends first it returns ctx.Err(), and the record is still pending.
func (f *Future) Wait(ctx context.Context) (SeqNum, error) {
	select {
	case <-f.done:
		return f.r.out.SeqNum, f.r.out.Err
	case <-ctx.Done():
		return SeqNum{}, ctx.Err()
	}
}

// ProducerStats counts a Producer's work since it was made.
type ProducerStats struct {
	Requests  uint64 // put requests answered or failed
	Appended  uint64 // records appended
	Failed    uint64 // records that ended with an error
	Retries   uint64 // record attempts refused and retried
	Throttled uint64 // record attempts refused with ProvisionedThroughputExceeded
	Refreshes uint64 // shard map refreshes
	// LeaderFailures counts the requests to a shard's leader (in cluster mode) that failed on
	// the way: the leader was forgotten, its records sent through the client's endpoint.
	LeaderFailures uint64
	// Aggregates counts the aggregated records sent (with ProducerConfig.Aggregate), and
	// Rerouted those appended to another shard than the one their records were grouped for:
	// their records were aggregated again, for the shard the refreshed map gives them.
	Aggregates uint64
	Rerouted   uint64
}

// FlushError reports the records that failed among those a Flush or Close waited for.
type FlushError struct {
	Failed int   // how many
	First  error // the first one's error
}

func (e *FlushError) Error() string {
	return "sluice: " + strconv.Itoa(e.Failed) + " records failed; first: " + e.First.Error()
}

// Unwrap returns the first failure's error, so errors.Is(err, ErrThrottled) asks about it.
func (e *FlushError) Unwrap() error { return e.First }

// Producer appends records to one stream asynchronously: Put queues a record and returns;
// records are batched into native put requests by count, size and linger time; refused
// records are retried with backoff; each record's outcome arrives through its Future or
// callback. See the package documentation for the ordering and concurrency contract.
type Producer struct {
	c       *Client
	stream  string
	cfg     ProducerConfig
	maxData int // the stream's maximum data length of a record
	maxAgg  int // the most data of an aggregated record

	wake chan struct{} // the pump's doorbell; capacity 1
	wg   sync.WaitGroup

	// mu guards everything below. Put, the senders, the pump and Flush take it; outcomes
	// are delivered (futures closed, callbacks called) after it is released.
	mu         sync.Mutex
	senders    sync.Cond // on mu: signalled when a batch is ready or the producer stops
	closed     bool      // Close was called: Put refuses
	stopping   bool      // the goroutines exit once nothing is left
	abandon    error     // Close's context ended: records not in flight fail with it
	routes     routes
	open       []*batch // the batches being filled, one per destination at most
	ready      []*batch // sealed batches waiting for a sender
	leaders    leaders  // where each shard's records go (producer_leaders.go)
	shards     map[uint32]*shardState
	heldShards int // shards with held records
	keys       map[string]*keyState
	freeKeys   []*keyState
	freeBatch  []*batch
	buffered   int
	space      chan struct{} // closed when buffered space frees; nil when nobody waits
	pauseUntil time.Time     // after a failure of a whole request, nothing is sent before
	pauseTries int
	epochs     []epoch // epochs[i] is epoch epochBase+i; the last is the current one
	epochBase  uint64
	progress   chan struct{} // closed when an epoch's pending count reaches zero; nil if unwatched
	flushing   int           // Flush calls waiting: batches are sent without lingering
	gen        uint64        // answers handled, to mark the shards an answer touched
	refreshing bool
	refreshed  time.Time
	stats      ProducerStats
	aggs       map[uint32]*aggregator // with Aggregate: the aggregate being filled per shard
	freeAggs   []*aggregator
	ordKeys    map[uint32]string // with Aggregate and in order: each shard's ordering key
	rerouted   []*rec            // records to aggregate again once the shard map is refreshed
}

// rec is one record on its way. Fields are guarded by Producer.mu, except that a sender
// reads key and data of the records of the batch it owns.
type rec struct {
	key      string
	data     []byte
	hash     shardmap.Key
	shard    uint32 // the shard it is expected on (or was last refused by)
	cost     int    // what it counts against MaxBuffered
	epoch    uint64
	put      time.Time
	attempts int
	notFound int
	lastErr  error
	next     *rec // in a key's waiting list or a shard's held list
	out      Outcome
	fut      *Future
	fn       func(Outcome)
	// With Aggregate: subs are the records of an aggregated record (nil for a record of the
	// caller), and ord is the key that orders what is sent to one shard ("" for a record
	// still in an aggregator).
	subs     []*rec
	ord      string
	reroutes int // times an aggregate of it landed on another shard than expected
}

// orderKey is the key whose records r is sent in order with.
func (r *rec) orderKey() string {
	if r.ord != "" {
		return r.ord
	}
	return r.key
}

// batch is the records of one put request, in order.
type batch struct {
	recs     []*rec
	bytes    int
	deadline time.Time // when lingering ends
	dest     string    // host:port of the node it goes to; "" for the client's endpoint
}

// shardState is the producer's view of one shard: its backoff after refusals and the
// records held until it ends.
type shardState struct {
	until      time.Time // no record is sent to the shard before
	tries      int       // consecutive answers with refusals
	head, tail *rec      // held records, in order
	gen        uint64    // the answer that last touched the shard
	refused    bool      // that answer refused records of the shard
}

// keyState is a partition key with a record in flight or held (cur) and the records of the
// same key waiting behind it.
type keyState struct {
	cur        *rec
	head, tail *rec
}

// epoch counts the records Put between two Flush calls.
type epoch struct {
	pending   int
	failed    int
	first     error
	collected bool // its Flush has taken the tally (or gave up waiting)
}

// maxPutBytes is the most keys and data one put request may carry.
const maxPutBytes = 10 << 20

// recOverhead is what a record costs against MaxBuffered beyond its key and data: its
// bookkeeping, so that a flood of empty records is bounded too.
const recOverhead = 128

// NewProducer returns a producer for stream. It reads the stream's maximum record size and
// its shards, to validate records before sending them and to know which shard each key
// goes to.
func (c *Client) NewProducer(ctx context.Context, stream string, cfg ProducerConfig) (*Producer, error) {
	switch {
	case cfg.MaxBatchRecords < 0 || cfg.MaxBatchRecords > wire.MaxPutRecords:
		return nil, fmt.Errorf("sluice: MaxBatchRecords %d: want 0…%d", cfg.MaxBatchRecords, wire.MaxPutRecords)
	case cfg.MaxBatchBytes < 0 || cfg.MaxBatchBytes > maxPutBytes:
		return nil, fmt.Errorf("sluice: MaxBatchBytes %d: want 0…%d", cfg.MaxBatchBytes, maxPutBytes)
	case cfg.MaxAggregateBytes < 0:
		return nil, fmt.Errorf("sluice: MaxAggregateBytes %d: want 0 or more", cfg.MaxAggregateBytes)
	}
	cfg.Linger = orDur(cfg.Linger, 5*time.Millisecond)
	cfg.MaxBatchRecords = orInt(cfg.MaxBatchRecords, wire.MaxPutRecords)
	cfg.MaxBatchBytes = orInt(cfg.MaxBatchBytes, 5<<20)
	cfg.MaxBuffered = orInt(cfg.MaxBuffered, 64<<20)
	cfg.MaxInFlight = orInt(cfg.MaxInFlight, 4)
	cfg.BaseBackoff = orDur(cfg.BaseBackoff, 20*time.Millisecond)
	cfg.MaxBackoff = max(orDur(cfg.MaxBackoff, time.Second), cfg.BaseBackoff)
	sum, err := c.DescribeStreamSummary(ctx, stream)
	if err != nil {
		return nil, err
	}
	shards, err := c.ListShards(ctx, stream)
	if err != nil {
		return nil, err
	}
	// Without leaders (a single node, or a server that does not know the request) every
	// record goes to the client's endpoint.
	var lead map[uint32]string
	if !cfg.EndpointOnly {
		lead, _ = c.ShardLeaders(ctx, stream)
	}
	p := &Producer{c: c, stream: stream, cfg: cfg, maxData: orInt(sum.MaxRecordKiB, 1024) << 10,
		wake: make(chan struct{}, 1), routes: newRoutes(shards), refreshed: time.Now(),
		shards: map[uint32]*shardState{}, epochs: []epoch{{}}}
	p.leaders.set(lead, c.host, p.refreshed)
	p.maxAgg = p.maxData
	if cfg.MaxAggregateBytes > 0 {
		p.maxAgg = min(cfg.MaxAggregateBytes, p.maxData)
	}
	if !cfg.Unordered {
		p.keys = map[string]*keyState{}
	}
	if cfg.Aggregate {
		p.aggs, p.ordKeys = map[uint32]*aggregator{}, map[uint32]string{}
	}
	p.senders.L = &p.mu
	p.wg.Add(1 + cfg.MaxInFlight)
	go p.pump()
	for range cfg.MaxInFlight {
		go p.sender()
	}
	return p, nil
}

// Put queues a record for the stream and returns its Future. It blocks while MaxBuffered
// bytes are waiting, until ctx ends; ctx does not bound the record's attempts after Put
// returns. The producer keeps data until the outcome is known: do not modify it before.
func (p *Producer) Put(ctx context.Context, key string, data []byte) (*Future, error) {
	f := &Future{done: make(chan struct{})}
	f.r.fut = f
	if err := p.add(ctx, &f.r, key, data); err != nil {
		return nil, err
	}
	return f, nil
}

// PutFunc is Put with a callback instead of a Future: fn is called once with the record's
// outcome, on one of the producer's goroutines. It must return quickly and must not call
// Put, Flush or Close of the same producer.
func (p *Producer) PutFunc(ctx context.Context, key string, data []byte, fn func(Outcome)) error {
	return p.add(ctx, &rec{fn: fn}, key, data)
}

func (p *Producer) add(ctx context.Context, r *rec, key string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// The server refuses a whole request for one bad record: check each before it joins one.
	if key == "" || len(key) > wire.MaxKeyLen || !utf8.ValidString(key) || utf8.RuneCountInString(key) > 256 {
		return ErrBadKey
	}
	if len(data) > p.maxData || len(key)+len(data) > maxPutBytes {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrRecordTooLarge, len(data), min(p.maxData, maxPutBytes-len(key)))
	}
	r.key, r.data, r.hash = key, data, shardmap.KeyOfString(key)
	r.cost = len(key) + len(data) + recOverhead
	p.mu.Lock()
	for {
		if p.closed {
			p.mu.Unlock()
			return ErrClosed
		}
		if p.buffered == 0 || p.buffered+r.cost <= p.cfg.MaxBuffered {
			break
		}
		if p.space == nil {
			p.space = make(chan struct{})
		}
		ch := p.space
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		p.mu.Lock()
	}
	p.buffered += r.cost
	r.epoch = p.epochBase + uint64(len(p.epochs)-1)
	p.epochs[len(p.epochs)-1].pending++
	r.put = time.Now()
	if p.cfg.Aggregate {
		p.aggregateLocked(r, r.put)
	} else {
		r.shard = p.routes.route(r.hash)
		p.submitLocked(r, r.put)
	}
	p.mu.Unlock()
	return nil
}

// submitLocked sends r once the records of its order key before it are done. p.mu must be
// held.
func (p *Producer) submitLocked(r *rec, now time.Time) {
	if p.keys != nil {
		key := r.orderKey()
		if ks := p.keys[key]; ks != nil {
			// An earlier record of the key is on its way: wait behind it.
			if ks.tail == nil {
				ks.head = r
			} else {
				ks.tail.next = r
			}
			ks.tail = r
			return
		}
		ks := p.newKeyStateLocked()
		ks.cur = r
		p.keys[key] = ks
	}
	p.enqueueLocked(r, now)
}

// newKeyStateLocked returns a cleared keyState. p.mu must be held.
func (p *Producer) newKeyStateLocked() *keyState {
	if n := len(p.freeKeys); n > 0 {
		ks := p.freeKeys[n-1]
		p.freeKeys = p.freeKeys[:n-1]
		return ks
	}
	return &keyState{}
}

// enqueueLocked sends r with the next batch, or holds it while its shard backs off.
// p.mu must be held.
func (p *Producer) enqueueLocked(r *rec, now time.Time) {
	if p.abandon != nil {
		var done []*rec
		p.finishLocked(r, SeqNum{}, p.abandonError(r), now, &done)
		p.deliverLater(done)
		return
	}
	if now.Before(p.pauseUntil) {
		p.holdLocked(r)
		return
	}
	if sh := p.shards[r.shard]; sh != nil && (sh.head != nil || now.Before(sh.until)) {
		p.holdLocked(r)
		return
	}
	p.addToBatchLocked(r, now)
}

// holdLocked appends r to its shard's held records. p.mu must be held.
func (p *Producer) holdLocked(r *rec) {
	sh := p.shardLocked(r.shard)
	r.next = nil
	if sh.tail == nil {
		sh.head = r
		p.heldShards++
	} else {
		sh.tail.next = r
	}
	sh.tail = r
	p.ring()
}

func (p *Producer) shardLocked(id uint32) *shardState {
	sh := p.shards[id]
	if sh == nil {
		sh = &shardState{}
		p.shards[id] = sh
	}
	return sh
}

// addToBatchLocked appends r to the open batch of its destination (its shard's leader, or
// the client's endpoint), sealing that batch when full. p.mu must be held.
func (p *Producer) addToBatchLocked(r *rec, now time.Time) {
	size := len(r.key) + len(r.data)
	dest := p.leaders.of(r.shard)
	i := p.openIndexLocked(dest)
	if i >= 0 && p.open[i].bytes+size > p.cfg.MaxBatchBytes {
		p.sealOpenLocked(i)
		i = -1
	}
	if i < 0 {
		b := p.newBatchLocked()
		b.deadline, b.dest = now.Add(p.cfg.Linger), dest
		p.open = append(p.open, b)
		i = len(p.open) - 1
		p.ring()
	}
	b := p.open[i]
	if p.cfg.Aggregate {
		// An aggregate lingered in its aggregator already, and may have waited behind the
		// previous aggregate of its shard since: its batch goes Linger after its first
		// record's Put at the latest, not Linger after it joins (BenchmarkProducer,
		// aggregated/ordered).
		if d := r.put.Add(p.cfg.Linger); d.Before(b.deadline) {
			b.deadline = d
			p.ring()
		}
	}
	b.recs = append(b.recs, r)
	b.bytes += size
	if len(b.recs) >= p.cfg.MaxBatchRecords || b.bytes >= p.sealBytes() {
		p.sealOpenLocked(i)
	}
}

// sealBytes is the size at which a batch is sent without lingering: MaxBatchBytes, or with
// Aggregate and in order about one full aggregate (maxAgg, at least 1 MiB). In order a shard
// has one aggregate on its way at a time, and an answer releases the next aggregate of every
// shard it carried at once: packed up to MaxBatchBytes, they would all share one request
// again, the producer would send one request at a time, and each shard would wait for all
// the others' bytes. About one aggregate per request spreads them over the MaxInFlight
// senders (BenchmarkProducer, aggregated/ordered).
func (p *Producer) sealBytes() int {
	if p.cfg.Aggregate && p.keys != nil {
		return min(max(p.maxAgg, 1<<20), p.cfg.MaxBatchBytes)
	}
	return p.cfg.MaxBatchBytes
}

// openIndexLocked returns the index in p.open of the batch being filled for dest, or -1.
// There is one per destination at most (the nodes leading shards and the endpoint): a few,
// scanned. p.mu must be held.
func (p *Producer) openIndexLocked(dest string) int {
	for i, b := range p.open {
		if b.dest == dest {
			return i
		}
	}
	return -1
}

func (p *Producer) newBatchLocked() *batch {
	if n := len(p.freeBatch); n > 0 {
		b := p.freeBatch[n-1]
		p.freeBatch = p.freeBatch[:n-1]
		return b
	}
	return &batch{recs: make([]*rec, 0, min(p.cfg.MaxBatchRecords, 64))}
}

// sealLocked hands every open batch to the senders. p.mu must be held.
func (p *Producer) sealLocked() {
	switch len(p.open) {
	case 0:
		return
	case 1:
		p.senders.Signal()
	default:
		p.senders.Broadcast()
	}
	p.ready = append(p.ready, p.open...)
	clear(p.open)
	p.open = p.open[:0]
}

// sealOpenLocked hands the open batch p.open[i] to the senders. p.mu must be held.
func (p *Producer) sealOpenLocked(i int) {
	p.ready = append(p.ready, p.open[i])
	p.open = slices.Delete(p.open, i, i+1)
	p.senders.Signal()
}

// ring wakes the pump without blocking.
func (p *Producer) ring() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// pump seals batches whose linger time is over and releases held records whose shard's
// backoff is over.
func (p *Producer) pump() {
	defer p.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		p.mu.Lock()
		if p.stopping {
			p.mu.Unlock()
			return
		}
		now := time.Now()
		next := p.tickLocked(now)
		p.mu.Unlock()
		wait := time.Hour
		if !next.IsZero() {
			wait = max(next.Sub(now), 0)
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-p.wake:
		}
	}
}

// tickLocked does the pump's work due at now and returns when it has more (zero: nothing
// planned). p.mu must be held.
func (p *Producer) tickLocked(now time.Time) time.Time {
	var next time.Time
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if p.heldShards > 0 {
		if now.Before(p.pauseUntil) {
			soonest(p.pauseUntil)
		} else {
			for _, sh := range p.shards {
				if sh.head == nil {
					continue
				}
				if now.Before(sh.until) {
					soonest(sh.until)
					continue
				}
				r := sh.head
				sh.head, sh.tail = nil, nil
				p.heldShards--
				for r != nil {
					n := r.next
					r.next = nil
					p.addToBatchLocked(r, now)
					r = n
				}
			}
		}
	}
	// An aggregate sealed here has lingered: its batch's deadline is over (addToBatchLocked),
	// and the loop below seals it.
	p.tickAggregatesLocked(now, soonest)
	for i := 0; i < len(p.open); {
		if p.flushing > 0 || !now.Before(p.open[i].deadline) {
			p.sealOpenLocked(i)
			continue
		}
		soonest(p.open[i].deadline)
		i++
	}
	return next
}

// sender sends ready batches, one request at a time, and handles their answers.
func (p *Producer) sender() {
	defer p.wg.Done()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	var body, key []byte
	var done []*rec
	for {
		p.mu.Lock()
		for len(p.ready) == 0 && !p.stopping {
			p.senders.Wait()
		}
		if len(p.ready) == 0 {
			p.mu.Unlock()
			return
		}
		b := p.ready[0]
		p.ready[0] = nil
		p.ready = p.ready[1:]
		p.mu.Unlock()

		// The records of b belong to this sender until it takes mu again.
		var off int
		body, off = wire.BeginPut(body[:0], p.stream)
		for _, r := range b.recs {
			key = append(key[:0], r.key...)
			pr := wire.PutRecord{Key: key, Data: r.data}
			if r.subs != nil {
				// An aggregated record goes where its first record's key goes, as the KPL
				// sends it: the explicit hash key is that key's hash.
				pr.HasHash = true
				putKey(pr.HashKey[:], r.hash)
			}
			body = wire.AppendPutRecord(body, &pr)
		}
		wire.FinishPut(body, off, len(b.recs))
		ans, err := p.c.node(b.dest).put(context.Background(), body, len(b.recs), resp)

		p.mu.Lock()
		done = p.handleLocked(b, ans, err, done[:0])
		b.recs, b.bytes, b.dest = b.recs[:0], 0, ""
		p.freeBatch = append(p.freeBatch, b)
		if p.flushing > 0 {
			p.sealLocked()
		}
		p.mu.Unlock()
		p.deliver(done)
		clear(done)
		if cap(body) > 16<<20 {
			body = nil
		}
	}
}

// handleLocked applies the answer to batch b (or the error that replaced it): it finishes
// the records appended or failed for good, and holds the others for a retry. It returns
// the finished records, whose outcomes the caller delivers once p.mu is released.
// p.mu must be held.
func (p *Producer) handleLocked(b *batch, ans wire.PutAnswer, err error, done []*rec) []*rec {
	now := time.Now()
	p.stats.Requests++
	for _, r := range b.recs {
		r.attempts++
	}
	p.followLeadersLocked(b.dest, err, now)
	if err != nil {
		switch {
		case b.dest != "" && errors.Is(err, errTransport):
			// The leader is gone or unreachable: it is forgotten (followLeadersLocked), and
			// the records go to the client's endpoint, which forwards them, with no pause.
			for _, r := range b.recs {
				p.retryLocked(r, err, now, &done)
			}
		case errors.Is(err, ErrNotFound):
			// The stream is gone, or was deleted and created again: look again, and give
			// up on the records after a few tries.
			p.refreshLocked(now, true)
			p.pauseTries++
			p.pauseUntil = now.Add(backoff(p.pauseTries, p.cfg.BaseBackoff, p.cfg.MaxBackoff))
			for _, r := range b.recs {
				if r.notFound++; r.notFound >= 3 {
					p.finishLocked(r, SeqNum{}, err, now, &done)
				} else {
					p.retryLocked(r, err, now, &done)
				}
			}
		case retryable(err):
			// The whole request failed on the way or was refused for load: pause all
			// sending, then retry every record.
			p.c.log.Warn("sluice producer: put failed, retrying", "stream", p.stream, "err", err)
			p.pauseTries++
			p.pauseUntil = now.Add(backoff(p.pauseTries, p.cfg.BaseBackoff, p.cfg.MaxBackoff))
			for _, r := range b.recs {
				p.retryLocked(r, err, now, &done)
			}
		default:
			for _, r := range b.recs {
				p.finishLocked(r, SeqNum{}, err, now, &done)
			}
		}
		return done
	}
	p.pauseTries = 0
	p.gen++
	var touched []*shardState
	stale := false
	for i, r := range b.recs {
		res := ans.Result(i)
		sh := p.shardLocked(res.Shard)
		if sh.gen != p.gen {
			sh.gen, sh.refused = p.gen, false
			touched = append(touched, sh)
		}
		if res.Code == wire.OK {
			stale = stale || res.Shard != r.shard
			if r.subs != nil && res.Shard != r.shard {
				p.rerouteLocked(r, res.Shard, now, &done)
				continue
			}
			p.finishLocked(r, SeqNum{Shard: res.Shard, Position: res.Position}, nil, now, &done)
			continue
		}
		rerr := recordError(res.Code)
		if res.Code == wire.ProvisionedThroughputExceeded {
			p.stats.Throttled++
		}
		if !retryable(rerr) {
			p.finishLocked(r, SeqNum{}, rerr, now, &done)
			continue
		}
		sh.refused = true
		if res.Shard != r.shard {
			stale = true
		}
		r.shard = res.Shard
		p.retryLocked(r, rerr, now, &done)
	}
	for _, sh := range touched {
		if sh.refused {
			sh.tries++
			sh.until = now.Add(backoff(sh.tries-1, p.cfg.BaseBackoff, p.cfg.MaxBackoff))
			p.ring()
		} else {
			sh.tries = 0
		}
	}
	if stale {
		p.refreshLocked(now, len(p.rerouted) > 0)
	}
	if len(p.rerouted) > 0 && !p.refreshing {
		p.reaggregateLocked(now)
	}
	return done
}

// retryLocked holds r for another attempt, or finishes it if it may not have one.
// p.mu must be held.
func (p *Producer) retryLocked(r *rec, err error, now time.Time, done *[]*rec) {
	r.lastErr = err
	switch {
	case p.abandon != nil:
		p.finishLocked(r, SeqNum{}, p.abandonError(r), now, done)
	case p.cfg.RecordTimeout > 0 && now.Sub(r.put) >= p.cfg.RecordTimeout,
		p.cfg.MaxAttempts > 0 && r.attempts >= p.cfg.MaxAttempts:
		p.finishLocked(r, SeqNum{}, err, now, done)
	default:
		p.stats.Retries++
		p.holdLocked(r)
	}
}

func (p *Producer) abandonError(r *rec) error {
	if r.lastErr != nil {
		return fmt.Errorf("%w (last attempt: %w)", p.abandon, r.lastErr)
	}
	return p.abandon
}

// finishLocked records r's outcome, frees what it held and lets the next record of its key
// go. p.mu must be held.
func (p *Producer) finishLocked(r *rec, seq SeqNum, err error, now time.Time, done *[]*rec) {
	if r.subs != nil {
		for i, u := range r.subs {
			u.attempts += r.attempts
			p.finishOneLocked(u, seq, err, done)
			if err == nil {
				u.out.Aggregated, u.out.SubSeq = true, uint64(i)
			}
		}
		r.subs, r.data, r.lastErr, r.next = nil, nil, nil, nil
	} else {
		p.finishOneLocked(r, seq, err, done)
	}
	p.releaseKeyLocked(r, now)
}

// finishOneLocked records the outcome of a record of the caller. p.mu must be held.
func (p *Producer) finishOneLocked(r *rec, seq SeqNum, err error, done *[]*rec) {
	r.out = Outcome{SeqNum: seq, Err: err, Attempts: r.attempts}
	r.data, r.lastErr, r.next = nil, nil, nil
	p.buffered -= r.cost
	if p.space != nil {
		close(p.space)
		p.space = nil
	}
	if err != nil {
		p.stats.Failed++
	} else {
		p.stats.Appended++
	}
	// The record stays pending in its epoch until deliver has published its outcome, so that
	// Flush and Close return only once every outcome of theirs is visible.
	*done = append(*done, r)
}

// releaseKeyLocked lets the next record of r's order key go, r being done. p.mu must be held.
func (p *Producer) releaseKeyLocked(r *rec, now time.Time) {
	if p.keys == nil || p.cfg.Aggregate && r.ord == "" {
		return // no ordering, or a record that was aggregated, not sent by itself
	}
	key := r.orderKey()
	ks := p.keys[key]
	if ks == nil || ks.cur != r {
		panic("BUG: sluice producer: finished record is not its key's current record")
	}
	if n := ks.head; n != nil {
		ks.head = n.next
		if ks.head == nil {
			ks.tail = nil
		}
		n.next = nil
		ks.cur = n
		p.enqueueLocked(n, now)
		return
	}
	delete(p.keys, key)
	if r.ord != "" {
		// The shard's aggregate may have kept filling while this one was on its way: the
		// pump seals it now if it has lingered (tickAggregatesLocked).
		p.ring()
	}
	*ks = keyState{}
	if len(p.freeKeys) < 4096 {
		p.freeKeys = append(p.freeKeys, ks)
	}
}

// deliverLater is for the rare finishes outside a sender (an abandoned record promoted while
// Close runs): the outcome goes out on a goroutine of its own, since p.mu is held.
func (p *Producer) deliverLater(done []*rec) {
	if len(done) > 0 {
		go p.deliver(done)
	}
}

// deliver publishes outcomes (it closes futures and calls callbacks), then counts the records
// done in their epochs, waking Flush and Close. p.mu must not be held.
func (p *Producer) deliver(done []*rec) {
	if len(done) == 0 {
		return
	}
	for _, r := range done {
		if r.fut != nil {
			close(r.fut.done)
		} else if r.fn != nil {
			r.fn(r.out)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range done {
		e := &p.epochs[r.epoch-p.epochBase]
		e.pending--
		if err := r.out.Err; err != nil {
			if e.failed++; e.first == nil {
				e.first = err
			}
		}
		if e.pending == 0 {
			if p.progress != nil {
				close(p.progress)
				p.progress = nil
			}
		}
	}
	p.trimEpochsLocked()
}

// refreshLocked reloads the shard map in the background (at most once a second unless
// urgent). p.mu must be held.
func (p *Producer) refreshLocked(now time.Time, urgent bool) {
	if p.refreshing || p.stopping || (!urgent && now.Sub(p.refreshed) < time.Second) {
		return
	}
	p.refreshing = true
	p.stats.Refreshes++
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), p.c.cfg.RequestTimeout)
		shards, err := p.c.ListShards(ctx, p.stream)
		cancel()
		p.mu.Lock()
		defer p.mu.Unlock()
		p.refreshing, p.refreshed = false, time.Now()
		if err == nil {
			p.routes = newRoutes(shards)
		}
		p.reaggregateLocked(p.refreshed)
	}()
	p.refreshLeadersLocked(now)
}

// Stats returns the producer's counters.
func (p *Producer) Stats() ProducerStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}
