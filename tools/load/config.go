package load

import (
	"fmt"
	"math"
	"time"
)

// Protocol is how the run talks to the server.
type Protocol string

const (
	// Native uses the client package: a client.Producer per producer, a client.Consumer per
	// consumer group, records in sluice's native protocol.
	Native Protocol = "native"
	// Kinesis uses the Kinesis API (AWS JSON 1.1): PutRecords, and GetShardIterator with
	// GetRecords (shared) or SubscribeToShard (enhanced), so that any server speaking it can
	// be measured.
	Kinesis Protocol = "kinesis"
)

// ParseProtocol parses "native" or "kinesis".
func ParseProtocol(s string) (Protocol, error) {
	switch p := Protocol(s); p {
	case Native, Kinesis:
		return p, nil
	}
	return "", fmt.Errorf("%w: protocol %q: want native or kinesis", ErrConfig, s)
}

// FanOut is how consumer groups read.
type FanOut string

const (
	// Shared groups poll each shard (native gets, or GetRecords).
	Shared FanOut = "shared"
	// Enhanced groups are registered as enhanced fan-out consumers and have records pushed
	// (native subscriptions, or SubscribeToShard).
	Enhanced FanOut = "enhanced"
)

// ParseFanOut parses "shared" or "enhanced".
func ParseFanOut(s string) (FanOut, error) {
	switch f := FanOut(s); f {
	case Shared, Enhanced:
		return f, nil
	}
	return "", fmt.Errorf("%w: fan-out %q: want shared or enhanced", ErrConfig, s)
}

// Config is what a run does. Zero values take the defaults named on each field; Duration and
// Records may not both be zero.
type Config struct {
	// Endpoint is the server's base URL; "" means http://127.0.0.1:4567.
	Endpoint string
	// Stream is the stream to load; it is created with Shards shards if it does not exist.
	Stream string
	Shards int // 0 means 4

	Protocol Protocol // "" means Native
	FanOut   FanOut   // "" means Shared

	// Producers is the number of producers putting records concurrently; 0 means 1. Each
	// is a client.Producer (Native) or a goroutine sending one PutRecords at a time (Kinesis).
	Producers int
	// Consumers is the number of consumer groups, each reading the whole stream and
	// verified on its own; 0 produces only.
	Consumers int

	// Size is the distribution of record data sizes; the zero Size means 1 KiB records.
	Size Size
	// Rate is the total put rate in records a second, shared evenly by the producers; 0 puts
	// as fast as the server acknowledges.
	Rate float64
	// Duration and Records bound the run: putting stops when either is reached (a zero one
	// does not bound). Records counts records handed to the producers.
	Duration time.Duration
	Records  uint64
	// Keys is the number of distinct partition keys, chosen uniformly; 0 means 1,000.
	Keys int

	// DrainTimeout bounds two waits once putting stops: for the producers' last outcomes,
	// then for the consumer groups to read everything acknowledged. 0 means 30 s.
	DrainTimeout time.Duration
	// Seed seeds record sizes, keys and filler; 0 picks one at random (Report.Seed tells it).
	Seed uint64

	// Linger is how long a producer's batch waits for more records; 0 means 5 ms.
	Linger time.Duration
	// ReadsPerSecond paces each shared reader's reads of a shard; 0 means 5, the Kinesis
	// limit per shard (which all the readers of a shard share).
	ReadsPerSecond float64
	// PollInterval is a shared reader's wait after a read that found nothing; 0 means 200 ms.
	PollInterval time.Duration

	// Progress, when set, is called every ProgressInterval (0 means 500 ms) with the run's
	// figures so far, on a goroutine of its own; the calls do not overlap.
	Progress         func(Progress)
	ProgressInterval time.Duration
}

// Limits of a Config.
const (
	maxProducers = 10_000
	maxConsumers = 100 // groups; enhanced fan-out allows 20 per stream on Kinesis
	maxKeys      = 10_000_000
	maxShards    = 10_000
	maxRate      = 1e9
)

// withDefaults returns c with its zero values replaced by their defaults, or an error
// wrapping ErrConfig.
func (c Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	if c.Endpoint == "" {
		c.Endpoint = "http://127.0.0.1:4567"
	}
	if !validStreamName(c.Stream) {
		return bad("stream name %q: want 1 to 128 of a-z, A-Z, 0-9, '_', '.', '-'", c.Stream)
	}
	if c.Shards == 0 {
		c.Shards = 4
	}
	if c.Protocol == "" {
		c.Protocol = Native
	}
	if c.FanOut == "" {
		c.FanOut = Shared
	}
	if _, err := ParseProtocol(string(c.Protocol)); err != nil {
		return c, err
	}
	if _, err := ParseFanOut(string(c.FanOut)); err != nil {
		return c, err
	}
	if c.Producers == 0 {
		c.Producers = 1
	}
	if c.Keys == 0 {
		c.Keys = 1000
	}
	if c.Size == (Size{}) {
		c.Size = Size{Kind: Fixed, Min: 1 << 10, Max: 1 << 10}
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.Linger == 0 {
		c.Linger = 5 * time.Millisecond
	}
	if c.ReadsPerSecond == 0 {
		c.ReadsPerSecond = 5
	}
	if c.PollInterval == 0 {
		c.PollInterval = 200 * time.Millisecond
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = 500 * time.Millisecond
	}
	switch {
	case c.Shards < 1 || c.Shards > maxShards:
		return bad("shards %d: want 1 to %d", c.Shards, maxShards)
	case c.Producers < 1 || c.Producers > maxProducers:
		return bad("producers %d: want 1 to %d", c.Producers, maxProducers)
	case c.Consumers < 0 || c.Consumers > maxConsumers:
		return bad("consumers %d: want 0 to %d", c.Consumers, maxConsumers)
	case c.Keys < 1 || c.Keys > maxKeys:
		return bad("keys %d: want 1 to %d", c.Keys, maxKeys)
	case !(c.Rate >= 0 && c.Rate <= maxRate):
		return bad("rate %v: want 0 (unlimited) to %g records a second", c.Rate, maxRate)
	case c.Duration < 0:
		return bad("duration %v is negative", c.Duration)
	case c.Duration == 0 && c.Records == 0:
		return bad("neither a duration nor a record count bounds the run")
	case c.DrainTimeout < 0 || c.Linger < 0 || c.PollInterval < 0 || c.ProgressInterval < 0:
		return bad("negative drain timeout, linger, poll or progress interval")
	case !(c.ReadsPerSecond > 0) || math.IsInf(c.ReadsPerSecond, 0):
		return bad("reads per second %v: want a positive number", c.ReadsPerSecond)
	case c.Size.Min < 0 || c.Size.Max > MaxRecordBytes || c.Size.Min > c.Size.Max ||
		c.Size.Kind == Normal && !(c.Size.StdDev >= 0 && c.Size.Mean >= 0 && !math.IsInf(c.Size.StdDev, 0)):
		return bad("size %s out of range", c.Size)
	}
	return c, nil
}

// validStreamName reports whether Kinesis would accept s as a stream name.
func validStreamName(s string) bool {
	if len(s) < 1 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}
