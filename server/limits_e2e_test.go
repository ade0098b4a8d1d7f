package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// declaredBody is what the requests of the memory tests declare and never send.
const declaredBody = 16 << 20

// heapInUse returns the bytes of live heap after a collection.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC() // a second cycle empties the pools the first one moved to their victim caches
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// vmRSS returns the resident set of this process (the server runs in it), 0 if unknown.
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// memoryBound is what the held requests of the memory tests may cost the server, all of
// them together: far above the buffers they need (a few dozen KiB each), far below what
// allocating their declared bodies would take (16 MiB each).
const memoryBound = 256 << 20

// waitReading waits until the server is reading n request bodies.
func waitReading(t *testing.T, s *Server, n int64) {
	t.Helper()
	h2WaitFor(t, strconv.FormatInt(n, 10)+" bodies being read", func() bool { return s.inflight.reading.Load() == n })
}

// checkHeld checks that the requests held cost the server less than memoryBound and that
// another client is served meanwhile.
func checkHeld(t *testing.T, hs *h2Server, heap0, rss0 int64, what string) {
	t.Helper()
	heap, rss := heapInUse()-heap0, vmRSS()-rss0
	t.Logf("%s: heap grew by %d KiB, resident set by %d KiB", what, heap>>10, rss>>10)
	if heap > memoryBound {
		t.Fatalf("%s: the heap grew by %d MiB", what, heap>>20)
	}
	if rss > memoryBound {
		t.Fatalf("%s: the resident set grew by %d MiB", what, rss>>20)
	}
	h2MustCall(t, http1Client(nil), "http://"+hs.addr, 1, "ListStreams", `{}`, nil)
	h2MustCall(t, h2cClient(), "http://"+hs.addr, 2, "ListStreams", `{}`, nil)
}

// TestDeclaredBodiesHoldNoMemoryHTTP1 opens 300 HTTP/1.1 connections whose PutRecords
// requests declare 16 MiB bodies and send 8 KiB of them: the server holds buffers for what
// arrived, not for what was declared, and serves another client meanwhile.
func TestDeclaredBodiesHoldNoMemoryHTTP1(t *testing.T) {
	const conns = 300
	hs := startH2Server(t, Options{})
	heap0, rss0 := heapInUse(), vmRSS()
	head := "POST / HTTP/1.1\r\nHost: sluice\r\nContent-Type: " + jsonContentType + "\r\nX-Amz-Target: " + targetPrefix + "PutRecords\r\n" +
		"Content-Length: " + strconv.Itoa(declaredBody) + "\r\n\r\n"
	// fasthttp reads up to 8 KiB of a body before the handler runs: sending them lets every
	// request reach the body reader, which the test waits for.
	sent := append([]byte(head), bytes.Repeat([]byte{' '}, 8<<10+1)...)
	for range conns {
		c, err := net.Dial("tcp", hs.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(sent); err != nil {
			t.Fatal(err)
		}
	}
	waitReading(t, hs.srv, conns)
	checkHeld(t, hs, heap0, rss0, strconv.Itoa(conns)+" HTTP/1.1 requests")
}

// TestDeclaredBodiesHoldNoMemoryHTTP2 opens 256 HTTP/2 streams on one connection whose
// PutRecords requests declare 16 MiB bodies and send one byte of them.
func TestDeclaredBodiesHoldNoMemoryHTTP2(t *testing.T) {
	const streams = h2MaxStreams
	hs := startH2Server(t, Options{})
	heap0, rss0 := heapInUse(), vmRSS()
	c := h2cClient()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{}, streams)
	for range streams {
		pr, pw := io.Pipe()
		defer pw.Close()
		req, err := http.NewRequestWithContext(ctx, "POST", "http://"+hs.addr+"/", pr)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = declaredBody
		req.Header.Set("X-Amz-Target", targetPrefix+"PutRecords")
		req.Header.Set("Content-Type", jsonContentType)
		go func() {
			defer func() { done <- struct{}{} }()
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
		go pw.Write([]byte{' '})
	}
	waitReading(t, hs.srv, streams)
	checkHeld(t, hs, heap0, rss0, strconv.Itoa(streams)+" HTTP/2 streams")
	cancel()
	for range streams {
		<-done
	}
}

// TestInflightBudget holds most of a small budget with one request's body: a larger request
// is refused with ServiceUnavailable (503, which clients retry) and leaves nothing held, a
// small one is served, and once the holder goes the larger one is served too.
func TestInflightBudget(t *testing.T) {
	const budget = 1 << 20
	hs := startH2Server(t, Options{MaxInflightBytes: budget})
	base := "http://" + hs.addr
	h2MustCall(t, http1Client(nil), base, 1, "CreateStream", `{"StreamName":"s","ShardCount":1}`, nil)
	holder, err := net.Dial("tcp", hs.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	held := budget - 100<<10
	head := "POST / HTTP/1.1\r\nHost: sluice\r\nContent-Type: " + jsonContentType + "\r\nX-Amz-Target: " + targetPrefix + "PutRecords\r\n" +
		"Content-Length: " + strconv.Itoa(declaredBody) + "\r\n\r\n"
	if _, err := holder.Write(append([]byte(head), bytes.Repeat([]byte{' '}, held)...)); err != nil {
		t.Fatal(err)
	}
	h2WaitFor(t, "the held bytes", func() bool { return hs.srv.inflight.used.Load() >= int64(held) })

	records := `{"StreamName":"s","Records":[{"PartitionKey":"k","Data":"` + strings.Repeat("A", 300<<10) + `"}]}`
	for _, c := range []struct {
		client *http.Client
		proto  int
	}{{http1Client(nil), 1}, {h2cClient(), 2}} {
		resp, b := refusedCall(t, c.client, base, "PutRecords", records)
		if resp.StatusCode != 503 || resp.Header.Get("X-Amzn-ErrorType") != "ServiceUnavailable" || !bytes.Contains(b, []byte(`"ServiceUnavailable"`)) {
			t.Fatalf("over HTTP/%d, a request over the budget: %d %v %s", c.proto, resp.StatusCode, resp.Header, b)
		}
		h2MustCall(t, c.client, base, c.proto, "ListStreams", `{}`, nil)
	}
	if used := hs.srv.inflight.used.Load(); used < int64(held) || used > int64(held)+readChunk {
		t.Fatalf("the budget holds %d bytes with %d held", used, held)
	}
	holder.Close()
	h2WaitFor(t, "the budget to empty", func() bool { return hs.srv.inflight.used.Load() == 0 })
	h2MustCall(t, http1Client(nil), base, 1, "PutRecords", records, nil)
	h2MustCall(t, h2cClient(), base, 2, "PutRecords", records, nil)
}

// refusedCall is h2Call for a request the server refuses before it has read the whole body.
// Over HTTP/1.1 the server answers and closes the connection without reading the rest, so a
// client still uploading may see the connection reset instead of the answer; the call is
// then made again, up to five times, until the answer is read.
func refusedCall(t *testing.T, c *http.Client, base, op, body string) (*http.Response, []byte) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequest("POST", base+"/", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Amz-Target", targetPrefix+op)
		req.Header.Set("Content-Type", jsonContentType)
		resp, err := c.Do(req)
		if err != nil {
			if attempt < 5 && errors.Is(err, syscall.ECONNRESET) {
				continue
			}
			t.Fatalf("%s: %v", op, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%s: reading the answer: %v", op, err)
		}
		return resp, b
	}
}

// otherClient is an HTTP/1.1 client connecting from 127.0.0.2, another address than the
// tests' 127.0.0.1 (Linux routes all of 127/8 to the loopback interface).
func otherClient() *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	var p http.Protocols
	p.SetHTTP1(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p, DialContext: d.DialContext}}
}

