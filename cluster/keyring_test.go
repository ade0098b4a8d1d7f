package cluster_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/cluster/etcdtest"
	"github.com/sluice-streams/sluice/internal/keyring"
)

// ring is a node's keyring: the cluster's store, cached in dir.
func ring(t *testing.T, c *cluster.Client, dir string) *keyring.Ring {
	t.Helper()
	s, err := c.KeyringStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return keyring.New(s)
}

// TestKeyringShared: two nodes, each with its own cache directory, share the cluster's
// master keys. Both creating alias/aws/kinesis at once agree on one key; a data key one
// wraps the other unwraps, under a created key and after rotations made concurrently from
// both (each version made once, the loser refused with ErrRotating). Each cache is private
// and marked; with etcd stopped a node restarted on its cache still resolves, wraps and
// unwraps with what it cached, and a version it never read is refused as unavailable.
// Another cluster in the same etcd has keys of its own.
func TestKeyringShared(t *testing.T) {
	eachEtcd(t, func(t *testing.T, srv *etcdtest.Server) {
		c1, c2 := dial(t, srv, "kms", nil), dial(t, srv, "kms", nil)
		dir1, dir2 := filepath.Join(t.TempDir(), "ring"), filepath.Join(t.TempDir(), "ring")
		r1, r2 := ring(t, c1, dir1), ring(t, c2, dir2)

		ids := make(chan string, 8)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := r1
				if i%2 == 1 {
					r = r2
				}
				id, err := r.Resolve(keyring.ManagedAlias)
				if err != nil {
					t.Error(err)
				}
				ids <- id
			}()
		}
		wg.Wait()
		close(ids)
		managed := <-ids
		for id := range ids {
			if id != managed {
				t.Fatalf("alias/aws/kinesis resolved to %s and %s", managed, id)
			}
		}

		secret := bytes.Repeat([]byte{5}, keyring.KeySize)
		aad := []byte("aad")
		w, v, err := r1.Wrap(managed, secret, aad)
		if err != nil || v != 1 {
			t.Fatalf("Wrap: version %d, %v", v, err)
		}
		if got, err := r2.Unwrap(managed, v, w, aad); err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("the other node's Unwrap: %x %v", got, err)
		}

		orders, err := r2.CreateKey("alias/orders")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := r1.Resolve("arn:aws:kms:us-east-1:000000000000:alias/orders"); err != nil || got != orders {
			t.Fatalf("alias/orders on the other node: %q %v, want %s", got, err, orders)
		}
		versions := make(chan uint32, 20)
		for i := range 2 {
			r := []*keyring.Ring{r1, r2}[i]
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					_, v, err := r.Rotate("alias/orders")
					if err != nil && !errors.Is(err, keyring.ErrRotating) {
						t.Error(err)
					}
					if err == nil {
						versions <- v
					}
				}
			}()
		}
		wg.Wait()
		close(versions)
		seen := map[uint32]bool{}
		for v := range versions {
			if seen[v] {
				t.Fatalf("version %d was made twice", v)
			}
			seen[v] = true
		}
		w, v, err = r2.Wrap(orders, secret, aad)
		if err != nil || v != uint32(len(seen))+1 {
			t.Fatalf("Wrap after %d rotations: version %d, %v", len(seen), v, err)
		}
		if got, err := r1.Unwrap(orders, v, w, aad); err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("the other node's Unwrap of version %d: %x %v", v, got, err)
		}
		if _, _, err := r1.Rotate("alias/missing"); !errors.Is(err, keyring.ErrNotFound) {
			t.Fatalf("Rotate of a missing alias: %v", err)
		}

		for _, dir := range []string{dir1, dir2} {
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
				t.Fatalf("cache directory: %v %v", fi, err)
			}
			for _, e := range entries {
				if fi, err := e.Info(); err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("%s: %v %v", e.Name(), fi, err)
				}
			}
			if _, cached, err := keyring.NewDir(dir).CacheOf(); err != nil || !cached {
				t.Fatalf("%s is not marked as a cache: %v", dir, err)
			}
		}

		other, err := ring(t, dial(t, srv, "other", nil), "").Resolve("alias/orders")
		if !errors.Is(err, keyring.ErrNotFound) {
			t.Fatalf("another cluster resolves alias/orders: %q %v", other, err)
		}

		// Node 1 restarts while etcd is down: what it cached serves.
		srv.Stop()
		restarted := ring(t, c1, dir1)
		if got, err := restarted.Resolve(keyring.ManagedAlias); err != nil || got != managed {
			t.Fatalf("Resolve from the cache: %q %v", got, err)
		}
		if got, err := restarted.Unwrap(orders, v, w, aad); err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("Unwrap from the cache: %x %v", got, err)
		}
		if _, cv, err := restarted.Wrap(orders, secret, aad); err != nil || cv != v {
			t.Fatalf("Wrap from the cache: version %d, %v; want %d", cv, err, v)
		}
		fresh := ring(t, c2, filepath.Join(t.TempDir(), "empty"))
		if _, err := fresh.Unwrap(orders, v, w, aad); !errors.Is(err, cluster.ErrUnavailable) {
			t.Fatalf("Unwrap of a version never cached, etcd down: %v", err)
		}
	})
}
