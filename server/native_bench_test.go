package server

import (
	"encoding/binary"
	"strconv"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/server/wire"
)

// nativePutBody returns a native put body of n records of size bytes for stream "s", keyed as
// putRecordsBody keys them.
func nativePutBody(n, size int) []byte {
	data := make([]byte, size)
	for i := range data {
		data[i] = 0xab
	}
	b, off := wire.BeginPut(nil, "s")
	for i := range n {
		b = wire.AppendPutRecord(b, &wire.PutRecord{Key: []byte("key-" + strconv.Itoa(i)), Data: data})
	}
	wire.FinishPut(b, off, n)
	return b
}

// nativeCall posts one native request and fails the benchmark on anything but 200.
func nativeCall(b *testing.B, c *fasthttp.HostClient, path string, body []byte, resp *fasthttp.Response) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("http://" + c.Addr + path)
	req.Header.SetMethod("POST")
	req.Header.SetContentType(wire.ContentType)
	req.SetBodyRaw(body)
	if err := c.Do(req, resp); err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode() != 200 {
		b.Fatalf("%s: %d %s", path, resp.StatusCode(), resp.Body())
	}
}

// BenchmarkNativePut measures native puts of 500 records on a loopback connection per
// client goroutine, client and server in one process (the JSON API's figure is
// BenchmarkAPIPutRecords); bytes are record data bytes.
func BenchmarkNativePut(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			c := apiBench(b, 4)
			body := nativePutBody(500, size)
			b.SetBytes(int64(500 * size))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				resp := fasthttp.AcquireResponse()
				defer fasthttp.ReleaseResponse(resp)
				for pb.Next() {
					nativeCall(b, c, wire.PathPut, body, resp)
					if a := resp.Body(); len(a) < 8 || binary.LittleEndian.Uint32(a[4:]) != 0 {
						b.Fatalf("put answer %x", a[:min(len(a), 8)])
					}
				}
			})
			b.ReportMetric(float64(b.N)*500/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkNativePutHandler runs the put handler in process, without a connection, for
// batches of 1, 50 and 500 records of 100 bytes: its allocs/op are the server's per request,
// and equal across batch sizes when a record costs no allocation (the engine's own few per
// shard aside).
func BenchmarkNativePutHandler(b *testing.B) {
	for _, n := range []int{1, 50, 500} {
		b.Run("records="+strconv.Itoa(n), func(b *testing.B) {
			srv := New(openTestEngine(b, 4), Options{})
			var req fasthttp.Request
			req.Header.SetMethod("POST")
			req.SetRequestURI(wire.PathPut)
			req.SetBody(nativePutBody(n, 100))
			var ctx fasthttp.RequestCtx
			ctx.Init(&req, nil, nil)
			b.SetBytes(int64(n * 100))
			b.ReportAllocs()
			for b.Loop() {
				ctx.Response.Reset()
				srv.handle(&ctx)
				if ctx.Response.StatusCode() != 200 {
					b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
			b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkNativeGet measures native gets answered with 1 MiB of frames (about 990 records
// of 1 KiB) from four client goroutines per CPU, each with its connection (the JSON API's figure is
// BenchmarkAPIGetRecords, 1,000 such records an answer); bytes are record data bytes, as
// there.
func BenchmarkNativeGet(b *testing.B) {
	c := apiBench(b, 1)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	put := nativePutBody(500, 1024)
	for range 3 {
		nativeCall(b, c, wire.PathPut, put, resp)
	}
	get := wire.AppendGetRequest(nil, &wire.GetRequest{Stream: []byte("s"), Start: wire.TrimHorizon, MaxBytes: 1 << 20})
	nativeCall(b, c, wire.PathGet, get, resp)
	count, err := strconv.Atoi(string(resp.Header.Peek(wire.HeaderCount)))
	size := len(resp.Body())
	if err != nil || count < 900 || size > 1<<20 {
		b.Fatalf("a 1 MiB get: %d records, %d bytes, %v", count, size, err)
	}
	b.SetBytes(int64(count * 1024))
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		// Each client reads into one buffer: left to fasthttp's pool, a 1 MiB buffer is
		// dropped once earlier, smaller answers have calibrated the pool, and the figure
		// would measure the client's allocations instead of the server.
		resp.KeepBodyBuffer = true
		for pb.Next() {
			nativeCall(b, c, wire.PathGet, get, resp)
			if len(resp.Body()) != size {
				b.Fatalf("%d bytes, want %d", len(resp.Body()), size)
			}
		}
	})
	b.ReportMetric(float64(b.N)*float64(count)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(b.N)*float64(size)/b.Elapsed().Seconds()/1e6, "body-MB/s")
}
