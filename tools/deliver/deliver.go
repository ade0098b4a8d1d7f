package deliver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/internal/vfs"
	"github.com/sluice-streams/sluice/kpl"
)

// Options configures a Delivery.
type Options struct {
	// Config is the delivery stream (ParseConfig).
	Config Config
	// Store keeps the objects (OpenStore).
	Store Store
	// CheckpointFile keeps the delivery's progress (required).
	CheckpointFile string
	// Start is where a shard without a checkpoint starts: client.Latest (the zero value
	// here means Latest, as a new Firehose delivery stream starts) or client.TrimHorizon.
	Start client.Start
	// ReadsPerSecond and PollInterval pace the reads of each shard (client.ConsumerConfig);
	// 0 means the consumer's defaults (5 a second, 500 ms).
	ReadsPerSecond float64
	PollInterval   time.Duration
	// RetryBackoff is the wait before the first retry of a failed Put, doubled for each
	// further one up to MaxRetryBackoff; 0 means 1 s and 30 s. A Put is retried until it
	// succeeds or Run's context ends.
	RetryBackoff, MaxRetryBackoff time.Duration
	// Logger receives retries and warnings; nil discards them.
	Logger *slog.Logger

	// checkpointFS writes the checkpoint file; nil means vfs.OS. Tests inject faults.
	checkpointFS vfs.FS
}

// Stats counts what a delivery stored. Its fields only grow.
type Stats struct {
	Objects      uint64    // data objects stored (a retry of the same object counts again)
	Records      uint64    // records in them
	Bytes        uint64    // their bytes before compression, delimiters included
	StoredBytes  uint64    // their bytes as stored
	ErrorObjects uint64    // error objects stored
	ErrorRecords uint64    // records in them
	LastStored   time.Time // when the last data object was stored; zero before the first
}

// Delivery reads a stream and stores its records in objects, as a Firehose delivery stream
// with a Kinesis source and an S3 destination does. See the package documentation.
type Delivery struct {
	c    *client.Client
	cfg  Config
	opts Options
	cp   *checkpointer
	log  *slog.Logger

	mu     sync.Mutex // guards shards
	shards map[uint32]*shardBuffer

	objects, records, bytes, storedBytes, errorObjects, errorRecords atomic.Uint64
	lastStored                                                       atomic.Int64 // Unix ns; 0: none
}

// shardBuffer is the open object of one shard: its records since the last one stored.
// Its fields are guarded by mu, held by the shard's handler for a whole batch and by the
// interval flush.
type shardBuffer struct {
	mu     sync.Mutex
	id     uint32
	opened time.Time // when its first record was buffered

	data, errs part
	last       uint64 // the last record buffered

	z       compressor
	scratch []byte
}

// part is the records of one kind (data or failed) in an open object.
type part struct {
	b       []byte
	records int
	first   uint64    // the first record's position
	oldest  time.Time // the first record's arrival
}

