package server

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-streams/sluice/internal/pki"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/stream"
)

// h2Server is a Server on a loopback port, stopped at the end of the test.
type h2Server struct {
	srv    *Server
	addr   string
	served chan error // what Serve returned
	stop   func() error
}

func startH2Server(t *testing.T, opts Options) *h2Server {
	t.Helper()
	eng, err := stream.Open(stream.Options{Dir: t.TempDir(), Durability: segment.Durability{Mode: segment.Sync},
		SegmentSize: segment.MinSegmentSize, Limits: stream.Limits{Factor: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &h2Server{srv: New(eng, opts), addr: ln.Addr().String(), served: make(chan error, 1)}
	go func() { hs.served <- hs.srv.Serve(ln) }()
	var once sync.Once
	var stopErr error
	hs.stop = func() error {
		once.Do(func() {
			stopErr = hs.srv.Shutdown()
			eng.Close()
		})
		return stopErr
	}
	t.Cleanup(func() { hs.stop() })
	return hs
}

// h2cClient speaks HTTP/2 without TLS, with prior knowledge, and nothing else.
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

// http1Client speaks HTTP/1.1 only.
func http1Client(tlsConf *tls.Config) *http.Client {
	var p http.Protocols
	p.SetHTTP1(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p, TLSClientConfig: tlsConf}}
}

// h2Call posts a Kinesis operation and returns the response and its body.
func h2Call(t *testing.T, c *http.Client, base, op, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Target", targetPrefix+op)
	req.Header.Set("Content-Type", jsonContentType)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: reading the answer: %v", op, err)
	}
	return resp, b
}

// h2MustCall is h2Call for an operation that must succeed over protocol major version proto.
func h2MustCall(t *testing.T, c *http.Client, base string, proto int, op, body string, out any) {
	t.Helper()
	resp, b := h2Call(t, c, base, op, body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: status %d: %s", op, resp.StatusCode, b)
	}
	if resp.ProtoMajor != proto {
		t.Fatalf("%s: answered over %s, want HTTP/%d", op, resp.Proto, proto)
	}
	if resp.Header.Get("x-amzn-RequestId") == "" || resp.Header.Get("Content-Type") != jsonContentType {
		t.Fatalf("%s: headers %v", op, resp.Header)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v in %s", op, err, b)
		}
	}
}

// h2RoundTrip writes and reads one record through the raw JSON API and checks every answer.
func h2RoundTrip(t *testing.T, c *http.Client, base string, proto int, streamName, data string) {
	t.Helper()
	h2MustCall(t, c, base, proto, "CreateStream", `{"StreamName":"`+streamName+`","ShardCount":1}`, nil)
	var put struct{ ShardId, SequenceNumber string }
	h2MustCall(t, c, base, proto, "PutRecord", `{"StreamName":"`+streamName+`","PartitionKey":"k","Data":"`+
		base64.StdEncoding.EncodeToString([]byte(data))+`"}`, &put)
	if put.ShardId != "shardId-000000000000" || put.SequenceNumber == "" {
		t.Fatalf("PutRecord answered %+v", put)
	}
	var it struct{ ShardIterator string }
	h2MustCall(t, c, base, proto, "GetShardIterator", `{"StreamName":"`+streamName+`","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}`, &it)
	var got struct {
		Records []struct {
			Data           []byte
			SequenceNumber string
		}
	}
	h2MustCall(t, c, base, proto, "GetRecords", `{"ShardIterator":"`+it.ShardIterator+`"}`, &got)
	if len(got.Records) != 1 || string(got.Records[0].Data) != data || got.Records[0].SequenceNumber != put.SequenceNumber {
		t.Fatalf("GetRecords answered %+v, want %q at %s", got, data, put.SequenceNumber)
	}
	// Errors keep their AWS shape.
	resp, b := h2Call(t, c, base, "DescribeStream", `{"StreamName":"missing"}`)
	if resp.StatusCode != 400 || resp.ProtoMajor != proto || resp.Header.Get("X-Amzn-ErrorType") != "ResourceNotFoundException" ||
		!bytes.Contains(b, []byte(`"__type":"ResourceNotFoundException"`)) {
		t.Fatalf("DescribeStream of a missing stream: %d %s %v %s", resp.StatusCode, resp.Proto, resp.Header, b)
	}
}

