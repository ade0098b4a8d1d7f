package stream

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Per-shard capacity, as Kinesis defines it.
const (
	WriteBytesPerSec   = 1 << 20 // 1 MiB/s of data and partition keys in
	WriteRecordsPerSec = 1000    // records/s in
	ReadBytesPerSec    = 2 << 20 // 2 MiB/s out, shared by every GetRecords consumer
	ReadCallsPerSec    = 5       // GetRecords calls/s, shared
	FanOutBytesPerSec  = 2 << 20 // 2 MiB/s out per enhanced fan-out consumer
)

// Limits is the capacity profile of a server: "kinesis" (the figures above, the default),
// "scaled:N" (N times them, N > 0, for tests and big machines) or "off" (no limits, for
// benchmarks).
type Limits struct {
	Off    bool
	Factor float64 // multiplies every per-shard figure; 1 for "kinesis"
}

// ParseLimits parses a profile name.
func ParseLimits(s string) (Limits, error) {
	switch {
	case s == "" || s == "kinesis":
		return Limits{Factor: 1}, nil
	case s == "off":
		return Limits{Off: true, Factor: 1}, nil
	case strings.HasPrefix(s, "scaled:"):
		f, err := strconv.ParseFloat(strings.TrimPrefix(s, "scaled:"), 64)
		if err != nil || !(f > 0) || f > 1e6 {
			return Limits{}, fmt.Errorf("limits %q: want scaled:N with 0 < N ≤ 1000000", s)
		}
		return Limits{Factor: f}, nil
	}
	return Limits{}, fmt.Errorf("limits %q: want kinesis, scaled:N or off", s)
}

func (l Limits) String() string {
	switch {
	case l.Off:
		return "off"
	case l.Factor == 1:
		return "kinesis"
	}
	return "scaled:" + strconv.FormatFloat(l.Factor, 'g', -1, 64)
}

func (l Limits) scale(v int64) int64 { return max(1, int64(float64(v)*l.Factor)) }

// bucket is a token bucket in integer arithmetic: tokens are kept in billionths of a unit so
// that refilling by elapsed nanoseconds × rate is exact. Not safe for concurrent use; its
// owner locks.
type bucket struct {
	rate  int64 // units per second
	burst int64 // capacity, units
	nano  int64 // tokens × 1e9; may go negative (a debt) through takeDebt
	last  int64 // time of the last refill, Unix ns
}

func newBucket(rate, burst, now int64) bucket {
	return bucket{rate: rate, burst: burst, nano: burst * 1e9, last: now}
}

func (b *bucket) refill(now int64) {
	if now <= b.last {
		return
	}
	el := now - b.last
	b.last = now
	// Cap the elapsed time at what fills the bucket from its lowest possible point, so the
	// product cannot overflow after a long idle time.
	if full := (b.burst*1e9 - b.nano) / b.rate; el > full {
		b.nano = b.burst * 1e9
		return
	}
	b.nano = min(b.burst*1e9, b.nano+el*b.rate)
}

// has reports whether n units are available.
func (b *bucket) has(n, now int64) bool {
	b.refill(now)
	return b.nano >= n*1e9
}

// wait returns how long until n units are available (0 if they are).
func (b *bucket) wait(n, now int64) time.Duration {
	b.refill(now)
	need := n*1e9 - b.nano
	if need <= 0 {
		return 0
	}
	return time.Duration((need + b.rate - 1) / b.rate)
}

// WriteLimiter is one shard's write capacity: bytes (data plus partition key) and records.
type WriteLimiter struct {
	mu    sync.Mutex
	off   bool
	bytes bucket
	recs  bucket
}

// NewWriteLimiter returns a shard's write limiter, full.
func (l Limits) NewWriteLimiter(now time.Time) *WriteLimiter {
	t := now.UnixNano()
	return &WriteLimiter{off: l.Off,
		bytes: newBucket(l.scale(WriteBytesPerSec), l.scale(WriteBytesPerSec), t),
		recs:  newBucket(l.scale(WriteRecordsPerSec), l.scale(WriteRecordsPerSec), t)}
}

// Admit takes the capacity for one record of n bytes (data plus partition key) and reports
// whether there was enough; a record refused takes nothing (PutRecords refuses it alone with
// ProvisionedThroughputExceededException and goes on with the next).
func (w *WriteLimiter) Admit(n int, now time.Time) bool {
	if w.off {
		return true
	}
	t := now.UnixNano()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.bytes.has(int64(n), t) || !w.recs.has(1, t) {
		return false
	}
	w.bytes.nano -= int64(n) * 1e9
	w.recs.nano -= 1e9
	return true
}

// ReadLimiter is one shard's shared read capacity: GetRecords calls and bytes. A call is
// admitted while there is a call token and the byte balance is positive; its bytes are then
// charged in full, so the balance may go negative. That is how Kinesis's penalty after a big
// read comes out: a 10 MiB response leaves a debt repaid at 2 MiB/s, and calls are refused
// until it is — 5 s when the shard's 1-second burst was already spent, 4 s when it was full.
type ReadLimiter struct {
	mu    sync.Mutex
	off   bool
	calls bucket
	bytes bucket
}

// NewReadLimiter returns a shard's read limiter, full.
func (l Limits) NewReadLimiter(now time.Time) *ReadLimiter {
	t := now.UnixNano()
	return &ReadLimiter{off: l.Off,
		calls: newBucket(l.scale(ReadCallsPerSec), l.scale(ReadCallsPerSec), t),
		bytes: newBucket(l.scale(ReadBytesPerSec), l.scale(ReadBytesPerSec), t)}
}

// Admit takes a call token if the shard may be read now.
func (r *ReadLimiter) Admit(now time.Time) bool {
	if r.off {
		return true
	}
	t := now.UnixNano()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.calls.has(1, t) || !r.bytes.has(0, t) || r.bytes.nano <= 0 {
		return false
	}
	r.calls.nano -= 1e9
	return true
}

// Charge records n bytes returned by an admitted call; the balance may go negative.
func (r *ReadLimiter) Charge(n int, now time.Time) {
	if r.off {
		return
	}
	r.mu.Lock()
	r.bytes.refill(now.UnixNano())
	r.bytes.nano -= int64(n) * 1e9
	r.mu.Unlock()
}

// Pacer paces an enhanced fan-out subscription: Wait says how long to hold n bytes back so
// that the consumer gets at most its per-shard rate. Pushing waits; it never fails.
type Pacer struct {
	mu    sync.Mutex
	off   bool
	bytes bucket
}

// NewPacer returns an enhanced fan-out pacer, full.
func (l Limits) NewPacer(now time.Time) *Pacer {
	r := l.scale(FanOutBytesPerSec)
	return &Pacer{off: l.Off, bytes: newBucket(r, r, now.UnixNano())}
}

// Take charges n bytes (allowing a debt, since a record larger than the burst must still
// go) and returns how long the sender should wait before sending them.
func (p *Pacer) Take(n int, now time.Time) time.Duration {
	if p.off {
		return 0
	}
	t := now.UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.bytes.wait(min(int64(n), p.bytes.burst), t)
	p.bytes.nano -= int64(n) * 1e9
	return d
}

// CapacityLimits returns the engine's limits profile, which the API applies to its own
// quotas too.
func (e *Engine) CapacityLimits() Limits { return e.opts.Limits }

// Account returns the account id the engine's ARNs name.
func (e *Engine) Account() string { return e.opts.Account }
