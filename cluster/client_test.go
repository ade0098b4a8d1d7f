package cluster_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/cluster"
	"github.com/sluice-streams/sluice/cluster/etcdtest"
	"github.com/sluice-streams/sluice/stream"
)

// useCluster does what a node does with its client: fixes the replication factor,
// registers as a member under a lease and creates a stream in the catalog, watched by
// another client of the same configuration.
func useCluster(t *testing.T, c, watcher *cluster.Client) {
	t.Helper()
	if err := c.EnsureReplicas(1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, events, err := watcher.WatchMembers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Join(ctx, 7, "127.0.0.1:4567")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Leave()
	select {
	case ev := <-events:
		if ev.Node.ID != 7 {
			t.Fatalf("the watcher saw %v of node %d", ev.Kind, ev.Node.ID)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the watcher saw no node join")
	}
	nodes, err := watcher.Members()
	if err != nil || len(nodes) != 1 || nodes[0].ID != 7 {
		t.Fatalf("members %v, %v", nodes, err)
	}
	e := node(t, c, t.TempDir())
	if err := e.CreateStream(stream.CreateStreamInput{Name: "orders", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	if got := node(t, watcher, t.TempDir()).ListStreams(); len(got) != 1 || got[0] != "orders" {
		t.Fatalf("the watcher's node lists %v", got)
	}
}

// refused checks that a request of c fails as etcd not answering, naming want.
func refused(t *testing.T, c *cluster.Client, want string) {
	t.Helper()
	err := c.EnsureReplicas(1)
	if !errors.Is(err, cluster.ErrUnavailable) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want an error wrapping ErrUnavailable that says %q", err, want)
	}
	t.Log(err)
}

// TestDialTLS: against an etcd with TLS and --client-cert-auth, a client with the CA and a
// client certificate works as a node; one without the certificate, or trusting another CA,
// fails its first request within the request timeout, saying why the connection failed.
func TestDialTLS(t *testing.T) {
	for _, kind := range etcdtest.Kinds(t) {
		t.Run(string(kind), func(t *testing.T) {
			pki := etcdtest.NewPKI(t)
			srv := etcdtest.StartTLS(t, kind, pki)
			with := func(tc *tls.Config) func(*cluster.Config) {
				return func(cfg *cluster.Config) { cfg.TLS, cfg.DialTimeout = tc, time.Second }
			}
			useCluster(t, dial(t, srv, "tls", with(pki.ClientTLS(true))), dial(t, srv, "tls", with(pki.ClientTLS(true))))
			// etcd answers a handshake without a certificate with TLS's certificate_required
			// alert and closes the connection; a client that writes before it reads the
			// alert fails on the closed connection instead.
			refused(t, dial(t, srv, "tls", with(pki.ClientTLS(false))), "no connection to etcd: ")
			refused(t, dial(t, srv, "tls", with(etcdtest.NewPKI(t).ClientTLS(true))), "certificate signed by unknown authority")
		})
	}
}

// TestDialRefusesPlaintextWithTLS: TLS with an http:// endpoint, which the etcd client
// would reach in plaintext, and a mix of https:// and http:// endpoints, are refused.
func TestDialRefusesPlaintextWithTLS(t *testing.T) {
	pki := etcdtest.NewPKI(t)
	for _, cfg := range []cluster.Config{
		{Endpoints: []string{"http://127.0.0.1:2379"}, TLS: pki.ClientTLS(true)},
		{Endpoints: []string{"https://127.0.0.1:2379", "http://127.0.0.1:2380"}},
		{Endpoints: []string{"http://127.0.0.1:2379", "https://127.0.0.1:2380"}},
		{Endpoints: []string{"http://127.0.0.1:2379"}, Username: "sluice"},
	} {
		c, err := cluster.Dial(cfg)
		if err == nil {
			c.Close()
			t.Fatalf("%v: dialled", cfg.Endpoints)
		}
		t.Log(err)
	}
}

// TestDialPassword: against an etcd with auth enabled, a client with the user's password
// works as a node with no permission but read and write on its cluster's prefix; a wrong
// password fails Dial, a client without a user is refused its requests, and the user
// is refused another cluster's keys.
func TestDialPassword(t *testing.T) {
	eachEtcd(t, func(t *testing.T, srv *etcdtest.Server) {
		srv.EnableAuth("auth", etcdtest.ClientCN, "s3cret")
		user := func(password string) func(*cluster.Config) {
			return func(cfg *cluster.Config) { cfg.Username, cfg.Password = etcdtest.ClientCN, password }
		}
		useCluster(t, dial(t, srv, "auth", user("s3cret")), dial(t, srv, "auth", user("s3cret")))

		_, err := cluster.Dial(cluster.Config{Endpoints: srv.Endpoints(), Name: "auth", Username: etcdtest.ClientCN, Password: "wrong"})
		if err == nil || !strings.Contains(err.Error(), "authentication failed") {
			t.Fatalf("a wrong password: %v", err)
		}
		t.Log(err)
		for _, c := range []*cluster.Client{dial(t, srv, "auth", nil), dial(t, srv, "other", user("s3cret"))} {
			err := c.EnsureReplicas(1)
			if err == nil {
				t.Fatal("a request without the permission succeeded")
			}
			t.Log(err)
		}
	})
}

// TestDialCertificateUser: against an etcd with TLS, --client-cert-auth and auth enabled,
// a client without a password acts as the user its certificate's common name names.
func TestDialCertificateUser(t *testing.T) {
	for _, kind := range etcdtest.Kinds(t) {
		t.Run(string(kind), func(t *testing.T) {
			pki := etcdtest.NewPKI(t)
			srv := etcdtest.StartTLS(t, kind, pki)
			srv.EnableAuth("cn", etcdtest.ClientCN, "unused-password")
			withTLS := func(cfg *cluster.Config) { cfg.TLS = pki.ClientTLS(true) }
			useCluster(t, dial(t, srv, "cn", withTLS), dial(t, srv, "cn", withTLS))
			if err := dial(t, srv, "other", withTLS).EnsureReplicas(1); err == nil {
				t.Fatal("the certificate's user wrote another cluster's keys")
			}
		})
	}
}
