package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// checkpointVersion is the version of the checkpoint file's JSON; a file of another version
// is refused.
const checkpointVersion = 1

// checkpoint is the checkpoint file (docs/FORMAT.md, Agent checkpoint): a JSON object
//
//	{"version": 1, "flows": {"<stream> <filePattern>": flowState, …}}
//
// replaced as a whole (temporary file, fsync, rename, fsync of the directory).
type checkpoint struct {
	Version int                   `json:"version"`
	Flows   map[string]*flowState `json:"flows"`
}

// flowState is what a flow keeps across restarts. Files are at the end of the batch in
// Pending: once every record of Pending is in the stream, each file's lines before its Off
// are sent. Marks bound where the flow's unconfirmed records can be: for each shard the
// flow may have written to, a position (AT_SEQUENCE_NUMBER) at or before the first record
// of Pending appended there. A shard without a mark is read from its start.
type flowState struct {
	Files   []fileState       `json:"files"`
	Marks   map[uint32]uint64 `json:"marks"`
	Pending []pendingRecord   `json:"pending,omitempty"`
}

// fileState is one file followed: its identity (device, inode, and a hash of its first
// FPLen bytes, at most fingerprintBytes) and how far it was read.
type fileState struct {
	Path  string `json:"path"`
	Dev   uint64 `json:"dev"`
	Ino   uint64 `json:"ino"`
	FP    uint64 `json:"fp"`
	FPLen int    `json:"fpLen"`
	Off   int64  `json:"off"`  // the byte after the last line sent
	Line  int64  `json:"line"` // the lines before Off
}

// pendingRecord is a record of the batch in flight, as it is put.
type pendingRecord struct {
	Key  string `json:"k"`
	Data []byte `json:"d"`
}

// loadCheckpoint reads path; a missing file is an empty checkpoint.
func loadCheckpoint(path string) (*checkpoint, error) {
	c := &checkpoint{Version: checkpointVersion, Flows: map[string]*flowState{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCheckpoint, path, err)
	}
	if c.Version != checkpointVersion {
		return nil, fmt.Errorf("%w: %s: version %d, this agent reads version %d", ErrCheckpoint, path, c.Version, checkpointVersion)
	}
	if c.Flows == nil {
		c.Flows = map[string]*flowState{}
	}
	return c, nil
}

// save replaces path with c: written to a temporary file, synced, renamed over path, and
// the directory synced, so that a crash leaves the old file or the new one.
func (c *checkpoint) save(path string) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
