// Like overload_test.go, this test loads a real server and runs without the race detector
// (`make overload`).

//go:build !race

package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The connections of TestManyClients, and the loopback addresses they come from (Linux
// routes all of 127/8 to the loopback interface): few enough per address that
// --max-conns-per-ip does not refuse them.
const (
	manyIdle      = 10_000
	manySlow      = 1_000
	manyIdleAddrs = 40 // 127.0.0.2 … 127.0.0.41: 250 each
	manySlowAddrs = 10 // 127.0.0.42 … 127.0.0.51: 100 each
	manyCalls     = 240
)

// TestManyClients holds 10,000 idle keep-alive connections (each made one request) and
// 1,000 slowloris connections (sending a request's headers a byte every half second, and
// connecting again when the server closes them) to a real server, and meanwhile a fresh
// client, connecting anew for each call, calls DescribeStream manyCalls times: every call
// succeeds, and the idle connections are still open at the end. The p99 latency of the fresh
// client's calls is reported, not asserted.
func TestManyClients(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < manyIdle+manySlow+1000 {
		t.Fatalf("the open file limit is %d: this test holds %d connections (raise the hard limit, ulimit -Hn)", lim.Cur, manyIdle+manySlow)
	}
	p := startServeProc(t, t.TempDir(), "--durability", "none", "--max-conns", strconv.Itoa(manyIdle+manySlow+1000))
	kc := newKinesisClient(p.base, 1, "")
	kc.createStream(t, "many", 4)

	// The idle connections: one request each, then silence (within --idle-timeout).
	idle := make([]net.Conn, manyIdle)
	var wg sync.WaitGroup
	var failed atomic.Int64
	next := atomic.Int64{}
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < manyIdle; i = int(next.Add(1) - 1) {
				from := fmt.Sprintf("127.0.0.%d", 2+i%manyIdleAddrs)
				c, err := healthzConn(p.addr, from)
				if err != nil {
					if failed.Add(1) == 1 {
						t.Errorf("idle connection %d from %s: %v", i, from, err)
					}
					continue
				}
				idle[i] = c
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range idle {
			if c != nil {
				c.Close()
			}
		}
	}()
	if failed.Load() > 0 {
		t.Fatalf("%d idle connections could not be opened", failed.Load())
	}

	// The slow ones, until the fresh client is done.
	ctx, cancel := context.WithCancel(context.Background())
	var slowOpen, slowClosed atomic.Int64
	for i := range manySlow {
		wg.Go(func() {
			slowloris(ctx, p.addr, fmt.Sprintf("127.0.0.%d", 2+manyIdleAddrs+i%manySlowAddrs), &slowOpen, &slowClosed)
		})
	}
	for slowOpen.Load() < manySlow {
		time.Sleep(10 * time.Millisecond) // waiting for the slow connections to open
	}

	// The fresh client: a new connection per call, within the DescribeStream quota (10/s).
	lat := make([]time.Duration, 0, manyCalls)
	body := []byte(`{"StreamName":"many"}`)
	for i := range manyCalls {
		fresh := &kinesisClient{base: p.base, http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
		sent := time.Now()
		a, err := fresh.call(context.Background(), "DescribeStream", body)
		took := time.Since(sent)
		if err != nil || a.status != 200 {
			cancel()
			wg.Wait()
			t.Fatalf("call %d of the fresh client: %d %s %s %v", i, a.status, a.errType, a.body, err)
		}
		lat = append(lat, took)
		time.Sleep(time.Until(sent.Add(120 * time.Millisecond))) // pacing within the quota
	}
	cancel()
	wg.Wait()
	slices.Sort(lat)
	t.Logf("fresh client's DescribeStream among %d idle and %d slow connections: p50 %v, p99 %v, max %v (%d calls); the server closed %d slow connections meanwhile",
		manyIdle, manySlow, pct(lat, 50), pct(lat, 99), lat[len(lat)-1], len(lat), slowClosed.Load())
	if n := establishedTo(t, p.addr); n < manyIdle {
		t.Errorf("%d connections to the server are open at the end, want the %d idle ones at least", n, manyIdle)
	}
}

// healthzConn connects from the address from, asks GET /healthz and reads the answer, and
// returns the connection, kept alive.
func healthzConn(addr, from string) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 30 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: sluice\r\n\r\n")); err != nil {
		c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	resp.Body.Close()
	c.SetDeadline(time.Time{})
	if resp.StatusCode != 200 {
		c.Close()
		return nil, fmt.Errorf("healthz: %d", resp.StatusCode)
	}
	return c, nil
}

// slowloris keeps a connection from the address from open by sending a request's headers a
// byte every half second, connecting again when the server closes it, until ctx is done.
// open counts its first connection, closed the ones the server closed.
func slowloris(ctx context.Context, addr, from string, open, closed *atomic.Int64) {
	head := "POST / HTTP/1.1\r\nHost: sluice\r\nX-Amz-Target: Kinesis_20131202.ListStreams\r\nX-Slow: " + strings.Repeat("z", 4096)
	first := true
	for ctx.Err() == nil {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			time.Sleep(100 * time.Millisecond) // the listener's backlog was full: try again
			continue
		}
		if first {
			open.Add(1)
			first = false
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		for i := 0; ctx.Err() == nil; i = (i + 1) % len(head) {
			if _, err := c.Write([]byte{head[i]}); err != nil {
				closed.Add(1)
				break
			}
			time.Sleep(500 * time.Millisecond) // the slowness is the point
		}
		stop()
		c.Close()
	}
}

// establishedTo counts the established TCP connections whose peer is addr, from
// /proc/net/tcp: the client ends of connections to the server.
func establishedTo(t *testing.T, addr string) int {
	_, port, _ := net.SplitHostPort(addr)
	pn, _ := strconv.Atoi(port)
	peer := fmt.Sprintf("0100007F:%04X", pn)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) > 3 && f[2] == peer && f[3] == "01" {
			n++
		}
	}
	return n
}
