package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edsrzf/mmap-go"
	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"

	"github.com/sluice-streams/sluice/internal/sigv4"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/server"
	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// The e2e suite: a sluice server in this process on a loopback port, and beside it the
// limits of the network path it uses.
//
//	limit_loopback_tcp          one TCP connection, 1 MiB writes, the reader discarding
//	limit_loopback_rtt          one-byte ping-pong on one connection: p50 round trip
//	limit_fasthttp_mmap_body    fasthttp answering GETs with a 1 MiB slice of a mapped file
//	                            (SetBodyRaw), 8 connections
//	limit_fasthttp_small        fasthttp answering 100-byte bodies, 4 connections pipelining
//	limit_fasthttp_100B_p50     one connection, one request at a time: p50 latency
//	limit_fdatasync_4KiB_p50    a 4 KiB append and fdatasync: p50
//	native_put_1KiB             native put, 500 × 1 KiB per request, 4 connections, durability
//	                            none: data bytes/s against loopback TCP
//	native_put_100B             the same with 100 B records: records/s against 1.1 M/s
//	native_get                  native get of 1 MiB answers, 8 connections: bytes/s against
//	                            loopback TCP (target 0.85)
//	kinesis_put                 PutRecords through the JSON API, 500 × 1 KiB, 4 connections:
//	                            data bytes/s against 450 MB/s (PERFORMANCE.md)
//	kinesis_put_iam             the same, each request signed (SigV4, by the client in this
//	                            process) and verified and authorised by a server with an IAM
//	                            file (serve --iam). Each run alternates the two servers in
//	                            iamPairs pairs of slices (plain then signed, signed then
//	                            plain, …): the ratio is the median, over every pair of every
//	                            round, of signed ÷ plain in the same pair, so that a change of
//	                            the machine's load between two measurements does not enter it
//	limit_json_decode_append,   records per CPU-second of the Kinesis JSON PutRecords path,
//	kinesis_put_cpu,            500 × 100 B: the server in a child process against decoding
//	kinesis_put_iam_cpu         and appending in this one, and a child with --iam against the
//	                            one without (cpu.go)
//	kinesis_get                 GetRecords through the JSON API, 1,000 × 1 KiB, 4 connections:
//	                            data bytes/s against 600 MB/s
//	put_latency_p50, _p99       one PutRecord at a time through the JSON API, durability none:
//	                            against fasthttp's 100 B p50 (targets 1.3 and 1.5)
//	put_latency_sync_p50        the same with durability sync: against fdatasync p50 +
//	                            fasthttp p50 (target 1.0)
//	efo_latency_p50, _p99       one native put at a time, received by a native subscriber:
//	                            put → delivery, against 2 × loopback round trip and 5 ms
const (
	e2eConns    = 4
	getConns    = 8
	e2eBatch    = 500
	mmapBody    = 1 << 20
	smallBody   = 100
	getFill     = 64 << 20 // bytes of 1 KiB records the get paths read over and over
	latencyKey  = "latency"
	e2eStream   = "bench"
	e2eShards   = 4
	maxLatRuns  = 200000
	kinesisPut  = 450e6
	kinesisGet  = 600e6
	nativeRecsT = 1.1e6
	iamPairs    = 2
	minSlice    = 250 * time.Millisecond // shortest slice of kinesis_put_iam's pairs
)

