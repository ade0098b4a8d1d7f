package stream

import (
	"context"
	"os"
	"path/filepath"
	"sort"

	"github.com/sluice-streams/sluice/shardmap"
)

// With a shared catalog (Options.Catalog) other engines change streams too. One goroutine
// applies the catalog's events, in revision order, to the published snapshots: a stream
// created elsewhere is opened here (its shard logs made empty in this data directory), a
// deleted one is dropped with its local logs, and a changed one takes the new metadata —
// a resharding opens the new shards' logs and closes the parents as reshard does, under
// their gates. An event at or below the revision a stream already has (this engine's own
// writes come back through the watch) changes nothing.

// startWatch starts applying the catalog's changes after rev.
func (e *Engine) startWatch(rev int64) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := e.catalog.Watch(ctx, rev)
	if ch == nil {
		cancel()
		return
	}
	e.stopWatch, e.watchDone = cancel, make(chan struct{})
	go func() {
		defer close(e.watchDone)
		for ev := range ch {
			e.applyEvents([]CatalogEvent{ev})
		}
	}()
}

// applyEvents applies catalog events in order.
func (e *Engine) applyEvents(evs []CatalogEvent) {
	for _, ev := range evs {
		switch ev.Kind {
		case CatalogPut:
			e.applyPut(ev)
		case CatalogDelete:
			e.applyDelete(ev)
		case CatalogReset:
			names := map[string]bool{}
			for _, ent := range ev.Entries {
				names[ent.Name] = true
				e.applyPut(CatalogEvent{Kind: CatalogPut, Entry: ent})
			}
			for _, name := range e.ListStreams() {
				if !names[name] {
					e.applyDelete(CatalogEvent{Kind: CatalogDelete, Entry: CatalogEntry{Name: name, Rev: ev.Rev}})
				}
			}
		}
	}
}

// deferLocked keeps ev for the end of the creation of its stream, if one is in progress;
// the caller holds e.mu.
func (e *Engine) deferLocked(ev CatalogEvent) bool {
	if _, ok := e.creating[ev.Entry.Name]; !ok {
		return false
	}
	e.pending[ev.Entry.Name] = append(e.pending[ev.Entry.Name], ev)
	return true
}

func (e *Engine) applyPut(ev CatalogEvent) {
	ent := ev.Entry
	meta, sm, err := decodeMeta(ent.Data, ent.Name, ent.Source)
	if err != nil {
		e.opts.Logger.Error("ignoring a catalog entry that does not decode", "stream", ent.Name, "err", err)
		return
	}
	e.mu.Lock()
	if e.closed || e.deferLocked(ev) {
		e.mu.Unlock()
		return
	}
	s := e.streams[ent.Name]
	if s != nil && s.meta.Load().Gen != meta.Gen {
		// Another incarnation: the one held here was deleted meanwhile.
		e.mu.Unlock()
		e.applyDelete(CatalogEvent{Kind: CatalogDelete, Entry: CatalogEntry{Name: ent.Name, Rev: ent.Rev}})
		e.mu.Lock()
		if e.closed || e.deferLocked(ev) {
			e.mu.Unlock()
			return
		}
		s = e.streams[ent.Name]
	}
	if s == nil {
		defer e.mu.Unlock()
		s = &Stream{engine: e, dir: e.streamDir(meta), rev: ent.Rev}
		if err := s.openShards(meta, sm); err != nil {
			e.opts.Logger.Error("could not open a stream created elsewhere", "stream", ent.Name, "err", err)
			return
		}
		e.streams[ent.Name] = s
		e.lastGen = max(e.lastGen, meta.Gen)
		e.openShards.Add(int64(len(sm.Open())))
		return
	}
	e.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted || ent.Rev <= s.rev {
		return
	}
	if err := s.adoptLocked(meta, sm, ent.Rev); err != nil {
		e.opts.Logger.Error("could not apply a stream's change made elsewhere", "stream", ent.Name, "err", err)
	}
}

