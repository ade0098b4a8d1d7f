//go:build linux

package client

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/server"
	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/stream"
)

// verifyingServer serves a new engine on loopback with a SigV4Verifier knowing the key
// AKIDCLIENT (secret "client-secret") and returns its endpoint.
func verifyingServer(t *testing.T) string {
	t.Helper()
	eng, err := stream.Open(stream.Options{Dir: t.TempDir(), Durability: segment.Durability{Mode: segment.None}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	users, err := server.ParseIAM([]byte(`{"users": [{"name": "app", "accessKeyId": "AKIDCLIENT", "secretAccessKey": "client-secret",
		"policies": [{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}]}]}]}`), eng.Account())
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(eng, server.Options{Authenticator: server.NewSigV4Verifier(eng.Account(), "us-east-1", users)})
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Shutdown()
		eng.Close()
	})
	return "http://" + ln.Addr().String()
}

// TestSignedClient talks to a server that verifies signatures: with the right credentials
// the Kinesis API, native put, get and subscribe all pass; a wrong secret, an unknown key and
// no credentials are refused with their Kinesis names, on both protocols.
func TestSignedClient(t *testing.T) {
	ep := verifyingServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := New(Config{Endpoint: ep, Region: "us-east-1", Credentials: &Credentials{AccessKeyID: "AKIDCLIENT", SecretAccessKey: "client-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.CreateStream(ctx, "s", 1); err != nil {
		t.Fatal(err)
	}
	if res, err := c.PutRecords(ctx, "s", []PutEntry{{Key: "k", Data: []byte("signed")}}); err != nil || res[0].Err != nil {
		t.Fatalf("put: %v %+v", err, res)
	}
	out, err := c.GetRecords(ctx, "s", GetInput{Start: TrimHorizon})
	if err != nil || len(out.Records) != 1 {
		t.Fatalf("get: %v", err)
	}
	out.Release()
	sum, err := c.DescribeStreamSummary(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := c.RegisterStreamConsumer(ctx, sum.ARN, "app")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := c.subscribe(ctx, reg.ARN, 0, TrimHorizon, 0)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	sub.close()

	for _, bad := range []struct {
		cfg  Config
		code wire.Code
	}{
		{Config{Credentials: &Credentials{AccessKeyID: "AKIDCLIENT", SecretAccessKey: "wrong"}}, wire.InvalidSignature},
		{Config{Credentials: &Credentials{AccessKeyID: "AKIDNOBODY", SecretAccessKey: "client-secret"}}, wire.UnrecognizedClient},
		{Config{Credentials: &Credentials{AccessKeyID: "AKIDCLIENT", SecretAccessKey: "client-secret", SessionToken: "tok"}}, wire.UnrecognizedClient},
		{Config{Unsigned: true}, wire.MissingAuthenticationToken},
		{Config{Credentials: &Credentials{AccessKeyID: "AKIDCLIENT", SecretAccessKey: "client-secret"}, Region: "eu-west-1"}, wire.InvalidSignature},
	} {
		bad.cfg.Endpoint = ep
		bc, err := New(bad.cfg)
		if err != nil {
			t.Fatal(err)
		}
		var e *Error
		if _, err := bc.PutRecords(ctx, "s", []PutEntry{{Key: "k", Data: []byte("refused")}}); !errors.As(err, &e) || e.Code != bad.code {
			t.Errorf("%+v: native put: %v, want %s", bad.cfg, err, bad.code.Name())
		}
		if _, err := bc.DescribeStreamSummary(ctx, "s"); !errors.As(err, &e) || e.Name != bad.code.Name() {
			t.Errorf("%+v: DescribeStreamSummary: %v, want %s", bad.cfg, err, bad.code.Name())
		}
		bc.Close()
	}
}
