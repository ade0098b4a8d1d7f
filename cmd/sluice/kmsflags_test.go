package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/cluster/etcdtest"
	"github.com/sluice-streams/sluice/internal/keyring"
)

// TestKeyVerbsCluster: create-key and rotate-key with --cluster-etcd change the cluster's
// keyring in etcd (read back through a node's store); a node's keyring directory, a cache
// of it, is refused by both and left as it was; both flags at once are a usage error.
func TestKeyVerbsCluster(t *testing.T) {
	etcd := etcdtest.Start(t, etcdtest.Embedded).Endpoints()[0]
	var out, errOut bytes.Buffer
	if st := run([]string{"create-key", "--cluster-etcd", etcd, "--alias", "alias/orders"}, &out, &errOut); st != exitOK {
		t.Fatalf("create-key: %d %s", st, errOut.String())
	}
	id := strings.TrimSpace(out.String())
	cache := filepath.Join(t.TempDir(), "kms-keyring")
	c, err := cluster.Dial(cluster.Config{Endpoints: []string{etcd}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	store, err := c.KeyringStore(cache)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := keyring.New(store).Resolve("alias/orders"); err != nil || got != id {
		t.Fatalf("a node resolves alias/orders to %q, %v; create-key printed %q", got, err, id)
	}
	before, _ := os.ReadDir(cache)
	for _, tc := range []struct {
		args   []string
		status int
		stdout string
		stderr string
	}{
		{[]string{"rotate-key", "--cluster-etcd", etcd, "alias/orders"}, exitOK, id + " version 2\n", ""},
		{[]string{"rotate-key", "--cluster-etcd", etcd, "--cluster-name", "other", "alias/orders"}, exitError, "", "key not found"},
		{[]string{"rotate-key", "--kms-keyring", cache, "alias/orders"}, exitError, "", "change that keyring with --cluster-etcd"},
		{[]string{"create-key", "--kms-keyring", cache}, exitError, "", "change that keyring with --cluster-etcd"},
		{[]string{"rotate-key", "--kms-keyring", cache, "--cluster-etcd", etcd, "alias/orders"}, exitUsage, "", "--kms-keyring and one KEY-ID"},
		{[]string{"create-key", "--kms-keyring", cache, "--cluster-etcd", etcd}, exitUsage, "", "--kms-keyring is required"},
	} {
		out.Reset()
		errOut.Reset()
		if st := run(tc.args, &out, &errOut); st != tc.status || out.String() != tc.stdout || !strings.Contains(errOut.String(), tc.stderr) {
			t.Fatalf("%q: %d %q %q", tc.args, st, out.String(), errOut.String())
		}
	}
	if after, _ := os.ReadDir(cache); len(after) != len(before) {
		t.Fatalf("the refused verbs changed the cache: %d entries, then %d", len(before), len(after))
	}
	if v, err := store.Newest(id); err != nil || v != 2 {
		t.Fatalf("newest version in etcd: %d, %v; want 2", v, err)
	}
}