// TestH2CPriorKnowledge talks HTTP/2 without TLS to the listener that serves HTTP/1.1, and
// HTTP/1.1 to it in between.
func TestH2CPriorKnowledge(t *testing.T) {
	hs := startH2Server(t, Options{})
	base := "http://" + hs.addr
	h2c, h1 := h2cClient(), http1Client(nil)
	h2RoundTrip(t, h2c, base, 2, "over-h2", "hello over HTTP/2")
	h2RoundTrip(t, h1, base, 1, "over-h1", "hello over HTTP/1.1")
	for _, c := range []*http.Client{h2c, h1} {
		resp, err := c.Get(base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok\n" || resp.Header.Get("Server") != "sluice" {
			t.Fatalf("healthz over %s: %d %q %v", resp.Proto, resp.StatusCode, b, resp.Header)
		}
	}
}

// TestH2BodyLimit checks that HTTP/2 bodies are held to their operation's limit as HTTP/1.1
// ones are, and refused with the same answer: status, error type, shape and message.
func TestH2BodyLimit(t *testing.T) {
	hs := startH2Server(t, Options{})
	base := "http://" + hs.addr
	overControl := `{"StreamName":"s","ShardCount":1}` + strings.Repeat(" ", controlBodyLimit)
	overData := `{"StreamName":"s","Records":[]}` + strings.Repeat(" ", dataBodyLimit)
	cases := []struct {
		name, op, body, contentType string
		declared                    bool // a Content-Length, or a body of unknown length
		limit                       int
	}{
		{"control, declared", "CreateStream", overControl, jsonContentType, true, controlBodyLimit},
		{"control, undeclared", "CreateStream", overControl, jsonContentType, false, controlBodyLimit},
		{"data, declared", "PutRecords", overData, jsonContentType, true, dataBodyLimit},
		{"data, undeclared", "PutRecords", overData, jsonContentType, false, dataBodyLimit},
		{"CBOR", "CreateStream", overControl, cborContentType, true, controlBodyLimit},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// HTTP/1.1 from a raw connection: the server may answer before the body is sent and
			// close the connection under the writer, which an http.Client reports as an error.
			status, h1Body, h1 := rawSend(t, hs.addr, "/", tc.op, tc.contentType, "", []byte(tc.body), !tc.declared)
			var r io.Reader = strings.NewReader(tc.body)
			if !tc.declared {
				r = io.MultiReader(r) // hides the length: the HTTP/2 request declares none
			}
			req, err := http.NewRequest("POST", base+"/", r)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Amz-Target", targetPrefix+tc.op)
			req.Header.Set("Content-Type", tc.contentType)
			resp, err := h2cClient().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			h2Body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range []struct {
				proto, status int
				h             http.Header
				body          []byte
			}{{1, status, h1, []byte(h1Body)}, {resp.ProtoMajor, resp.StatusCode, resp.Header, h2Body}} {
				if a.status != 400 || a.h.Get("X-Amzn-ErrorType") != "ValidationException" || a.h.Get("Content-Type") != tc.contentType {
					t.Fatalf("over HTTP/%d: %d %v %q", a.proto, a.status, a.h, a.body)
				}
				if !bytes.Contains(a.body, []byte("limit of "+strconv.Itoa(tc.limit)+" bytes")) {
					t.Fatalf("over HTTP/%d: %q does not name the limit of %d bytes", a.proto, a.body, tc.limit)
				}
			}
			if resp.ProtoMajor != 2 || h1Body != string(h2Body) {
				t.Fatalf("HTTP/1.1 answered %q, %s %q", h1Body, resp.Proto, h2Body)
			}
		})
	}
	// The connection is still good.
	h2MustCall(t, h2cClient(), base, 2, "CreateStream", `{"StreamName":"s","ShardCount":1}`, nil)
}

