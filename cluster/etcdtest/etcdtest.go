// Package etcdtest starts a real etcd for tests: the server embedded in the test process
// (go.etcd.io/etcd/server/v3/embed), or an `etcd` binary on PATH (Debian's etcd-server,
// which .ci/run installs) as a child process. Both listen on loopback ports, keep their
// data in a temporary directory and stop with the test; StartTLS's serve their clients
// with TLS and client-certificate authentication, with certificates a PKI made for the
// test. Stop and Start let a test take etcd away and bring it back on the same ports and
// data.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sluice-streams/sluice/cluster"
)

// Kind names how the etcd runs.
type Kind string

// The kinds.
const (
	Embedded Kind = "embedded"
	Binary   Kind = "binary"
)

// Server is a running (or stopped) etcd.
type Server struct {
	t         testing.TB
	kind      Kind
	dir       string
	client    string
	peer      string
	pki       *PKI // nil: no TLS
	embedded  *cluster.Embedded
	cmd       *exec.Cmd
	cmdExited chan struct{}
}

// Kinds returns the kinds this machine can run: Embedded always, Binary when an `etcd`
// command is on PATH. With SLUICE_REQUIRE_ETCD=1 (as .ci/run sets) a missing command fails
// the test instead of leaving the kind out.
func Kinds(t testing.TB) []Kind {
	if _, err := exec.LookPath("etcd"); err != nil {
		if os.Getenv("SLUICE_REQUIRE_ETCD") == "1" {
			t.Fatal("SLUICE_REQUIRE_ETCD=1 and the etcd command is not on PATH")
		}
		t.Log("the etcd command is not on PATH: testing against the embedded etcd only")
		return []Kind{Embedded}
	}
	return []Kind{Embedded, Binary}
}

// bcryptCost is the lowest cost bcrypt takes: at etcd's default cost, checking a password
// took longer than a client's 2 s dial timeout under the race detector on a loaded machine.
const bcryptCost = 4

// Start starts an etcd of the given kind, stopped when the test ends.
func Start(t testing.TB, kind Kind) *Server {
	t.Helper()
	s := &Server{t: t, kind: kind, dir: filepath.Join(t.TempDir(), "etcd"), client: freeURL(t), peer: freeURL(t)}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// StartTLS starts an etcd of the given kind that serves its clients with TLS, pki's server
// certificate, and asks them for a certificate signed by pki's CA (etcd's
// --client-cert-auth). Its endpoint is https://.
func StartTLS(t testing.TB, kind Kind, pki *PKI) *Server {
	t.Helper()
	s := &Server{t: t, kind: kind, dir: filepath.Join(t.TempDir(), "etcd"), client: "https" + strings.TrimPrefix(freeURL(t), "http"),
		peer: freeURL(t), pki: pki}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Endpoints returns the client URLs.
func (s *Server) Endpoints() []string { return []string{s.client} }

// Start starts the server again after Stop, on the same ports and data.
func (s *Server) Start() {
	s.t.Helper()
	switch s.kind {
	case Embedded:
		cfg := cluster.EmbeddedConfig{Dir: s.dir, ClientURL: s.client, PeerURL: s.peer, BcryptCost: bcryptCost}
		if s.pki != nil {
			cfg.CertFile, cfg.KeyFile, cfg.TrustedCAFile, cfg.ClientCertAuth = s.pki.ServerCert, s.pki.ServerKey, s.pki.CA, true
		}
		e, err := cluster.StartEmbedded(cfg)
		if err != nil {
			s.t.Fatal(err)
		}
		s.embedded = e
	case Binary:
		args := []string{"--name", "sluice", "--data-dir", s.dir,
			"--listen-client-urls", s.client, "--advertise-client-urls", s.client,
			"--listen-peer-urls", s.peer, "--initial-advertise-peer-urls", s.peer,
			"--initial-cluster", "sluice=" + s.peer, "--logger", "zap", "--log-level", "error",
			"--bcrypt-cost", strconv.Itoa(bcryptCost)}
		if s.pki != nil {
			args = append(args, "--cert-file", s.pki.ServerCert, "--key-file", s.pki.ServerKey, "--trusted-ca-file", s.pki.CA, "--client-cert-auth")
		}
		s.cmd = exec.Command("etcd", args...)
		s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
		if err := s.cmd.Start(); err != nil {
			s.t.Fatal(err)
		}
		s.cmdExited = make(chan struct{})
		go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(s.cmd, s.cmdExited)
		s.waitReady()
	default:
		s.t.Fatalf("etcdtest: unknown kind %q", s.kind)
	}
}

// waitReady waits until the binary answers a read.
func (s *Server) waitReady() {
	s.t.Helper()
	cfg := clientv3.Config{Endpoints: s.Endpoints(), DialTimeout: time.Second, Logger: zap.NewNop()}
	if s.pki != nil {
		cfg.TLS = s.pki.ClientTLS(true)
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	defer cli.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.cmdExited:
			s.t.Fatalf("etcd exited before it answered: %v", s.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("etcd did not answer in 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server; a stopped server stays stopped.
func (s *Server) Stop() {
	if s.embedded != nil {
		s.embedded.Close()
		s.embedded = nil
	}
	if s.cmd != nil {
		s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.cmdExited:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.cmdExited
		}
		s.cmd = nil
	}
}

func freeURL(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprintf("http://%s", l.Addr())
}

// EnableAuth turns the server's authentication on as an operator does with etcdctl (user
// add, role add, role grant-permission, user grant-role, auth enable): a root user, and a
// user whose role grants read and write on the keys of the sluice cluster name
// (/sluice/NAME/) and nothing else.
func (s *Server) EnableAuth(name, user, password string) {
	s.t.Helper()
	cfg := clientv3.Config{Endpoints: s.Endpoints(), DialTimeout: 2 * time.Second, Logger: zap.NewNop()}
	if s.pki != nil {
		cfg.TLS = s.pki.ClientTLS(true)
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prefix := "/sluice/" + name + "/"
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", "root-secret"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.RoleAdd(ctx, "sluice-"+name); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, "sluice-"+name, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, user, password); return err },
		func() error { _, err := cli.UserGrantRole(ctx, user, "sluice-"+name); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			s.t.Fatalf("enabling etcd's auth, step %d of %d: %v", i+1, len(steps), err)
		}
	}
}