func e2eSuite(ctx context.Context, cfg config) ([]result, error) {
	none, err := startE2EServer(filepath.Join(cfg.dir, "none"), segment.None)
	if err != nil {
		return nil, err
	}
	defer none.close()
	durable, err := startE2EServer(filepath.Join(cfg.dir, "sync"), segment.Sync)
	if err != nil {
		return nil, err
	}
	defer durable.close()
	signed, err := startE2EServer(filepath.Join(cfg.dir, "iam"), segment.None, withIAM)
	if err != nil {
		return nil, err
	}
	defer signed.close()
	if err := none.fillForGets(); err != nil {
		return nil, fmt.Errorf("filling the stream: %w", err)
	}
	lim, err := startLimitServers(cfg.dir)
	if err != nil {
		return nil, err
	}
	defer lim.close()
	bin, err := buildSluice(ctx, cfg.dir)
	if err != nil {
		return nil, err
	}
	child, err := startChildServer(bin, filepath.Join(cfg.dir, "child"))
	if err != nil {
		return nil, err
	}
	defer child.close()
	iamFile := filepath.Join(cfg.dir, "iam.json")
	if err := os.WriteFile(iamFile, []byte(cpuIAM), 0o600); err != nil {
		return nil, err
	}
	iamChild, err := startChildServer(bin, filepath.Join(cfg.dir, "child-iam"), "--iam", iamFile)
	if err != nil {
		return nil, err
	}
	defer iamChild.close()
	bound, err := openDecodeAppendBound(filepath.Join(cfg.dir, "bound"))
	if err != nil {
		return nil, err
	}
	defer bound.eng.Close()

	lat := func(f func(ctx context.Context, d time.Duration) (latencies, error), q float64) func(context.Context, time.Duration) (float64, string, error) {
		return func(ctx context.Context, d time.Duration) (float64, string, error) {
			l, err := f(ctx, d)
			return l.quantile(q), l.note(), err
		}
	}
	var iamRatios []float64 // signed ÷ plain, one per pair of slices of kinesis_put_iam
	ms := []measurement{
		{"limit_loopback_tcp", "B/s", measureLoopbackTCP},
		{"limit_loopback_rtt", "µs", lat(measureLoopbackRTT, 0.5)},
		{"limit_fasthttp_mmap_body", "B/s", lim.measureMmapBody},
		{"limit_fasthttp_small", "req/s", lim.measureSmall},
		{"limit_fasthttp_100B_p50", "µs", lat(lim.measureSmallLatency, 0.5)},
		{"limit_fdatasync_4KiB_p50", "µs", lat(func(ctx context.Context, d time.Duration) (latencies, error) {
			return measureFdatasync(ctx, filepath.Join(cfg.dir, "fsync"), d)
		}, 0.5)},
		{"native_put_1KiB", "B/s", func(ctx context.Context, d time.Duration) (float64, string, error) {
			r, err := none.nativePut(ctx, d, 1024, e2eBatch)
			return r.bytes, r.note(), err
		}},
		{"native_put_100B", "records/s", func(ctx context.Context, d time.Duration) (float64, string, error) {
			r, err := none.nativePut(ctx, d, 100, e2eBatch)
			return r.records, r.note(), err
		}},
		{"native_get", "B/s", none.nativeGet},
		{"kinesis_put", "B/s", func(ctx context.Context, d time.Duration) (float64, string, error) {
			r, err := none.kinesisPut(ctx, d, 1024, e2eBatch)
			return r.bytes, r.note(), err
		}},
		{"kinesis_put_iam", "B/s", putPaired(none, signed, &iamRatios)},
		{"kinesis_get", "B/s", none.kinesisGet},
		{"limit_json_decode_append", "records/s", bound.measure},
		{"kinesis_put_cpu", "records/s", child.putCPU},
		{"kinesis_put_iam_cpu", "records/s", iamChild.putCPU},
		{"put_latency_p50", "µs", lat(none.putLatency, 0.5)},
		{"put_latency_p99", "µs", lat(none.putLatency, 0.99)},
		{"put_latency_sync_p50", "µs", lat(durable.putLatency, 0.5)},
		{"efo_latency_p50", "µs", lat(none.efoLatency, 0.5)},
		{"efo_latency_p99", "µs", lat(none.efoLatency, 0.99)},
	}
	s, err := runRounds(ctx, cfg, ms)
	if err != nil {
		return nil, err
	}
	med := func(name string) float64 { v, _ := s[name].median(); return v }
	tcp, rtt, small50, fsync50 := med("limit_loopback_tcp"), med("limit_loopback_rtt"), med("limit_fasthttp_100B_p50"), med("limit_fdatasync_4KiB_p50")
	lower := func(r result) result { r.LowerIsBetter = true; return r }
	return []result{
		limitResult("limit_loopback_tcp", "B/s", s["limit_loopback_tcp"]),
		limitResult("limit_loopback_rtt", "µs", s["limit_loopback_rtt"]),
		limitResult("limit_fasthttp_mmap_body", "B/s", s["limit_fasthttp_mmap_body"]),
		limitResult("limit_fasthttp_small", "req/s", s["limit_fasthttp_small"]),
		limitResult("limit_fasthttp_100B_p50", "µs", s["limit_fasthttp_100B_p50"]),
		limitResult("limit_fdatasync_4KiB_p50", "µs", s["limit_fdatasync_4KiB_p50"]),
		pathResult("native_put_1KiB", "B/s", s["native_put_1KiB"], tcp, "limit_loopback_tcp", 0),
		pathResult("native_put_100B", "records/s", s["native_put_100B"], nativeRecsT, "1.1 M records/s (PERFORMANCE.md)", 1),
		pathResult("native_get", "B/s", s["native_get"], tcp, "limit_loopback_tcp", 0.85),
		pathResult("kinesis_put", "B/s", s["kinesis_put"], kinesisPut, "450 MB/s (PERFORMANCE.md)", 1),
		pairedResult("kinesis_put_iam", "B/s", s["kinesis_put_iam"], iamRatios, "kinesis_put, paired slices"),
		pathResult("kinesis_get", "B/s", s["kinesis_get"], kinesisGet, "600 MB/s (PERFORMANCE.md)", 1),
		limitResult("limit_json_decode_append", "records/s", s["limit_json_decode_append"]),
		pathResult("kinesis_put_cpu", "records/s", s["kinesis_put_cpu"], med("limit_json_decode_append"), "limit_json_decode_append", 0.5),
		pairedResult("kinesis_put_iam_cpu", "records/s", s["kinesis_put_iam_cpu"], roundRatios(s["kinesis_put_iam_cpu"], s["kinesis_put_cpu"]), "kinesis_put_cpu, same round"),
		lower(pathResult("put_latency_p50", "µs", s["put_latency_p50"], small50, "limit_fasthttp_100B_p50", 1.3)),
		lower(pathResult("put_latency_p99", "µs", s["put_latency_p99"], small50, "limit_fasthttp_100B_p50", 1.5)),
		lower(pathResult("put_latency_sync_p50", "µs", s["put_latency_sync_p50"], fsync50+small50, "fdatasync p50 + fasthttp p50", 1)),
		lower(pathResult("efo_latency_p50", "µs", s["efo_latency_p50"], 2*rtt, "2 × limit_loopback_rtt", 1)),
		lower(pathResult("efo_latency_p99", "µs", s["efo_latency_p99"], 5000, "5 ms (PERFORMANCE.md)", 1)),
	}, nil
}

