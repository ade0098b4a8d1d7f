package cluster

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/multiraft"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// TestPeerRequestsMustBeSigned posts to the Raft route without a signature, with another
// key's, with a stale time and with a body other than the one signed: each is refused with
// 403 and the Host receives nothing. The same request signed with the cluster's key is taken.
func TestPeerRequestsMustBeSigned(t *testing.T) {
	c, err := Dial(Config{Endpoints: []string{"http://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	key := []byte("0123456789abcdef0123456789abcdef")
	r, err := c.NewReplication(ReplicationConfig{NodeID: 1, RaftID: 7, PeerKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	batch := []byte{2} // a batch of no messages (multiraft's format, version 2)
	headers := func(sign *PeerKey, body []byte) func(string) []byte {
		h := http.Header{}
		if sign != nil {
			sign.Sign(h, multiraft.RaftPath, body)
		}
		return func(name string) []byte { return []byte(h.Get(name)) }
	}
	stale := NewPeerKey(key, func() time.Time { return time.Now().Add(-PeerMaxSkew - time.Minute) })
	for _, tc := range []struct {
		name string
		h    func(string) []byte
	}{
		{"unsigned", headers(nil, batch)},
		{"another key", headers(NewPeerKey([]byte("another key, another cluster...."), nil), batch)},
		{"stale", headers(stale, batch)},
		{"another body", headers(NewPeerKey(key, nil), []byte{1, 0})},
	} {
		if status, _ := r.HandlePeer(multiraft.RaftPath, tc.h, batch); status != http.StatusForbidden {
			t.Fatalf("%s: status %d, want 403", tc.name, status)
		}
		if status, _ := r.HandlePeer(ForwardPath, tc.h, batch); status != http.StatusForbidden {
			t.Fatalf("%s, forward: status %d, want 403", tc.name, status)
		}
	}
	if st := r.Host().Stats(); st.MessagesReceived != 0 {
		t.Fatalf("refused requests reached the host: %+v", st)
	}
	if status, body := r.HandlePeer(multiraft.RaftPath, headers(NewPeerKey(key, nil), batch), batch); status != http.StatusNoContent {
		t.Fatalf("signed: status %d %s", status, body)
	}
}

// TestForwardFormat round-trips a forwarded request and its results, and refuses a
// truncated request.
func TestForwardFormat(t *testing.T) {
	h := shardmap.Key{Hi: 1, Lo: 2}
	entries := []stream.PutEntry{{PartitionKey: "a", Data: []byte("x")}, {PartitionKey: "b", ExplicitHashKey: &h, Data: nil}}
	b := appendForward(nil, "s", 3, entries)
	fw, err := decodeForward(b)
	if err != nil || fw.stream != "s" || fw.shard != 3 || len(fw.entries) != 2 || fw.entries[1].ExplicitHashKey == nil ||
		*fw.entries[1].ExplicitHashKey != h || string(fw.entries[0].Data) != "x" || fw.entries[0].PartitionKey != "a" {
		t.Fatalf("decoded %+v, %v", fw, err)
	}
	for n := 0; n < len(b); n++ {
		if _, err := decodeForward(b[:n]); err == nil {
			t.Fatalf("a request cut at %d bytes decoded", n)
		}
	}
	res := []stream.PutResult{
		{Shard: 3, Seq: stream.SeqNum{Shard: 3, Pos: 42}},
		{Shard: 3, Err: &stream.Error{Kind: stream.KindProvisionedThroughputExceeded, Msg: "Rate exceeded"}},
		{Shard: 3, Err: &stream.Error{Kind: stream.KindInternalFailure, Msg: "m", Err: &stream.NotLeaderError{Leader: 9}}},
	}
	got, err := decodeForwardResults(appendForwardResults(nil, res), 3)
	if err != nil {
		t.Fatal(err)
	}
	var nl *stream.NotLeaderError
	if got[0].Seq != res[0].Seq || got[0].Err != nil || stream.KindOf(got[1].Err) != stream.KindProvisionedThroughputExceeded ||
		!asNotLeader(got[2].Err, &nl) || nl.Leader != 9 {
		t.Fatalf("results %+v", got)
	}
}

func asNotLeader(err error, nl **stream.NotLeaderError) bool { return errors.As(err, nl) }

// TestPeerFilesMustBeSigned fetches a snapshot file: unsigned, or signed for another file
// (the query is signed), the request is refused with 403; signed for the file asked, a group
// the node does not drive is 404 without detail.
func TestPeerFilesMustBeSigned(t *testing.T) {
	c, err := Dial(Config{Endpoints: []string{"http://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	key := []byte("0123456789abcdef0123456789abcdef")
	r, err := c.NewReplication(ReplicationConfig{NodeID: 1, RaftID: 7, PeerKey: key})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	uri := multiraft.SnapshotPath + "?group=42&file=00000000000000000001-1.seg"
	signed := func(signedURI string) func(string) []byte {
		h := http.Header{}
		NewPeerKey(key, nil).Sign(h, signedURI, nil)
		return func(name string) []byte { return []byte(h.Get(name)) }
	}
	for name, h := range map[string]func(string) []byte{
		"unsigned":         func(string) []byte { return nil },
		"another file":     signed(multiraft.SnapshotPath + "?group=42&file=00000000000000000002-1.seg"),
		"without a query":  signed(multiraft.SnapshotPath),
		"for another path": signed(multiraft.RaftPath),
	} {
		if status, f, _ := r.OpenPeerFile(uri, h); status != http.StatusForbidden || f != nil {
			t.Fatalf("%s: status %d, want 403 and no file", name, status)
		}
	}
	if status, f, _ := r.OpenPeerFile(uri, signed(uri)); status != http.StatusNotFound || f != nil {
		t.Fatalf("signed, unknown group: status %d, want 404", status)
	}
}
