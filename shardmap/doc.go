// Package shardmap is the hash-range layout of one Kinesis stream: which shards exist, which
// are open, which 128-bit hash keys each open shard owns, and how SplitShard, MergeShards and
// UpdateShardCount change that. It routes a partition key to its shard: KeyOf (MD5 of the key,
// read big-endian, as Kinesis does), then Map.Route (a binary search over the open shards).
//
// What it owns: hash keys (Key, their decimal form, ParseKey), shard ids and their Kinesis
// names (ShardName, ParseShardID), the layout of CreateStream (New), the resharding
// operations with Kinesis's argument rules and lineage (ParentShardId, AdjacentParentShardId),
// the invariant that the open shards cover 0 … 2^128−1 exactly once (Map.Validate), and the
// binary encoding of a Map (encode.go). What it does not own: records, sequence numbers,
// segments, retention, throughput limits, HTTP and files. Each operation returns the list of
// Changes it made (shards closed, shards created), and the owner turns them into ending and
// starting sequence numbers and shard logs; the owner also decides when retention lets it
// Prune closed shards.
//
// Concurrency. A Map is immutable: Split, Merge, UpdateShardCount, Apply and Prune return a
// new Map and never modify their receiver, and the slices Open, All and OpenByRange return are
// shared and must not be modified. The owner (the stream's catalog) serialises the operations
// on one stream and publishes each new Map through a Pointer (an atomic.Pointer); routing
// readers Load the Map without a lock and use it for as long as they like. Route, Lookup and
// KeyOf do not allocate.
//
// Durability. None here: the package does no I/O. The owner persists a Map with Encode
// (a versioned, CRC32C-protected encoding) inside its own metadata files, written by the
// temporary file, fsync, rename, fsync-directory discipline, and reads it back with Decode,
// which validates everything and rejects what it cannot trust with ErrCorrupt. A log of
// Changes written after a snapshot can be replayed with Map.Apply.
//
// Kinesis behaviour where the API reference is silent follows what the real service does, as
// recorded by kinesalite's test suite run against it: SplitShard needs Start+1 < NewStartingHashKey
// < End; MergeShards needs AdjacentShardToMerge to begin one key after ShardToMerge ends (the
// order matters); ShardIds are read leniently (ParseShardID); UpdateShardCount may at most
// double and at least halve the open shard count.
package shardmap
