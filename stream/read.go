package stream

import (
	"time"

	"github.com/sluice-streams/sluice/internal/awsmsg"
)

// ReadInput is what ReadShard takes: a shard and where to start, instead of an iterator.
type ReadInput struct {
	Stream     string
	Shard      ShardID // the shard's index (shardId-000000000007 is 7)
	Type       IteratorType
	Pos        uint64    // the log position AT_ and AFTER_SEQUENCE_NUMBER name
	Timestamp  time.Time // AT_TIMESTAMP
	MaxRecords int       // 1…MaxGetRecordsLimit
	// MaxBytes caps the frames returned beyond the first record; 0, or anything above
	// MaxGetRecordsBytes, means MaxGetRecordsBytes.
	MaxBytes int
}

// ReadShard reads records of one shard from a position: GetShardIterator and GetRecords in
// one call, for readers that keep their position themselves (the native protocol). The
// start is resolved as GetShardIterator resolves it, and the read is GetRecords': the same
// read limits (a refused call is ProvisionedThroughputExceeded), metrics and MillisBehind.
// Records.Next is the position to read from next; at the end of a closed shard ShardEnd is
// set and ChildShards lists the shards that take over. NextIterator stays empty. As with
// GetRecords, the caller must Release the records.
func (e *Engine) ReadShard(in ReadInput) (Records, error) {
	if in.MaxRecords < 1 || in.MaxRecords > MaxGetRecordsLimit {
		return Records{}, invalid(awsmsg.Violation(awsmsg.Int(in.MaxRecords), "limit", awsmsg.ValueRange(1, MaxGetRecordsLimit)))
	}
	maxBytes := in.MaxBytes
	if maxBytes <= 0 || maxBytes > MaxGetRecordsBytes {
		maxBytes = MaxGetRecordsBytes
	}
	s, err := e.stream(in.Stream)
	if err != nil {
		return Records{}, err
	}
	now := e.opts.Now()
	out, err := e.readShard(s, in, maxBytes, now)
	s.metrics.getRecordsLatency.observe(e.opts.Now().Sub(now))
	return out, err
}

func (e *Engine) readShard(s *Stream, in ReadInput, maxBytes int, now time.Time) (Records, error) {
	meta, set := s.meta.Load(), s.set.Load()
	sh, held := set.shards[in.Shard]
	if !held {
		return Records{}, NoSuchShard(in.Shard.String(), meta.Name, e.opts.Account)
	}
	pos, err := e.positionAt(sh, in.Type, in.Pos, in.Timestamp)
	if err != nil {
		return Records{}, err
	}
	return e.getRecords(s, Iterator{Stream: meta.Name, StreamGen: meta.Gen, Shard: in.Shard, Pos: pos, Issued: now}, in.MaxRecords, maxBytes, now)
}