// protoCounter counts the responses by HTTP major version.
type protoCounter struct {
	rt     http.RoundTripper
	h1, h2 atomic.Int64
}

func (p *protoCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.rt.RoundTrip(req)
	if err == nil {
		if resp.ProtoMajor == 2 {
			p.h2.Add(1)
		} else {
			p.h1.Add(1)
		}
	}
	return resp, err
}

func openSubscriptions(s *Server) int {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	return len(s.subs)
}

// TestH2SDKSubscribeToShard subscribes through the AWS SDK for Go v2 over HTTP/2 without TLS:
// records come as they are put, and closing the event stream ends the subscription on the
// server.
func TestH2SDKSubscribeToShard(t *testing.T) {
	hs := startH2Server(t, Options{})
	counter := &protoCounter{rt: h2cClient().Transport}
	kc := kinesis.New(kinesis.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String("http://" + hs.addr),
		Credentials:      aws.AnonymousCredentials{},
		RetryMaxAttempts: 1,
		HTTPClient:       &http.Client{Transport: counter},
	})
	c := ctx(t)
	if _, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	sum, err := kc.DescribeStreamSummary(c, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := kc.RegisterStreamConsumer(c, &kinesis.RegisterStreamConsumerInput{StreamARN: sum.StreamDescriptionSummary.StreamARN, ConsumerName: aws.String("app")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := kc.SubscribeToShard(c, &kinesis.SubscribeToShardInput{ConsumerARN: reg.Consumer.ConsumerARN, ShardId: aws.String("shardId-000000000000"),
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}})
	if err != nil {
		t.Fatal(err)
	}
	events := out.GetStream()
	if n := openSubscriptions(hs.srv); n != 1 {
		t.Fatalf("%d open subscriptions, want 1", n)
	}
	// The subscription exists once SubscribeToShard has answered, so this record is pushed.
	if _, err := kc.PutRecord(c, &kinesis.PutRecordInput{StreamName: aws.String("s"), PartitionKey: aws.String("k"), Data: []byte("pushed")}); err != nil {
		t.Fatal(err)
	}
	var got []string
	deadline := time.After(20 * time.Second)
	for len(got) == 0 {
		select {
		case ev, ok := <-events.Events():
			if !ok {
				t.Fatalf("stream ended: %v", events.Err())
			}
			e, isEvent := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent)
			if !isEvent {
				t.Fatalf("unexpected event %T", ev)
			}
			for _, r := range e.Value.Records {
				got = append(got, string(r.Data))
			}
		case <-deadline:
			t.Fatal("the pushed record never came")
		}
	}
	if len(got) != 1 || got[0] != "pushed" {
		t.Fatalf("records %q", got)
	}
	if counter.h2.Load() == 0 || counter.h1.Load() != 0 {
		t.Fatalf("%d HTTP/2 and %d HTTP/1.1 answers; want all over HTTP/2", counter.h2.Load(), counter.h1.Load())
	}
	// Closing the event stream resets the HTTP/2 stream; the server closes the subscription at
	// once, waking its writer, which hands out no further event: not even the heartbeat that
	// would otherwise have been its first chance to notice.
	sent := eventsSent(hs.srv.engine)
	events.Close()
	h2WaitFor(t, "the subscription to end with its HTTP/2 stream", func() bool { return openSubscriptions(hs.srv) == 0 })
	if after := eventsSent(hs.srv.engine); after != sent {
		t.Fatalf("%d events handed out after the client went away, want 0", after-sent)
	}
}

// eventsSent counts the SubscribeToShard events (heartbeats included) the engine handed out.
func eventsSent(eng *stream.Engine) uint64 {
	var n uint64
	for _, sm := range eng.Metrics() {
		for _, c := range sm.Consumers {
			n += c.EventSuccess
		}
	}
	return n
}

