package lambda

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/sluice-streams/sluice/client"
)

// The checkpoint file is JSON, rewritten whole (temporary file, fsync, rename, fsync of
// the directory) each time a batch succeeds or fails for good, so that a crash leaves
// either the old file or the new one:
//
//	{"version":1,"source":ARN,"parallelization":P,
//	 "shards":{"0":{"position":N,"ended":false,"lanes":[NEXT,…],
//	  "windows":[{"start":MS,"state":{…}}|null,…]}}}
//
// position (absent until set) is where the consumer resumes: after it. lanes[i] is the
// position after the last record of lane i (records spread over lanes by partition key,
// ParallelizationFactor of them) that succeeded or was sent to the on-failure destination,
// 0 for none: a record of lane i before it is not delivered again. windows[i] is lane
// i's open tumbling window and the state its last invocation returned. A file of another
// source is refused; one of another parallelization keeps, for every lane, the smallest
// of its lanes, which delivers some records again rather than skip any.
const checkpointVersion = 1

type checkpointFile struct {
	Version         int                       `json:"version"`
	Source          string                    `json:"source"`
	Parallelization int                       `json:"parallelization"`
	Shards          map[uint32]*shardProgress `json:"shards"`
}

type shardProgress struct {
	Position *uint64  `json:"position,omitempty"`
	Ended    bool     `json:"ended,omitempty"`
	Lanes    []uint64 `json:"lanes,omitempty"`
	// Windows is each lane's open tumbling window, nil for none.
	Windows []*laneWindow `json:"windows,omitempty"`
}

// laneWindow is a lane's open tumbling window: its start (Unix milliseconds) and the state
// the function returned last.
type laneWindow struct {
	Start int64             `json:"start"`
	State map[string]string `json:"state"`
}

// checkpointer is a client.Checkpointer kept in a file, which also keeps the progress of
// each lane. Its methods are safe for concurrent use; each change is durable when it
// returns.
type checkpointer struct {
	path  string
	lanes int

	mu   sync.Mutex // guards file and writes to path
	file checkpointFile
}

// openCheckpointer loads path, or starts afresh if it does not exist.
func openCheckpointer(path, source string, lanes int) (*checkpointer, error) {
	cp := &checkpointer{path: path, lanes: lanes,
		file: checkpointFile{Version: checkpointVersion, Source: source, Parallelization: lanes, Shards: map[uint32]*shardProgress{}}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cp, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lambda: checkpoint: %w", err)
	}
	var f checkpointFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("lambda: checkpoint %s: %w", path, err)
	}
	if f.Version != checkpointVersion {
		return nil, fmt.Errorf("lambda: checkpoint %s: version %d, want %d", path, f.Version, checkpointVersion)
	}
	if f.Source != source {
		return nil, fmt.Errorf("lambda: checkpoint %s belongs to %s, not %s", path, f.Source, source)
	}
	if f.Shards == nil {
		f.Shards = map[uint32]*shardProgress{}
	}
	for _, s := range f.Shards {
		if len(s.Lanes) > 0 && (f.Parallelization != lanes || len(s.Lanes) != lanes) {
			least := slices.Min(s.Lanes)
			s.Lanes = slices.Repeat([]uint64{least}, lanes)
			s.Windows = nil // the keys of a window's state were another lane's
		}
	}
	f.Parallelization = lanes
	cp.file = f
	return cp, nil
}

// Get implements client.Checkpointer.
func (cp *checkpointer) Get(_ context.Context, shard uint32) (client.Checkpoint, bool, error) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	s := cp.file.Shards[shard]
	if s == nil || s.Position == nil && !s.Ended {
		return client.Checkpoint{}, false, nil
	}
	c := client.Checkpoint{Ended: s.Ended}
	if s.Position != nil {
		c.Position = *s.Position
	}
	return c, true, nil
}

// Set implements client.Checkpointer.
func (cp *checkpointer) Set(_ context.Context, shard uint32, c client.Checkpoint) error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	s := cp.shardLocked(shard)
	if s.Position != nil && *s.Position == c.Position && s.Ended == c.Ended {
		return nil // already there: the batch's last invocation moved it
	}
	pos := c.Position
	s.Position, s.Ended = &pos, c.Ended
	return cp.writeLocked()
}

// laneNext returns the position after the last record of the lane that is done.
func (cp *checkpointer) laneNext(shard uint32, lane int) uint64 {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if s := cp.file.Shards[shard]; s != nil && lane < len(s.Lanes) {
		return s.Lanes[lane]
	}
	return 0
}

// window returns the lane's open tumbling window, nil for none.
func (cp *checkpointer) window(shard uint32, lane int) *laneWindow {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if s := cp.file.Shards[shard]; s != nil && lane < len(s.Windows) && s.Windows[lane] != nil {
		w := *s.Windows[lane]
		return &w
	}
	return nil
}

// setWindow makes w the lane's open tumbling window (nil: none).
func (cp *checkpointer) setWindow(shard uint32, lane int, w *laneWindow) error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.setWindowLocked(cp.shardLocked(shard), lane, w)
	return cp.writeLocked()
}

func (cp *checkpointer) setWindowLocked(s *shardProgress, lane int, w *laneWindow) {
	if len(s.Windows) != cp.lanes {
		s.Windows = make([]*laneWindow, cp.lanes)
	}
	s.Windows[lane] = w
}

// done records that the lane's records up to last are done, and, unless nil, the lane's
// window as it is after them. With one lane, the shard's position moves too.
func (cp *checkpointer) done(shard uint32, lane int, last uint64, w *laneWindow) error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	s := cp.shardLocked(shard)
	if len(s.Lanes) != cp.lanes {
		s.Lanes = make([]uint64, cp.lanes)
	}
	s.Lanes[lane] = last + 1
	if w != nil {
		cp.setWindowLocked(s, lane, w)
	}
	if cp.lanes == 1 {
		pos := last
		s.Position = &pos
	}
	return cp.writeLocked()
}

// shardLocked returns the shard's progress, made if new; cp.mu is held.
func (cp *checkpointer) shardLocked(shard uint32) *shardProgress {
	s := cp.file.Shards[shard]
	if s == nil {
		s = &shardProgress{}
		cp.file.Shards[shard] = s
	}
	return s
}

// writeLocked replaces the file with the current state, durably; cp.mu is held.
func (cp *checkpointer) writeLocked() error {
	b, err := json.Marshal(&cp.file)
	if err != nil {
		return fmt.Errorf("lambda: checkpoint: %w", err)
	}
	if err := writeFileDurably(cp.path, append(b, '\n')); err != nil {
		return fmt.Errorf("lambda: checkpoint: %w", err)
	}
	return nil
}

// writeFileDurably writes b to path through a temporary file, synced and renamed over
// path, and syncs the directory: after a crash path holds the old bytes or b.
func writeFileDurably(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
