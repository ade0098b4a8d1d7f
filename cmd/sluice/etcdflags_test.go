package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/cluster/etcdtest"
)

// etcdTLSFlags are the flags that trust pki's CA and present its client certificate.
func etcdTLSFlags(pki *etcdtest.PKI) []string {
	return []string{"--etcd-ca", pki.CA, "--etcd-cert", pki.ClientCert, "--etcd-key", pki.ClientKey}
}

// writeFile writes data to a new file in a test's temporary directory and returns its path.
func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestEtcdAccessFlagsRefused: a file of the --etcd-* flags that does not load, a flag
// without its partner, a password given twice or without a user, and TLS to an http://
// endpoint are each refused with an error naming the flag, by every verb that takes
// --cluster-etcd, before anything is changed.
func TestEtcdAccessFlagsRefused(t *testing.T) {
	pki := etcdtest.NewPKI(t)
	garbage := writeFile(t, "garbage.pem", "not a certificate\n")
	twoLines := writeFile(t, "password", "one\ntwo\n")
	good := writeFile(t, "password", "s3cret\n")
	const https = "https://127.0.0.1:1"
	t.Setenv(etcdPasswordEnv, "") // restored when the test ends
	for _, tc := range []struct {
		args   []string
		env    string // SLUICE_ETCD_PASSWORD; "" unset
		status int
		stderr string
	}{
		{[]string{"cluster", "status", "--cluster-etcd", https, "--etcd-ca", filepath.Join(t.TempDir(), "absent.pem")}, "", exitUsage, "--etcd-ca: open "},
		{[]string{"cluster", "status", "--cluster-etcd", https, "--etcd-ca", garbage}, "", exitUsage, "--etcd-ca " + garbage + ": no PEM certificate"},
		{[]string{"cluster", "status", "--cluster-etcd", https, "--etcd-cert", pki.ClientCert}, "", exitUsage, "--etcd-cert and --etcd-key go together"},
		{[]string{"cluster", "drain", "--cluster-etcd", https, "--etcd-cert", garbage, "--etcd-key", pki.ClientKey, "3"}, "", exitUsage, "--etcd-cert, --etcd-key: tls: "},
		{[]string{"cluster", "status", "--cluster-etcd", https, "--etcd-user", "sluice"}, "", exitUsage, "--etcd-user sluice needs a password"},
		{[]string{"cluster", "status", "--cluster-etcd", https, "--etcd-password-file", good}, "", exitUsage, "without --etcd-user"},
		{[]string{"cluster", "status", "--cluster-etcd", https}, "s3cret", exitUsage, "without --etcd-user"},
		{[]string{"cluster", "status", "--cluster-etcd", https, "--etcd-user", "sluice", "--etcd-password-file", good}, "s3cret", exitUsage, "give one"},
		{[]string{"cluster", "status", "--cluster-etcd", https, "--etcd-user", "sluice", "--etcd-password-file", twoLines}, "", exitUsage, "want one non-empty line"},
		{[]string{"cluster", "status", "--cluster-etcd", "http://127.0.0.1:1", "--etcd-ca", pki.CA}, "", exitError, "TLS needs an https:// endpoint"},
		{[]string{"create-key", "--cluster-etcd", https, "--etcd-ca", garbage}, "", exitError, "--etcd-ca " + garbage + ": no PEM certificate"},
		{[]string{"rotate-key", "--kms-keyring", t.TempDir(), "--etcd-ca", pki.CA, "alias/orders"}, "", exitError, "the --etcd-* flags need --cluster-etcd"},
		{[]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--etcd-ca", pki.CA}, "", exitUsage, "the --etcd-* flags need --cluster-etcd"},
		{[]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--node-id", "1", "--cluster-etcd", https, "--etcd-key", garbage}, "", exitUsage, "--etcd-cert and --etcd-key go together"},
	} {
		if tc.env != "" {
			t.Setenv(etcdPasswordEnv, tc.env)
		} else {
			os.Unsetenv(etcdPasswordEnv)
		}
		var out, errOut bytes.Buffer
		if st := run(tc.args, &out, &errOut); st != tc.status || !strings.Contains(errOut.String(), tc.stderr) || out.Len() != 0 {
			t.Fatalf("%q: %d %q %q, want %d and %q", tc.args, st, out.String(), errOut.String(), tc.status, tc.stderr)
		}
	}
}

// TestEtcdAccessVerbs: against an etcd with TLS, client-certificate authentication and
// auth enabled, create-key, rotate-key and `cluster status` work with the CA, the client
// certificate and the user's password (from the environment or a file); without the client
// certificate, with another CA, or with a wrong password they fail saying why.
func TestEtcdAccessVerbs(t *testing.T) {
	pki := etcdtest.NewPKI(t)
	srv := etcdtest.StartTLS(t, etcdtest.Embedded, pki)
	srv.EnableAuth("sluice", "node", "s3cret")
	tlsArgs := append([]string{"--cluster-etcd", srv.Endpoints()[0]}, etcdTLSFlags(pki)...)
	user := []string{"--etcd-user", "node"}
	passwordFile := writeFile(t, "password", "s3cret\n")
	wrongFile := writeFile(t, "wrong", "guess\n")
	other := etcdtest.NewPKI(t)
	runOK := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if st := run(args, &out, &errOut); st != exitOK {
			t.Fatalf("%q: %d %s", args, st, errOut.String())
		}
		return out.String()
	}

	t.Setenv(etcdPasswordEnv, "s3cret") // restored when the test ends
	id := strings.TrimSpace(runOK(append(append([]string{"create-key", "--alias", "alias/orders"}, tlsArgs...), user...)...))
	if got := runOK(append(append([]string{"rotate-key"}, tlsArgs...), append(user, "alias/orders")...)...); got != id+" version 2\n" {
		t.Fatalf("rotate-key printed %q after create-key printed %q", got, id)
	}
	os.Unsetenv(etcdPasswordEnv)
	runOK(append(append([]string{"cluster", "status"}, tlsArgs...), append(user, "--etcd-password-file", passwordFile)...)...)

	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"--cluster-etcd", srv.Endpoints()[0], "--etcd-ca", pki.CA, "--etcd-user", "node", "--etcd-password-file", passwordFile},
			"no connection to etcd: "},
		{append([]string{"--cluster-etcd", srv.Endpoints()[0]}, etcdTLSFlags(other)...), "certificate signed by unknown authority"},
		{append(tlsArgs, "--etcd-user", "node", "--etcd-password-file", wrongFile), "authentication failed"},
	} {
		var out, errOut bytes.Buffer
		args := append([]string{"cluster", "status"}, tc.args...)
		if st := run(args, &out, &errOut); st != exitError || !strings.Contains(errOut.String(), tc.stderr) {
			t.Fatalf("%q: %d %q, want %d and %q", args, st, errOut.String(), exitError, tc.stderr)
		}
		t.Log(strings.TrimSpace(errOut.String()))
	}
}

