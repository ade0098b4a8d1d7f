package server

import (
	"strconv"
	"sync"
	"time"

	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/stream"
)

// Control-plane rate limits: Kinesis answers LimitExceededException when an account calls a
// control-plane operation faster than its quota. The data plane's limits (per-shard write and
// read capacity) are the engine's; these are the API's. Quotas are per second, as Kinesis
// documents them, scaled by the server's limits profile (kinesis ×1, scaled:N ×N, off: none;
// a profile below ×1, used to make data-plane throttling easy to reach, leaves them at ×1).
// Kinesis counts some of them per stream; sluice counts them per account, which is the same
// for one stream and stricter for many. GetShardIterator is counted per shard, as Kinesis does.
var controlPlaneTPS = map[string]float64{
	"AddTagsToStream":               5,
	"CreateStream":                  5,
	"DecreaseStreamRetentionPeriod": 5,
	"DeleteStream":                  5,
	"DeregisterStreamConsumer":      5,
	"DescribeLimits":                1,
	"DescribeStream":                10,
	"DescribeStreamConsumer":        20,
	"DescribeStreamSummary":         20,
	"DisableEnhancedMonitoring":     5,
	"EnableEnhancedMonitoring":      5,
	"IncreaseStreamRetentionPeriod": 5,
	"ListShards":                    1000,
	"ListStreamConsumers":           5,
	"ListStreams":                   5,
	"ListTagsForStream":             5,
	"MergeShards":                   5,
	"RegisterStreamConsumer":        5,
	"RemoveTagsFromStream":          5,
	"SplitShard":                    5,
	"StartStreamEncryption":         5,
	"StopStreamEncryption":          5,
	"UpdateShardCount":              5,
}

// getShardIteratorTPS is GetShardIterator's quota per shard.
const getShardIteratorTPS = 5

// maxShardBuckets bounds the per-shard buckets; past it the table starts over, which forgets
// some recent calls rather than growing without bound.
const maxShardBuckets = 100000

// rateLimiter holds the token buckets of the control plane. Safe for concurrent use.
type rateLimiter struct {
	limits stream.Limits
	now    func() time.Time

	mu     sync.Mutex              // guards ops and shards
	ops    map[string]*tokenBucket // by operation
	shards map[string]*tokenBucket // GetShardIterator, by stream and shard
}

func newRateLimiter(l stream.Limits, now func() time.Time) *rateLimiter {
	return &rateLimiter{limits: l, now: now, ops: map[string]*tokenBucket{}, shards: map[string]*tokenBucket{}}
}

// tokenBucket holds up to one second of calls.
type tokenBucket struct {
	tokens, rate float64
	last         time.Time
}

func (b *tokenBucket) take(now time.Time) bool {
	b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (r *rateLimiter) takeLocked(m map[string]*tokenBucket, key string, tps float64) bool {
	now := r.now()
	b := m[key]
	if b == nil {
		rate := tps * r.factor()
		b = &tokenBucket{tokens: rate, rate: rate, last: now}
		m[key] = b
	}
	return b.take(now)
}

// allow admits one call of op, or returns LimitExceededException.
func (r *rateLimiter) allow(op string) error {
	tps, limited := controlPlaneTPS[op]
	if r.limits.Off || !limited {
		return nil
	}
	r.mu.Lock()
	ok := r.takeLocked(r.ops, op, tps)
	r.mu.Unlock()
	if !ok {
		return apiError{code: wire.LimitExceeded, msg: "Rate exceeded for " + op + " (" + formatTPS(tps*r.factor()) + " calls per second per account)."}
	}
	return nil
}

// allowShardIterator admits one GetShardIterator call for a shard.
func (r *rateLimiter) allowShardIterator(streamName, shard string) error {
	if r.limits.Off {
		return nil
	}
	r.mu.Lock()
	if len(r.shards) >= maxShardBuckets {
		clear(r.shards)
	}
	ok := r.takeLocked(r.shards, streamName+"/"+shard, getShardIteratorTPS)
	r.mu.Unlock()
	if !ok {
		return apiError{code: wire.LimitExceeded, msg: "Rate exceeded for GetShardIterator on shard " + shard + " in stream " + streamName + "."}
	}
	return nil
}

func (r *rateLimiter) factor() float64 { return max(1, r.limits.Factor) }

func formatTPS(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
