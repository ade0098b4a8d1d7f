package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/stream"
)

// staticCreds signs requests with a fixed access key.
type staticCreds string

func (k staticCreds) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{AccessKeyID: string(k), SecretAccessKey: "secret", Source: "test"}, nil
}

// hygieneServer runs a server under the kinesis limits profile with an account table.
func hygieneServer(t *testing.T) (addr string) {
	t.Helper()
	eng, err := stream.Open(stream.Options{Dir: t.TempDir(), Durability: segment.Durability{Mode: segment.None},
		SegmentSize: segment.MinSegmentSize, Limits: stream.Limits{Factor: 1}, Account: "000000000000"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(eng, Options{Authenticator: SigV4Parser{Default: "000000000000", Accounts: map[string]string{"AKIDOTHER": "111111111111"}}})
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Shutdown()
		eng.Close()
	})
	return ln.Addr().String()
}

func sdkClient(addr string, creds aws.CredentialsProvider) *kinesis.Client {
	return kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + addr), Credentials: creds, RetryMaxAttempts: 1})
}

func TestSignedRequestsAndAccounts(t *testing.T) {
	addr := hygieneServer(t)
	c := ctx(t)
	if _, err := sdkClient(addr, staticCreds("AKIDMINE")).ListStreams(c, &kinesis.ListStreamsInput{}); err != nil {
		t.Fatalf("a signed request: %v", err)
	}
	var denied *types.AccessDeniedException
	if _, err := sdkClient(addr, staticCreds("AKIDOTHER")).ListStreams(c, &kinesis.ListStreamsInput{}); !errors.As(err, &denied) {
		t.Fatalf("another account's key: %v", err)
	}
	status, body, hdr := rawPost(t, addr, "/", "ListStreams", "AWS4-HMAC-SHA256 Credential=broken", []byte("{}"))
	if status != 400 || !strings.Contains(body, `"IncompleteSignatureException"`) || hdr != "IncompleteSignatureException" {
		t.Fatalf("malformed Authorization: %d %s %s", status, hdr, body)
	}
}

func TestControlPlaneQuotas(t *testing.T) {
	addr := hygieneServer(t)
	kc := sdkClient(addr, aws.AnonymousCredentials{})
	c := ctx(t)
	var limited *types.LimitExceededException
	created := 0
	for i := range 20 {
		_, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: aws.String("s" + string(rune('a'+i))), ShardCount: aws.Int32(1)})
		if errors.As(err, &limited) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		created++
	}
	if created < 5 || created == 20 {
		t.Fatalf("%d CreateStream calls passed before LimitExceededException, want at least 5 and fewer than 20", created)
	}
	// The quota belongs to CreateStream: other operations still pass.
	if _, err := kc.ListShards(c, &kinesis.ListShardsInput{StreamName: aws.String("sa")}); err != nil {
		t.Fatalf("ListShards after CreateStream's quota ran out: %v", err)
	}
	// GetShardIterator's quota is per shard and answers ProvisionedThroughputExceeded, as its
	// model says.
	var throttled *types.ProvisionedThroughputExceededException
	iterators := 0
	for range 20 {
		_, err := kc.GetShardIterator(c, &kinesis.GetShardIteratorInput{StreamName: aws.String("sa"), ShardId: aws.String("shardId-000000000000"), ShardIteratorType: types.ShardIteratorTypeLatest})
		if errors.As(err, &throttled) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		iterators++
	}
	if iterators < getShardIteratorTPS || iterators == 20 {
		t.Fatalf("%d GetShardIterator calls on one shard passed, want at least %d and fewer than 20", iterators, getShardIteratorTPS)
	}
}

func TestBodyLimits(t *testing.T) {
	addr := hygieneServer(t)
	big := []byte(`{"ExclusiveStartStreamName":"` + strings.Repeat("x", controlBodyLimit) + `"}`)
	status, body, hdr := rawPost(t, addr, "/", "ListStreams", "", big)
	if status != 400 || hdr != "ValidationException" || !strings.Contains(body, "exceeds the limit") {
		t.Fatalf("oversized ListStreams: %d %s %.200s", status, hdr, body)
	}
	// The same size is fine for PutRecords, which reaches the engine (and the stream is
	// missing).
	status, _, hdr = rawPost(t, addr, "/", "PutRecords", "", append([]byte(`{"StreamName":"nope","Records":[{"PartitionKey":"k","Data":"`+strings.Repeat("QUFB", controlBodyLimit/4)+`"}],"X":"`), []byte(`"}`)...))
	if status != 400 || hdr != "ResourceNotFoundException" {
		t.Fatalf("large PutRecords: %d %s", status, hdr)
	}
	status, body, _ = rawPost(t, addr, wire.PathGet, "", "", bytes.Repeat([]byte{1}, nativeSmallLimit+1))
	if status != 400 || !strings.Contains(body, "exceeds the limit") {
		t.Fatalf("oversized native get: %d %.200s", status, body)
	}
}