// latencies are samples in microseconds.
type latencies []float64

func (l latencies) quantile(q float64) float64 {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func (l latencies) note() string { return fmt.Sprintf("%d samples", len(l)) }

// measureLoopbackTCP streams 1 MiB writes over one loopback connection.
func measureLoopbackTCP(ctx context.Context, d time.Duration) (float64, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, "", err
	}
	defer ln.Close()
	var got atomic.Int64
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 1<<20)
		for {
			n, err := c.Read(buf)
			got.Add(int64(n))
			if err != nil {
				done <- nil
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, "", err
	}
	buf := make([]byte, 1<<20)
	fillPattern(buf)
	start := time.Now()
	for time.Since(start) < d && ctx.Err() == nil {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, "", err
		}
	}
	c.Close()
	if err := <-done; err != nil {
		return 0, "", err
	}
	return float64(got.Load()) / time.Since(start).Seconds(), "", ctx.Err()
}

// measureLoopbackRTT ping-pongs one byte over one loopback connection.
func measureLoopbackRTT(ctx context.Context, d time.Duration) (latencies, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := make([]byte, 1)
		for {
			if _, err := c.Read(b); err != nil {
				return
			}
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var l latencies
	b := make([]byte, 1)
	start := time.Now()
	for time.Since(start) < d && ctx.Err() == nil && len(l) < maxLatRuns {
		t := time.Now()
		if _, err := c.Write(b); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return nil, err
		}
		l = append(l, float64(time.Since(t).Nanoseconds())/1e3)
	}
	return l, ctx.Err()
}

