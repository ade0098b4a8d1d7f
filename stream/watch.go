package stream

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

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
			e.sweep()
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

// sweep removes what this data directory holds that the catalog no longer names: the
// directories of streams it no longer holds (deleted, or deleted and made again, while this
// engine was away or its watch was behind) and, in the directory of each stream it holds,
// the directories of shards its map no longer has (pruned meanwhile). Open calls it after
// the catalog's Load, and applyEvents after a CatalogReset: only on a catalog read that
// succeeded. It removes nothing when the engine holds no stream, so that a catalog read empty
// (another cluster's name, an etcd wiped or restored from before the streams) never wipes
// the logs. Entries it does not recognise (the ShardLog's own files beside the shard
// directories) are left to their owner. Each removal is logged.
func (e *Engine) sweep() {
	root := filepath.Join(e.opts.Dir, streamsDir)
	des, err := e.opts.FS.ReadDir(root)
	if err != nil {
		e.opts.Logger.Warn("could not list the stream directories", "err", err)
		return
	}
	var gone []string // renamed to the trash under e.mu, removed after
	e.mu.Lock()
	// Under e.mu no stream is added: a creation here reserves its name in creating first,
	// and one from the catalog opens its shards under e.mu.
	keep := map[string]*Stream{}
	for _, s := range e.streams {
		keep[filepath.Base(s.dir)] = s
	}
	if len(keep) == 0 {
		e.mu.Unlock()
		if len(des) > 0 {
			e.opts.Logger.Warn("the catalog holds no stream: the stream directories are left as they are", "dirs", len(des))
		}
		return
	}
	for _, de := range des {
		name := de.Name()
		if _, ok := keep[name]; ok || !de.IsDir() || e.creatingDir(name) {
			continue
		}
		dir := filepath.Join(root, name)
		to, err := e.toTrash(dir, name)
		if err != nil {
			e.opts.Logger.Warn("could not remove the logs of a stream the catalog no longer holds", "dir", name, "err", err)
			continue
		}
		gone = append(gone, to)
		e.opts.Logger.Info("removing the logs of a stream the catalog no longer holds", "dir", name)
	}
	e.mu.Unlock()
	if len(gone) > 0 {
		gone = e.syncTrash(root, gone)
	}
	for _, s := range keep {
		gone = append(gone, s.sweepShards()...)
	}
	for _, g := range gone {
		os.RemoveAll(g)
	}
}

// creatingDir reports whether dir (a "<name>@<incarnation>" stream directory) may be the
// directory of a stream CreateStream is making. The caller holds e.mu.
func (e *Engine) creatingDir(dir string) bool {
	i := strings.LastIndexByte(dir, '@')
	if i < 0 {
		return false
	}
	_, ok := e.creating[dir[:i]]
	return ok
}

// sweepShards moves to the trash the shard directories in s's directory whose shard s's map
// no longer has (pruned while this engine was away: its log was never opened here to be
// removed with the shard), and returns where they went, to be removed. It holds s.mu, which
// every opening of a shard's log of s holds too (reshard, adoptLocked), so a shard being
// added is never taken for a pruned one.
func (s *Stream) sweepShards() []string {
	e := s.engine
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.deleted {
		return nil
	}
	des, err := e.opts.FS.ReadDir(s.dir)
	if err != nil {
		return nil // not made yet: nothing to sweep
	}
	name := filepath.Base(s.dir)
	set := s.set.Load()
	var gone []string
	for _, de := range des {
		id, ok := shardOfDir(de.Name())
		if !ok || !de.IsDir() {
			continue
		}
		if _, held := set.shards[id]; held {
			continue
		}
		to, err := e.toTrash(filepath.Join(s.dir, de.Name()), name+"."+de.Name())
		if err != nil {
			e.opts.Logger.Warn("could not remove the log of a shard the catalog no longer holds", "stream", s.meta.Load().Name, "shard", id.String(), "err", err)
			continue
		}
		gone = append(gone, to)
		e.opts.Logger.Info("removing the log of a shard the catalog no longer holds", "stream", s.meta.Load().Name, "shard", id.String())
	}
	if len(gone) == 0 {
		return nil
	}
	return e.syncTrash(s.dir, gone)
}

// shardOfDir returns the shard a directory name "shard-<id>" (shardDir) names; ok is false
// for any other name.
func shardOfDir(name string) (id ShardID, ok bool) {
	digits, found := strings.CutPrefix(name, "shard-")
	if !found {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 32)
	if err != nil || strconv.FormatUint(n, 10) != digits {
		return 0, false
	}
	return ShardID(n), true
}

// toTrash renames dir to <Dir>/trash/<as> and returns the new path. The rename is made
// durable by syncTrash.
func (e *Engine) toTrash(dir, as string) (string, error) {
	trash := filepath.Join(e.opts.Dir, trashDir)
	if err := e.opts.FS.MkdirAll(trash, 0o700); err != nil {
		return "", err
	}
	gone := filepath.Join(trash, as)
	if err := os.RemoveAll(gone); err != nil { // a crash's leftover of the same name
		return "", err
	}
	return gone, e.opts.FS.Rename(dir, gone)
}

// syncTrash makes the renames out of parent durable (a crash never brings the directories
// back half removed) and returns gone, or nothing when the sync failed: the trash is emptied
// at the next Open.
func (e *Engine) syncTrash(parent string, gone []string) []string {
	if err := e.opts.FS.SyncDir(parent); err != nil {
		e.opts.Logger.Warn("could not sync a directory after moving logs to the trash", "err", err)
		return nil
	}
	return gone
}

// removeDir moves a stream's directory (of a shared catalog's stream) to the trash (one
// rename, made durable: a crash never leaves half a directory under streams/), then removes
// it. A directory already gone (sweep took it) is no error.
func (e *Engine) removeDir(dir string) error {
	gone, err := e.toTrash(dir, filepath.Base(dir)) // <name>@<incarnation>: unique
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := e.opts.FS.SyncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	return os.RemoveAll(gone)
}
