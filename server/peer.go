package server

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/stream"
)

// The routes the nodes of a cluster send each other: the Raft transport's batches
// (multiraft.RaftPath), forwarded writes, and reads from a replica by a node that holds none
// of the shard (after it authorized its own client). They are not Kinesis or native operations: the
// server hands them, without SigV4, to Options.Peer, which authenticates them itself (a
// signature under the cluster's peer key), and answers 404 on a server that is not a node
// of a cluster.
const (
	PeerRaftPath     = "/sluice/v1/raft"
	PeerForwardPath  = "/sluice/v1/forward"
	PeerReadPath     = "/sluice/v1/read"
	PeerSealPath     = "/sluice/v1/seal"     // a resharding seals a shard on its leader
	PeerSnapshotPath = "/sluice/v1/snapshot" // GET, served by a Peer that is a PeerFiles
)

// PeerFiles is implemented by a Peer whose nodes fetch files from each other (a replica's
// snapshot: multiraft.SnapshotPath). The server streams the file it opens.
type PeerFiles interface {
	// OpenPeerFile serves a GET of PeerSnapshotPath: uri is the request's path and query,
	// header reads its headers. It returns the answer's status and, with 200, the file and
	// its size, which the server closes once sent.
	OpenPeerFile(uri string, header func(name string) []byte) (status int, f io.ReadCloser, size int64)
}

// Peer is what a node of a cluster plugs into the server (package cluster implements it):
// the routes under PeerPrefix and the forwarding of writes to the node that leads a shard.
// The server imports neither the Raft loop nor etcd; it knows only this.
type Peer interface {
	// HandlePeer serves a POST to PeerRaftPath, PeerForwardPath, PeerReadPath or PeerSealPath. header reads the request's
	// headers; body is valid during the call only. It returns the answer's status and body.
	HandlePeer(path string, header func(name string) []byte, body []byte) (status int, resp []byte)
	// Forward puts records on the node leader that leads shard of stream (already
	// authorised here) and returns their results in the order of entries. An error wrapping
	// stream.ErrUnknownOutcome means the leader may have put some of them (the request was
	// sent, its answer lost); any other error means none of them was put.
	Forward(streamName string, shard stream.ShardID, leader uint64, entries []stream.PutEntry) ([]stream.PutResult, error)
}

// isPeerPath reports whether a request path is one of a cluster's peer routes.
func isPeerPath(path []byte) bool {
	switch string(path) {
	case PeerRaftPath, PeerForwardPath, PeerReadPath, PeerSealPath, PeerSnapshotPath:
		return true
	}
	return false
}

// servePeer answers a peer route with Options.Peer, or 404 when the server is not a node of
// a cluster.
func (s *Server) servePeer(ctx *fasthttp.RequestCtx) {
	if s.peer == nil {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		ctx.SetBodyString("not a node of a cluster\n")
		return
	}
	if string(ctx.Path()) == PeerSnapshotPath {
		s.servePeerFile(ctx)
		return
	}
	if !ctx.IsPost() {
		ctx.SetStatusCode(fasthttp.StatusMethodNotAllowed)
		return
	}
	status, resp := s.peer.HandlePeer(string(ctx.Path()), func(name string) []byte { return ctx.Request.Header.Peek(name) }, ctx.Request.Body())
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/octet-stream")
	ctx.SetBody(resp)
}

// servePeerFile answers a GET of PeerSnapshotPath with Options.Peer's PeerFiles.
func (s *Server) servePeerFile(ctx *fasthttp.RequestCtx) {
	pf, ok := s.peer.(PeerFiles)
	switch {
	case !ok:
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		return
	case !ctx.IsGet():
		ctx.SetStatusCode(fasthttp.StatusMethodNotAllowed)
		return
	}
	status, f, size := pf.OpenPeerFile(string(ctx.RequestURI()), func(name string) []byte { return ctx.Request.Header.Peek(name) })
	ctx.SetStatusCode(status)
	if f == nil {
		return
	}
	ctx.SetContentType("application/octet-stream")
	ctx.SetBodyStream(f, int(size)) // fasthttp closes f once sent
}

