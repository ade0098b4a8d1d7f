package server

import (
	"bytes"
	"encoding/json"
	"net"
	"strconv"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/stream"
)

// putRecordsBody returns a PutRecords body of n records of size bytes for stream "s".
func putRecordsBody(n, size int) []byte {
	data := bytes.Repeat([]byte{0xab}, size)
	enc := b64(string(data))
	var b bytes.Buffer
	b.WriteString(`{"StreamName":"s","Records":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"Data":"` + enc + `","PartitionKey":"key-` + strconv.Itoa(i) + `"}`)
	}
	b.WriteString("]}")
	return b.Bytes()
}

func BenchmarkDecodePutRecords(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			body := putRecordsBody(500, size)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				p := getPutBatch()
				if err := p.decodePutRecords(body); err != nil || len(p.entries) != 500 {
					b.Fatal(err)
				}
				p.release()
			}
			b.ReportMetric(float64(b.N)*500/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkDecodePutRecordsEncodingJSON is the reference the scanner replaced.
func BenchmarkDecodePutRecordsEncodingJSON(b *testing.B) {
	body := putRecordsBody(500, 1024)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var ref refPutRecords
		if err := json.Unmarshal(body, &ref); err != nil || len(ref.Records) != 500 {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeGetRecords encodes a GetRecords answer of 1,000 records of 1 KiB from the
// mapping; bytes are record data bytes.
func BenchmarkEncodeGetRecords(b *testing.B) {
	eng := openTestEngine(b, 1)
	entries := make([]stream.PutEntry, 500)
	for i := range entries {
		entries[i] = stream.PutEntry{PartitionKey: "key-" + strconv.Itoa(i), Data: bytes.Repeat([]byte{byte(i)}, 1024)}
	}
	for range 2 {
		if _, err := eng.PutRecords("s", entries); err != nil {
			b.Fatal(err)
		}
	}
	it, err := eng.GetShardIterator(stream.IteratorInput{Stream: "s", Shard: 0, Type: stream.TrimHorizon})
	if err != nil {
		b.Fatal(err)
	}
	r, err := eng.GetRecords(it, 1000)
	if err != nil || r.Records.Count != 1000 {
		b.Fatal(err, r.Records.Count)
	}
	defer r.Release()
	b.SetBytes(1000 * 1024)
	b.ReportAllocs()
	buf := make([]byte, 0, getRecordsSize(&r.Records))
	for b.Loop() {
		buf = appendGetRecordsResult(buf[:0], &r)
	}
}

// apiBench runs a server over an engine with one stream "s" of shards shards (durability
// none, limits off) and returns a client for it.
func apiBench(b *testing.B, shards int) *fasthttp.HostClient {
	eng := openTestEngine(b, shards)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := New(eng, Options{})
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Shutdown() })
	return &fasthttp.HostClient{Addr: ln.Addr().String(), MaxResponseBodySize: 64 << 20}
}

// call posts one Kinesis operation and fails the benchmark on anything but 200.
func call(b *testing.B, c *fasthttp.HostClient, op string, body []byte, resp *fasthttp.Response) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI("http://" + c.Addr + "/")
	req.Header.SetMethod("POST")
	req.Header.Set("X-Amz-Target", targetPrefix+op)
	req.Header.SetContentType(jsonContentType)
	req.SetBodyRaw(body)
	if err := c.Do(req, resp); err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode() != 200 || op == "PutRecords" && !bytes.HasPrefix(resp.Body(), []byte(`{"FailedRecordCount":0,`)) {
		b.Fatalf("%s: %d %.200s", op, resp.StatusCode(), resp.Body())
	}
}

// BenchmarkAPIPutRecords measures PutRecords through the JSON API on a loopback connection,
// client and server in one process; bytes are record data bytes.
func BenchmarkAPIPutRecords(b *testing.B) {
	for _, size := range []int{100, 1024} {
		b.Run(strconv.Itoa(size)+"B", func(b *testing.B) {
			c := apiBench(b, 4)
			body := putRecordsBody(500, size)
			b.SetBytes(int64(500 * size))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				resp := fasthttp.AcquireResponse()
				defer fasthttp.ReleaseResponse(resp)
				for pb.Next() {
					call(b, c, "PutRecords", body, resp)
				}
			})
			b.ReportMetric(float64(b.N)*500/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkAPIGetRecords measures GetRecords of 1,000 records of 1 KiB through the JSON API;
// bytes are record data bytes.
func BenchmarkAPIGetRecords(b *testing.B) {
	c := apiBench(b, 1)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	body := putRecordsBody(500, 1024)
	for range 2 {
		call(b, c, "PutRecords", body, resp)
	}
	call(b, c, "GetShardIterator", []byte(`{"StreamName":"s","ShardId":"shardId-000000000000","ShardIteratorType":"TRIM_HORIZON"}`), resp)
	var it struct{ ShardIterator string }
	if err := json.Unmarshal(resp.Body(), &it); err != nil {
		b.Fatal(err)
	}
	get := []byte(`{"ShardIterator":"` + it.ShardIterator + `","Limit":1000}`)
	b.SetBytes(1000 * 1024)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		resp := fasthttp.AcquireResponse()
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			call(b, c, "GetRecords", get, resp)
		}
	})
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkAPIPutRecord measures one PutRecord of 100 bytes at a time through the JSON API
// on a loopback connection, client and server in one process: the path of the e2e suite's
// put_latency figures. Bytes are record data bytes.
func BenchmarkAPIPutRecord(b *testing.B) {
	c := apiBench(b, 4)
	body := []byte(`{"StreamName":"s","PartitionKey":"latency","Data":"` + b64(string(bytes.Repeat([]byte{0xab}, 100))) + `"}`)
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	b.SetBytes(100)
	b.ReportAllocs()
	for b.Loop() {
		call(b, c, "PutRecord", body, resp)
	}
}