// measureFdatasync appends 4 KiB and syncs, over and over.
func measureFdatasync(ctx context.Context, dir string, d time.Duration) (latencies, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "fsync-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	fillPattern(buf)
	var l latencies
	var off int64
	start := time.Now()
	for time.Since(start) < d && ctx.Err() == nil && len(l) < maxLatRuns {
		t := time.Now()
		if _, err := f.WriteAt(buf, off); err != nil {
			return nil, err
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			return nil, err
		}
		l = append(l, float64(time.Since(t).Nanoseconds())/1e3)
		off += int64(len(buf))
	}
	return l, ctx.Err()
}

// limitServers are the plain fasthttp servers the fasthttp limits are measured against.
type limitServers struct {
	ln    net.Listener
	srv   *fasthttp.Server
	file  *os.File
	m     mmap.MMap
	small []byte
}

func startLimitServers(dir string) (*limitServers, error) {
	f, err := os.CreateTemp(dir, "body-")
	if err != nil {
		return nil, err
	}
	buf := make([]byte, mmapBody)
	fillPattern(buf)
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return nil, err
	}
	m, err := mmap.Map(f, mmap.RDONLY, 0)
	if err != nil {
		f.Close()
		return nil, err
	}
	l := &limitServers{file: f, m: m, small: buf[:smallBody]}
	l.srv = &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/big" {
			ctx.Response.SetBodyRaw(l.m)
			return
		}
		ctx.Response.SetBodyRaw(l.small)
	}}
	if l.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		l.close()
		return nil, err
	}
	go l.srv.Serve(l.ln)
	return l, nil
}

func (l *limitServers) close() {
	if l.ln != nil {
		l.srv.Shutdown()
	}
	l.m.Unmap()
	l.file.Close()
	os.Remove(l.file.Name())
}

// parallel runs n workers until d has passed, each calling step in a loop, and returns the
// sum of what the steps returned per second.
func parallel(ctx context.Context, d time.Duration, n int, step func(w int) (int64, error)) (float64, error) {
	var total atomic.Int64
	var firstErr error
	var once sync.Once
	start := time.Now()
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			for time.Since(start) < d && ctx.Err() == nil {
				v, err := step(w)
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				total.Add(v)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	return float64(total.Load()) / time.Since(start).Seconds(), ctx.Err()
}

func (l *limitServers) measureMmapBody(ctx context.Context, d time.Duration) (float64, string, error) {
	c := &fasthttp.HostClient{Addr: l.ln.Addr().String(), MaxConns: getConns, MaxResponseBodySize: 2 * mmapBody}
	resps := keptResponses(getConns)
	v, err := parallel(ctx, d, getConns, func(w int) (int64, error) {
		req, resp := fasthttp.AcquireRequest(), resps[w]
		defer fasthttp.ReleaseRequest(req)
		req.SetRequestURI("http://" + c.Addr + "/big")
		if err := c.Do(req, resp); err != nil {
			return 0, err
		}
		return int64(len(resp.Body())), nil
	})
	return v, "", err
}

func (l *limitServers) measureSmall(ctx context.Context, d time.Duration) (float64, string, error) {
	// 64 workers keep 64 requests in flight over 4 connections. MaxPendingRequests is set
	// above 16 because fasthttp picks a connection by its queue length at the moment of the
	// call, so racing workers may briefly put more than 16 on one.
	c := &fasthttp.PipelineClient{Addr: l.ln.Addr().String(), MaxConns: 4, MaxPendingRequests: 64}
	v, err := parallel(ctx, d, 64, func(int) (int64, error) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + c.Addr + "/small")
		if err := c.Do(req, resp); err != nil {
			return 0, err
		}
		return 1, nil
	})
	return v, "4 connections, 64 requests in flight", err
}

func (l *limitServers) measureSmallLatency(ctx context.Context, d time.Duration) (latencies, error) {
	c := &fasthttp.HostClient{Addr: l.ln.Addr().String(), MaxConns: 1}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + c.Addr + "/small")
	req.Header.SetMethod("POST")
	req.SetBody(l.small)
	var lat latencies
	start := time.Now()
	for time.Since(start) < d && ctx.Err() == nil && len(lat) < maxLatRuns {
		t := time.Now()
		if err := c.Do(req, resp); err != nil {
			return nil, err
		}
		lat = append(lat, float64(time.Since(t).Nanoseconds())/1e3)
	}
	return lat, ctx.Err()
}