// New returns a delivery of the configured stream on the server c talks to. It loads the
// checkpoint file; it reads nothing before Run.
func New(c *client.Client, opts Options) (*Delivery, error) {
	if opts.CheckpointFile == "" {
		return nil, errors.New("deliver: no checkpoint file")
	}
	if opts.Store == nil {
		return nil, errors.New("deliver: no store")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Start == client.AtSequenceNumber {
		opts.Start = client.Latest
	}
	if opts.Start != client.Latest && opts.Start != client.TrimHorizon {
		return nil, fmt.Errorf("deliver: Start %v: want Latest or TrimHorizon", opts.Start)
	}
	opts.RetryBackoff = orDuration(opts.RetryBackoff, time.Second)
	opts.MaxRetryBackoff = max(orDuration(opts.MaxRetryBackoff, 30*time.Second), opts.RetryBackoff)
	if opts.checkpointFS == nil {
		opts.checkpointFS = vfs.OS
	}
	cp, err := openCheckpointer(opts.checkpointFS, opts.CheckpointFile, opts.Config.StreamARN, opts.Config.Name)
	if err != nil {
		return nil, err
	}
	return &Delivery{c: c, cfg: opts.Config, opts: opts, cp: cp, log: opts.Logger, shards: map[uint32]*shardBuffer{}}, nil
}

func orDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Stats returns the counts so far; it may be called from any goroutine.
func (d *Delivery) Stats() Stats {
	st := Stats{Objects: d.objects.Load(), Records: d.records.Load(), Bytes: d.bytes.Load(), StoredBytes: d.storedBytes.Load(),
		ErrorObjects: d.errorObjects.Load(), ErrorRecords: d.errorRecords.Load()}
	if ns := d.lastStored.Load(); ns != 0 {
		st.LastStored = time.Unix(0, ns)
	}
	return st
}

// Run reads every shard (children after their parents) and stores objects until ctx ends
// or a failure stops it (a checkpoint that cannot be written, a key the store refuses for
// good, the stream's end). When ctx ends, the records buffered are stored before Run
// returns ctx.Err(), within 30 s.
func (d *Delivery) Run(ctx context.Context) error {
	// MaxBackoff: a get refused by the shard's 2 MiB/s read limit (a 10 MiB read leaves
	// about 5 s of debt) is retried within a second of being admitted again, not up to 5 s
	// later with the consumer's default (as is a get that failed for another reason: a
	// server that is down is asked again every second); under Kinesis limits that took a
	// delivery of 2 shards from 3.3 to 3.8 MB/s (medians of 3 runs), of the 4.2 the limits
	// allow (README.md, Delivery to S3).
	co, err := d.c.NewConsumer(d.cfg.Stream, client.ConsumerConfig{Start: d.opts.Start, Checkpointer: consumerCheckpoints{d},
		ReadsPerSecond: d.opts.ReadsPerSecond, PollInterval: d.opts.PollInterval, MaxBackoff: time.Second})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	if d.cfg.BufferInterval > 0 {
		wg.Go(func() {
			if err := d.flushByInterval(runCtx); err != nil {
				cancel(err)
			}
		})
	}
	err = co.Run(runCtx, d.handle)
	cancel(err)
	wg.Wait()
	if cause := context.Cause(runCtx); cause != nil && !errors.Is(cause, context.Canceled) {
		err = cause
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer fcancel()
		if ferr := d.flushAll(fctx); ferr != nil {
			return ferr
		}
	}
	return err
}

// flushByInterval stores each shard's open object once it is BufferInterval old, until ctx
// ends.
func (d *Delivery) flushByInterval(ctx context.Context) error {
	tick := time.NewTicker(min(d.cfg.BufferInterval/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			for _, sb := range d.buffers() {
				sb.mu.Lock()
				var err error
				if sb.hasRecords() && now.Sub(sb.opened) >= d.cfg.BufferInterval {
					err = d.flushLocked(ctx, sb)
				}
				sb.mu.Unlock()
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
			}
		}
	}
}

// flushAll stores every shard's open object.
func (d *Delivery) flushAll(ctx context.Context) error {
	for _, sb := range d.buffers() {
		sb.mu.Lock()
		err := d.flushLocked(ctx, sb)
		sb.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *Delivery) buffers() []*shardBuffer {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]*shardBuffer, 0, len(d.shards))
	for _, sb := range d.shards {
		out = append(out, sb)
	}
	return out
}

func (d *Delivery) buffer(shard uint32) *shardBuffer {
	d.mu.Lock()
	defer d.mu.Unlock()
	sb := d.shards[shard]
	if sb == nil {
		sb = &shardBuffer{id: shard, z: compressor{c: d.cfg.Compression}}
		d.shards[shard] = sb
	}
	return sb
}

func (sb *shardBuffer) hasRecords() bool { return sb.data.records+sb.errs.records > 0 }

