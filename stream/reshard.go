package stream

import (
	"errors"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/sluice-streams/sluice/shardmap"
)

// SplitShard splits an open shard at newStart: the shard closes and two children share its
// range.
func (e *Engine) SplitShard(stream string, shard ShardID, newStart shardmap.Key) error {
	return e.reshard(stream, func(m *shardmap.Map) (*shardmap.Map, []shardmap.Change, error) {
		nm, ch, err := m.Split(shard, newStart)
		return nm, []shardmap.Change{ch}, err
	})
}

// MergeShards merges two open adjacent shards: both close and one child takes their ranges.
func (e *Engine) MergeShards(stream string, shard, adjacent ShardID) error {
	return e.reshard(stream, func(m *shardmap.Map) (*shardmap.Map, []shardmap.Change, error) {
		nm, ch, err := m.Merge(shard, adjacent)
		return nm, []shardmap.Change{ch}, err
	})
}

// UpdateShardCount scales a stream to target open shards of uniform hash ranges
// (UNIFORM_SCALING), through splits and merges. It returns the count before and after.
func (e *Engine) UpdateShardCount(stream string, target int) (before, after int, err error) {
	err = e.reshard(stream, func(m *shardmap.Map) (*shardmap.Map, []shardmap.Change, error) {
		before = len(m.Open())
		return m.UpdateShardCount(target)
	})
	return before, target, err
}