// h2WaitFor polls cond, for at most 30 seconds, until it holds: for what the server does on
// its own goroutines after a client acts.
func h2WaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("gave up waiting for %s", what)
		}
	}
}

// testCert makes a self-signed certificate for 127.0.0.1 and a pool trusting it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	c, err := pki.Sign(nil, pki.Template("sluice test", time.Hour, []string{"127.0.0.1"}, x509.ExtKeyUsageServerAuth))
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf(), c.Pool()
}

// TestH2TLSALPN serves TLS: a client negotiating h2 gets HTTP/2, one offering only
// http/1.1 gets HTTP/1.1 from fasthttp, and the AWS SDK works over it.
func TestH2TLSALPN(t *testing.T) {
	cert, pool := testCert(t)
	hs := startH2Server(t, Options{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
	base := "https://" + hs.addr
	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	h1 := http1Client(&tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	h2RoundTrip(t, h2, base, 2, "over-h2", "hello over HTTP/2 and TLS")
	h2RoundTrip(t, h1, base, 1, "over-h1", "hello over HTTP/1.1 and TLS")
	for _, tt := range []struct {
		client *http.Client
		proto  int
	}{{h2, 2}, {h1, 1}} {
		resp, err := tt.client.Get(base + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != tt.proto || resp.TLS == nil {
			t.Fatalf("healthz: %d over %s, TLS %v; want HTTP/%d over TLS", resp.StatusCode, resp.Proto, resp.TLS != nil, tt.proto)
		}
		if want := map[int]string{1: "http/1.1", 2: "h2"}[tt.proto]; resp.TLS.NegotiatedProtocol != want {
			t.Fatalf("ALPN chose %q, want %q", resp.TLS.NegotiatedProtocol, want)
		}
	}
	// A client without ALPN gets HTTP/1.1.
	conn, err := tls.Dial("tcp", hs.addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	status := h2RawStatus(t, conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if !strings.HasPrefix(status, "HTTP/1.1 200") {
		t.Fatalf("without ALPN: %q", status)
	}

	counter := &protoCounter{rt: h2.Transport}
	kc := kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(base), Credentials: aws.AnonymousCredentials{},
		RetryMaxAttempts: 1, HTTPClient: &http.Client{Transport: counter}})
	c := ctx(t)
	if _, err := kc.PutRecord(c, &kinesis.PutRecordInput{StreamName: aws.String("over-h2"), PartitionKey: aws.String("k"), Data: []byte("sdk")}); err != nil {
		t.Fatal(err)
	}
	list, err := kc.ListShards(c, &kinesis.ListShardsInput{StreamName: aws.String("over-h2")})
	if err != nil || len(list.Shards) != 1 {
		t.Fatalf("ListShards: %+v %v", list, err)
	}
	if counter.h2.Load() != 2 || counter.h1.Load() != 0 {
		t.Fatalf("%d HTTP/2 and %d HTTP/1.1 answers; want 2 over HTTP/2", counter.h2.Load(), counter.h1.Load())
	}
}

// h2RawStatus writes req on conn and returns the status line of the answer.
func h2RawStatus(t *testing.T, conn net.Conn, req string) string {
	t.Helper()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	return strings.TrimSpace(line)
}

// TestH2Sorting checks the sorting of plaintext connections: a request shorter than the
// HTTP/2 preface is answered without waiting for more bytes, and a connection that sends
// nothing holds up no other.
func TestH2Sorting(t *testing.T) {
	hs := startH2Server(t, Options{HandshakeTimeout: time.Minute})
	silent, err := net.Dial("tcp", hs.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	// 18 bytes, fewer than the preface's 24: sorting must not wait for more.
	short, err := net.Dial("tcp", hs.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer short.Close()
	if status := h2RawStatus(t, short, "GET / HTTP/1.0\r\n\r\n"); !strings.Contains(status, " 400 ") {
		t.Fatalf("GET / over HTTP/1.0: %q", status)
	}
	h2RoundTrip(t, h2cClient(), "http://"+hs.addr, 2, "s2", "while a connection is silent")
	h2RoundTrip(t, http1Client(nil), "http://"+hs.addr, 1, "s1", "while a connection is silent")

	// The silent connection is still waiting to be sorted: open, and answered nothing.
	silent.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := silent.Read(make([]byte, 1)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the silent connection read %d bytes, %v; want nothing yet", n, err)
	}
}

// TestH2SilentConnection checks that a connection that sends nothing is closed at the
// handshake timeout, in plaintext and over TLS, and gives its place back.
func TestH2SilentConnection(t *testing.T) {
	cert, _ := testCert(t)
	for _, conf := range []*tls.Config{nil, {Certificates: []tls.Certificate{cert}}} {
		hs := startH2Server(t, Options{HandshakeTimeout: 200 * time.Millisecond, TLSConfig: conf})
		silent, err := net.Dial("tcp", hs.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		silent.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := silent.Read(make([]byte, 1))
		if n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("TLS %v: the silent connection read %d bytes, %v; want it closed by the server", conf != nil, n, err)
		}
		h2WaitOpen(t, hs.srv, 0)
	}
}

// TestH2ConnCap checks that MaxConns counts connections of every protocol, including those
// not yet sorted, and that each closed connection gives its place back.
func TestH2ConnCap(t *testing.T) {
	hs := startH2Server(t, Options{MaxConns: 2, HandshakeTimeout: time.Minute})
	var silent []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", hs.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	h2WaitOpen(t, hs.srv, 2)
	over, err := net.Dial("tcp", hs.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	over.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := over.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection over the cap read %d bytes, %v; want it closed", n, err)
	}
	for _, c := range silent {
		c.Close()
	}
	h2WaitOpen(t, hs.srv, 0)
	h2c, h1 := h2cClient(), http1Client(nil)
	h2MustCall(t, h2c, "http://"+hs.addr, 2, "ListStreams", `{}`, nil)
	h2MustCall(t, h1, "http://"+hs.addr, 1, "ListStreams", `{}`, nil)
	h2WaitOpen(t, hs.srv, 2)
	h2c.CloseIdleConnections()
	h1.CloseIdleConnections()
	h2WaitOpen(t, hs.srv, 0)
}

// h2WaitOpen waits until the server counts n open connections.
func h2WaitOpen(t *testing.T, s *Server, n int64) {
	t.Helper()
	h2WaitFor(t, fmt.Sprintf("%d open connections", n), func() bool { return s.h2.open.Load() == n })
}

// TestH2Shutdown shuts the server down with an idle HTTP/2 connection, one carrying a
// subscription, and a silent one: Shutdown returns, Serve returns nil, and the subscription's
// event stream ends.
func TestH2Shutdown(t *testing.T) {
	hs := startH2Server(t, Options{})
	idle := h2cClient()
	h2MustCall(t, idle, "http://"+hs.addr, 2, "CreateStream", `{"StreamName":"s","ShardCount":1}`, nil)
	kc := kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String("http://" + hs.addr),
		Credentials: aws.AnonymousCredentials{}, RetryMaxAttempts: 1, HTTPClient: h2cClient()})
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
		StartingPosition: &types.StartingPosition{Type: types.ShardIteratorTypeLatest}})
	if err != nil {
		t.Fatal(err)
	}
	events := out.GetStream()
	defer events.Close()
	silent, err := net.Dial("tcp", hs.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	stopped := make(chan error, 1)
	go func() { stopped <- hs.stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	select {
	case err := <-hs.served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return")
	}
	for ev := range events.Events() {
		if _, ok := ev.(*types.SubscribeToShardEventStreamMemberSubscribeToShardEvent); !ok {
			t.Fatalf("unexpected event %T", ev)
		}
	}
	if n := openSubscriptions(hs.srv); n != 0 {
		t.Fatalf("%d subscriptions open after Shutdown", n)
	}
	if _, err := idle.Get("http://" + hs.addr + "/healthz"); err == nil {
		t.Fatal("a request after Shutdown succeeded")
	}
}