// keptResponses returns a response per worker that keeps its body buffer: left to fasthttp's
// pool, a 1 MiB body buffer is dropped once smaller bodies have calibrated the pool, and a
// figure would measure the client's allocations rather than the path.
func keptResponses(n int) []*fasthttp.Response {
	out := make([]*fasthttp.Response, n)
	for i := range out {
		out[i] = &fasthttp.Response{KeepBodyBuffer: true}
	}
	return out
}

// e2eServer is a sluice server over its own engine, with stream "bench" of four shards.
type e2eServer struct {
	endpoint
	eng *stream.Engine
	srv *server.Server
	ln  net.Listener
}

// endpoint is a sluice server's address and a client of it.
type endpoint struct {
	addr   string
	c      *fasthttp.HostClient
	signer *sigv4.Signer // signs every request when set (withIAM)
	hashes *payloadHashes
}

// payloadHashes keeps the body last signed and its SHA-256. The measurements send one
// unchanging body over and over, and a client on another machine would hash it there:
// hashing it again for every request in this process would charge the client's work to the
// server's figure (BenchmarkAPIPutRecordsSigned in package server measures the difference).
type payloadHashes struct {
	mu     sync.Mutex // guards hashed and hash
	hashed []byte
	hash   [64]byte
}

// of returns the SHA-256 of body (hex), computed once for the body the requests keep
// sending: the same bytes at the same address. A body changed in place would keep its old
// hash, and the server would refuse the signature: such a bench fails loudly.
func (p *payloadHashes) of(body []byte) [64]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(body) == 0 || len(p.hashed) != len(body) || &p.hashed[0] != &body[0] {
		p.hashed, p.hash = body, sigv4.PayloadHash(body)
	}
	return p.hash
}

func newEndpoint(addr string) endpoint {
	return endpoint{addr: addr, hashes: &payloadHashes{},
		c: &fasthttp.HostClient{Addr: addr, MaxConns: 64, MaxResponseBodySize: 64 << 20, ReadBufferSize: 64 << 10}}
}

// e2eIAM is the IAM file of the server started withIAM: one user allowed everything.
const e2eIAM = `{"users": [{"name": "bench", "accessKeyId": "AKbench", "secretAccessKey": "s-bench", "policies": [
 {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"}]}]}]}`

// withIAM makes startE2EServer verify signatures and authorise requests with e2eIAM, as
// serve --iam does, and its requests signed by e2eIAM's user.
func withIAM(opts *server.Options, e *e2eServer) error {
	const account, region = "000000000000", "us-east-1"
	users, err := server.ParseIAM([]byte(e2eIAM), account)
	if err != nil {
		return err
	}
	opts.Authenticator = server.NewSigV4Verifier(account, region, users)
	e.signer = sigv4.NewSigner(sigv4.Credentials{AccessKeyID: "AKbench", SecretAccessKey: "s-bench"}, region, "kinesis")
	return nil
}

func startE2EServer(dir string, mode segment.Mode, with ...func(*server.Options, *e2eServer) error) (*e2eServer, error) {
	eng, err := stream.Open(stream.Options{Dir: dir, Durability: segment.Durability{Mode: mode}, Limits: stream.Limits{Off: true, Factor: 1}})
	if err != nil {
		return nil, err
	}
	if err := eng.CreateStream(stream.CreateStreamInput{Name: e2eStream, ShardCount: e2eShards}); err != nil {
		eng.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		eng.Close()
		return nil, err
	}
	e := &e2eServer{endpoint: newEndpoint(ln.Addr().String()), ln: ln, eng: eng}
	var opts server.Options
	for _, f := range with {
		if err := f(&opts, e); err != nil {
			ln.Close()
			eng.Close()
			return nil, err
		}
	}
	e.srv = server.New(eng, opts)
	go e.srv.Serve(ln)
	return e, nil
}

func (e *e2eServer) close() {
	e.srv.Shutdown()
	e.eng.Close()
}

