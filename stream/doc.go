// Package stream is the engine that turns shard logs into Kinesis streams: the catalog of
// streams, shards and consumers, sequence numbers, shard iterators, resharding, retention and
// throughput limits. It knows nothing of HTTP; package server puts the Kinesis API on it.
//
// What exists so far:
//
//   - sequence numbers as clients see them (SeqNum: 56-digit decimal strings that decode to
//     a shard index and a position in that shard's segment.Log, with no lookup);
//
//   - shard iterators (IteratorKey: opaque HMAC-signed tokens that expire after 5 minutes,
//     signed with a key kept in the data directory so that they survive a restart);
//
//   - the error kinds the API layer maps to Kinesis exceptions (Error, Kind);
//
//   - per-shard capacity (Limits: the kinesis, scaled:N and off profiles; WriteLimiter,
//     ReadLimiter, and the enhanced fan-out Pacer), token buckets on an injected clock;
//
//   - the engine core (Engine): a crash-safe catalog (one stream.json per stream, replaced
//     atomically), CreateStream, DeleteStream, ListStreams, Describe, PutRecords (routing by
//     MD5 or explicit hash key, per-record throttling, one append per shard per call),
//     GetShardIterator (all five types) and GetRecords (a zero-copy view, the next iterator,
//     MillisBehindLatest, ChildShards at the end of a closed shard);
//
//   - resharding: SplitShard, MergeShards and UpdateShardCount through package shardmap;
//     parents close under their write gates (a replicated log, which other nodes append to,
//     is sealed: SealingLog), so concurrent producers never lose, duplicate or misroute a
//     record, and a drained closed shard ends with its ChildShards;
//
//   - enhanced fan-out: a registry of consumers (at most 20 per stream, ARNs with their
//     creation time) and subscriptions that push records as they are appended (woken by the
//     append through segment.Log.Changed, paced to 2 MiB/s per consumer and shard, 5-minute
//     lifetime, heartbeats every 5 s, ChildShards at the end of a shard, AWS's rule for a
//     second subscription to the same consumer and shard);
//
//   - listings: ListShards with Kinesis's six ShardFilter types over each shard's creation
//     and closing times (listshards.go), and the NextTokens of ListShards and
//     ListStreamConsumers (pagetoken.go: HMAC-signed with the iterator key, 300 s);
//
//   - the account's shard limit (shardlimit.go): the open shards of all streams together,
//     reserved by CreateStream and every resharding before they commit; at most 50
//     on-demand streams;
//
//   - retention: IncreaseRetention, DecreaseRetention (hides older records at once) and
//     Maintain, the periodic reaper (expiry, aged segments, unmapping idle segments).
//
//   - settings: tags, encryption (encrypt.go: records put while it is on are sealed with
//     AES-256-GCM under data keys wrapped by the keyring's master keys; reads open them),
//     stream mode, maximum record size; closed shards leave the listings once retention
//     emptied them.
//
//   - metrics (metrics.go): the CloudWatch metrics of Kinesis, counted on the data paths with
//     atomics, per stream, per shard (shown as enhanced monitoring enables them: SetMonitoring
//     is that switch, monitoring.go) and per enhanced fan-out consumer; Metrics returns a
//     snapshot for an exporter to read.
//
//   - on-demand capacity: a stream created without a shard count starts with 4 shards; when
//     a shard's write demand (accepted and throttled) exceeds its capacity, Maintain splits
//     it, up to twice the peak demand of a trailing window (Options.OnDemandWindow, 30 days
//     by default) and within 200 MiB/s and 200,000 records/s. It does not shrink. With
//     Options.SharedDemand (a cluster) Maintain leaves the decision to another decider:
//     TakeDemand hands out the demand counted here, ScaleOnDemand applies the decision.
//
//   - the shard-log seam (ShardLog, shardlog.go): the engine reaches a shard's records only
//     through it — append, read a view, the change notification, tip, retention, close —
//     and opens every shard's log through Options.OpenShardLog. segment.Log is the
//     single-node implementation; a replicated one plugs in there, with no change above.
//
//   - the catalog seam (Catalog, catalogseam.go): every stream's metadata is loaded, saved
//     with compare-and-swap on a revision, deleted and watched through Options.Catalog. nil
//     is the local catalog (the stream.json files); package cluster's keeps it in etcd, and
//     the engine applies the changes other nodes make (watch.go).
//
// What it does not own: the AWS account around the streams (resource policies, consumer
// tags, the billing commitment, warm throughput, DescribeLimits, parsing resource ARNs),
// which package account keeps on top of the engine through State, Config and the stream-tag
// and consumer methods; an older stream.json's account settings are handed to it once
// (MigrateLegacySettings, state.go). The messages of validation and not-found errors come
// from internal/awsmsg.
//
// The engine's API is typed: shards are ShardID, sequence numbers SeqNum, iterator types
// IteratorType, hash ranges shardmap.Range. The Kinesis text of these exists only in the
// protocol layer (package server), which parses and formats it. Errors are *Error values of
// a Kind that wrap their cause (errors.Is reaches segment's sentinels).
//
// Maintain is called on a timer by `sluice serve`.
//
// Concurrency: SeqNum is a value; an IteratorKey is immutable after it is loaded and safe for
// concurrent use; each limiter has its own mutex and is safe for concurrent use. The Engine
// is safe for concurrent use: its map of streams is guarded by a mutex, each stream's
// metadata and shard set are immutable snapshots published through atomic pointers (the
// data paths take no engine lock), and each shard's ShardLog serialises its appends.
//
// Durability: a stream exists once its stream.json is durable (written by temporary file,
// fsync, rename, fsync of the directory); its records are as durable as the shards' ShardLog
// promises (for segment.Log, its segment.Durability). DeleteStream renames the stream's
// directory out of the catalog (durably) before removing it; Open removes what a crash left
// in the trash.
package stream
