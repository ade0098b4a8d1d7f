package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-streams/sluice/internal/sigv4"
	"github.com/sluice-streams/sluice/server/wire"
)

const (
	friendAccount = "111111111111"
	streamARNA    = "arn:aws:kinesis:us-east-1:" + testAccount + ":stream/a"
	streamARNB    = "arn:aws:kinesis:us-east-1:" + testAccount + ":stream/b"
)

// authzUsers is the IAM file of the authorisation tests: each user's name says what its
// policies allow.
var authzUsers = fmt.Sprintf(`{"users": [
 {"name": "admin", "accessKeyId": "AKadmin", "secretAccessKey": "s-admin", "policies": [%[1]s]},
 {"name": "writer", "accessKeyId": "AKwriter", "secretAccessKey": "s-writer", "policies": [
  {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["kinesis:PutRecord", "kinesis:PutRecords"], "Resource": "%[2]s"}]}]},
 {"name": "reader", "accessKeyId": "AKreader", "secretAccessKey": "s-reader", "policies": [
  {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["kinesis:Get*", "kinesis:DescribeStream*", "kinesis:ListShards"], "Resource": "*"}]}]},
 {"name": "denier", "accessKeyId": "AKdenier", "secretAccessKey": "s-denier", "policies": [%[1]s,
  {"Version": "2012-10-17", "Statement": [{"Sid": "NoDelete", "Effect": "Deny", "Action": "kinesis:DeleteStream", "Resource": "*"}]}]},
 {"name": "loopback", "accessKeyId": "AKloopback", "secretAccessKey": "s-loopback", "policies": [
  {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}}]}]},
 {"name": "office", "accessKeyId": "AKoffice", "secretAccessKey": "s-office", "policies": [
  {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}]},
 {"name": "tlsonly", "accessKeyId": "AKtlsonly", "secretAccessKey": "s-tlsonly", "policies": [
  {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]}]},
 {"name": "nobody", "accessKeyId": "AKnobody", "secretAccessKey": "s-nobody"},
 {"name": "friend", "accessKeyId": "AKfriend", "secretAccessKey": "s-friend", "account": "%[3]s", "policies": [
  {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["kinesis:PutRecord", "kinesis:GetShardIterator", "kinesis:GetRecords"], "Resource": "*"}]}]}
]}`, allowAll, streamARNA, friendAccount)

// authzServer starts a server verifying and authorising with authzUsers, over TLS when
// tlsConf is set.
func authzServer(t *testing.T, tlsConf *tls.Config) *h2Server {
	t.Helper()
	users, err := ParseIAM([]byte(authzUsers), testAccount)
	if err != nil {
		t.Fatal(err)
	}
	return startH2Server(t, Options{Authenticator: NewSigV4Verifier(testAccount, "us-east-1", users), TLSConfig: tlsConf})
}

// as returns an SDK client of hs signing as user, over HTTP/2 without TLS.
func as(hs *h2Server, user string) *kinesis.Client {
	return signingClient(hs.addr, "AK"+user, "s-"+user, h2cClient().Transport)
}

// wantDenied fails unless err is an AccessDeniedException whose message holds each of want.
func wantDenied(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if errorCode(err) != "AccessDeniedException" {
		t.Fatalf("%s: %v, want AccessDeniedException", what, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("%s: %v, want …%s…", what, err, w)
		}
	}
}

func mustOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// recordsIn reads shard 0 of a stream from the trim horizon as kc and returns the records.
func recordsIn(t *testing.T, kc *kinesis.Client, name string) []types.Record {
	t.Helper()
	c := ctx(t)
	it, err := kc.GetShardIterator(c, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: aws.String("shardId-000000000000"),
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	mustOK(t, "GetShardIterator of "+name, err)
	out, err := kc.GetRecords(c, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
	mustOK(t, "GetRecords of "+name, err)
	return out.Records
}

func put(kc *kinesis.Client, c context.Context, name, data string) error {
	_, err := kc.PutRecord(c, &kinesis.PutRecordInput{StreamName: aws.String(name), PartitionKey: aws.String("k"), Data: []byte(data)})
	return err
}

func createAB(t *testing.T, admin *kinesis.Client) {
	t.Helper()
	for _, name := range []string{"a", "b"} {
		_, err := admin.CreateStream(ctx(t), &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(1)})
		mustOK(t, "CreateStream "+name, err)
	}
}

// TestAuthzWrite: a user allowed PutRecord and PutRecords on stream a puts to a; its puts to
// b are AccessDeniedException and write nothing, as is any control-plane call.
func TestAuthzWrite(t *testing.T) {
	hs := authzServer(t, nil)
	admin, writer := as(hs, "admin"), as(hs, "writer")
	c := ctx(t)
	createAB(t, admin)
	mustOK(t, "PutRecord to a", put(writer, c, "a", "one"))
	_, err := writer.PutRecords(c, &kinesis.PutRecordsInput{StreamARN: aws.String(streamARNA), Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("k"), Data: []byte("two")}}})
	mustOK(t, "PutRecords to a", err)
	wantDenied(t, "PutRecord to b", put(writer, c, "b", "x"),
		"User: arn:aws:iam::"+testAccount+":user/writer is not authorized to perform: kinesis:PutRecord on resource: "+streamARNB+
			" because no identity-based policy allows the kinesis:PutRecord action")
	_, err = writer.PutRecords(c, &kinesis.PutRecordsInput{StreamName: aws.String("b"), Records: []types.PutRecordsRequestEntry{
		{PartitionKey: aws.String("k"), Data: []byte("x")}}})
	wantDenied(t, "PutRecords to b", err, "kinesis:PutRecords on resource: "+streamARNB)
	_, err = writer.DeleteStream(c, &kinesis.DeleteStreamInput{StreamName: aws.String("a")})
	wantDenied(t, "DeleteStream by the writer", err, "kinesis:DeleteStream")
	// A stream that does not exist is denied, not reported missing.
	wantDenied(t, "PutRecord to a missing stream", put(writer, c, "nope", "x"), "stream/nope")
	if n := len(recordsIn(t, admin, "a")); n != 2 {
		t.Fatalf("stream a holds %d records, want 2", n)
	}
	if n := len(recordsIn(t, admin, "b")); n != 0 {
		t.Fatalf("stream b holds %d records after denied puts", n)
	}
}

// TestAuthzRead: a reader with kinesis:Get*, kinesis:DescribeStream* and kinesis:ListShards
// describes, lists and reads, and cannot put, delete, tag or register a consumer.
func TestAuthzRead(t *testing.T) {
	hs := authzServer(t, nil)
	admin, reader := as(hs, "admin"), as(hs, "reader")
	c := ctx(t)
	createAB(t, admin)
	mustOK(t, "admin PutRecord", put(admin, c, "a", "one"))
	_, err := reader.DescribeStream(c, &kinesis.DescribeStreamInput{StreamName: aws.String("a")})
	mustOK(t, "DescribeStream", err)
	_, err = reader.DescribeStreamSummary(c, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("a")})
	mustOK(t, "DescribeStreamSummary", err)
	_, err = reader.ListShards(c, &kinesis.ListShardsInput{StreamName: aws.String("a")})
	mustOK(t, "ListShards", err)
	if n := len(recordsIn(t, reader, "a")); n != 1 {
		t.Fatalf("reader read %d records, want 1", n)
	}
	wantDenied(t, "reader PutRecord", put(reader, c, "a", "x"), "kinesis:PutRecord")
	_, err = reader.DeleteStream(c, &kinesis.DeleteStreamInput{StreamName: aws.String("a")})
	wantDenied(t, "reader DeleteStream", err, "kinesis:DeleteStream")
	_, err = reader.ListStreams(c, &kinesis.ListStreamsInput{})
	wantDenied(t, "reader ListStreams", err, "kinesis:ListStreams on resource: *")
	if _, err := admin.DescribeStreamSummary(c, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("a")}); err != nil {
		t.Fatalf("stream a after the reader's DeleteStream: %v", err)
	}
}

// TestAuthzExplicitDeny: a Deny statement wins over an Allow of every action.
func TestAuthzExplicitDeny(t *testing.T) {
	hs := authzServer(t, nil)
	admin, denier := as(hs, "admin"), as(hs, "denier")
	c := ctx(t)
	createAB(t, admin)
	mustOK(t, "denier PutRecord", put(denier, c, "a", "x"))
	_, err := denier.DeleteStream(c, &kinesis.DeleteStreamInput{StreamName: aws.String("a")})
	wantDenied(t, "denier DeleteStream", err, "kinesis:DeleteStream on resource: "+streamARNA+" with an explicit deny in an identity-based policy")
	if _, err := admin.DescribeStreamSummary(c, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("a")}); err != nil {
		t.Fatalf("stream a after a denied DeleteStream: %v", err)
	}
}

