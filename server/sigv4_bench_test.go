package server

import (
	"bytes"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/internal/sigv4"
	"github.com/valyala/fasthttp"
)

// BenchmarkSigV4Verify verifies signed Kinesis requests: a PutRecords body of 1 MiB (about
// 500 records of 1,560 bytes, 2,080 in base64) and a PutRecord of 100 bytes. Bytes are the
// body's. The body's SHA-256 is the one pass over it, so the 1 MiB case runs near
// crypto/sha256's speed, which BenchmarkSHA256 measures in the same run.
func BenchmarkSigV4Verify(b *testing.B) {
	data := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{'x'}, 1560))
	var big strings.Builder
	big.WriteString(`{"StreamName":"s","Records":[`)
	for i := 0; big.Len() < 1<<20-2200; i++ {
		if i > 0 {
			big.WriteByte(',')
		}
		big.WriteString(`{"PartitionKey":"k","Data":"` + data + `"}`)
	}
	big.WriteString(`]}`)
	for _, bc := range []struct {
		name, body string
	}{
		{"PutRecords_1MiB", big.String()},
		{"PutRecord_100B", `{"StreamName":"s","PartitionKey":"k","Data":"` + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{'x'}, 100)) + `"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := signed{body: bc.body}.request(b)
			v := testVerifier()
			if _, err := v.Authenticate(r); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := v.Authenticate(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSHA256 is the limit of BenchmarkSigV4Verify's large case: one SHA-256 pass over
// 1 MiB.
func BenchmarkSHA256(b *testing.B) {
	body := bytes.Repeat([]byte{'x'}, 1<<20)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		_ = sigv4.PayloadHash(body)
	}
}

// BenchmarkAPIPutRecordsSigned measures PutRecords of 500 records of 1 KiB through the JSON
// API on loopback, client and server in one process, as BenchmarkAPIPutRecords: "unsigned"
// to a server without authentication (the local default), "signed" to a server that verifies
// SigV4 and authorises every request, with the requests signed once, before the loop (the
// body and the second do not change), so that the figure is the server's; "client-signs"
// signs each request in the loop, hashing the body as the client must, which a benchmark
// running both ends in one process charges to the server. Bytes are record data bytes; the
// ratio of signed to unsigned is what verification costs the server.
func BenchmarkAPIPutRecordsSigned(b *testing.B) {
	body := putRecordsBody(500, 1024)
	for _, mode := range []string{"unsigned", "signed", "client-signs"} {
		b.Run(mode, func(b *testing.B) {
			eng := openTestEngine(b, 4)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var opts Options
			if mode != "unsigned" {
				opts.Authenticator = NewSigV4Verifier(testAccount, "us-east-1", testUsers())
			}
			srv := New(eng, opts)
			go srv.Serve(ln)
			b.Cleanup(func() { srv.Shutdown() })
			c := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxResponseBodySize: 64 << 20}
			signer := sigv4.NewSigner(sigv4.Credentials{AccessKeyID: testKey, SecretAccessKey: testSecret}, "us-east-1", "kinesis")
			hash := sigv4.PayloadHash(body)
			sign := func(req *fasthttp.Request, hash []byte) {
				now := time.Now().UTC()
				amzDate := now.Format(sigv4.TimeFormat)
				req.Header.Set("X-Amz-Date", amzDate)
				hl := sigv4.HeaderList{{Name: "content-type", Value: jsonContentType}, {Name: "host", Value: c.Addr},
					{Name: "x-amz-date", Value: amzDate}, {Name: "x-amz-target", Value: targetPrefix + "PutRecords"}}
				r := sigv4.Request{Method: []byte(fasthttp.MethodPost), Path: []byte("/"), Headers: hl, SignedHeaders: hl.Names(), PayloadHash: hash}
				req.Header.Set("Authorization", signer.Authorization(&r, now))
			}
			newReq := func() *fasthttp.Request {
				req := &fasthttp.Request{}
				req.SetRequestURI("http://" + c.Addr + "/")
				req.Header.SetMethod("POST")
				req.Header.Set("X-Amz-Target", targetPrefix+"PutRecords")
				req.Header.SetContentType(jsonContentType)
				req.SetBodyRaw(body)
				if mode == "signed" {
					sign(req, hash[:])
				}
				return req
			}
			b.SetBytes(int64(500 * 1024))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := newReq(), &fasthttp.Response{}
				for pb.Next() {
					if mode == "client-signs" {
						h := sigv4.PayloadHash(req.Body())
						sign(req, h[:])
					}
					if err := c.Do(req, resp); err != nil {
						b.Fatal(err)
					}
					if resp.StatusCode() != 200 || !bytes.HasPrefix(resp.Body(), []byte(`{"FailedRecordCount":0,`)) {
						b.Fatalf("%d %.200s", resp.StatusCode(), resp.Body())
					}
				}
			})
			b.ReportMetric(float64(b.N)*500/b.Elapsed().Seconds(), "records/s")
		})
	}
}
