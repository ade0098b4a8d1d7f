package stream

// The account's shard limit, as Kinesis keeps it: the open shards of all the account's
// streams together may not pass Options.ShardLimit. CreateStream and every resharding
// (SplitShard, MergeShards, UpdateShardCount, on-demand scaling) reserve the shards they add
// before they commit, so concurrent changes cannot pass the limit together; a change that
// fails gives its reservation back.

// DefaultShardLimit is the account's shard limit when Options.ShardLimit is 0 (or the per-
// stream limit, if that is higher).
const DefaultShardLimit = 1024

// OnDemandStreamsMax is the account's limit of streams in ON_DEMAND mode
// (OnDemandStreamCountLimit), enforced by CreateStream and UpdateStreamMode.
const OnDemandStreamsMax = 50

// OpenShardCount returns the number of open shards across the account's streams.
func (e *Engine) OpenShardCount() int { return int(e.openShards.Load()) }

// OnDemandStreamCount returns the number of the account's streams in ON_DEMAND mode.
func (e *Engine) OnDemandStreamCount() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.onDemandStreamsLocked()
}

// onDemandStreamsLocked counts the on-demand streams; the caller holds e.mu.
func (e *Engine) onDemandStreamsLocked() int {
	n := 0
	for _, s := range e.streams {
		if s.meta.Load().Mode == ModeOnDemand {
			n++
		}
	}
	return n
}

// reserveShards counts n more open shards against the account's shard limit, or returns a
// LimitExceeded error that says how many are open. n may be negative (shards closed).
func (e *Engine) reserveShards(n int) error {
	for {
		cur := e.openShards.Load()
		if n > 0 && cur+int64(n) > int64(e.opts.ShardLimit) {
			return errorf(KindLimitExceeded, "This request would exceed the shard limit for the account %s in %s. Current shard count for the account: %d. Limit: %d. Number of additional shards that would have resulted from this request: %d.",
				e.opts.Account, e.opts.Region, cur, e.opts.ShardLimit, n)
		}
		if e.openShards.CompareAndSwap(cur, cur+int64(n)) {
			return nil
		}
	}
}