// TestAuthzConditions: aws:SourceIp (the connection's address, 127.0.0.1 here) and
// aws:SecureTransport (TLS, over HTTP/2 and HTTP/1.1).
func TestAuthzConditions(t *testing.T) {
	hs := authzServer(t, nil)
	c := ctx(t)
	_, err := as(hs, "loopback").ListStreams(c, &kinesis.ListStreamsInput{})
	mustOK(t, "ListStreams from 127.0.0.0/8", err)
	_, err = as(hs, "office").ListStreams(c, &kinesis.ListStreamsInput{})
	wantDenied(t, "ListStreams outside 10.0.0.0/8", err, "user/office")
	_, err = as(hs, "tlsonly").ListStreams(c, &kinesis.ListStreamsInput{})
	wantDenied(t, "ListStreams without TLS", err, "user/tlsonly")

	cert, pool := testCert(t)
	hst := authzServer(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	for _, tt := range []struct {
		proto string
		rt    http.RoundTripper
	}{
		{"HTTP/2", &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}},
		{"HTTP/1.1", http1Client(&tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}).Transport},
	} {
		kc := kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String("https://" + hst.addr),
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: "AKtlsonly", SecretAccessKey: "s-tlsonly"}, nil
			}), RetryMaxAttempts: 1, HTTPClient: &http.Client{Transport: tt.rt}})
		_, err := kc.ListStreams(c, &kinesis.ListStreamsInput{})
		mustOK(t, "ListStreams over TLS, "+tt.proto, err)
	}
}

// TestAuthzCrossAccount: a user of another account needs an Allow on both sides: its
// identity policy alone is not enough; a resource policy on stream a naming it grants it a,
// not b. Its shard iterators are its own: another account's user cannot use them, nor it
// theirs.
func TestAuthzCrossAccount(t *testing.T) {
	hs := authzServer(t, nil)
	admin, friend := as(hs, "admin"), as(hs, "friend")
	c := ctx(t)
	createAB(t, admin)
	wantDenied(t, "friend PutRecord without a resource policy", put(friend, c, "a", "x"),
		"User: arn:aws:iam::"+friendAccount+":user/friend is not authorized to perform: kinesis:PutRecord on resource: "+streamARNA+
			" because no resource-based policy allows the kinesis:PutRecord action")
	policy := `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::` + friendAccount +
		`:user/friend"}, "Action": ["kinesis:PutRecord", "kinesis:GetShardIterator", "kinesis:GetRecords"], "Resource": "` + streamARNA + `"}]}`
	_, err := admin.PutResourcePolicy(c, &kinesis.PutResourcePolicyInput{ResourceARN: aws.String(streamARNA), Policy: aws.String(policy)})
	mustOK(t, "PutResourcePolicy", err)
	mustOK(t, "friend PutRecord to a", put(friend, c, "a", "from the friend"))
	wantDenied(t, "friend PutRecord to b", put(friend, c, "b", "x"), "stream/b")
	if recs := recordsIn(t, friend, "a"); len(recs) != 1 || string(recs[0].Data) != "from the friend" {
		t.Fatalf("friend reads %d records of a", len(recs))
	}

	// Iterators: each account's refused to the other.
	itOf := func(kc *kinesis.Client) *string {
		it, err := kc.GetShardIterator(c, &kinesis.GetShardIteratorInput{StreamName: aws.String("a"), ShardId: aws.String("shardId-000000000000"),
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		mustOK(t, "GetShardIterator", err)
		return it.ShardIterator
	}
	friendIt, adminIt := itOf(friend), itOf(admin)
	_, err = admin.GetRecords(c, &kinesis.GetRecordsInput{ShardIterator: friendIt})
	wantDenied(t, "admin GetRecords with the friend's iterator", err, "user/admin is not authorized to use a shard iterator issued to account "+friendAccount)
	_, err = friend.GetRecords(c, &kinesis.GetRecordsInput{ShardIterator: adminIt})
	wantDenied(t, "friend GetRecords with the admin's iterator", err, "issued to account "+testAccount)
	out, err := friend.GetRecords(c, &kinesis.GetRecordsInput{ShardIterator: friendIt})
	mustOK(t, "friend GetRecords with its own iterator", err)
	if _, err := admin.GetRecords(c, &kinesis.GetRecordsInput{ShardIterator: out.NextShardIterator}); errorCode(err) != "AccessDeniedException" {
		t.Fatalf("admin GetRecords with the friend's next iterator: %v", err)
	}

	// Removing the resource policy removes the grant at once.
	_, err = admin.DeleteResourcePolicy(c, &kinesis.DeleteResourcePolicyInput{ResourceARN: aws.String(streamARNA)})
	mustOK(t, "DeleteResourcePolicy", err)
	wantDenied(t, "friend PutRecord after the policy's removal", put(friend, c, "a", "x"), "no resource-based policy")
}

// TestAuthzConsumers: RegisterStreamConsumer and SubscribeToShard are authorised, the latter
// on the consumer's ARN; a reader may describe the consumer (DescribeStream*) but not
// subscribe.
func TestAuthzConsumers(t *testing.T) {
	hs := authzServer(t, nil)
	admin, reader := as(hs, "admin"), as(hs, "reader")
	c := ctx(t)
	createAB(t, admin)
	_, err := reader.RegisterStreamConsumer(c, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(streamARNA), ConsumerName: aws.String("app")})
	wantDenied(t, "reader RegisterStreamConsumer", err, "kinesis:RegisterStreamConsumer on resource: "+streamARNA)
	reg, err := admin.RegisterStreamConsumer(c, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(streamARNA), ConsumerName: aws.String("app")})
	mustOK(t, "admin RegisterStreamConsumer", err)
	_, err = reader.DescribeStreamConsumer(c, &kinesis.DescribeStreamConsumerInput{StreamARN: aws.String(streamARNA), ConsumerName: aws.String("app")})
	mustOK(t, "reader DescribeStreamConsumer", err)
	in := &kinesis.SubscribeToShardInput{ConsumerARN: reg.Consumer.ConsumerARN, ShardId: aws.String("shardId-000000000000"),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}}
	_, err = reader.SubscribeToShard(c, in)
	wantDenied(t, "reader SubscribeToShard", err, "kinesis:SubscribeToShard on resource: "+aws.ToString(reg.Consumer.ConsumerARN))
	out, err := admin.SubscribeToShard(c, in)
	mustOK(t, "admin SubscribeToShard", err)
	out.GetStream().Close()
	_, err = reader.DeregisterStreamConsumer(c, &kinesis.DeregisterStreamConsumerInput{ConsumerARN: reg.Consumer.ConsumerARN})
	wantDenied(t, "reader DeregisterStreamConsumer", err, "kinesis:DeregisterStreamConsumer")
}