// handle buffers a batch, storing the open object whenever it reaches BufferSize between
// two records of different positions (the user records of one aggregated record stay in one
// object), and at the batch's end when BufferInterval is 0.
func (d *Delivery) handle(ctx context.Context, b *client.Batch) error {
	sb := d.buffer(b.Shard)
	sb.mu.Lock()
	defer sb.mu.Unlock()
	for i := range b.Records {
		r := &b.Records[i]
		if !sb.hasRecords() {
			sb.opened = time.Now()
		}
		d.add(sb, r)
		sb.last = r.Position
		groupEnds := i+1 == len(b.Records) || b.Records[i+1].Position != r.Position
		if groupEnds && len(sb.data.b)+len(sb.errs.b) >= d.cfg.BufferSize {
			if err := d.flushLocked(ctx, sb); err != nil {
				return err
			}
		}
	}
	if d.cfg.BufferInterval == 0 {
		return d.flushLocked(ctx, sb)
	}
	return nil
}

// add buffers one record: its data and the delimiter, or, for a record that cannot be
// processed, its error record.
func (d *Delivery) add(sb *shardBuffer, r *client.Record) {
	if !r.Aggregated && kpl.HasMagic(r.Data) {
		// A KPL aggregated record whose digest or message does not check: the consumer
		// passed it on as it is stored; Firehose cannot de-aggregate it either.
		p := &sb.errs
		if p.records == 0 {
			p.first, p.oldest = r.Position, r.Arrival
		}
		p.b = appendErrorRecord(p.b, r, time.Now())
		p.records++
		return
	}
	p := &sb.data
	if p.records == 0 {
		p.first, p.oldest = r.Position, r.Arrival
	}
	p.b = append(p.b, r.Data...)
	p.b = append(p.b, d.cfg.Delimiter...)
	p.records++
}

// errorRecord is a line of an error object: Firehose's processing-failed record, with the
// Kinesis record's identity.
type errorRecord struct {
	AttemptsMade           int    `json:"attemptsMade"`
	ArrivalTimestamp       int64  `json:"arrivalTimestamp"`
	ErrorCode              string `json:"errorCode"`
	ErrorMessage           string `json:"errorMessage"`
	AttemptEndingTimestamp int64  `json:"attemptEndingTimestamp"`
	RawData                string `json:"rawData"`
	ShardID                string `json:"shardId"`
	SequenceNumber         string `json:"sequenceNumber"`
	PartitionKey           string `json:"partitionKey"`
}

// Error codes of error records.
const errAggregation = "Kinesis.AggregatedRecordMalformed"

func appendErrorRecord(dst []byte, r *client.Record, now time.Time) []byte {
	e := errorRecord{AttemptsMade: 1, ArrivalTimestamp: r.Arrival.UnixMilli(), ErrorCode: errAggregation,
		ErrorMessage:           "the record starts with the KPL aggregation magic but is not a valid aggregated record",
		AttemptEndingTimestamp: now.UnixMilli(), RawData: base64.StdEncoding.EncodeToString(r.Data),
		ShardID: fmt.Sprintf("shardId-%012d", r.Shard), SequenceNumber: r.SequenceNumber(), PartitionKey: string(r.Key)}
	b, err := json.Marshal(&e)
	if err != nil {
		panic("BUG: deliver: an error record does not marshal: " + err.Error())
	}
	return append(append(dst, b...), '\n')
}

