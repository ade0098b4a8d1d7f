package stream

import (
	"errors"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sluice-streams/sluice/segment"
)

// ShardLog is the engine's seam to one shard's records: every read and write of a shard's
// data goes through it, and nothing above the engine (server/) sees it. segment.Log is the
// single-node implementation; a replicated log (a Raft group over the shard's replicas whose
// Raft log is the segment log) implements it for a cluster, behind the same contract:
//
//   - Positions. The log assigns positions (the records' sequence numbers within the shard,
//     uint64 ≥ 1): consecutive in append order within a batch, strictly increasing across
//     batches, never reused — not after a crash, a torn tail, or (replicated) a change of
//     leader. Append writes each record's position into batch[i].Seq and the batch's arrival
//     time into batch[i].Time. The engine turns a position into a Kinesis sequence number
//     (SeqNum{Shard, Pos}); it never invents one.
//   - Acknowledgement. Append returns nil once the whole batch is as durable as the log
//     promises — single node: its durability mode (segment.Durability); replicated:
//     committed by a majority of the replicas, each durable by its own mode. Only then may
//     the engine acknowledge it. An error means "not acknowledged", not "not written": a
//     producer that retries may duplicate, as with Kinesis. A failure of the storage below
//     is sticky; later Appends fail too (errors.Is(err, segment.ErrFailed)).
//   - Visibility. A record becomes readable (Read, Tip) only once it is acknowledged, and in
//     position order: Tip is the last readable position and never moves backwards; the
//     channel Changed returns is closed when Tip moves past the value it had when the
//     channel was taken (take the channel, then read Tip: no append is missed).
//   - Views. Read returns the readable records from the first position ≥ from (after the
//     retention horizon), at most maxRecords and about maxBytes. A View pins the memory its
//     frames live in (a segment's mapping) until Release, and its bytes never change; Next
//     is where to read from next. An empty View's Next never skips a readable record.
//   - Retention. Trim(cutoff) hides the records that arrived before cutoff (Unix ns) at once
//     and deletes the storage that held only them; the cutoff only moves forward. Hide(cutoff)
//     hides them too, at once for every read, but reads and deletes nothing until the next
//     Trim: the engine calls it when it opens a shard, so that start-up reads no more than
//     the log's recovery does. Oldest is the first readable position; SeqAtTime the first at
//     or after a time.
//   - Close ends the log: later calls fail with segment.ErrClosed; Views taken before stay
//     valid until released. Remove closes the log and deletes its storage (a pruned shard).
//
// Implementations are safe for concurrent use; appends are serialised by the log.
type ShardLog interface {
	Append(batch []segment.Record) error
	Read(from uint64, maxRecords, maxBytes int) (segment.View, error)
	Changed() <-chan struct{}
	Tip() uint64
	TipTime() int64
	SeqAtTime(unixNano int64) (seq uint64, ok bool, err error)
	Oldest() (seq uint64, ok bool, err error)
	Trim(cutoff int64) (removed int, err error)
	Hide(cutoff int64)
	// UnmapIdle gives back what idle parts of the log hold (mappings no View uses); the
	// engine calls it periodically from Maintain.
	UnmapIdle() int
	Close() error
	Remove() error
}

// LeaderLog is implemented by a replicated ShardLog, where only the node that leads the
// shard's group appends. Before it charges a shard's write limit and appends, the engine asks
// Leader: when another node leads (here false), the records are not appended and their
// errors wrap a *NotLeaderError naming leader (0: unknown), so that the throughput limit is
// applied on the node that appends. An Append that finds leadership lost meanwhile returns
// an error wrapping a *NotLeaderError too.
type LeaderLog interface {
	Leader() (leader uint64, here bool)
}

// SealingLog is implemented by a replicated ShardLog, whose records other nodes append too:
// the gate a resharding takes on this node does not stop them, so the engine closes such a
// shard at the position Seal returns instead of at Tip (a single node's log is closed at Tip).
// token names the resharding (random, one per resharding and engine).
//
//   - Seal makes the log take no more records on any replica: once it returns, every
//     Append that was or will be acknowledged has its records at or below last, and no
//     replica makes a record above last readable; an Append whose records fall after the
//     seal fails with an error wrapping ErrLogSealed. last is the position of the shard's last
//     record (its EndingSequenceNumber's). A log already sealed stays sealed at the same
//     position: another Seal, with any token, returns the same last. An error means the log
//     may or may not be sealed.
//   - Unseal ends the hold of token's Seal, whose resharding could not be saved (best
//     effort); the log takes records again once no Seal holds it (another resharding that
//     sealed it too, and saved, keeps it sealed). Records that an Append tried while the
//     log was sealed may then become readable (they were not acknowledged: a retry may
//     duplicate them).
type SealingLog interface {
	Seal(token uint64) (last uint64, err error)
	Unseal(token uint64) error
}

// StaleSealLog is a SealingLog that tells which of its seals outlived their resharding.
// A resharding seals its parents before it saves its catalog change; if its node dies in
// between (or the change never reaches the catalog), nobody else knows its token, and the
// parents, open in the catalog, would stay sealed for ever. StaleSeals returns the tokens
// that have held the log's seal for at least age, on one node only (a replicated log: the
// one that leads the shard's group; nil elsewhere). The engine releases them
// (releaseStaleSeals): it fences the catalog so that no save of theirs can commit any more,
// then unseals those of the shards the catalog has open.
type StaleSealLog interface {
	SealingLog
	StaleSeals(age time.Duration) []uint64
}

// ErrLogSealed is wrapped by the Append error of a SealingLog that is sealed: the shard is
// being closed by a resharding, perhaps on another node. The records were not acknowledged;
// the engine routes them again once its shard map has the shard closed.
var ErrLogSealed = errors.New("stream: the shard's log is sealed: the shard is closing")

// ShardLogConfig is what opening a shard's log needs.
type ShardLogConfig struct {
	Stream string
	Gen    uint64 // the stream's incarnation (its creation time, Unix ns)
	Shard  ShardID
	Dir    string          // the shard's directory under the stream's
	Opts   segment.Options // durability, segment size, file system, clock, logger
}

// OpenSegmentLog opens the single-node ShardLog of a shard: a segment.Log in cfg.Dir.
func OpenSegmentLog(cfg ShardLogConfig) (ShardLog, error) { return segment.Open(cfg.Dir, cfg.Opts) }

var _ ShardLog = (*segment.Log)(nil)

// shardDir returns the directory of a shard's log under its stream's directory.
func shardDir(streamDir string, id ShardID) string {
	return filepath.Join(streamDir, "shard-"+strconv.FormatUint(uint64(id), 10))
}