// Forwarding bounds: a record whose shard's leader is unknown or changing is tried again
// this many times, waiting forwardBackoff × attempt between tries, before it is reported
// failed (InternalFailure, which clients retry).
const (
	forwardAttempts = 8
	forwardBackoff  = 50 * time.Millisecond
)

// putRecords is the engine's PutRecords, with the records of shards another node leads
// forwarded to that node (putForwarded).
func (s *Server) putRecords(name string, entries []stream.PutEntry) ([]stream.PutResult, error) {
	res, err := s.engine.PutRecords(name, entries)
	if err != nil || s.peer == nil {
		return res, err
	}
	s.putForwarded(name, entries, res)
	return res, nil
}

// putRecord is the engine's PutRecord, forwarded as putRecords is.
func (s *Server) putRecord(name string, en stream.PutEntry) (stream.PutResult, error) {
	res, err := s.engine.PutRecord(name, en)
	if s.peer == nil || leaderOf(err) == nil {
		return res, err
	}
	out := []stream.PutResult{{Shard: res.Shard, Err: err}}
	s.putForwarded(name, []stream.PutEntry{en}, out)
	return out[0], out[0].Err
}

// leaderOf returns the NotLeaderError err wraps, nil if none.
func leaderOf(err error) *stream.NotLeaderError {
	var nl *stream.NotLeaderError
	if errors.As(err, &nl) {
		return nl
	}
	return nil
}

// putForwarded sends the records of res whose shard another node leads to that node, one
// request per (leader, shard), concurrently, and writes their results into res in place, so
// the answer keeps the request's order. A record whose leader is unknown, or whose leader
// answered that it no longer leads, or could not be reached, is put again through the engine
// (which then knows the new leader, or leads itself) after a short wait, a bounded number of
// times; one still without a leader keeps its error: an InternalFailure the client retries.
func (s *Server) putForwarded(name string, entries []stream.PutEntry, res []stream.PutResult) {
	type dest struct {
		leader uint64
		shard  stream.ShardID
	}
	for attempt := 1; attempt <= forwardAttempts; attempt++ {
		groups := map[dest][]int{}
		var local []int // no known leader: put again through the engine
		for i := range res {
			nl := leaderOf(res[i].Err)
			switch {
			case nl == nil:
			case nl.Leader == 0:
				local = append(local, i)
			default:
				d := dest{nl.Leader, res[i].Shard}
				groups[d] = append(groups[d], i)
			}
		}
		if len(groups) == 0 && len(local) == 0 {
			return
		}
		var wg sync.WaitGroup
		var mu sync.Mutex // guards local while the forwards run
		for d, idx := range groups {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sub := make([]stream.PutEntry, len(idx))
				for j, i := range idx {
					sub[j] = entries[i]
				}
				out, err := s.peer.Forward(name, d.shard, d.leader, sub)
				if errors.Is(err, stream.ErrUnknownOutcome) {
					// the leader may have stored them: putting them again could store them twice
					s.log.Debug("a forwarded write's outcome is unknown", "stream", name, "shard", d.shard.String(), "leader", d.leader, "err", err)
					for _, i := range idx {
						res[i].Err = &stream.Error{Kind: stream.KindInternalFailure,
							Msg: "the shard's leader did not confirm the write; it may have been stored; retry", Err: err}
					}
					return
				}
				if err != nil || len(out) != len(idx) {
					s.log.Debug("forwarding records to the shard's leader", "stream", name, "shard", d.shard.String(), "leader", d.leader, "err", err)
					mu.Lock()
					local = append(local, idx...)
					mu.Unlock()
					return
				}
				for j, i := range idx {
					res[i] = out[j]
				}
				s.forwarded.Add(uint64(len(idx)))
			}()
		}
		wg.Wait()
		if len(local) == 0 {
			continue
		}
		time.Sleep(forwardBackoff * time.Duration(attempt))
		sub := make([]stream.PutEntry, len(local))
		for j, i := range local {
			sub[j] = entries[i]
		}
		out, err := s.engine.PutRecords(name, sub)
		if err != nil {
			return // the stream went away meanwhile: the records keep their errors
		}
		for j, i := range local {
			res[i] = out[j]
		}
	}
}