// TestServeEtcdTLS runs `sluice serve` as a process joined to an etcd that serves TLS,
// asks for a client certificate and has auth enabled, as a user granted only the
// cluster's prefix: the node registers, is elected controller, places a stream's shards
// and serves PutRecords and GetRecords. Trusting another CA, it exits saying so.
func TestServeEtcdTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and a server")
	}
	pki := etcdtest.NewPKI(t)
	srv := etcdtest.StartTLS(t, etcdtest.Embedded, pki)
	srv.EnableAuth("tls", "node", "s3cret")
	addr, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	node := []string{"--cluster-name", "tls", "--replicas", "1", "--etcd-user", "node", "--etcd-password-file", writeFile(t, "password", "s3cret\n")}
	out, err := sluiceCmd(append([]string{"serve", "--node-id", "1", "--addr", addr, "--data-dir", t.TempDir(), "--cluster-etcd", srv.Endpoints()[0]},
		append(etcdTLSFlags(etcdtest.NewPKI(t)), node...)...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "certificate signed by unknown authority") {
		t.Fatalf("sluice serve trusting another CA: %v\n%s", err, out)
	}
	n := &clusterNode{id: 1, addr: addr, dir: t.TempDir(), args: append(etcdTLSFlags(pki), node...)}
	startNode(t, n, srv.Endpoints()[0])
	kinesis(t, n.base(), "CreateStream", map[string]any{"StreamName": "orders", "ShardCount": 2}, nil)
	checkReadable(t, []*clusterNode{n}, "orders", putAll(t, n.base(), "orders", "tls", 20))
}
