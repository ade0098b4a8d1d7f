package cluster_test

import (
	"bytes"
	"testing"

	"github.com/sluice-streams/sluice/cluster/etcdtest"
	"github.com/sluice-streams/sluice/stream"
)

// TestIteratorKeyShared: every node of a cluster gets the same iterator key, of the size the
// engine takes, apart from the peer key; another cluster in the same etcd gets another.
func TestIteratorKeyShared(t *testing.T) {
	eachEtcd(t, func(t *testing.T, srv *etcdtest.Server) {
		a, err := dial(t, srv, "iter", nil).EnsureIteratorKey()
		if err != nil {
			t.Fatal(err)
		}
		b, err := dial(t, srv, "iter", nil).EnsureIteratorKey()
		if err != nil {
			t.Fatal(err)
		}
		if len(a) != stream.IteratorKeySize || !bytes.Equal(a, b) {
			t.Fatalf("two nodes' keys: %x and %x", a, b)
		}
		peer, err := dial(t, srv, "iter", nil).EnsurePeerKey()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(peer, a) {
			t.Fatal("the iterator key is the peer key")
		}
		other, err := dial(t, srv, "other", nil).EnsureIteratorKey()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(other, a) {
			t.Fatal("two clusters share an iterator key")
		}
	})
}