func (e *Engine) applyDelete(ev CatalogEvent) {
	e.mu.Lock()
	if e.closed || e.deferLocked(ev) {
		e.mu.Unlock()
		return
	}
	s := e.streams[ev.Entry.Name]
	e.mu.Unlock()
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted || ev.Entry.Rev <= s.rev {
		return
	}
	if err := s.dropLocked(); err != nil {
		e.opts.Logger.Warn("could not remove a deleted stream's logs", "stream", ev.Entry.Name, "err", err)
	}
}

// adoptLocked publishes metadata another writer saved at rev: the shards it adds are opened,
// those it closes are closed under their gates (appends in flight end first; those that
// waited route again), those it prunes are removed, and the subscriptions of consumers it
// no longer holds end. The caller holds s.mu.
func (s *Stream) adoptLocked(meta *streamMeta, sm *shardmap.Map, rev int64) error {
	e := s.engine
	old, set := s.meta.Load(), s.set.Load()
	next := &shardSet{m: sm, shards: make(map[ShardID]*shard, len(sm.All()))}
	var created []*shard
	for _, sh := range sm.All() {
		if rt, ok := set.shards[sh.ID]; ok {
			next.shards[sh.ID] = rt
			continue
		}
		rt, err := s.openShard(meta, sh)
		if err != nil {
			for _, c := range created {
				c.log.Close()
			}
			return err
		}
		next.shards[sh.ID] = rt
		created = append(created, rt)
	}
	var closing []*shard
	for _, sh := range sm.All() {
		if rt := next.shards[sh.ID]; !sh.Open && !rt.closedUnlocked() {
			closing = append(closing, rt)
		}
	}
	sort.Slice(closing, func(i, j int) bool { return closing[i].id < closing[j].id })
	for _, sh := range closing {
		sh.gate.Lock()
	}
	s.meta.Store(meta)
	s.set.Store(next)
	s.rev = rev
	for _, sh := range closing {
		sh.markClosedLocked()
		sh.gate.Unlock()
	}
	e.openShards.Add(int64(len(sm.Open()) - len(set.m.Open())))
	for id, rt := range set.shards {
		if _, ok := next.shards[id]; !ok {
			if err := rt.log.Remove(); err != nil {
				e.opts.Logger.Warn("could not remove a pruned shard's log", "stream", meta.Name, "shard", id.String(), "err", err)
			}
		}
	}
	kept := map[string]bool{}
	for _, c := range meta.Consumers {
		kept[c.Name] = true
	}
	for _, c := range old.Consumers {
		if !kept[c.Name] {
			s.endSubscriptions(e.consumerARN(meta.Name, c))
			s.metrics.dropConsumer(c.Name)
		}
	}
	return nil
}

// removeStrayDirs removes the stream directories under Dir that no stream of the catalog
// owns: streams deleted, or made again, while this engine was away.
func (e *Engine) removeStrayDirs() {
	keep := map[string]bool{}
	for _, s := range e.streams {
		keep[filepath.Base(s.dir)] = true
	}
	des, err := e.opts.FS.ReadDir(filepath.Join(e.opts.Dir, streamsDir))
	if err != nil {
		return
	}
	for _, de := range des {
		if de.IsDir() && !keep[de.Name()] {
			dir := filepath.Join(e.opts.Dir, streamsDir, de.Name())
			e.opts.Logger.Info("removing the logs of a stream the catalog no longer holds", "dir", dir)
			if err := e.removeDir(dir); err != nil {
				e.opts.Logger.Warn("could not remove a stream's logs", "dir", dir, "err", err)
			}
		}
	}
}

// removeDir moves a stream's directory (of a shared catalog's stream) to the trash (one rename, made durable: a crash
// never leaves half a directory under streams/), then removes it.
func (e *Engine) removeDir(dir string) error {
	trash := filepath.Join(e.opts.Dir, trashDir)
	if err := e.opts.FS.MkdirAll(trash, 0o700); err != nil {
		return err
	}
	gone := filepath.Join(trash, filepath.Base(dir)) // <name>@<incarnation>: unique
	if err := e.opts.FS.Rename(dir, gone); err != nil {
		return err
	}
	if err := e.opts.FS.SyncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	return os.RemoveAll(gone)
}
