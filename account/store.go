package account

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/sluice-streams/sluice/internal/vfs"
	"github.com/sluice-streams/sluice/stream"
)

// Store keeps the account's settings as records (the Store seam, like the engine's
// stream.Catalog): the account's own record, Name "" (the billing commitment, JSON
// commitmentState), and one record per stream that has settings, keyed by the stream's name
// (JSON streamSettings). A single node keeps them in account.json (the local store, which
// New and Open use); the nodes of a cluster share them in etcd (package cluster,
// OpenStore), so that a resource policy put through one node applies on every node.
//
// An Account serialises its calls to its Store; a Store shared by several processes must
// make each Save atomic against the others' (a compare-and-swap on every record it writes).
type Store interface {
	// Load returns every record, each with its revision, and the revision of the store they
	// were read at.
	Load() ([]Record, int64, error)
	// Save applies changes together: each replaces the record of its Name with Data, or
	// removes it if Data is nil, provided the record's revision is still Rev (0: absent).
	// If any record changed meanwhile, nothing is applied and the error wraps ErrConflict.
	// It returns the store's revision after the change. The change is durable once it
	// returned nil.
	Save(changes []Record) (int64, error)
	// Watch reports the store's revision after each change from revision from on, made by
	// anyone, until ctx ends; reports may be coalesced, but the last change is always
	// reported. A store no other process changes returns nil.
	Watch(ctx context.Context, from int64) <-chan int64
}

// Record is one record of a Store, in the type of the engine's catalog entries (a store in
// package cluster then needs nothing of this package): Name is "" for the account's settings,
// else a stream's name; Data is the record's JSON (nil in Save: remove the record); Rev is its
// revision in the store (0: absent); Source is not used.
type Record = stream.CatalogEntry

// ErrConflict is wrapped by the error of a Store.Save refused because a record it changes
// changed since it was read: the engine catalog's, so that a store in package cluster
// reports it as its catalog does.
var ErrConflict = stream.ErrCatalogConflict

// account.json, in the engine's data directory. Version 1 held the billing commitment only;
// version 2 adds the settings of streams and consumers, by stream name.
const (
	stateFile     = "account.json"
	stateVersion  = 2
	maxStateBytes = 64 << 20
)

// fileState is account.json as the local store reads and writes it, each record's JSON
// kept as it is.
type fileState struct {
	Version    int                        `json:"version"`
	Commitment json.RawMessage            `json:"minimumThroughputBillingCommitment"`
	Streams    map[string]json.RawMessage `json:"streams,omitempty"`
}

// fileStore is the local Store: account.json, rewritten whole on every Save by temporary
// file, fsync, rename and fsync of the directory (vfs.WriteFileAtomic). One process owns it
// (the engine's data directory is locked), so revisions are counted in memory: every record
// loaded has revision 1, and the records each Save writes the next number.
type fileStore struct {
	fs   vfs.FS
	path string
	rev  int64            // the last revision given
	cur  fileState        // as of the last Load or Save; Streams nil before the first
	revs map[string]int64 // each record's revision, by Name
}

func newFileStore(fsys vfs.FS, dir string) *fileStore {
	return &fileStore{fs: fsys, path: filepath.Join(dir, stateFile)}
}

// Load reads account.json; a missing file holds no record.
func (f *fileStore) Load() ([]Record, int64, error) {
	st := fileState{Version: stateVersion, Streams: map[string]json.RawMessage{}}
	b, err := vfs.ReadFile(f.fs, f.path, maxStateBytes)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, 0, fmt.Errorf("account: %w", err)
	default:
		if err := json.Unmarshal(b, &st); err != nil {
			return nil, 0, fmt.Errorf("account: %s: %w", f.path, err)
		}
		if st.Version != 1 && st.Version != stateVersion {
			return nil, 0, fmt.Errorf("account: %s: version %d, want 1 or %d", f.path, st.Version, stateVersion)
		}
	}
	st.Version = stateVersion
	if st.Streams == nil {
		st.Streams = map[string]json.RawMessage{}
	}
	if string(st.Commitment) == "null" {
		st.Commitment = nil
	}
	var out []Record
	if st.Commitment != nil {
		out = append(out, Record{Name: "", Data: st.Commitment, Rev: 1})
	}
	for name, s := range st.Streams {
		if len(s) == 0 || string(s) == "null" {
			return nil, 0, fmt.Errorf("account: %s: stream %q has no settings", f.path, name)
		}
		out = append(out, Record{Name: name, Data: s, Rev: 1})
	}
	f.rev, f.cur, f.revs = 1, st, make(map[string]int64, len(out))
	for _, r := range out {
		f.revs[r.Name] = r.Rev
	}
	return out, f.rev, nil
}

// Save writes account.json with changes applied. A failed write leaves the store to be
// loaded again.
func (f *fileStore) Save(changes []Record) (int64, error) {
	if f.cur.Streams == nil {
		if _, _, err := f.Load(); err != nil {
			return 0, err
		}
	}
	next := fileState{Version: stateVersion, Commitment: f.cur.Commitment, Streams: make(map[string]json.RawMessage, len(f.cur.Streams))}
	for name, s := range f.cur.Streams {
		next.Streams[name] = s
	}
	for _, c := range changes {
		if f.revs[c.Name] != c.Rev {
			return 0, fmt.Errorf("%w: %q", ErrConflict, c.Name)
		}
		switch {
		case c.Name == "":
			next.Commitment = c.Data
		case c.Data == nil:
			delete(next.Streams, c.Name)
		default:
			next.Streams[c.Name] = c.Data
		}
	}
	if next.Commitment == nil {
		next.Commitment = json.RawMessage(`{"status":""}`) // as a version 2 file always held it
	}
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return 0, err
	}
	if err := vfs.WriteFileAtomic(f.fs, f.path, append(b, '\n'), 0o600); err != nil {
		f.cur = fileState{}
		return 0, err
	}
	f.rev++
	f.cur = next
	for _, c := range changes {
		if c.Data == nil {
			delete(f.revs, c.Name)
		} else {
			f.revs[c.Name] = f.rev
		}
	}
	return f.rev, nil
}

// Watch returns nil: nothing but its Account changes account.json.
func (f *fileStore) Watch(context.Context, int64) <-chan int64 { return nil }