// post sends one request and checks for a 200.
func (e endpoint) post(path, target string, body []byte, resp *fasthttp.Response) error {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("http://" + e.addr + path)
	req.Header.SetMethod("POST")
	if target != "" {
		req.Header.Set("X-Amz-Target", "Kinesis_20131202."+target)
		req.Header.SetContentType("application/x-amz-json-1.1")
	} else {
		req.Header.SetContentType(wire.ContentType)
	}
	req.SetBodyRaw(body)
	if e.signer != nil {
		e.sign(req, path, target)
	}
	if err := e.c.Do(req, resp); err != nil {
		return err
	}
	if resp.StatusCode() != 200 {
		return fmt.Errorf("%s%s: status %d: %.300s", path, target, resp.StatusCode(), resp.Body())
	}
	return nil
}

// sign signs req as the Go client does (client/credentials.go): content type, host, date
// and target, and the payload's SHA-256 (hashed once per body: payloadHashes).
func (e endpoint) sign(req *fasthttp.Request, path, target string) {
	now := time.Now().UTC()
	amzDate := now.Format(sigv4.TimeFormat)
	req.Header.Set("X-Amz-Date", amzDate)
	hl := sigv4.HeaderList{{Name: "content-type", Value: string(req.Header.ContentType())}, {Name: "host", Value: e.addr}, {Name: "x-amz-date", Value: amzDate}}
	if target != "" {
		hl = append(hl, sigv4.Header{Name: "x-amz-target", Value: "Kinesis_20131202." + target})
	}
	hash := e.hashes.of(req.Body())
	r := sigv4.Request{Method: []byte(fasthttp.MethodPost), Path: []byte(path), Headers: hl, SignedHeaders: hl.Names(), PayloadHash: hash[:]}
	req.Header.Set("Authorization", e.signer.Authorization(&r, now))
}

// nativePutBody is a native put of batch records of size bytes, keys spread over shards.
func nativePutBody(size, batch int) []byte {
	data := make([]byte, size)
	fillPattern(data)
	b, off := wire.BeginPut(nil, e2eStream)
	for i := range batch {
		b = wire.AppendPutRecord(b, &wire.PutRecord{Key: []byte("key-" + strconv.Itoa(i)), Data: data})
	}
	wire.FinishPut(b, off, batch)
	return b
}

// putRun is what a put measurement gives: data bytes and records per second.
type putRun struct {
	bytes, records float64
	batch          int
}

func (r putRun) note() string {
	return fmt.Sprintf("%.0f records/s, %d connections, batches of %d", r.records, e2eConns, r.batch)
}

// nativePut puts batches of batch records of size bytes over e2eConns connections.
func (e *e2eServer) nativePut(ctx context.Context, d time.Duration, size, batch int) (putRun, error) {
	body := nativePutBody(size, batch)
	reqs, err := parallel(ctx, d, e2eConns, func(int) (int64, error) {
		return 1, e.putNative(body)
	})
	return putRun{bytes: reqs * float64(batch*size), records: reqs * float64(batch), batch: batch}, err
}

// putNative sends one native put and fails unless every record of it was appended.
func (e endpoint) putNative(body []byte) error {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := e.post(wire.PathPut, "", body, resp); err != nil {
		return err
	}
	a, err := wire.ReadPutAnswer(resp.Body())
	if err != nil {
		return err
	}
	if a.Failed > 0 {
		for i := range a.Count {
			if r := a.Result(i); r.Code != wire.OK {
				return fmt.Errorf("%d records of a put failed, the first with %s", a.Failed, r.Code.Name())
			}
		}
	}
	return nil
}

// fillForGets puts getFill bytes of 1 KiB records into shard 0 for the get paths.
func (e *e2eServer) fillForGets() error {
	data := make([]byte, 1024)
	fillPattern(data)
	entries := make([]stream.PutEntry, e2eBatch)
	zero := shardmap.Key{}
	for i := range entries {
		entries[i] = stream.PutEntry{PartitionKey: "k", ExplicitHashKey: &zero, Data: data}
	}
	for range getFill / (e2eBatch * 1024) {
		res, err := e.eng.PutRecords(e2eStream, entries)
		if err != nil {
			return err
		}
		if res[0].Err != nil {
			return res[0].Err
		}
	}
	return nil
}