// TestAuthzPoliciesAndTags: the resource operations are authorised on their ResourceARN.
func TestAuthzPoliciesAndTags(t *testing.T) {
	hs := authzServer(t, nil)
	admin, writer, reader := as(hs, "admin"), as(hs, "writer"), as(hs, "reader")
	c := ctx(t)
	createAB(t, admin)
	_, err := writer.TagResource(c, &kinesis.TagResourceInput{ResourceARN: aws.String(streamARNA), Tags: map[string]string{"k": "v"}})
	wantDenied(t, "writer TagResource", err, "kinesis:TagResource on resource: "+streamARNA)
	_, err = admin.TagResource(c, &kinesis.TagResourceInput{ResourceARN: aws.String(streamARNA), Tags: map[string]string{"k": "v"}})
	mustOK(t, "admin TagResource", err)
	_, err = reader.ListTagsForResource(c, &kinesis.ListTagsForResourceInput{ResourceARN: aws.String(streamARNA)})
	wantDenied(t, "reader ListTagsForResource", err, "kinesis:ListTagsForResource")
	_, err = writer.PutResourcePolicy(c, &kinesis.PutResourcePolicyInput{ResourceARN: aws.String(streamARNA),
		Policy: aws.String(`{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kinesis:*", "Resource": "*"}]}`)})
	wantDenied(t, "writer PutResourcePolicy", err, "kinesis:PutResourcePolicy")
	p, err := reader.GetResourcePolicy(c, &kinesis.GetResourcePolicyInput{ResourceARN: aws.String(streamARNA)})
	if err != nil || aws.ToString(p.Policy) != "{}" {
		t.Fatalf("reader GetResourcePolicy: %v %v; want the empty policy: the writer's was refused", p, err)
	}
}

// TestAuthzNative: a native put is a kinesis:PutRecords on the stream: the writer's put to
// a passes, the reader's is refused with AccessDeniedException and writes nothing.
func TestAuthzNative(t *testing.T) {
	hs := authzServer(t, nil)
	admin := as(hs, "admin")
	createAB(t, admin)
	body := putBody("a", []wire.PutRecord{{Key: []byte("k"), Data: []byte("native")}})
	send := func(user string) *http.Response { return signedPost(t, hs.addr, user, wire.PathPut, "", body) }
	if resp := send("writer"); resp.StatusCode != 200 {
		t.Fatalf("writer's native put: %d %s", resp.StatusCode, resp.Header.Get(wire.HeaderError))
	}
	if resp := send("reader"); resp.Header.Get(wire.HeaderError) != "AccessDeniedException" {
		t.Fatalf("reader's native put: %d %s, want AccessDeniedException", resp.StatusCode, resp.Header.Get(wire.HeaderError))
	}
	if n := len(recordsIn(t, admin, "a")); n != 1 {
		t.Fatalf("stream a holds %d records, want the writer's one", n)
	}
}

