package stream

import (
	"time"
)

// ShardFilterType is the kind of a ListShards ShardFilter. The Kinesis names (String) exist
// only at the protocol edges, which parse them with ParseShardFilterType.
type ShardFilterType uint8

// The filter types. The zero value is FromTrimHorizon, Kinesis's default: every shard held.
const (
	// FromTrimHorizon lists every shard still held: open ones and closed ones within the
	// retention period (trim to tip).
	FromTrimHorizon ShardFilterType = iota
	// AfterShardID lists the shards whose id follows ShardFilter.After.
	AfterShardID
	// AtTrimHorizon lists the shards that were open at the trim horizon.
	AtTrimHorizon
	// AtLatest lists the open shards.
	AtLatest
	// AtTimestampFilter lists the shards open at ShardFilter.At: created at or before it,
	// and open or closed at or after it.
	AtTimestampFilter
	// FromTimestamp lists the shards open at or after ShardFilter.At: the open ones and the
	// closed ones that closed at or after it. A time before the trim horizon counts as the
	// trim horizon.
	FromTimestamp
)

var shardFilterNames = [...]string{
	FromTrimHorizon:   "FROM_TRIM_HORIZON",
	AfterShardID:      "AFTER_SHARD_ID",
	AtTrimHorizon:     "AT_TRIM_HORIZON",
	AtLatest:          "AT_LATEST",
	AtTimestampFilter: "AT_TIMESTAMP",
	FromTimestamp:     "FROM_TIMESTAMP",
}

// String returns the Kinesis name of t.
func (t ShardFilterType) String() string {
	if int(t) < len(shardFilterNames) {
		return shardFilterNames[t]
	}
	return "UNKNOWN"
}

// ParseShardFilterType returns the type a Kinesis name names; ok is false for any other
// string.
func ParseShardFilterType(s string) (t ShardFilterType, ok bool) {
	for i, n := range shardFilterNames {
		if n == s {
			return ShardFilterType(i), true
		}
	}
	return 0, false
}

// ShardFilter selects the shards ListShards reports.
type ShardFilter struct {
	Type  ShardFilterType
	After ShardID   // AfterShardID: list the shards with a higher id
	At    time.Time // AtTimestampFilter, FromTimestamp
}

// ListShards returns the shards of a stream that f selects, in id order.
func (e *Engine) ListShards(name string, f ShardFilter) ([]ShardDescription, error) {
	d, err := e.Describe(name)
	if err != nil {
		return nil, err
	}
	trimHorizon := e.opts.Now().Add(-e.opts.retention(d.RetentionHours))
	return FilterShards(d.Shards, f, d.Created, trimHorizon), nil
}

// FilterShards returns the shards of a stream created at created that f selects, with the
// stream's trim horizon at trimHorizon. No shard is older than its stream, so a time before
// the stream's creation counts as its creation. A closed shard whose closing time is unknown
// (Closed is zero) counts as closed after any time.
func FilterShards(shards []ShardDescription, f ShardFilter, created, trimHorizon time.Time) []ShardDescription {
	keep := func(sd ShardDescription) bool { return true }
	switch f.Type {
	case AfterShardID:
		keep = func(sd ShardDescription) bool { return sd.ID > f.After }
	case AtLatest:
		keep = func(sd ShardDescription) bool { return sd.Open }
	case AtTrimHorizon:
		at := later(trimHorizon, created)
		keep = func(sd ShardDescription) bool { return sd.openAt(at) }
	case AtTimestampFilter:
		at := later(f.At, created)
		keep = func(sd ShardDescription) bool { return sd.openAt(at) }
	case FromTimestamp:
		from := later(f.At, trimHorizon)
		keep = func(sd ShardDescription) bool { return sd.openAfter(from) }
	}
	out := make([]ShardDescription, 0, len(shards))
	for _, sd := range shards {
		if keep(sd) {
			out = append(out, sd)
		}
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}

// openAt reports whether the shard was open at t: created at or before it, and still open or
// closed at or after it.
func (sd ShardDescription) openAt(t time.Time) bool {
	return !sd.Created.After(t) && sd.openAfter(t)
}

// openAfter reports whether the shard was open at some time at or after t.
func (sd ShardDescription) openAfter(t time.Time) bool {
	return sd.Open || sd.Closed.IsZero() || !sd.Closed.Before(t)
}