func (e *e2eServer) nativeGet(ctx context.Context, d time.Duration) (float64, string, error) {
	var positions [getConns]uint64
	resps := keptResponses(getConns)
	v, err := parallel(ctx, d, getConns, func(w int) (int64, error) {
		resp := resps[w]
		req := wire.GetRequest{Stream: []byte(e2eStream), Shard: 0, Start: wire.AtSequenceNumber, Value: positions[w], MaxBytes: 1 << 20}
		if positions[w] == 0 {
			req.Start = wire.TrimHorizon
		}
		if err := e.post(wire.PathGet, "", wire.AppendGetRequest(nil, &req), resp); err != nil {
			return 0, err
		}
		n, err := strconv.Atoi(string(resp.Header.Peek(wire.HeaderCount)))
		if err != nil || n == 0 {
			positions[w] = 0 // read to the tip: start over
			return 0, nil
		}
		next, err := strconv.ParseUint(string(resp.Header.Peek(wire.HeaderNext)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("get answer without a next position: %w", err)
		}
		positions[w] = next
		return int64(len(resp.Body())), nil
	})
	return v, fmt.Sprintf("answers of up to 1 MiB, %d connections, zero-copy from the mapping", getConns), err
}

// kinesisPutBody is a JSON PutRecords body of batch records of size bytes.
func kinesisPutBody(size, batch int) []byte {
	data := make([]byte, size)
	fillPattern(data)
	enc := base64.StdEncoding.EncodeToString(data)
	var b bytes.Buffer
	b.WriteString(`{"StreamName":"` + e2eStream + `","Records":[`)
	for i := range batch {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"Data":"` + enc + `","PartitionKey":"key-` + strconv.Itoa(i) + `"}`)
	}
	b.WriteString("]}")
	return b.Bytes()
}

// putPaired measures kinesis_put_iam: in each run, iamPairs pairs of slices of d (minSlice
// at the least), each putting to the plain server and to the signed one, in alternating
// order. It appends each
// pair's ratio (signed ÷ plain) to ratios and returns the signed server's throughput.
func putPaired(plain, signed *e2eServer, ratios *[]float64) func(context.Context, time.Duration) (float64, string, error) {
	return func(ctx context.Context, d time.Duration) (float64, string, error) {
		slice := max(d/(2*iamPairs), minSlice)
		var total float64
		var last putRun
		for i := range iamPairs {
			order := []*e2eServer{plain, signed}
			if i%2 == 1 {
				order[0], order[1] = signed, plain
			}
			var got [2]float64 // plain, signed
			for _, e := range order {
				r, err := e.kinesisPut(ctx, slice, 1024, e2eBatch)
				if err != nil {
					return 0, "", err
				}
				if e == signed {
					got[1], last = r.bytes, r
				} else {
					got[0] = r.bytes
				}
			}
			*ratios = append(*ratios, got[1]/got[0])
			total += got[1]
		}
		return total / iamPairs, last.note() + fmt.Sprintf(", %d pairs of %v slices", iamPairs, slice), nil
	}
}

// kinesisPut puts batches of batch records of size bytes through the JSON API over
// e2eConns connections.
func (e *e2eServer) kinesisPut(ctx context.Context, d time.Duration, size, batch int) (putRun, error) {
	body := kinesisPutBody(size, batch)
	reqs, err := parallel(ctx, d, e2eConns, func(int) (int64, error) {
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		if err := e.post("/", "PutRecords", body, resp); err != nil {
			return 0, err
		}
		if !bytes.HasPrefix(resp.Body(), []byte(`{"FailedRecordCount":0,`)) {
			return 0, fmt.Errorf("PutRecords failed records: %.200s", resp.Body())
		}
		return 1, nil
	})
	return putRun{bytes: reqs * float64(batch*size), records: reqs * float64(batch), batch: batch}, err
}

func (e *e2eServer) kinesisGet(ctx context.Context, d time.Duration) (float64, string, error) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	if err := e.post("/", "GetShardIterator", []byte(`{"StreamName":"`+e2eStream+`","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}`), resp); err != nil {
		return 0, "", err
	}
	var it struct{ ShardIterator string }
	if err := json.Unmarshal(resp.Body(), &it); err != nil {
		return 0, "", err
	}
	get := []byte(`{"ShardIterator":"` + it.ShardIterator + `","Limit":1000}`)
	resps := keptResponses(e2eConns)
	reqs, err := parallel(ctx, d, e2eConns, func(w int) (int64, error) {
		resp := resps[w]
		if err := e.post("/", "GetRecords", get, resp); err != nil {
			return 0, err
		}
		return 1, nil
	})
	return reqs * 1000 * 1024, "1,000 records of 1 KiB per answer", err
}

func (e *e2eServer) putLatency(ctx context.Context, d time.Duration) (latencies, error) {
	body := []byte(`{"StreamName":"` + e2eStream + `","PartitionKey":"` + latencyKey + `","Data":"` + base64.StdEncoding.EncodeToString(make([]byte, 100)) + `"}`)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	var l latencies
	start := time.Now()
	for time.Since(start) < d && ctx.Err() == nil && len(l) < maxLatRuns {
		t := time.Now()
		if err := e.post("/", "PutRecord", body, resp); err != nil {
			return nil, err
		}
		l = append(l, float64(time.Since(t).Nanoseconds())/1e3)
	}
	return l, ctx.Err()
}

// efoLatency puts one record at a time with the native put and measures how long until a
// native subscriber of its shard receives it.
func (e *e2eServer) efoLatency(ctx context.Context, d time.Duration) (latencies, error) {
	name := "efo-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	cons, err := e.eng.RegisterConsumer(e2eStream, name)
	if err != nil {
		return nil, err
	}
	defer e.eng.DeregisterConsumer(e2eStream, name, "")
	shard := uint32(0) // hash key 0 routes to shard 0
	sub := wire.AppendSubscribeRequest(nil, &wire.SubscribeRequest{ConsumerARN: []byte(cons.ARN), Shard: shard, Start: wire.Latest})
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", wire.PathSubscribe, e.addr, wire.ContentType, len(sub))
	if _, err := conn.Write(sub); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 1<<20)
	body, err := chunkedBody(br)
	if err != nil {
		return nil, err
	}
	received := make(chan time.Time, 1)
	readErr := make(chan error, 1)
	go func() {
		var buf []byte
		for {
			var m wire.Message
			var err error
			if m, buf, err = wire.ReadMessage(body, buf); err != nil {
				readErr <- err
				return
			}
			if m.Type == wire.MsgRecords && m.Count > 0 {
				received <- time.Now()
			}
		}
	}()
	rec := wire.PutRecord{Key: []byte(latencyKey), Data: make([]byte, 100), HasHash: true}
	put, off := wire.BeginPut(nil, e2eStream)
	put = wire.AppendPutRecord(put, &rec)
	wire.FinishPut(put, off, 1)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	var l latencies
	start := time.Now()
	for time.Since(start) < d && ctx.Err() == nil && len(l) < maxLatRuns {
		t := time.Now()
		if err := e.post(wire.PathPut, "", put, resp); err != nil {
			return nil, err
		}
		select {
		case at := <-received:
			l = append(l, float64(at.Sub(t).Nanoseconds())/1e3)
		case err := <-readErr:
			return nil, fmt.Errorf("subscription: %w", err)
		case <-time.After(5 * time.Second):
			return nil, errors.New("a put was not delivered to the subscriber within 5 s")
		}
	}
	return l, ctx.Err()
}

// chunkedBody reads an HTTP/1.1 response head from br, checks for a 200, and returns a reader
// of its chunked body.
func chunkedBody(br *bufio.Reader) (*bufio.Reader, error) {
	status, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(status) < 12 || status[9:12] != "200" {
		return nil, fmt.Errorf("subscribe: %q", status)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if line == "\r\n" {
			break
		}
	}
	return bufio.NewReaderSize(&chunkReader{r: br}, 1<<20), nil
}

// chunkReader decodes an HTTP/1.1 chunked body.
type chunkReader struct {
	r    *bufio.Reader
	left int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if c.left == 0 {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		if line == "\r\n" { // the end of the previous chunk
			if line, err = c.r.ReadString('\n'); err != nil {
				return 0, err
			}
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace([]byte(line))), 16, 64)
		if err != nil {
			return 0, fmt.Errorf("chunk size %q: %w", line, err)
		}
		if n == 0 {
			return 0, io.EOF
		}
		c.left = int(n)
	}
	n, err := c.r.Read(p[:min(len(p), c.left)])
	c.left -= n
	return n, err
}
