package server

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/stream"
)

// startKeyringServer is startServer with the engine's keyring in keyringDir ("" the default)
// and a native client of the same listener.
func startKeyringServer(t *testing.T, dir, keyringDir string) (*kinesis.Client, *nativeEnv, func()) {
	t.Helper()
	eng, err := stream.Open(stream.Options{Dir: dir, Durability: segment.Durability{Mode: segment.Sync},
		Limits: stream.Limits{Off: true}, KeyringDir: keyringDir})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(eng, Options{})
	go srv.Serve(ln)
	addr := ln.Addr().String()
	kc := kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr),
		Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1})
	native := &nativeEnv{addr: addr, c: &fasthttp.HostClient{Addr: addr, MaxResponseBodySize: 64 << 20}}
	return kc, native, func() {
		srv.Shutdown()
		eng.Close()
	}
}

// dataDirHolds reports whether any file under dir contains s.
func dataDirHolds(t *testing.T, dir string, s []byte) bool {
	t.Helper()
	found := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		found = found || bytes.Contains(b, s)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestSDKEncryptionAtRest writes markers through the Kinesis API with encryption on and off,
// looks for them in every file of the data directory, and reads them back through
// GetRecords and the native get, across a restart and with the wrong keyring.
func TestSDKEncryptionAtRest(t *testing.T) {
	dir := t.TempDir()
	kc, native, stop := startKeyringServer(t, dir, "")
	c := ctx(t)
	name := aws.String("vault")
	if _, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: name, ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	var notFound *types.KMSNotFoundException
	if _, err := kc.StartStreamEncryption(c, &kinesis.StartStreamEncryptionInput{StreamName: name, EncryptionType: types.EncryptionTypeKms,
		KeyId: aws.String("alias/no-such-key")}); !errors.As(err, &notFound) {
		t.Fatalf("StartStreamEncryption with an unknown key: %v", err)
	}
	if _, err := kc.StartStreamEncryption(c, &kinesis.StartStreamEncryptionInput{StreamName: name, EncryptionType: types.EncryptionTypeKms,
		KeyId: aws.String("alias/aws/kinesis")}); err != nil {
		t.Fatal(err)
	}
	rnd := make([]byte, 16)
	rand.Read(rnd)
	secret := []byte("SECRET-" + hex.EncodeToString(rnd))
	put, err := kc.PutRecord(c, &kinesis.PutRecordInput{StreamName: name, PartitionKey: aws.String("pk"), Data: secret})
	if err != nil || put.EncryptionType != types.EncryptionTypeKms {
		t.Fatalf("PutRecord: %+v %v", put, err)
	}
	if dataDirHolds(t, dir, secret) {
		t.Fatal("the data directory holds an encrypted record's data in plaintext")
	}
	check := func(when string, kc *kinesis.Client, native *nativeEnv) {
		t.Helper()
		it, err := kc.GetShardIterator(c, &kinesis.GetShardIteratorInput{StreamName: name, ShardId: aws.String("shardId-000000000000"),
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		out, err := kc.GetRecords(c, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator})
		if err != nil || len(out.Records) != 1 || !bytes.Equal(out.Records[0].Data, secret) || out.Records[0].EncryptionType != types.EncryptionTypeKms {
			t.Fatalf("%s: GetRecords: %+v %v", when, out, err)
		}
		_, recs := native.get(t, wire.GetRequest{Stream: []byte(*name), Start: wire.TrimHorizon})
		if len(recs) != 1 || !bytes.Equal(recs[0].Data, secret) || recs[0].Flags != frame.FlagEncrypted {
			t.Fatalf("%s: native get: %+v", when, recs)
		}
	}
	check("before restart", kc, native)
	stop()
	kc, native, stop = startKeyringServer(t, dir, "")
	check("after restart", kc, native)

	// SubscribeToShard and the native subscription push the plaintext too.
	sum, err := kc.DescribeStreamSummary(c, &kinesis.DescribeStreamSummaryInput{StreamName: name})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := kc.RegisterStreamConsumer(c, &kinesis.RegisterStreamConsumerInput{StreamARN: sum.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String("app")})
	if err != nil {
		t.Fatal(err)
	}
	bc := kinesis.New(kc.Options(), func(o *kinesis.Options) {
		o.HTTPClient = &http.Client{Transport: bufferedBodies{http.DefaultTransport.(*http.Transport).Clone()}}
	})
	sub, err := bc.SubscribeToShard(c, &kinesis.SubscribeToShardInput{ConsumerARN: reg.Consumer.ConsumerARN, ShardId: aws.String("shardId-000000000000"),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeTrimHorizon}})
	if err != nil {
		t.Fatal(err)
	}
	ev, ok := <-sub.GetStream().Events()
	e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
	if !ok || !isEvent || len(e.Value.Records) != 1 || !bytes.Equal(e.Value.Records[0].Data, secret) || e.Value.Records[0].EncryptionType != types.EncryptionTypeKms {
		t.Fatalf("SubscribeToShard: %+v %v", ev, sub.GetStream().Err())
	}
	sub.GetStream().Close()
	other, err := kc.RegisterStreamConsumer(c, &kinesis.RegisterStreamConsumerInput{StreamARN: sum.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String("native")})
	if err != nil {
		t.Fatal(err)
	}
	resp := subscribeNative(t, native.addr, wire.SubscribeRequest{ConsumerARN: []byte(*other.Consumer.ConsumerARN), Start: wire.TrimHorizon})
	m, _, err := wire.ReadMessage(bufio.NewReader(resp.Body), nil)
	resp.Body.Close()
	if err != nil || m.Type != wire.MsgRecords {
		t.Fatalf("native subscription: %+v %v", m, err)
	}
	f := wire.NewFrames(m.Frames)
	if !f.Next() || !bytes.Equal(f.Record().Data, secret) || f.Record().Flags != frame.FlagEncrypted || f.Next() || f.Err() != nil {
		t.Fatalf("native subscription's records: %v", f.Err())
	}

	// Stopped: records are written as sent, and the marker is on disk.
	if _, err := kc.StopStreamEncryption(c, &kinesis.StopStreamEncryptionInput{StreamName: name, EncryptionType: types.EncryptionTypeKms,
		KeyId: aws.String("alias/aws/kinesis")}); err != nil {
		t.Fatal(err)
	}
	open := []byte("OPEN-" + hex.EncodeToString(rnd))
	if put, err := kc.PutRecord(c, &kinesis.PutRecordInput{StreamName: name, PartitionKey: aws.String("pk"), Data: open}); err != nil || put.EncryptionType != types.EncryptionTypeNone {
		t.Fatalf("PutRecord after StopStreamEncryption: %+v %v", put, err)
	}
	if !dataDirHolds(t, dir, open) {
		t.Fatal("a record put without encryption is not found on disk: the search proves nothing")
	}
	stop()

	// Another keyring: the encrypted record is refused with KMSNotFoundException, natively
	// with its code, and no byte of it is served.
	kc, native, stop = startKeyringServer(t, dir, t.TempDir())
	defer stop()
	it, err := kc.GetShardIterator(c, &kinesis.GetShardIteratorInput{StreamName: name, ShardId: aws.String("shardId-000000000000"),
		ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := kc.GetRecords(c, &kinesis.GetRecordsInput{ShardIterator: it.ShardIterator}); !errors.As(err, &notFound) {
		t.Fatalf("GetRecords with another keyring: %+v %v", out, err)
	}
	a := native.post(t, wire.PathGet, wire.AppendGetRequest(nil, &wire.GetRequest{Stream: []byte(*name), Start: wire.TrimHorizon}))
	wantFail(t, "native get with another keyring", a, wire.KMSNotFound)
}
