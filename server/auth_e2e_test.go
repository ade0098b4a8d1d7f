package server

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// signingClient returns an AWS SDK for Go v2 client of addr signing with key and secret (none
// when key is ""), over rt.
func signingClient(addr, key, secret string, rt http.RoundTripper) *kinesis.Client {
	var creds aws.CredentialsProvider = aws.AnonymousCredentials{}
	if key != "" {
		creds = aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: key, SecretAccessKey: secret}, nil
		})
	}
	return kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr),
		Credentials: creds, RetryMaxAttempts: 1, HTTPClient: &http.Client{Transport: rt}})
}

// errorCode returns the AWS error name of an SDK error.
func errorCode(err error) string {
	var ae interface{ ErrorCode() string }
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// TestSDKSigned runs a server that verifies signatures and drives it with the AWS SDK for Go
// v2 over HTTP/1.1 and over HTTP/2 (h2c): its signed requests pass (the event stream of
// SubscribeToShard included, over HTTP/2), a wrong secret is InvalidSignatureException, an
// unknown key UnrecognizedClientException and no signature MissingAuthenticationTokenException.
func TestSDKSigned(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			hs := startH2Server(t, Options{Authenticator: NewSigV4Verifier(testAccount, "us-east-1", testUsers())})
			rt := http1Client(nil).Transport
			if proto == "HTTP/2" {
				rt = h2cClient().Transport
			}
			counter := &protoCounter{rt: rt}
			kc := signingClient(hs.addr, testKey, testSecret, counter)
			c := ctx(t)
			if _, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}); err != nil {
				t.Fatal(err)
			}
			if _, err := kc.PutRecord(c, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("one")}); err != nil {
				t.Fatal(err)
			}
			if _, err := kc.PutRecords(c, &kinesis.PutRecordsInput{StreamName: aws.String("s"), Records: []types.PutRecordsRequestEntry{
				{PartitionKey: aws.String("k"), Data: []byte("two")}, {PartitionKey: aws.String("k"), Data: []byte("three")}}}); err != nil {
				t.Fatal(err)
			}
			it, err := kc.GetShardIterator(c, &kinesis.GetShardIteratorInput{StreamName: aws.String("s"), ShardId: aws.String("shardId-000000000000"),
				ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
			if err != nil {
				t.Fatal(err)
			}
			recs, err := kc.GetRecords(c, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
			if err != nil || len(recs.Records) != 3 {
				t.Fatalf("GetRecords: %d records, %v", len(recs.Records), err)
			}
			if proto == "HTTP/2" {
				sdkSubscribeOne(t, kc)
			}
			if counter.h1.Load() > 0 && proto == "HTTP/2" || counter.h2.Load() > 0 && proto == "HTTP/1.1" {
				t.Fatalf("answers over HTTP/1 %d, HTTP/2 %d", counter.h1.Load(), counter.h2.Load())
			}

			for _, bad := range []struct{ key, secret, want string }{
				{testKey, "wrong", "InvalidSignatureException"},
				{"AKIDNOBODY", testSecret, "UnrecognizedClientException"},
				{"", "", "MissingAuthenticationTokenException"},
			} {
				bc := signingClient(hs.addr, bad.key, bad.secret, rt)
				if _, err := bc.ListStreams(c, &kinesis.ListStreamsInput{}); errorCode(err) != bad.want {
					t.Errorf("key %q secret %q: %v, want %s", bad.key, bad.secret, err, bad.want)
				}
				if _, err := bc.PutRecord(c, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("refused")}); errorCode(err) != bad.want {
					t.Errorf("put with key %q secret %q: %v, want %s", bad.key, bad.secret, err, bad.want)
				}
			}
			sum, err := kc.DescribeStreamSummary(c, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
			if err != nil {
				t.Fatal(err)
			}
			if n := aws.ToInt32(sum.StreamDescriptionSummary.OpenShardCount); n != 1 {
				t.Fatalf("open shards %d", n)
			}
			recs, err = kc.GetRecords(c, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
			if err != nil || len(recs.Records) < 3 || len(recs.Records) > 4 {
				t.Fatalf("after the refused puts: %d records, %v", len(recs.Records), err)
			}
			for _, r := range recs.Records {
				if string(r.Data) == "refused" {
					t.Fatal("a refused put was written")
				}
			}
		})
	}
}

// sdkSubscribeOne subscribes to the stream s's shard through a registered consumer and reads
// one pushed record.
func sdkSubscribeOne(t *testing.T, kc *kinesis.Client) {
	t.Helper()
	c := ctx(t)
	sum, err := kc.DescribeStreamSummary(c, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := kc.RegisterStreamConsumer(c, &kinesis.RegisterStreamConsumerInput{StreamARN: sum.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String("app")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := kc.SubscribeToShard(c, &kinesis.SubscribeToShardInput{ConsumerARN: reg.Consumer.ConsumerARN, ShardId: aws.String("shardId-000000000000"),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}})
	if err != nil {
		t.Fatal(err)
	}
	events := out.GetStream()
	defer events.Close()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-events.Events():
			if !ok {
				t.Fatalf("stream ended: %v", events.Err())
			}
			if e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent); isEvent && len(e.Value.Records) > 0 {
				return
			}
		case <-deadline:
			t.Fatal("no record pushed")
		}
	}
}

// TestAWSCLISigned runs the AWS CLI (botocore's signer) against a server that verifies
// signatures: the right secret passes, a wrong one is InvalidSignatureException and an
// unknown key UnrecognizedClientException. Like TestAWSCLISeedSession it needs the `aws`
// command, and fails without it under SLUICE_REQUIRE_AWSCLI (.ci/run).
func TestAWSCLISigned(t *testing.T) {
	awsPath := lookTool(t, "aws", "SLUICE_REQUIRE_AWSCLI", "")
	hs := startH2Server(t, Options{Authenticator: NewSigV4Verifier(testAccount, "us-east-1", testUsers())})
	run := func(key, secret string, args ...string) (string, error) {
		cmd := exec.Command(awsPath, append(append([]string{"kinesis"}, args...), "--endpoint-url", "http://"+hs.addr, "--output", "json")...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+key, "AWS_SECRET_ACCESS_KEY="+secret, "AWS_DEFAULT_REGION=us-east-1",
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=", "AWS_MAX_ATTEMPTS=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(testKey, testSecret, "create-stream", "--stream-name", "cli", "--shard-count", "1"); err != nil {
		t.Fatalf("create-stream: %v\n%s", err, out)
	}
	if out, err := run(testKey, testSecret, "put-record", "--stream-name", "cli", "--partition-key", "k", "--data", "aGVsbG8="); err != nil || !strings.Contains(out, "shardId-000000000000") {
		t.Fatalf("put-record: %v\n%s", err, out)
	}
	if out, err := run(testKey, testSecret, "list-streams"); err != nil || !strings.Contains(out, `"cli"`) {
		t.Fatalf("list-streams: %v\n%s", err, out)
	}
	for _, bad := range []struct{ key, secret, want string }{
		{testKey, "wrong", "InvalidSignatureException"},
		{"AKIDNOBODY", testSecret, "UnrecognizedClientException"},
	} {
		if out, err := run(bad.key, bad.secret, "list-streams"); err == nil || !strings.Contains(out, bad.want) {
			t.Errorf("key %q secret %q: %v\n%s\nwant %s", bad.key, bad.secret, err, out, bad.want)
		}
	}
}