// TestChunkedBodyLimits sends bodies of unknown length (chunked): each is measured against its
// operation's limit, and the message names that limit.
func TestChunkedBodyLimits(t *testing.T) {
	addr := hygieneServer(t)
	putRecords := func(n int) []byte {
		return []byte(`{"StreamName":"nope","Records":[{"PartitionKey":"k","Data":"` + strings.Repeat("QUFB", n/4) + `"}]}`)
	}
	cases := []struct {
		name, op string
		body     []byte
		status   int
		errType  string
		limit    int // named in the message when > 0
	}{
		{"PutRecords over the control limit", "PutRecords", putRecords(2 * controlBodyLimit), 400, "ResourceNotFoundException", 0},
		{"PutRecords over its own limit", "PutRecords", putRecords(dataBodyLimit + 4), 400, "ValidationException", dataBodyLimit},
		{"ListStreams over the control limit", "ListStreams", []byte(`{"ExclusiveStartStreamName":"` + strings.Repeat("x", controlBodyLimit) + `"}`), 400, "ValidationException", controlBodyLimit},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body, h := rawSend(t, addr, "/", tc.op, jsonContentType, "", tc.body, true)
			if hdr := h.Get("X-Amzn-ErrorType"); status != tc.status || hdr != tc.errType {
				t.Fatalf("%d %s %.300s, want %d %s", status, hdr, body, tc.status, tc.errType)
			}
			if tc.limit > 0 && !strings.Contains(body, "limit of "+strconv.Itoa(tc.limit)+" bytes") {
				t.Fatalf("message %.300s does not name the limit of %d bytes", body, tc.limit)
			}
		})
	}
}

// rawPost sends one request on a connection of its own and returns the status, body and
// error-type header. The body is written by a goroutine that ignores write errors: the server
// may answer an oversized body before reading it and close the connection under the writer.
func rawPost(t *testing.T, addr, path, op, authorization string, body []byte) (int, string, string) {
	t.Helper()
	contentType := jsonContentType
	if op == "" {
		contentType = wire.ContentType
	}
	status, b, hdr := rawSend(t, addr, path, op, contentType, authorization, body, false)
	if op == "" {
		return status, b, hdr.Get(wire.HeaderError)
	}
	return status, b, hdr.Get("X-Amzn-ErrorType")
}

// rawSend is rawPost with the Content-Type given, the body sent in 64 KiB chunks
// (Transfer-Encoding: chunked) when chunked is set, and the answer's headers returned.
func rawSend(t *testing.T, addr, path, op, contentType, authorization string, body []byte, chunked bool) (int, string, http.Header) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var head strings.Builder
	head.WriteString("POST " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\nContent-Type: " + contentType + "\r\n")
	if op != "" {
		head.WriteString("X-Amz-Target: " + targetPrefix + op + "\r\n")
	}
	if authorization != "" {
		head.WriteString("Authorization: " + authorization + "\r\n")
	}
	if chunked {
		head.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	} else {
		head.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	}
	go func() {
		if _, err := conn.Write([]byte(head.String())); err != nil {
			return
		}
		if !chunked {
			conn.Write(body)
			return
		}
		for len(body) > 0 {
			n := min(len(body), 64<<10)
			if _, err := conn.Write([]byte(strconv.FormatInt(int64(n), 16) + "\r\n" + string(body[:n]) + "\r\n")); err != nil {
				return
			}
			body = body[n:]
		}
		conn.Write([]byte("0\r\n\r\n"))
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func TestRequestIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newRequestID()
		if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' ||
			strings.Trim(strings.ReplaceAll(id, "-", ""), "0123456789abcdef") != "" {
			t.Fatalf("request id %q is not shaped like a UUID", id)
		}
		if seen[id] {
			t.Fatalf("request id %q twice", id)
		}
		seen[id] = true
	}
}

// TestMalformedRequestQuotesNothing sends requests fasthttp cannot read (no Host header, a
// header line without a colon), to the Kinesis API and to the native protocol: each is a
// SerializationException whose message says what is wrong and quotes none of the request's
// bytes (a header a proxy added on the way, say), nor names fasthttp's buffers.
func TestMalformedRequestQuotesNothing(t *testing.T) {
	addr := hygieneServer(t)
	const secret = "proxy-added-secret-7f3a"
	for _, c := range []struct{ raw, why string }{
		{"POST / HTTP/1.1\r\nX-Amz-Target: " + targetPrefix + "ListStreams\r\nX-Internal-Token: " + secret + "\r\nContent-Length: 2\r\n\r\n{}", "host header"},
		{"POST / HTTP/1.1\r\nHost: x\r\nX-Internal-Token " + secret + "\r\nContent-Length: 2\r\n\r\n{}", "missing colon"},
		{"POST " + wire.PathPut + " HTTP/1.1\r\nX-Internal-Token: " + secret + "\r\nContent-Length: 2\r\n\r\n{}", "host header"},
	} {
		raw := c.raw
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		conn.Close()
		name := resp.Header.Get("X-Amzn-ErrorType")
		if resp.Header.Get("Content-Type") == wire.ContentType {
			name = resp.Header.Get(wire.HeaderError)
		}
		if resp.StatusCode != 400 || !strings.Contains(name, "SerializationException") || !bytes.Contains(b, []byte(c.why)) {
			t.Errorf("%.40q: %d %s %q, want a SerializationException saying %q", raw, resp.StatusCode, name, b, c.why)
		}
		for _, leak := range []string{secret, "X-Internal-Token", "buffer size", "contents:"} {
			if bytes.Contains(b, []byte(leak)) {
				t.Errorf("%.40q: the answer quotes %q: %s", raw, leak, b)
			}
		}
	}
}
