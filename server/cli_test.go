package server

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/stream"
)

// TestAWSCLISeedSession runs the AWS CLI commands of the user's notes, verbatim but for
// --endpoint-url, against a real listener. It needs the `aws` command: .ci/run installs it
// (Debian's awscli) and sets SLUICE_REQUIRE_AWSCLI=1, under which a missing command fails the
// test; on a developer's machine without it the test is skipped.
func TestAWSCLISeedSession(t *testing.T) {
	awsPath := lookTool(t, "aws", "SLUICE_REQUIRE_AWSCLI", "")
	eng, err := stream.Open(stream.Options{Dir: t.TempDir(), Durability: segment.Durability{Mode: segment.Sync}})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(eng, Options{})
	go srv.Serve(ln)
	defer srv.Shutdown()
	endpoint := "http://" + ln.Addr().String()
	// AWS CLI v2 (Debian's awscli) reads --data as base64 unless told to take it raw, as v1
	// does; v1 ignores the setting.
	config := t.TempDir() + "/config"
	if err := os.WriteFile(config, []byte("[default]\ncli_binary_format = raw-in-base64-out\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) map[string]any {
		t.Helper()
		cmd := exec.Command(awsPath, append(append([]string{"kinesis"}, args...), "--endpoint-url", endpoint, "--output", "json")...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local", "AWS_DEFAULT_REGION=us-east-1",
			"AWS_CONFIG_FILE="+config, "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=")
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("aws kinesis %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		var v map[string]any
		if len(strings.TrimSpace(string(out))) > 0 {
			if err := json.Unmarshal(out, &v); err != nil {
				t.Fatalf("aws kinesis %s printed %q: %v", strings.Join(args, " "), out, err)
			}
		}
		return v
	}
	run("create-stream", "--stream-name", "notes", "--shard-count", "1")
	put := run("put-record", "--stream-name", "notes", "--partition-key", "user1", "--data", "hello")
	if put["ShardId"] != "shardId-000000000000" {
		t.Fatalf("put-record: %v", put)
	}
	desc := run("describe-stream", "--stream-name", "notes")
	sd := desc["StreamDescription"].(map[string]any)
	if sd["StreamStatus"] != "ACTIVE" || len(sd["Shards"].([]any)) != 1 {
		t.Fatalf("describe-stream: %v", desc)
	}
	it := run("get-shard-iterator", "--stream-name", "notes", "--shard-id", "shardId-000000000000", "--shard-iterator-type", "TRIM_HORIZON")
	next, _ := it["ShardIterator"].(string)
	var seen []string
	for range 5 {
		recs := run("get-records", "--shard-iterator", next)
		for _, r := range recs["Records"].([]any) {
			seen = append(seen, r.(map[string]any)["SequenceNumber"].(string))
		}
		next, _ = recs["NextShardIterator"].(string)
		if next == "" || len(seen) > 0 {
			break
		}
	}
	if len(seen) != 1 || seen[0] != put["SequenceNumber"] {
		t.Fatalf("get-records read %v, want the record put (%v)", seen, put["SequenceNumber"])
	}
}
