package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/server/wire"
)

// TestServeAuthFlags: an address other than loopback needs --iam or --insecure-no-auth, and
// the error says so; --access-key does not go with --iam; a bad IAM file stops the start.
func TestServeAuthFlags(t *testing.T) {
	iam := filepath.Join(t.TempDir(), "iam.json")
	if err := os.WriteFile(iam, []byte(`{"users": [{"name": "a", "accessKeyId": "AK", "secretAccessKey": "s", "groups": []}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args   []string
		status int
		stderr []string
	}{
		{[]string{"--addr", "0.0.0.0:0"}, exitUsage, []string{"--addr 0.0.0.0:0 is not a loopback address", "--iam FILE", "--insecure-no-auth"}},
		{[]string{"--addr", ":4567"}, exitUsage, []string{"not a loopback address"}},
		{[]string{"--addr", "192.0.2.1:0"}, exitUsage, []string{"not a loopback address"}},
		{[]string{"--iam", iam, "--access-key", "K=111111111111"}, exitUsage, []string{"--access-key maps unverified keys"}},
		{[]string{"--iam", iam}, exitError, []string{"--iam " + iam + `: users[0]: unknown key "groups"`}},
		{[]string{"--iam", iam + ".missing"}, exitError, []string{"--iam: open"}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"serve", "--data-dir", t.TempDir()}, tt.args...)
			if status := run(args, &stdout, &stderr); status != tt.status {
				t.Errorf("status %d, want %d\nstderr: %s", status, tt.status, &stderr)
			}
			for _, want := range tt.stderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr %q does not contain %q", &stderr, want)
				}
			}
		})
	}
	for addr, want := range map[string]bool{"127.0.0.1:1": true, "[::1]:1": true, "localhost:1": true, "127.3.4.5:1": true,
		"0.0.0.0:1": false, "[::]:1": false, ":1": false, "example.com:1": false, "10.0.0.1:1": false} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v", addr, got)
		}
	}
	if err := checkAuth("0.0.0.0:1", "", true, false); err != nil {
		t.Errorf("--insecure-no-auth: %v", err)
	}
	if err := checkAuth("0.0.0.0:1", iam, false, false); err != nil {
		t.Errorf("--iam: %v", err)
	}
}

// TestServeIAMReload serves with --iam, and rotates a secret through the file and SIGHUP:
// the new secret works after the reload, the old one does not; a file that does not parse
// keeps the users loaded before and says why in the log.
func TestServeIAMReload(t *testing.T) {
	iam := filepath.Join(t.TempDir(), "iam.json")
	writeIAM := func(content string) {
		t.Helper()
		if err := os.WriteFile(iam, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	user := func(secret string) string {
		return `{"users": [{"name": "app", "accessKeyId": "AKIDAPP", "secretAccessKey": "` + secret + `", "policies": [{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}]}]}]}`
	}
	writeIAM(user("first"))
	cfg, err := newServeConfig("127.0.0.1:0", t.TempDir(), "none", "off")
	if err != nil {
		t.Fatal(err)
	}
	cfg.account, cfg.region, cfg.iamFile = "000000000000", "us-east-1", iam
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, &stdout, &stderr) }()
	var endpoint string
	for i := 0; i < 500 && endpoint == ""; i++ {
		if _, after, ok := strings.Cut(stdout.String(), "on http://"); ok {
			endpoint = "http://" + strings.Fields(after)[0]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve stopped: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if endpoint == "" {
		t.Fatalf("the server never said where it serves: %q", stdout.String())
	}
	call := func(secret string) error {
		c, err := client.New(client.Config{Endpoint: endpoint, Region: "us-east-1", Credentials: &client.Credentials{AccessKeyID: "AKIDAPP", SecretAccessKey: secret}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		err = c.CallKinesis(context.Background(), "ListStreams", nil, nil)
		return err
	}
	refused := func(err error) bool {
		var e *client.Error
		return errors.As(err, &e) && e.Code == wire.InvalidSignature
	}
	if err := call("first"); err != nil {
		t.Fatal(err)
	}
	writeIAM(user("second"))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload", func() bool { return strings.Contains(stderr.String(), "IAM file reloaded") })
	if err := call("second"); err != nil {
		t.Fatalf("new secret: %v", err)
	}
	if err := call("first"); !refused(err) {
		t.Fatalf("old secret after the reload: %v", err)
	}

	// The stream verbs sign with the AWS environment variables, or the shared credentials
	// file's profile.
	c, err := client.New(client.Config{Endpoint: endpoint, Region: "us-east-1", Credentials: &client.Credentials{AccessKeyID: "AKIDAPP", SecretAccessKey: "second"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.CreateStream(context.Background(), "verbs", 1); err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(creds, []byte("[work]\naws_access_key_id = AKIDAPP\naws_secret_access_key = second\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", creds)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDAPP")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "second")
	mustSluice(t, "", "put", "--stream", "verbs", "--partition-key", "k", "--endpoint", endpoint, "from-env")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	if status, _, errOut := sluice(t, "", "put", "--stream", "verbs", "--partition-key", "k", "--endpoint", endpoint, "refused"); status != exitError || !strings.Contains(errOut, "InvalidSignatureException") {
		t.Fatalf("put with a wrong secret: status %d, %s", status, errOut)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_PROFILE", "work")
	if out := mustSluice(t, "", "get", "--stream", "verbs", "--shard-id", "0", "--endpoint", endpoint); !strings.Contains(out, "from-env") || strings.Contains(out, "refused") {
		t.Fatalf("get with the shared credentials file's profile printed\n%s", out)
	}
	writeIAM(`{"users": [{"name": "app", "accesKeyId": "AKIDAPP"}]}`)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refused reload", func() bool { return strings.Contains(stderr.String(), "IAM file not reloaded") })
	if !strings.Contains(stderr.String(), `unknown key \"accesKeyId\"`) {
		t.Fatalf("the log does not say why: %s", stderr.String())
	}
	if err := call("second"); err != nil {
		t.Fatalf("after a refused reload: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// waitFor polls cond for up to 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