// closedByServer reports whether the server closed c, waiting for it to.
func closedByServer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err := io.Copy(io.Discard, c)
	return err == nil || !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestConnsPerIP takes every connection one address may open, with silent, slow-header and
// idle connections, and more: those over the address's cap are closed, and a client from
// another address is served meanwhile.
func TestConnsPerIP(t *testing.T) {
	const perIP = 8
	hs := startH2Server(t, Options{MaxConns: 3 * perIP, MaxConnsPerIP: perIP, HandshakeTimeout: time.Minute, HeaderTimeout: time.Minute})
	var conns []net.Conn
	for i := range perIP {
		c, err := net.Dial("tcp", hs.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		switch i % 3 {
		case 1: // slowloris: a request line and half its headers
			c.Write([]byte("POST / HTTP/1.1\r\nHost: sluice\r\nX-Amz-Tar"))
		case 2: // idle after a request
			c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: sluice\r\n\r\n"))
			if _, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
				t.Fatal(err)
			}
		}
		conns = append(conns, c)
	}
	h2WaitOpen(t, hs.srv, perIP)
	for range 3 {
		over, err := net.Dial("tcp", hs.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer over.Close()
		if !closedByServer(over) {
			t.Fatal("a connection over the address's cap was kept open")
		}
	}
	h2MustCall(t, otherClient(), "http://"+hs.addr, 1, "ListStreams", `{}`, nil)
	for _, c := range conns {
		c.Close()
	}
	h2WaitOpen(t, hs.srv, 1) // the other client's kept-alive connection
	h2MustCall(t, http1Client(nil), "http://"+hs.addr, 1, "ListStreams", `{}`, nil)
}

// TestSlowHeadersShed checks that a connection whose headers do not arrive within
// HeaderTimeout is closed, and so is one idle past IdleTimeout, giving back their places.
func TestSlowHeadersShed(t *testing.T) {
	hs := startH2Server(t, Options{MaxConns: 2, HeaderTimeout: 100 * time.Millisecond, IdleTimeout: 100 * time.Millisecond})
	slow, err := net.Dial("tcp", hs.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.Write([]byte("POST / HTTP/1.1\r\nHost: sluice\r\nX-Amz-Tar"))
	idle, err := net.Dial("tcp", hs.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.Write([]byte("GET /healthz HTTP/1.1\r\nHost: sluice\r\n\r\n"))
	if _, err := http.ReadResponse(bufio.NewReader(idle), nil); err != nil {
		t.Fatal(err)
	}
	if !closedByServer(slow) {
		t.Fatal("a connection whose headers never ended was kept open")
	}
	if !closedByServer(idle) {
		t.Fatal("an idle connection was kept open")
	}
	h2WaitOpen(t, hs.srv, 0)
	h2MustCall(t, otherClient(), "http://"+hs.addr, 1, "ListStreams", `{}`, nil)
}

// TestHeaderSizeLimit sends request headers over 16 KiB: HTTP/1.1 answers with a
// SerializationException that names the limit (and quotes none of the headers), HTTP/2 with
// 431 or by closing the connection, and the same client and another are served next.
func TestHeaderSizeLimit(t *testing.T) {
	hs := startH2Server(t, Options{})
	big := strings.Repeat("a", 20<<10)
	for _, c := range []struct {
		client *http.Client
		proto  int
	}{{http1Client(nil), 1}, {h2cClient(), 2}} {
		req, err := http.NewRequest("POST", "http://"+hs.addr+"/", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Amz-Target", targetPrefix+"ListStreams")
		req.Header.Set("X-Padding", big)
		resp, err := c.client.Do(req)
		if err != nil && c.proto == 2 {
			// Go's HTTP/2 server ends the connection (GOAWAY, COMPRESSION_ERROR) when a header
			// field alone exceeds the header limit: its decoder refuses the string.
			t.Logf("HTTP/2: %v", err)
			h2MustCall(t, c.client, "http://"+hs.addr, c.proto, "ListStreams", `{}`, nil)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		refused := resp.StatusCode == http.StatusRequestHeaderFieldsTooLarge
		if c.proto == 1 {
			refused = resp.StatusCode == 400 && resp.Header.Get("X-Amzn-ErrorType") == "SerializationException" &&
				bytes.Contains(b, []byte("exceed 16384 bytes")) && !bytes.Contains(b, []byte("aaaa"))
		}
		if !refused {
			t.Fatalf("HTTP/%d: headers of 20 KiB answered %d %s", c.proto, resp.StatusCode, b)
		}
		h2MustCall(t, c.client, "http://"+hs.addr, c.proto, "ListStreams", `{}`, nil)
	}
	h2MustCall(t, otherClient(), "http://"+hs.addr, 1, "ListStreams", `{}`, nil)
}

// TestConcurrentRequestsCap takes every place among the requests executing, as requests in
// progress hold them: another request is refused with ServiceUnavailable over HTTP/1.1,
// HTTP/2 and the native protocol, on a connection that stays open, while /healthz and
// /metrics still answer; once a place is given back the same connections are served.
func TestConcurrentRequestsCap(t *testing.T) {
	const places = 3
	hs := startH2Server(t, Options{MaxConcurrentRequests: places})
	base := "http://" + hs.addr
	h1, h2 := http1Client(nil), h2cClient()
	h2MustCall(t, h1, base, 1, "CreateStream", `{"StreamName":"s","ShardCount":1}`, nil)
	for range places {
		if !hs.srv.executing.take() {
			t.Fatal("a place was refused below the cap")
		}
	}
	if hs.srv.executing.take() {
		t.Fatal("a place was given past the cap")
	}
	native := func() *http.Response {
		resp, err := h1.Post(base+"/sluice/v1/put", "application/octet-stream", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for _, c := range []struct {
		client *http.Client
		proto  int
	}{{h1, 1}, {h2, 2}} {
		resp, b := h2Call(t, c.client, base, "ListStreams", `{}`)
		if resp.StatusCode != 503 || resp.Header.Get("X-Amzn-ErrorType") != "ServiceUnavailable" || !bytes.Contains(b, []byte(`"ServiceUnavailable"`)) {
			t.Fatalf("over HTTP/%d, a request past the cap: %d %v %s", c.proto, resp.StatusCode, resp.Header, b)
		}
		if resp.Close {
			t.Fatalf("over HTTP/%d, the refusal closed the connection", c.proto)
		}
	}
	if resp := native(); resp.StatusCode != 503 || resp.Header.Get("X-Sluice-Error") != "ServiceUnavailable" {
		t.Fatalf("a native request past the cap: %d %v", resp.StatusCode, resp.Header)
	}
	for _, path := range []string{"/healthz", "/metrics"} {
		resp, err := h1.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s past the cap: %d", path, resp.StatusCode)
		}
	}
	hs.srv.executing.give()
	h2MustCall(t, h1, base, 1, "ListStreams", `{}`, nil)
	h2MustCall(t, h2, base, 2, "ListStreams", `{}`, nil)
	if resp := native(); resp.StatusCode == 503 {
		t.Fatalf("a native request with a place free: %d %v", resp.StatusCode, resp.Header)
	}
	if n := hs.srv.executing.n.Load(); n != places-1 {
		t.Fatalf("%d places taken after the requests ended, want the test's %d", n, places-1)
	}
}
