// Package stream is the engine that turns shard logs into Kinesis streams: the catalog of
// streams, shards and consumers, sequence numbers, shard iterators, resharding, retention and
// throughput limits. It knows nothing of HTTP; package server puts the Kinesis API on it.
//
// What exists so far:
//   - sequence numbers as clients see them (SeqNum: 56-digit decimal strings that decode to
//     a shard index and a position in that shard's segment.Log, with no lookup);
//   - shard iterators (IteratorKey: opaque HMAC-signed tokens that expire after 5 minutes,
//     signed with a key kept in the data directory so that they survive a restart);
//   - the error kinds the API layer maps to Kinesis exceptions (Error, Kind);
//   - per-shard capacity (Limits: the kinesis, scaled:N and off profiles; WriteLimiter,
//     ReadLimiter, and the enhanced fan-out Pacer), token buckets on an injected clock.
//
// The catalog, the per-shard writers, resharding, retention and the limits build on these and
// on packages segment and shardmap.
//
// Concurrency: SeqNum is a value; an IteratorKey is immutable after it is loaded and safe for
// concurrent use; each limiter has its own mutex and is safe for concurrent use.
package stream
