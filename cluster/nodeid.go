package cluster

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// NodeFile is the file in a node's data directory that holds the directory's Raft member id.
const NodeFile = "node.json"

type nodeFile struct {
	RaftID uint64 `json:"raft_id"`
}

// RaftID returns the Raft member id of the data directory dir, generating a random one
// (non-zero) the first time and writing it to dir/node.json, synced (temp file, fsync,
// rename, fsync of the directory), before it returns.
//
// The id is what the node is in every Raft group it holds a replica of. It belongs to the
// directory, not to the node's --node-id: a node whose directory was wiped comes back with a
// new id, so it can never vote or lead with a term, vote or log it has forgotten; the
// groups' leaders replace its old id by the new one (replication.go).
func RaftID(dir string) (uint64, error) {
	path := filepath.Join(dir, NodeFile)
	b, err := os.ReadFile(path)
	if err == nil {
		var v nodeFile
		if err := json.Unmarshal(b, &v); err != nil || v.RaftID == 0 {
			return 0, fmt.Errorf("cluster: %s does not hold a raft id", path)
		}
		return v.RaftID, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	var id uint64
	for id == 0 {
		var r [8]byte
		if _, err := rand.Read(r[:]); err != nil {
			return 0, err
		}
		id = binary.LittleEndian.Uint64(r[:]) >> 1 // positive as an int64 too, for tools
	}
	b, _ = json.Marshal(nodeFile{RaftID: id})
	if err := writeSynced(path, append(b, '\n')); err != nil {
		return 0, err
	}
	return id, nil
}

// writeSynced replaces path with data crash-safely: a temporary file, fsync, rename, fsync
// of the directory.
func writeSynced(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
