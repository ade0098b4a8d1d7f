package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/sluice-streams/sluice/replica"
	"github.com/sluice-streams/sluice/stream"
)

// Resharding in a cluster (docs/CLUSTER.md). The engine closes a shard at the position its
// log's Seal returns (stream.SealingLog). A replica.Log seals only on the group's leader, so a
// shardLog on a follower, and a remoteLog, send the seal to the leader over the peer route
// SealPath; the leader's answer names another leader when it no longer leads, and the sender
// tries that one, until sealTimeout.
//
// The peer seal format (POST /sluice/v1/seal, signed as every peer request). Integers are
// unsigned varints (encoding/binary's Uvarint).
//
// Request:
//
//	version  1 byte  = sealVersion
//	op       1 byte: 1 seal, 2 unseal
//	stream   uvarint length (1 … maxStreamName), then the name's bytes
//	gen      uvarint: the stream's incarnation (with stream and shard: the Raft group)
//	shard    uvarint (< 2^32)
//	token    8 bytes, little-endian: the resharding's (stream.SealingLog)
//
// Answer (200):
//
//	version  1 byte  = sealVersion
//	status   1 byte: 0 done, 1 this node does not lead the group
//	status 0: last    uvarint: the position of the shard's last record before the seal
//	          (unseal: 0)
//	status 1: leader  uvarint: the leader's Raft id as this node knows it (0: none)
//
// Other statuses: 404 the node holds no replica of the group, 503 the node is starting or
// the entry did not apply in time (retry), 400 a malformed request. A new field or meaning
// takes a new version; a receiver refuses a version it does not know (400).
const (
	sealVersion   = 1
	sealOpSeal    = 1
	sealOpUnseal  = 2
	sealStatusOK  = 0
	sealNotLeader = 1
)

// SealPath is the peer route that seals a shard on its leader (server.PeerSealPath).
const SealPath = "/sluice/v1/seal"

// sealTimeout bounds a seal sent to the leader, all tries together; sealTry bounds one try
// sent to another node, so that a leader that does not answer (stopped, cut off) leaves
// time to try the one elected meanwhile (a try again with the same token is harmless:
// sealing is idempotent per token); sealBackoff is the wait before a try when no leader is
// known or the last try failed.
const (
	sealTimeout = 10 * time.Second
	sealTry     = 3 * time.Second
	sealBackoff = 100 * time.Millisecond
)

type sealRequest struct {
	op     byte
	stream string
	gen    uint64
	shard  stream.ShardID
	token  uint64
}

func appendSealRequest(dst []byte, q *sealRequest) []byte {
	dst = append(dst, sealVersion, q.op)
	dst = appendBytes(dst, []byte(q.stream))
	dst = binary.AppendUvarint(dst, q.gen)
	dst = binary.AppendUvarint(dst, uint64(q.shard))
	return binary.LittleEndian.AppendUint64(dst, q.token)
}

func decodeSealRequest(body []byte) (sealRequest, error) {
	r := &reader{b: body}
	if v := r.byte(); r.err == nil && v != sealVersion {
		return sealRequest{}, fmt.Errorf("version %d", v)
	}
	q := sealRequest{op: r.byte()}
	n := r.uvarint()
	if r.err == nil && (n < 1 || n > maxStreamName) {
		return sealRequest{}, fmt.Errorf("stream name of %d bytes", n)
	}
	q.stream = string(r.bytes(n))
	q.gen = r.uvarint()
	shard := r.uvarint()
	if b := r.bytes(8); b != nil {
		q.token = binary.LittleEndian.Uint64(b)
	}
	switch {
	case r.err != nil:
		return sealRequest{}, r.err
	case len(r.b) != 0:
		return sealRequest{}, errors.New("trailing bytes")
	case q.op != sealOpSeal && q.op != sealOpUnseal:
		return sealRequest{}, fmt.Errorf("op %d", q.op)
	case shard > 1<<32-1:
		return sealRequest{}, fmt.Errorf("shard %d", shard)
	}
	q.shard = stream.ShardID(shard)
	return q, nil
}

func appendSealAnswer(dst []byte, notLeader bool, v uint64) []byte {
	status := byte(sealStatusOK)
	if notLeader {
		status = sealNotLeader
	}
	return binary.AppendUvarint(append(dst, sealVersion, status), v)
}

func decodeSealAnswer(b []byte) (notLeader bool, v uint64, err error) {
	r := &reader{b: b}
	if ver := r.byte(); r.err == nil && ver != sealVersion {
		return false, 0, fmt.Errorf("version %d", ver)
	}
	status := r.byte()
	v = r.uvarint()
	switch {
	case r.err != nil:
		return false, 0, r.err
	case len(r.b) != 0:
		return false, 0, errors.New("trailing bytes")
	case status > sealNotLeader:
		return false, 0, fmt.Errorf("status %d", status)
	}
	return status == sealNotLeader, v, nil
}

var (
	_ stream.StaleSealLog = (*shardLog)(nil)
	_ stream.SealingLog   = (*remoteLog)(nil)
)

// Seal seals the shard for token: here when this node leads its group, else on the leader.
func (s *shardLog) Seal(token uint64) (uint64, error) {
	return s.r.seal(&sealRequest{op: sealOpSeal, stream: s.stream, gen: s.gen, shard: s.shard, token: token}, s.localSeal, s.leaderID)
}

// Unseal ends token's hold, here or on the leader as Seal.
func (s *shardLog) Unseal(token uint64) error {
	_, err := s.r.seal(&sealRequest{op: sealOpUnseal, stream: s.stream, gen: s.gen, shard: s.shard, token: token}, s.localSeal, s.leaderID)
	return err
}

