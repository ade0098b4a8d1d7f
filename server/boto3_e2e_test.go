package server

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestBoto3Signed runs testdata/boto3/kinesis.py, which drives a server that verifies and
// authorises with boto3 (botocore's signer): an admin's CreateStream and PutRecord and a
// reader's GetShardIterator and GetRecords pass; the reader's PutRecord and DeleteStream are
// AccessDeniedException; a wrong secret is InvalidSignatureException; requests presigned in
// the query string by botocore's SigV4QueryAuth pass with the right secret and are refused
// with a wrong one or without the permission; and no refused call wrote a record. It needs
// python3 with boto3 (Debian's python3-boto3), and fails without them under
// SLUICE_REQUIRE_BOTO3 (.ci/run).
func TestBoto3Signed(t *testing.T) {
	py := lookTool(t, "python3", "SLUICE_REQUIRE_BOTO3", "")
	// The python3 on PATH may be a user's own (a virtualenv, pyenv) without boto3 while the
	// system's, where Debian's python3-boto3 installs it, has it: take the first that does.
	var missing []string
	for i, cand := range []string{py, "/usr/bin/python3"} {
		if i > 0 && cand == py {
			break
		}
		out, err := exec.Command(cand, "-c", "import boto3").CombinedOutput()
		if err == nil {
			py, missing = cand, nil
			break
		}
		missing = append(missing, cand+" cannot import boto3: "+string(bytes.TrimSpace(out)))
	}
	if missing != nil {
		lookTool(t, "python3", "SLUICE_REQUIRE_BOTO3", strings.Join(missing, "; ")+" (Debian's package python3-boto3)")
	}
	hs := authzServer(t, nil)

	c, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(c, py, "testdata/boto3/kinesis.py")
	cmd.Env = append(os.Environ(), "ENDPOINT=http://"+hs.addr, "STREAM=py",
		"ADMIN_KEY=AKadmin", "ADMIN_SECRET=s-admin", "READER_KEY=AKreader", "READER_SECRET=s-reader",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("python3 kinesis.py: %v\nstdout: %s\nstderr: %s", err, stdout.Bytes(), stderr.Bytes())
	}
	var got map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("kinesis.py printed %q: %v", stdout.Bytes(), err)
	}
	want := map[string]any{
		"putShard":              "shardId-000000000000",
		"read":                  []any{"boto3 record"},
		"readerPut":             "AccessDeniedException",
		"readerDelete":          "AccessDeniedException",
		"wrongSecretPut":        "InvalidSignatureException",
		"wrongSecretList":       "InvalidSignatureException",
		"presignedPut":          []any{float64(200), "shardId-000000000000"},
		"presignedWrongSecret":  []any{float64(400), "InvalidSignatureException"},
		"presignedReaderDelete": []any{float64(400), "AccessDeniedException"},
		"after":                 []any{"boto3 record", "presigned"},
	}
	for k, w := range want {
		if !reflect.DeepEqual(got[k], w) {
			t.Errorf("%s: %v, want %v", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("kinesis.py printed %d results, want %d: %v", len(got), len(want), got)
	}
}
