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
// read capacity) are the engine's; these are the API's. Quotas are per second, as the Kinesis
// API reference documents them, scaled by the server's limits profile (kinesis ×1, scaled:N
// ×N, off: none; a profile below ×1, used to make data-plane throttling easy to reach, leaves
// them at ×1), and counted where Kinesis counts them: per account or per stream.
// GetShardIterator is counted per shard and answers ProvisionedThroughputExceededException,
// the error its model lists.
var controlPlane = map[string]quota{
	"AddTagsToStream":               {5, perAccount},
	"CreateStream":                  {5, perAccount},
	"DecreaseStreamRetentionPeriod": {5, perAccount},
	"DeleteStream":                  {5, perAccount},
	"DeregisterStreamConsumer":      {5, perStream},
	"DescribeAccountSettings":       {5, perAccount},
	"DescribeLimits":                {1, perAccount},
	"DescribeStream":                {10, perAccount},
	"DescribeStreamConsumer":        {20, perStream},
	"DescribeStreamSummary":         {20, perAccount},
	"DisableEnhancedMonitoring":     {5, perAccount},
	"EnableEnhancedMonitoring":      {5, perAccount},
	"IncreaseStreamRetentionPeriod": {5, perAccount},
	"ListShards":                    {1000, perStream},
	"ListStreamConsumers":           {5, perStream},
	"ListStreams":                   {5, perAccount},
	"ListTagsForStream":             {5, perAccount},
	"MergeShards":                   {5, perAccount},
	"RegisterStreamConsumer":        {5, perAccount},
	"RemoveTagsFromStream":          {5, perAccount},
	"SplitShard":                    {5, perAccount},
	"StartStreamEncryption":         {5, perAccount},
	"StopStreamEncryption":          {5, perAccount},
	"UpdateAccountSettings":         {5, perAccount},
	"UpdateShardCount":              {10, perAccount},
	"UpdateStreamWarmThroughput":    {5, perAccount},
}

// quota is one operation's calls per second and where they are counted.
type quota struct {
	tps   float64
	scope scope
}

type scope uint8

const (
	perAccount scope = iota // counted by the dispatcher, before the body is read (allow)
	perStream               // counted by the operation once it knows the stream (allowStream)
)

// getShardIteratorTPS is GetShardIterator's quota per shard.
const getShardIteratorTPS = 5

// maxKeyedBuckets bounds the per-stream and per-shard buckets; past it the table starts
// over, which forgets some recent calls rather than growing without bound.
const maxKeyedBuckets = 100000

// rateLimiter holds the token buckets of the control plane. Safe for concurrent use.
type rateLimiter struct {
	limits  stream.Limits
	account string // for the messages
	now     func() time.Time

	mu      sync.Mutex              // guards ops, streams and shards
	ops     map[string]*tokenBucket // per-account quotas, by operation
	streams map[string]*tokenBucket // per-stream quotas, by operation and stream
	shards  map[string]*tokenBucket // GetShardIterator, by stream and shard id
}

func newRateLimiter(l stream.Limits, account string, now func() time.Time) *rateLimiter {
	return &rateLimiter{limits: l, account: account, now: now, ops: map[string]*tokenBucket{},
		streams: map[string]*tokenBucket{}, shards: map[string]*tokenBucket{}}
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

// allow admits one call of op if its quota is per account, or returns LimitExceededException.
// A per-stream quota is checked by the operation (allowStream).
func (r *rateLimiter) allow(op string) error {
	q, limited := controlPlane[op]
	if r.limits.Off || !limited || q.scope != perAccount {
		return nil
	}
	r.mu.Lock()
	ok := r.takeLocked(r.ops, op, q.tps)
	r.mu.Unlock()
	if !ok {
		return apiError{code: wire.LimitExceeded, msg: "Rate exceeded for " + op + " under account " + r.account + " (" + formatTPS(q.tps*r.factor()) + " calls per second per account)."}
	}
	return nil
}

// allowStream admits one call of op, whose quota is per stream, on streamName, or returns
// LimitExceededException.
func (r *rateLimiter) allowStream(op, streamName string) error {
	q, limited := controlPlane[op]
	if r.limits.Off || !limited || q.scope != perStream {
		return nil
	}
	r.mu.Lock()
	if len(r.streams) >= maxKeyedBuckets {
		clear(r.streams)
	}
	ok := r.takeLocked(r.streams, op+"/"+streamName, q.tps)
	r.mu.Unlock()
	if !ok {
		return apiError{code: wire.LimitExceeded, msg: "Rate exceeded for " + op + " on stream " + streamName + " under account " + r.account + " (" + formatTPS(q.tps*r.factor()) + " calls per second per stream)."}
	}
	return nil
}

// allowShardIterator admits one GetShardIterator call for a shard, or returns
// ProvisionedThroughputExceededException. The shard is the parsed id, so every spelling of
// one shard's id shares its bucket.
func (r *rateLimiter) allowShardIterator(streamName string, shard stream.ShardID) error {
	if r.limits.Off {
		return nil
	}
	r.mu.Lock()
	if len(r.shards) >= maxKeyedBuckets {
		clear(r.shards)
	}
	ok := r.takeLocked(r.shards, string(shard.Append([]byte(streamName+"/"))), getShardIteratorTPS)
	r.mu.Unlock()
	if !ok {
		return apiError{code: wire.ProvisionedThroughputExceeded, msg: "Rate exceeded for shard " + shard.String() + " in stream " + streamName + " under account " + r.account + "."}
	}
	return nil
}

func (r *rateLimiter) factor() float64 { return max(1, r.limits.Factor) }

func formatTPS(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
