package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// jsDir holds the JavaScript test: kinesis.mjs and its pinned dependencies (package.json,
// package-lock.json); `npm ci --prefix server/testdata/jskinesis` installs them (.ci/run does).
const jsDir = "testdata/jskinesis"

// runJS runs kinesis.mjs against the server at addr with the given extra environment and
// returns the JSON line it printed last.
func runJS(t *testing.T, addr string, env ...string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "kinesis.mjs")
	cmd.Dir = jsDir
	cmd.Env = append(os.Environ(), append([]string{"ENDPOINT=http://" + addr, "ACCOUNT=" + testAccount,
		"AWS_ACCESS_KEY_ID=" + testKey, "AWS_SECRET_ACCESS_KEY=" + testSecret}, env...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	lines := bytes.Split(bytes.TrimSpace(stdout.Bytes()), []byte("\n"))
	var out map[string]any
	if jerr := json.Unmarshal(lines[len(lines)-1], &out); jerr != nil || err != nil {
		t.Fatalf("node kinesis.mjs: %v\nstdout: %s\nstderr: %s", err, stdout.Bytes(), stderr.Bytes())
	}
	return out
}

// TestJSSDK drives a server that verifies signatures with the AWS SDK for JavaScript v3 over
// HTTP/2: its signed PutRecords, ListShards, GetShardIterator, GetRecords,
// RegisterStreamConsumer and SubscribeToShard (an event stream) work, every record comes
// back through GetRecords and through the subscription, and a wrong secret is
// InvalidSignatureException. Without node and the installed packages the test cannot run:
// it fails when SLUICE_REQUIRE_NODE is set (as .ci/run sets it), and is skipped otherwise.
func TestJSSDK(t *testing.T) {
	missing := ""
	if _, err := os.Stat(filepath.Join(jsDir, "node_modules", "@aws-sdk", "client-kinesis")); err != nil {
		missing = "the SDK's packages are not installed: run npm ci --prefix server/" + jsDir
	}
	lookTool(t, "node", "SLUICE_REQUIRE_NODE", missing)
	hs := startH2Server(t, Options{Authenticator: NewSigV4Verifier(testAccount, "us-east-1", testUsers())})
	const n = 25
	out := runJS(t, hs.addr, "STREAM=js", fmt.Sprintf("RECORDS=%d", n))
	if out["error"] != nil || out["failed"] != float64(0) || out["put"] != float64(n) {
		t.Fatalf("PutRecords through the JS SDK: %v", out)
	}
	for _, field := range []string{"read", "pushed"} {
		got, _ := out[field].([]any)
		if len(got) != n {
			t.Fatalf("%s: %d records, want %d: %v", field, len(got), n, out)
		}
		for i, r := range got {
			if r != fmt.Sprintf("js record %d", i) {
				t.Fatalf("%s record %d: %q", field, i, r)
			}
		}
	}
	if out := runJS(t, hs.addr, "MODE=wrong-secret"); out["error"] != "InvalidSignatureException" {
		t.Fatalf("a wrong secret through the JS SDK: %v, want InvalidSignatureException", out)
	}
}
