package cluster

import (
	"net/http"
	"testing"
)

// TestPeerReadRefusals posts peer reads to a node holding no replica: unsigned or signed with
// another key, 403; signed but malformed, 400; signed and well formed for a shard the node
// holds no replica of, 404, so that the asking node tries another replica.
func TestPeerReadRefusals(t *testing.T) {
	good := appendReadRequest(nil, &readRequest{op: opRead, stream: "s", gen: 1, shard: 2, records: 10, bytes: 1 << 20})
	checkPeerRefusals(t, ReadPath, good)
}

// checkPeerRefusals posts good (a well formed request for a shard of no replica here) to
// path on a node without replicas: unsigned or signed with another key, 403; signed but cut
// short, 400; signed, 404.
func checkPeerRefusals(t *testing.T, path string, good []byte) {
	t.Helper()
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
	signed := func(k []byte, body []byte) func(string) []byte {
		h := http.Header{}
		if k != nil {
			NewPeerKey(k, nil).Sign(h, path, body)
		}
		return func(name string) []byte { return []byte(h.Get(name)) }
	}
	for _, tc := range []struct {
		name string
		h    func(string) []byte
		body []byte
		want int
	}{
		{"unsigned", signed(nil, good), good, http.StatusForbidden},
		{"another key", signed([]byte("another key, 32 bytes long......"), good), good, http.StatusForbidden},
		{"malformed", signed(key, good[:len(good)-1]), good[:len(good)-1], http.StatusBadRequest},
		{"no replica here", signed(key, good), good, http.StatusNotFound},
	} {
		if got, body := r.HandlePeer(path, tc.h, tc.body); got != tc.want {
			t.Errorf("%s %s: %d %q, want %d", path, tc.name, got, body, tc.want)
		}
	}
}
