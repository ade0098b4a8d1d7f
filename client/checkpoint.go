package client

import (
	"context"
	"sync"
)

// Checkpoint is how far a consumer got in one shard.
type Checkpoint struct {
	// Position is the last record handled (or, before any, the position before the first
	// one to read): reading resumes after it. 0 with Ended false means nothing read yet.
	Position uint64
	// Ended means the shard was read to its end: its children may start, and it is not
	// read again.
	Ended bool
}

// Checkpointer stores a consumer's checkpoints, one per shard index. The Consumer calls Get
// once per shard it considers and Set after each batch its handler accepted and when a shard
// ends; an implementation decides how durable Set is (and may batch writes, at the price of
// records handled again after a restart). Set is called concurrently for different shards,
// never for the same shard at once.
type Checkpointer interface {
	// Get returns the checkpoint of a shard, and false if there is none.
	Get(ctx context.Context, shard uint32) (Checkpoint, bool, error)
	// Set stores the checkpoint of a shard.
	Set(ctx context.Context, shard uint32, cp Checkpoint) error
}

// MemoryCheckpointer is a Checkpointer in memory, safe for concurrent use. It lets a
// consumer resume within one process (a second Run, another Consumer) and is what tests
// and examples use; its zero value is ready.
type MemoryCheckpointer struct {
	mu sync.Mutex
	m  map[uint32]Checkpoint
}

// NewMemoryCheckpointer returns an empty MemoryCheckpointer.
func NewMemoryCheckpointer() *MemoryCheckpointer { return &MemoryCheckpointer{} }

// Get implements Checkpointer.
func (m *MemoryCheckpointer) Get(_ context.Context, shard uint32) (Checkpoint, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cp, ok := m.m[shard]
	return cp, ok, nil
}

// Set implements Checkpointer.
func (m *MemoryCheckpointer) Set(_ context.Context, shard uint32, cp Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[uint32]Checkpoint{}
	}
	m.m[shard] = cp
	return nil
}

// All returns a copy of every checkpoint.
func (m *MemoryCheckpointer) All() map[uint32]Checkpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[uint32]Checkpoint, len(m.m))
	for k, v := range m.m {
		out[k] = v
	}
	return out
}
