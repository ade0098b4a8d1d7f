package load

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"
)

// kinesisAPI sends the Kinesis API's data-path calls (PutRecords, GetRecords,
// SubscribeToShard) to one endpoint as AWS JSON 1.1 over HTTP/1.1. Requests are not signed:
// sluice does not check signatures, and a server that does refuses them. Safe for concurrent
// use.
type kinesisAPI struct {
	hc      *fasthttp.HostClient
	host    string
	tls     bool
	timeout time.Duration
}

const (
	targetPrefix    = "Kinesis_20131202."
	jsonContentType = "application/x-amz-json-1.1"
	// requestTimeout bounds one call, from sending to the end of its answer.
	requestTimeout = 30 * time.Second
	// subscribeIdle is how long a subscription may stay silent: the server sends an event at
	// least every 5 seconds.
	subscribeIdle = 30 * time.Second
)

func newKinesisAPI(endpoint string, conns int) (*kinesisAPI, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: endpoint %q: want http://host:port or https://host:port", ErrConfig, endpoint)
	}
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	k := &kinesisAPI{host: host, tls: u.Scheme == "https", timeout: requestTimeout}
	k.hc = &fasthttp.HostClient{
		Addr:                host,
		Name:                "sluice-load",
		IsTLS:               k.tls,
		MaxConns:            conns,
		MaxConnWaitTimeout:  requestTimeout,
		ReadTimeout:         requestTimeout,
		WriteTimeout:        requestTimeout,
		MaxResponseBodySize: 64 << 20, // a GetRecords answer: at most 10 MiB of data, in base64
		ReadBufferSize:      16 << 10,
		// PutRecords is not idempotent: a retry is the producer's decision, counted.
		MaxIdemponentCallAttempts: 1,
	}
	return k, nil
}

func (k *kinesisAPI) close() { k.hc.CloseIdleConnections() }

// apiError is a call the server refused.
type apiError struct {
	Op      string
	Name    string // the Kinesis error name, e.g. ProvisionedThroughputExceededException
	Message string
	Status  int
}

func (e *apiError) Error() string {
	s := "kinesis " + e.Op + ": " + e.Name
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// netError is a failure of the HTTP exchange itself: no answer was read.
type netError struct{ err error }

func (e *netError) Error() string { return "network: " + e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

// call posts body as the operation op and reads the answer into resp. A refusal is an
// *apiError; a failed exchange a *netError. ctx ends no request already sent (fasthttp has
// no cancellation): the request timeout bounds it.
func (k *kinesisAPI) call(ctx context.Context, op string, body []byte, resp *fasthttp.Response) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	k.prepare(req, op, body)
	deadline := time.Now().Add(k.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := k.hc.DoDeadline(req, resp, deadline); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &netError{err}
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return k.refusal(op, resp.StatusCode(), resp.Body(), resp.Header.Peek("X-Amzn-ErrorType"))
	}
	return nil
}

func (k *kinesisAPI) prepare(req *fasthttp.Request, op string, body []byte) {
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI("/")
	req.Header.SetHost(k.host)
	req.Header.Set("X-Amz-Target", targetPrefix+op)
	req.Header.SetContentType(jsonContentType)
	req.SetBodyRaw(body)
}

func (k *kinesisAPI) refusal(op string, status int, body, errType []byte) *apiError {
	name, msg := apiErrorAnswer(body, string(errType))
	if name == "" {
		name = "InternalFailure"
		if status < 500 {
			name = fmt.Sprintf("HTTP%d", status)
		}
	}
	return &apiError{Op: op, Name: name, Message: msg, Status: status}
}

// subscription is one SubscribeToShard answer being read, on a connection of its own: the
// answer lives up to 5 minutes, and closing the connection is how a reader stops it.
type subscription struct {
	conn net.Conn
	resp *fasthttp.Response
	body *bufio.Reader
	buf  []byte
	stop func() bool // unregisters the context watch
}

// subscribe opens a subscription with the SubscribeToShard input body and reads its
// initial-response event.
func (k *kinesisAPI) subscribe(ctx context.Context, body []byte) (*subscription, error) {
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", k.host)
	if err != nil {
		return nil, &netError{err}
	}
	if k.tls {
		host, _, _ := net.SplitHostPort(k.host)
		tc := tls.Client(conn, &tls.Config{ServerName: host, NextProtos: []string{"http/1.1"}})
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, &netError{err}
		}
		conn = tc
	}
	s := &subscription{conn: conn}
	s.stop = context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (*subscription, error) {
		s.close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	k.prepare(req, "SubscribeToShard", body)
	conn.SetDeadline(time.Now().Add(k.timeout))
	bw := bufio.NewWriterSize(conn, 1024)
	if err := req.Write(bw); err != nil {
		return fail(&netError{err})
	}
	if err := bw.Flush(); err != nil {
		return fail(&netError{err})
	}
	s.resp = fasthttp.AcquireResponse()
	s.resp.StreamBody = true
	if err := s.resp.Read(bufio.NewReaderSize(conn, 64<<10)); err != nil {
		return fail(&netError{err})
	}
	if s.resp.StatusCode() != fasthttp.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(s.resp.BodyStream(), 64<<10))
		return fail(k.refusal("SubscribeToShard", s.resp.StatusCode(), msg, s.resp.Header.Peek("X-Amzn-ErrorType")))
	}
	conn.SetWriteDeadline(time.Time{})
	s.body = bufio.NewReaderSize(s.resp.BodyStream(), 64<<10)
	ev, err := s.next()
	if err == nil && string(ev.eventType) != "initial-response" {
		err = fmt.Errorf("%w: first event %q, want initial-response", errEvent, ev.eventType)
	}
	if err != nil {
		return fail(err)
	}
	return s, nil
}

// next reads the next message; its slices alias s's buffer until the next call. io.EOF
// means the server ended the subscription between messages. An exception or error message
// is returned as an *apiError.
func (s *subscription) next() (event, error) {
	s.conn.SetReadDeadline(time.Now().Add(subscribeIdle))
	ev, buf, err := readEvent(s.body, s.buf)
	s.buf = buf
	switch {
	case errors.Is(err, io.EOF):
		return ev, io.EOF
	case err != nil:
		return ev, &netError{err}
	case string(ev.messageType) == "exception":
		name, msg := apiErrorAnswer(ev.payload, "")
		if len(ev.exceptionType) > 0 {
			name = string(ev.exceptionType)
		}
		return ev, &apiError{Op: "SubscribeToShard", Name: name, Message: msg}
	case string(ev.messageType) == "error":
		return ev, &apiError{Op: "SubscribeToShard", Name: string(ev.errorCode), Message: string(ev.errorMessage)}
	}
	return ev, nil
}

func (s *subscription) close() {
	if s.stop != nil {
		s.stop()
	}
	s.conn.Close()
	if s.resp != nil {
		s.resp.CloseBodyStream()
		fasthttp.ReleaseResponse(s.resp)
		s.resp = nil
	}
}
