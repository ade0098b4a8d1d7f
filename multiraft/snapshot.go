package multiraft

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"

	"go.etcd.io/raft/v3/raftpb"
)

// Snapshots whose state travels out of band. Raft's MsgSnap carries a snapshot's metadata
// (index, term, configuration) and its Data; a state machine whose state is large files
// (package replica: sealed segment files) puts only their names in Data, and the receiving
// node fetches the files from the sender over SnapshotPath before it steps the message.
// The fetch runs on a goroutine of its own, so the loop keeps driving every other group
// (and this one) while megabytes cross the network; the loop only steps the MsgSnap once
// the files are staged, and the state machine's Persist installs them.

// SnapshotPath is the HTTP path a node serves snapshot files on: GET with the query
// parameters group (decimal GroupID) and file (a name from the snapshot's Data).
const SnapshotPath = "/sluice/v1/snapshot"

// ErrNoSnapshotFile is returned for a snapshot file the group does not serve (never made,
// or removed by retention since); the server answers 404.
var ErrNoSnapshotFile = errors.New("multiraft: no such snapshot file")

// SnapshotFiles is implemented by a StateMachine whose snapshots name files to fetch from
// the node that sent them instead of carrying the state in Snapshot.Data.
type SnapshotFiles interface {
	// OpenSnapshotFile opens for reading a file named by a snapshot this state machine's
	// Storage made, with its size. Any error (a name it does not serve, a file removed since)
	// is answered 404. Called from the goroutine serving SnapshotPath, concurrently with the
	// loop.
	OpenSnapshotFile(name string) (io.ReadCloser, int64, error)

	// FetchSnapshot stages what snap names, each file read with open from the node that
	// sent snap, so that Persist can install it when raft hands the snapshot over in a
	// Ready. The Host calls it on a goroutine of its own, for one MsgSnap of a group at a
	// time (others arriving meanwhile are dropped; raft sends the snapshot again), before
	// stepping the message; when it fails, the message is dropped. ctx ends with the Host.
	FetchSnapshot(ctx context.Context, snap *raftpb.Snapshot, open func(name string) (io.ReadCloser, error)) error
}

// fetchSnapshot starts fetching the files of the snapshot m carries, and steps m once they
// are staged. Loop only.
func (h *Host) fetchSnapshot(g *group, sf SnapshotFiles, m *raftpb.Message) {
	if g.fetching {
		h.stats.snapDropped.Add(1)
		return
	}
	g.fetching = true
	from, id := m.GetFrom(), g.id
	h.fetches.Add(1)
	go func() {
		defer h.fetches.Done()
		err := sf.FetchSnapshot(h.tr.ctx, m.GetSnapshot(), func(name string) (io.ReadCloser, error) {
			f, err := h.tr.getSnapshotFile(from, id, name)
			if err != nil {
				return nil, err
			}
			return countingReader{f, &g.ctr.snapReceived}, nil
		})
		_ = h.enqueue(func() {
			g.fetching = false
			if h.groups[id] != g || g.err != nil {
				return
			}
			if err != nil {
				h.stats.snapDropped.Add(1)
				h.log.Warn("multiraft: snapshot fetch failed", "group", uint64(id), "from", from, "err", err)
				return
			}
			h.wakeGroup(g)
			if err := g.rn.Step(m); err != nil {
				h.stats.stepErrors.Add(1)
			}
			h.markDirty(g)
		})
	}()
}

// OpenSnapshotFile opens file name of group id's snapshots for a peer that fetches it (the
// server side of SnapshotPath): the file and its size, or ErrClosed (answer 503), or another
// error: ErrUnknownGroup, ErrNoSnapshotFile (the state machine serves no files), or the state
// machine's (answer 404, without the error's text).
func (h *Host) OpenSnapshotFile(id GroupID, name string) (io.ReadCloser, int64, error) {
	var sf SnapshotFiles
	var sent *atomic.Uint64
	err := h.call(context.Background(), func() error {
		g := h.groups[id]
		if g == nil {
			return fmt.Errorf("%w: %d", ErrUnknownGroup, id)
		}
		var ok bool
		if sf, ok = g.sm.(SnapshotFiles); !ok {
			return ErrNoSnapshotFile
		}
		sent = &g.ctr.snapSent
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	f, size, err := sf.OpenSnapshotFile(name)
	if err != nil {
		return nil, 0, err
	}
	return countingReader{f, sent}, size, nil
}

// SnapshotHandler serves SnapshotPath with OpenSnapshotFile, for a net/http server (the
// sluice server mounts OpenSnapshotFile on its own listener). Unknown groups and files are
// 404, with no detail of the node's files.
func (h *Host) SnapshotHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		id, err := strconv.ParseUint(r.URL.Query().Get("group"), 10, 64)
		if err != nil {
			http.Error(w, "bad group", http.StatusBadRequest)
			return
		}
		f, size, err := h.OpenSnapshotFile(GroupID(id), r.URL.Query().Get("file"))
		switch {
		case errors.Is(err, ErrClosed):
			http.Error(w, "closed", http.StatusServiceUnavailable)
			return
		case err != nil:
			http.Error(w, "no such snapshot file", http.StatusNotFound)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		_, _ = io.CopyN(w, f, size)
	})
}

// getSnapshotFile GETs file name of group id's snapshot from peer to. The body is the
// caller's to close; it ends with the Host (ctx), not with SendTimeout.
func (t *transport) getSnapshotFile(to uint64, id GroupID, name string) (io.ReadCloser, error) {
	t.mu.Lock()
	p := t.peers[to]
	t.mu.Unlock()
	if p == nil {
		return nil, fmt.Errorf("multiraft: no address for node %d", to)
	}
	p.mu.Lock()
	addr := p.addr
	p.mu.Unlock()
	q := url.Values{"group": {strconv.FormatUint(uint64(id), 10)}, "file": {name}}
	req, err := http.NewRequestWithContext(t.ctx, http.MethodGet, PeerURL(t.h.cfg.TLS, addr, SnapshotPath)+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := t.fetchClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		return nil, fmt.Errorf("multiraft: snapshot file from node %d: %s", to, resp.Status)
	}
	return resp.Body, nil
}
