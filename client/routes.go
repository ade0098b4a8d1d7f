package client

import (
	"slices"

	"github.com/sluice-streams/sluice/shardmap"
)

// routes maps hash keys to the open shards, as the last ListShards saw them. It only guides
// batching and backoff: the server routes every record itself, so a stale map costs nothing
// but a refresh.
type routes struct {
	starts []shardmap.Key // the open shards' first keys, ascending
	ids    []uint32
}

func newRoutes(shards []shardmap.Shard) routes {
	open := make([]shardmap.Shard, 0, len(shards))
	for _, s := range shards {
		if s.Open {
			open = append(open, s)
		}
	}
	slices.SortFunc(open, func(a, b shardmap.Shard) int { return a.Range.Start.Compare(b.Range.Start) })
	r := routes{starts: make([]shardmap.Key, len(open)), ids: make([]uint32, len(open))}
	for i, s := range open {
		r.starts[i], r.ids[i] = s.Range.Start, uint32(s.ID)
	}
	return r
}

// route returns the shard whose range holds k: the last one starting at or below it.
func (r *routes) route(k shardmap.Key) uint32 {
	i, found := slices.BinarySearchFunc(r.starts, k, shardmap.Key.Compare)
	if !found {
		i--
	}
	if i < 0 || i >= len(r.ids) {
		return uint32(shardmap.NoParent) // no map yet: an id no shard has
	}
	return r.ids[i]
}
