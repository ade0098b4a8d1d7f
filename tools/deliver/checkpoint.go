package deliver

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/sluice-streams/sluice/internal/vfs"
)

// The checkpoint file is JSON, rewritten whole (temporary file, fsync, rename, fsync of the
// directory) after each object is stored, so that a crash leaves either the old file or the
// new one:
//
//	{"version":1,"source":STREAM-ARN,"deliveryStream":NAME,
//	 "shards":{"0":{"position":N,"ended":false},…}}
//
// position is the last record of the shard that is in a stored object (or, before any, the
// position a LATEST start anchored): reading resumes after it. ended means every record of
// the shard is stored: its children may start. A file of another stream or delivery stream
// is refused.
const checkpointVersion = 1

type checkpointFile struct {
	Version        int                         `json:"version"`
	Source         string                      `json:"source"`
	DeliveryStream string                      `json:"deliveryStream"`
	Shards         map[uint32]*shardCheckpoint `json:"shards"`
}

type shardCheckpoint struct {
	Position uint64 `json:"position"`
	Ended    bool   `json:"ended,omitempty"`
}

// checkpointer keeps the checkpoint file. Its methods are safe for concurrent use; a change
// is durable when set returns.
type checkpointer struct {
	path string
	fsys vfs.FS // writes the file: vfs.OS, or a fault-injecting one in tests

	mu   sync.Mutex // guards file and writes to path
	file checkpointFile
}

// openCheckpointer loads path, or starts afresh if it does not exist; fsys writes it.
func openCheckpointer(fsys vfs.FS, path, source, name string) (*checkpointer, error) {
	cp := &checkpointer{path: path, fsys: fsys,
		file: checkpointFile{Version: checkpointVersion, Source: source, DeliveryStream: name, Shards: map[uint32]*shardCheckpoint{}}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return cp, nil
	}
	if err != nil {
		return nil, fmt.Errorf("deliver: checkpoint: %w", err)
	}
	var f checkpointFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("deliver: checkpoint %s: %w", path, err)
	}
	switch {
	case f.Version != checkpointVersion:
		return nil, fmt.Errorf("deliver: checkpoint %s: version %d, want %d", path, f.Version, checkpointVersion)
	case f.Source != source || f.DeliveryStream != name:
		return nil, fmt.Errorf("deliver: checkpoint %s belongs to delivery stream %s of %s, not %s of %s", path, f.DeliveryStream, f.Source, name, source)
	}
	if f.Shards == nil {
		f.Shards = map[uint32]*shardCheckpoint{}
	}
	cp.file = f
	return cp, nil
}

// get returns the checkpoint of a shard, false if there is none.
func (cp *checkpointer) get(shard uint32) (shardCheckpoint, bool) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	s := cp.file.Shards[shard]
	if s == nil {
		return shardCheckpoint{}, false
	}
	return *s, true
}

// set makes c the checkpoint of shard, durably; nothing is written when it is already.
func (cp *checkpointer) set(shard uint32, c shardCheckpoint) error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	old := cp.file.Shards[shard]
	if old != nil && *old == c {
		return nil
	}
	cp.file.Shards[shard] = &c
	b, err := json.Marshal(&cp.file)
	if err == nil {
		err = vfs.WriteFileAtomic(cp.fsys, cp.path, append(b, '\n'), 0o644)
	}
	if err != nil {
		// get keeps answering what the file holds.
		if old == nil {
			delete(cp.file.Shards, shard)
		} else {
			cp.file.Shards[shard] = old
		}
		return fmt.Errorf("deliver: checkpoint: %w", err)
	}
	return nil
}