// leaderID is the leader's Raft id as Leader knows it.
func (s *shardLog) leaderID() uint64 {
	lead, _ := s.Leader()
	return lead
}

// StaleSeals returns the tokens that have held the shard's seal for at least age, on the
// node that leads its group (nil elsewhere, a remote log included): one node releases them
// (stream.StaleSealLog), and its Unseal is local.
func (s *shardLog) StaleSeals(age time.Duration) []uint64 {
	rep := s.cur.Load().rep
	if _, here := s.Leader(); !here || rep == nil {
		return nil
	}
	return rep.StaleSeals(age)
}

// localSeal runs q on the replica here; a *replica.NotLeaderError when this node does not
// lead (or holds no replica now: lifecycle.go).
func (s *shardLog) localSeal(q *sealRequest) (uint64, error) {
	rep := s.cur.Load().rep
	if lead, here := s.Leader(); !here || rep == nil {
		return 0, &replica.NotLeaderError{Leader: lead}
	}
	if q.op == sealOpUnseal {
		return 0, rep.Unseal(q.token)
	}
	return rep.Seal(q.token)
}

// Seal seals the shard for token on its leader (the node holds no replica of it).
func (l *remoteLog) Seal(token uint64) (uint64, error) {
	return l.r.seal(&sealRequest{op: sealOpSeal, stream: l.stream, gen: l.gen, shard: l.shard, token: token}, nil, l.askLeader)
}

// Unseal ends token's hold on its leader.
func (l *remoteLog) Unseal(token uint64) error {
	_, err := l.r.seal(&sealRequest{op: sealOpUnseal, stream: l.stream, gen: l.gen, shard: l.shard, token: token}, nil, l.askLeader)
	return err
}

func (l *remoteLog) askLeader() uint64 {
	lead, _ := l.Leader()
	return lead
}

// seal runs q on the group's leader, until sealTimeout: local (nil for a node without a
// replica) when leader() names this node, else over SealPath; a leader that answers that it
// no longer leads names the next one to try.
func (r *Replication) seal(q *sealRequest, local func(*sealRequest) (uint64, error), leader func() uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sealTimeout)
	defer cancel()
	body := appendSealRequest(nil, q)
	lead := leader()
	var last error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(sealBackoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return 0, fmt.Errorf("cluster: shard %s of stream %s not sealed within %v: %w", q.shard, q.stream, sealTimeout, last)
			}
			if lead == 0 {
				lead = leader()
			}
		}
		var v uint64
		var notLeader bool
		switch {
		case lead == 0:
			last = errors.New("no leader known")
			continue
		case lead == r.cfg.RaftID && local != nil:
			var err error
			v, err = local(q)
			var nl *replica.NotLeaderError
			if errors.As(err, &nl) {
				notLeader, v = true, nl.Leader
			} else if errors.Is(err, replica.ErrSealCancelled) {
				return 0, err // its resharding unsealed already: no try can seal
			} else if err != nil {
				last = err
				continue
			}
		default:
			try, cancel := context.WithTimeout(ctx, sealTry)
			var err error
			notLeader, v, err = r.sendSeal(try, lead, body)
			cancel()
			if err != nil {
				last, lead = err, 0
				continue
			}
		}
		if !notLeader {
			return v, nil
		}
		last = fmt.Errorf("node %d no longer leads", lead)
		lead = v
	}
}

// sendSeal posts a seal request to the node whose Raft id is lead.
func (r *Replication) sendSeal(ctx context.Context, lead uint64, body []byte) (notLeader bool, v uint64, err error) {
	r.mu.Lock()
	n, ok := r.byRaft[lead]
	r.mu.Unlock()
	if !ok {
		return false, 0, fmt.Errorf("leader %d is not registered", lead)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.peerURL(n, SealPath), bytes.NewReader(body))
	if err != nil {
		return false, 0, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	r.key.Sign(req.Header, SealPath, body)
	resp, err := r.http.Do(req)
	if err != nil {
		return false, 0, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 256))
	if err != nil {
		return false, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return false, 0, fmt.Errorf("node %d answered %s: %q", n.ID, resp.Status, bytes.TrimSpace(out))
	}
	return decodeSealAnswer(out)
}

// noReplicaHere is the body of a peer request's 404: the node holds no replica of the shard.
var noReplicaHere = []byte("no replica of the shard on this node\n")

// replicaOf returns this node's replica of a shard of a stream's incarnation, nil if none.
func (r *Replication) replicaOf(streamName string, gen uint64, shard stream.ShardID) *shardLog {
	r.mu.Lock()
	s := r.groups[GroupOf(streamName, gen, shard)]
	r.mu.Unlock()
	if s == nil || s.cur.Load().rep == nil {
		return nil // a remote log only (lifecycle.go)
	}
	return s
}

// serveSeal seals or unseals a shard whose group this node leads, for another node.
func (r *Replication) serveSeal(body []byte) (int, []byte) {
	q, err := decodeSealRequest(body)
	if err != nil {
		return http.StatusBadRequest, []byte("malformed seal: " + err.Error() + "\n")
	}
	s := r.replicaOf(q.stream, q.gen, q.shard)
	if s == nil {
		return http.StatusNotFound, noReplicaHere
	}
	v, err := s.localSeal(&q)
	var nl *replica.NotLeaderError
	switch {
	case errors.As(err, &nl):
		return http.StatusOK, appendSealAnswer(nil, true, nl.Leader)
	case err != nil:
		r.log.Warn("sealing a shard for another node", "stream", q.stream, "shard", q.shard.String(), "err", err)
		return http.StatusServiceUnavailable, []byte("the seal did not apply; retry\n")
	}
	return http.StatusOK, appendSealAnswer(nil, false, v)
}
