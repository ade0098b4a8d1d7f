package shardmap

import "errors"

// Errors returned by the package. They are wrapped with the shard, key or count they concern;
// test with errors.Is. Each maps to one Kinesis error type in the stream layer, noted below.
var (
	// ErrInvalidKey reports a hash key that is not a decimal string of 0 … 2^128−1 in the
	// form AWS accepts (0|[1-9][0-9]{0,38}), or a NewStartingHashKey that cannot split the
	// shard. Kinesis: InvalidArgumentException (ValidationException for the syntax).
	ErrInvalidKey = errors.New("shardmap: invalid hash key")
	// ErrInvalidName reports a string that names no shard index (see ParseShardID).
	// Kinesis: ResourceNotFoundException ("Could not find shard …").
	ErrInvalidName = errors.New("shardmap: invalid shard id")
	// ErrNotFound reports a shard id the map does not hold: never created, or pruned.
	// Kinesis: ResourceNotFoundException.
	ErrNotFound = errors.New("shardmap: shard not found")
	// ErrNotOpen reports a split or merge of a closed shard. Kinesis: ResourceInUseException
	// or InvalidArgumentException, as the stream layer decides.
	ErrNotOpen = errors.New("shardmap: shard is closed")
	// ErrNotAdjacent reports a merge of two shards whose ranges are not an adjacent pair with
	// the first one below the second. Kinesis: InvalidArgumentException.
	ErrNotAdjacent = errors.New("shardmap: shards are not an adjacent pair")
	// ErrInvalidCount reports a shard count below 1. Kinesis: ValidationException /
	// InvalidArgumentException.
	ErrInvalidCount = errors.New("shardmap: invalid shard count")
	// ErrLimit reports an operation beyond a limit: more than MaxOpen open shards, shard ids
	// past MaxShardID, or an UpdateShardCount above double or below half the open shard
	// count. Kinesis: LimitExceededException.
	ErrLimit = errors.New("shardmap: limit exceeded")
	// ErrCorrupt reports an encoding Decode cannot accept (bad magic, length, CRC, field or
	// invariant), a map that fails Validate, or a Change that does not apply to a map.
	ErrCorrupt = errors.New("shardmap: corrupt shard map")
	// ErrVersion reports an encoding written by an unknown format version.
	ErrVersion = errors.New("shardmap: unknown format version")
)