// reshard applies a change of the shard map to a stream without losing, duplicating or
// misrouting a record written concurrently:
//
//  1. the logs of the new shards are opened;
//  2. the gates of the shards that close are taken exclusively, which waits for the appends
//     in flight on them; their last sequence numbers are now final (EndingSequenceNumber) —
//     on this node; a replicated log, which other nodes append to, is sealed (SealingLog)
//     and its ending is the position Seal returns;
//  3. the new map and the ending numbers are saved (the catalog is durable first);
//  4. the new shard set is published and the parents are marked closed;
//  5. the gates open: appends that waited find their shard closed and route again on the
//     new map, so every record lands in exactly one open shard.
func (e *Engine) reshard(name string, op func(*shardmap.Map) (*shardmap.Map, []shardmap.Change, error)) error {
	s, err := e.stream(name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted {
		return e.notFound(name)
	}
	meta, set := s.meta.Load(), s.set.Load()
	nm, changes, err := op(set.m)
	if err != nil {
		return ReshardError(name, err)
	}
	if len(changes) == 0 {
		return nil
	}
	if len(nm.Open()) > e.opts.MaxShardsPerStream {
		return errorf(KindLimitExceeded, "This request would exceed the shard limit for stream %s: %d open shards, limit %d.", name, len(nm.Open()), e.opts.MaxShardsPerStream)
	}
	// The shards it adds count against the account's limit from now; given back if it fails.
	added := len(nm.Open()) - len(set.m.Open())
	if added > 0 {
		if err := e.reserveShards(added); err != nil {
			return err
		}
	}
	committed := false
	defer func() {
		switch {
		case committed && added < 0:
			e.reserveShards(added)
		case !committed && added > 0:
			e.reserveShards(-added)
		}
	}()
	next := &shardSet{m: nm, shards: make(map[ShardID]*shard, len(set.shards)+2*len(changes))}
	for id, sh := range set.shards {
		next.shards[id] = sh
	}
	var created []*shard
	for _, sh := range nm.All() {
		if _, ok := next.shards[sh.ID]; ok {
			continue
		}
		rt, err := s.openShard(meta, sh)
		if err != nil {
			for _, c := range created {
				c.log.Close()
			}
			return err
		}
		rt.closed, rt.closing = false, make(chan struct{}) // an intermediate shard is closed below, with the others, under its gate
		next.shards[sh.ID] = rt
		created = append(created, rt)
	}
	// The shards this operation closes, in id order (a fixed lock order).
	var closing []*shard
	for _, sh := range nm.All() {
		if !sh.Open && !next.shards[sh.ID].closedUnlocked() {
			closing = append(closing, next.shards[sh.ID])
		}
	}
	sort.Slice(closing, func(i, j int) bool { return closing[i].id < closing[j].id })
	for _, sh := range closing {
		sh.gate.Lock()
	}
	defer func() {
		for _, sh := range closing {
			sh.gate.Unlock()
		}
	}()
	nextMeta := meta.clone()
	nextMeta.ShardMap = nm.Encode()
	closedAt := e.opts.Now().UnixMilli()
	token := rand.Uint64() | 1 // names this resharding's seals
	sealed, err := e.sealClosing(name, token, closing, created, nextMeta.Ending)
	if err != nil {
		for _, c := range created {
			c.log.Close()
		}
		return err
	}
	for _, sh := range closing {
		nextMeta.ClosedAt[sh.id] = closedAt
	}
	for _, sh := range created {
		nextMeta.CreatedAt[sh.id] = closedAt
	}
	if err := s.saveChangeLocked(nextMeta); err != nil {
		if cc := (*changedConcurrently)(nil); errors.As(err, &cc) && len(sealed) > 0 {
			// The catalog refused the change: another writer's won, perhaps a resharding
			// that closed the same shards (at the same seal). Those it left open are
			// unsealed once this engine has that change.
			go s.unsealOpen(cc.rev, token, sealed)
		} else if len(sealed) > 0 {
			// The change may have been saved (its answer lost), or may still be: the
			// catalog decides, once it answers again. Until then the sealed shards take no
			// records (appends get a retryable error).
			e.opts.Logger.Warn("a resharding's save failed with its shards sealed", "stream", name, "err", err)
			go s.settleLost(s.rev, token, sealed)
		}
		for _, c := range created {
			c.log.Close()
		}
		return err
	}
	s.meta.Store(nextMeta)
	s.set.Store(next)
	committed = true
	for _, sh := range closing {
		sh.markClosedLocked() // under its gate
	}
	return nil
}

// sealClosing writes into ending the EndingSequenceNumber position of every shard in
// closing, whose gates the caller holds: a SealingLog's Seal (appends on other nodes stop
// there too), else the log's Tip, which is final under the gate. A shard in created (opened
// by this change and closed by it too, never published) took no record: its Tip. It returns
// the shards it sealed; when a Seal fails, it unseals those and returns the error.
func (e *Engine) sealClosing(name string, token uint64, closing, created []*shard, ending map[ShardID]uint64) (sealed []*shard, err error) {
	for _, sh := range closing {
		sl, ok := sh.log.(SealingLog)
		if !ok || slices.Contains(created, sh) {
			ending[sh.id] = sh.log.Tip()
			continue
		}
		last, err := sl.Seal(token)
		if err != nil {
			e.unseal(name, token, append(sealed, sh)) // it may have sealed
			return nil, &Error{Kind: KindInternalFailure, Msg: "the shard " + sh.id.String() + " could not be closed; retry", Err: err}
		}
		sealed = append(sealed, sh)
		ending[sh.id] = last
	}
	return sealed, nil
}

// unseal ends the holds of a resharding (token) that did not happen, as far as it can.
func (e *Engine) unseal(name string, token uint64, sealed []*shard) {
	for _, sh := range sealed {
		if err := sh.log.(SealingLog).Unseal(token); err != nil {
			e.opts.Logger.Warn("could not unseal a shard after a failed resharding", "stream", name, "shard", sh.id.String(), "err", err)
		}
	}
}

// unsealOpen ends the holds of a resharding (token) whose save another writer's change beat
// (after revision rev), on the shards of sealed that the stream's map still has open once
// this engine has that change, waiting for it at most changeWait. A shard the winner closed
// stays sealed: the winner's resharding may have sealed it too (its hold keeps the seal), or
// not (the shard is closed: nothing may land in it after its ending anyway). If the change
// does not come, the shards stay sealed (their appends fail, retryably) until a resharding
// closes them.
func (s *Stream) unsealOpen(rev int64, token uint64, sealed []*shard) {
	for deadline := time.Now().Add(changeWait); ; time.Sleep(5 * time.Millisecond) {
		s.mu.Lock()
		seen, deleted := s.rev > rev, s.deleted
		s.mu.Unlock()
		if deleted {
			return
		}
		if seen {
			break
		}
		if time.Now().After(deadline) {
			s.engine.opts.Logger.Warn("a refused resharding's shards stay sealed: the change that beat it did not arrive", "stream", s.meta.Load().Name)
			return
		}
	}
	s.unsealStillOpen(token, sealed)
}

// unsealStillOpen ends token's holds on the shards of sealed that the stream's map has open.
func (s *Stream) unsealStillOpen(token uint64, sealed []*shard) {
	set := s.set.Load()
	var open []*shard
	for _, sh := range sealed {
		if info, ok := set.m.Lookup(sh.id); ok && info.Open && set.shards[sh.id] == sh {
			open = append(open, sh)
		}
	}
	s.engine.unseal(s.meta.Load().Name, token, open)
}

// settleRetry is how often settleLost asks the catalog again while it does not answer.
const settleRetry = time.Second

// settleLost ends the holds of a resharding (token) whose save failed without an answer (the
// catalog unreachable, the answer lost), once the catalog says the change cannot commit any
// more: the stream's entry is past revision rev, the one the save compared with. The entry
// moves past rev by a change this engine's watch brings (perhaps that very save), by
// another change saved here, or by settleLost itself, which saves the stream's metadata as
// it is at rev again: that fences the lost save, whose compare with rev then fails for ever.
// A fence beaten by another writer waits for its change as unsealOpen does. Then the shards
// of sealed the stream's map still has open are unsealed; those the change closed stay
// sealed. It asks until the catalog answers, the stream is deleted or the engine closes.
func (s *Stream) settleLost(rev int64, token uint64, sealed []*shard) {
	e := s.engine
	for ; ; time.Sleep(settleRetry) {
		e.mu.Lock()
		closed := e.closed
		e.mu.Unlock()
		s.mu.Lock()
		if closed || s.deleted {
			s.mu.Unlock()
			return
		}
		if s.rev != rev {
			s.mu.Unlock()
			break
		}
		err := s.saveLocked(s.meta.Load())
		s.mu.Unlock()
		if err == nil {
			break
		}
		if errors.Is(err, ErrCatalogConflict) {
			s.unsealOpen(rev, token, sealed)
			return
		}
	}
	s.unsealStillOpen(token, sealed)
}

// staleSeal is how long a seal may hold a shard the catalog has open before the engine takes
// its resharding for dead (releaseStaleSeals): longer than a live resharding takes from its
// first seal to its catalog save — two parents' Seals (each at most 10 s, cluster's
// sealTimeout) and the save — so that a slow one is rarely refused. Refusing one is safe
// (the fence makes its save fail, and it unseals), only needless.
const staleSeal = 20 * time.Second

// releaseStaleSeals ends the seals whose resharding died with its node, or whose catalog
// change was otherwise never saved: holds of a StaleSealLog of a shard the stream's map has
// open that are staleSeal old. No other node knows their tokens, and the node that made them
// may never settle them (settleLost runs only in the process that made the call). First the
// catalog is fenced: the stream's metadata is saved again as this engine has it, against
// the revision it has, so that any save compared with an earlier revision — that of every
// resharding whose seal was found here, which read its revision before it sealed — fails
// for ever. If the fence is refused (the catalog has a newer change, perhaps the very
// resharding's), nothing is unsealed; the next pass looks again once the watch brought that
// change. Then the tokens are unsealed on the shards the fenced map has open. Maintain calls
// it; it returns the number of holds it ended.
func (s *Stream) releaseStaleSeals() (int, error) {
	type stale struct {
		sh     *shard
		tokens []uint64
	}
	var found []stale
	set := s.set.Load()
	for id, sh := range set.shards {
		sl, ok := sh.log.(StaleSealLog)
		if info, open := set.m.Lookup(id); !ok || !open || !info.Open {
			continue
		}
		if tokens := sl.StaleSeals(staleSeal); len(tokens) > 0 {
			found = append(found, stale{sh, tokens})
		}
	}
	if len(found) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	if s.deleted {
		s.mu.Unlock()
		return 0, nil
	}
	meta := s.meta.Load()
	err := s.saveLocked(meta)
	set = s.set.Load()
	s.mu.Unlock()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range found {
		if info, ok := set.m.Lookup(f.sh.id); !ok || !info.Open || set.shards[f.sh.id] != f.sh {
			continue
		}
		s.engine.opts.Logger.Warn("unsealing an open shard whose resharding never saved its change", "stream", meta.Name, "shard", f.sh.id.String(), "holds", len(f.tokens))
		for _, token := range f.tokens {
			if err := f.sh.log.(SealingLog).Unseal(token); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// closedUnlocked reads closed without the gate; only the resharding (which holds the stream's
// mutex, the only writer of closed) may call it.
func (sh *shard) closedUnlocked() bool { return sh.closed }

// ReshardError is the Kinesis error of a resharding of stream that shardmap refused with
// err; the protocol edge reports a shard id that does not parse (shardmap.ErrInvalidName)
// with it too.
func ReshardError(stream string, err error) error {
	switch {
	case errors.Is(err, shardmap.ErrNotFound), errors.Is(err, shardmap.ErrInvalidName):
		return errorf(KindResourceNotFound, "Could not find shard in stream %s: %v", stream, err)
	case errors.Is(err, shardmap.ErrNotOpen):
		return errorf(KindResourceInUse, "%v", err)
	case errors.Is(err, shardmap.ErrLimit):
		return errorf(KindLimitExceeded, "%v", err)
	case errors.Is(err, shardmap.ErrInvalidCount):
		return errorf(KindValidation, "%v", err)
	}
	return errorf(KindInvalidArgument, "%v", err)
}