// signedPost posts body to path as user, with X-Amz-Target target unless it is "".
func signedPost(t *testing.T, addr, user, path, target string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if target != "" {
		req.Header.Set("Content-Type", jsonContentType)
		req.Header.Set("X-Amz-Target", targetPrefix+target)
	} else {
		req.Header.Set("Content-Type", wire.ContentType)
	}
	h := sigv4.PayloadHash(body)
	if err := v4.NewSigner().SignHTTP(ctx(t), aws.Credentials{AccessKeyID: "AK" + user, SecretAccessKey: "s-" + user}, req, string(h[:]), "kinesis", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestAuthzEveryOperation sends every operation of the API, well formed, as a user with no
// policy: each is an AccessDeniedException, so no handler answers without authorising.
func TestAuthzEveryOperation(t *testing.T) {
	hs := authzServer(t, nil)
	admin := as(hs, "admin")
	c := ctx(t)
	createAB(t, admin)
	reg, err := admin.RegisterStreamConsumer(c, &kinesis.RegisterStreamConsumerInput{StreamARN: aws.String(streamARNA), ConsumerName: aws.String("app")})
	mustOK(t, "RegisterStreamConsumer", err)
	it, err := admin.GetShardIterator(c, &kinesis.GetShardIteratorInput{StreamName: aws.String("a"), ShardId: aws.String("shardId-000000000000"),
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	mustOK(t, "GetShardIterator", err)
	generic := fmt.Sprintf(`{"StreamName": "a", "ShardCount": 1, "ShardId": "shardId-000000000000", "ShardIteratorType": "TRIM_HORIZON",
		"ResourceARN": %[1]q, "StreamARN": %[1]q, "ConsumerName": "app", "Tags": {"k": "v"}, "TagKeys": ["k"], "Policy": "{}", "RetentionPeriodHours": 48,
		"ShardToSplit": "shardId-000000000000", "NewStartingHashKey": "1", "ShardToMerge": "shardId-000000000000",
		"AdjacentShardToMerge": "shardId-000000000001", "TargetShardCount": 2, "ScalingType": "UNIFORM_SCALING", "EncryptionType": "KMS",
		"KeyId": "k", "StreamModeDetails": {"StreamMode": "ON_DEMAND"}, "MaxRecordSizeInKiB": 2048, "ShardLevelMetrics": ["ALL"],
		"MinimumThroughputBillingCommitment": {"Status": "ENABLED"}, "WarmThroughputMiBps": 10}`, streamARNA)
	bodies := map[string]string{
		"PutRecord":                `{"StreamName": "a", "PartitionKey": "k", "Data": "eA=="}`,
		"PutRecords":               `{"StreamName": "a", "Records": [{"PartitionKey": "k", "Data": "eA=="}]}`,
		"GetRecords":               `{"ShardIterator": "` + aws.ToString(it.ShardIterator) + `"}`,
		"DescribeStreamConsumer":   `{"ConsumerARN": "` + aws.ToString(reg.Consumer.ConsumerARN) + `"}`,
		"DeregisterStreamConsumer": `{"ConsumerARN": "` + aws.ToString(reg.Consumer.ConsumerARN) + `"}`,
		"SubscribeToShard": `{"ConsumerARN": "` + aws.ToString(reg.Consumer.ConsumerARN) +
			`", "ShardId": "shardId-000000000000", "StartingPosition": {"Type": "TRIM_HORIZON"}}`,
		"UpdateStreamMode":    `{"StreamARN": "` + streamARNA + `", "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}`,
		"UpdateMaxRecordSize": `{"StreamARN": "` + streamARNA + `", "MaxRecordSizeInKiB": 2048}`,
		"ListStreamConsumers": `{"StreamARN": "` + streamARNA + `"}`,
	}
	ops := slices.Sorted(maps.Keys(operations))
	ops = append(ops, "SubscribeToShard")
	for _, op := range ops {
		body, ok := bodies[op]
		if !ok {
			body = generic
		}
		resp := signedPost(t, hs.addr, "nobody", "/", op, []byte(body))
		if got := resp.Header.Get("X-Amzn-ErrorType"); got != "AccessDeniedException" {
			t.Errorf("%s as a user with no policy: %d %s, want AccessDeniedException", op, resp.StatusCode, got)
		}
	}
	if n := len(recordsIn(t, admin, "a")); n != 0 {
		t.Fatalf("stream a holds %d records after denied calls", n)
	}
}