// flushLocked stores the shard's open object (its data object and its error object, each if
// it has records) and then checkpoints the last record buffered; sb.mu is held.
func (d *Delivery) flushLocked(ctx context.Context, sb *shardBuffer) error {
	if !sb.hasRecords() {
		return nil
	}
	if sb.data.records > 0 {
		n, err := d.store(ctx, sb, &sb.data, "data", &d.cfg.Prefix)
		if err != nil {
			return err
		}
		d.objects.Add(1)
		d.records.Add(uint64(sb.data.records))
		d.bytes.Add(uint64(len(sb.data.b)))
		d.storedBytes.Add(uint64(n))
		d.lastStored.Store(time.Now().UnixNano())
	}
	if sb.errs.records > 0 {
		if _, err := d.store(ctx, sb, &sb.errs, "error", &d.cfg.ErrorPrefix); err != nil {
			return err
		}
		d.errorObjects.Add(1)
		d.errorRecords.Add(uint64(sb.errs.records))
		d.log.Warn("deliver: records could not be processed", "shard", sb.id, "records", sb.errs.records)
	}
	if err := d.cp.set(sb.id, shardCheckpoint{Position: sb.last}); err != nil {
		return err
	}
	sb.data = part{b: sb.data.b[:0]}
	sb.errs = part{b: sb.errs.b[:0]}
	return nil
}

// store compresses and puts one object, retrying until the store takes it or ctx ends; it
// returns the object's stored size.
func (d *Delivery) store(ctx context.Context, sb *shardBuffer, p *part, kind string, prefix *Prefix) (int, error) {
	key, name := d.objectKey(sb, p, kind, prefix)
	body, err := sb.z.compress(p.b, name, p.oldest)
	if err != nil {
		return 0, fmt.Errorf("deliver: compressing %s: %w", key, err)
	}
	wait := d.opts.RetryBackoff
	for {
		err := d.opts.Store.Put(ctx, key, body)
		if err == nil {
			return len(body), nil
		}
		if errors.Is(err, errBadKey) || ctx.Err() != nil {
			return 0, err
		}
		d.log.Warn("deliver: storing an object failed, retrying", "key", key, "in", wait, "err", err)
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, d.opts.MaxRetryBackoff)
	}
}

// objectKey returns the key of an object, <evaluated prefix><name>-<version>-<time>-<uuid>
// <extension>, and its file name without the extension (a ZIP archive's entry). The time,
// in the configured zone, is the arrival of the object's oldest record; the uuid and the
// prefix's random strings come from the shard and the first record's position
// (objectSeed), so that the same records after a restart make the same key.
func (d *Delivery) objectKey(sb *shardBuffer, p *part, kind string, prefix *Prefix) (key, name string) {
	t := p.oldest.In(d.cfg.Location)
	seed := newObjectSeed(d.cfg.Name, kind, sb.id, p.first)
	k := prefix.appendEval(sb.scratch[:0], t, &seed)
	base := len(k)
	k = append(k, d.cfg.Name...)
	k = append(k, '-')
	k = strconv.AppendInt(k, int64(d.cfg.Version), 10)
	k = t.AppendFormat(append(k, '-'), "2006-01-02-15-04-05")
	k = append(append(k, '-'), seed.uuid()...)
	name = string(k[base:])
	k = append(k, d.cfg.Extension...)
	sb.scratch = k
	return string(k), name
}

// consumerCheckpoints is the client.Checkpointer of the delivery's consumer: Get returns
// the checkpoint file's position, which only a stored object moves; Set moves it only when
// nothing of the shard is buffered (a LATEST start's anchor, a batch whose object was
// stored), and at a shard's end stores the open object first.
type consumerCheckpoints struct{ d *Delivery }

func (c consumerCheckpoints) Get(_ context.Context, shard uint32) (client.Checkpoint, bool, error) {
	s, ok := c.d.cp.get(shard)
	return client.Checkpoint{Position: s.Position, Ended: s.Ended}, ok, nil
}

func (c consumerCheckpoints) Set(ctx context.Context, shard uint32, cp client.Checkpoint) error {
	d := c.d
	sb := d.buffer(shard)
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if cp.Ended {
		if err := d.flushLocked(ctx, sb); err != nil {
			return err
		}
		return d.cp.set(shard, shardCheckpoint{Position: cp.Position, Ended: true})
	}
	if sb.hasRecords() {
		return nil
	}
	if s, ok := d.cp.get(shard); ok && s.Position >= cp.Position {
		return nil
	}
	return d.cp.set(shard, shardCheckpoint{Position: cp.Position})
}
