package server

import (
	"bytes"
	"net"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/audit"
)

// BenchmarkAuditPutRecord measures PutRecord of 100 bytes through the JSON API, as
// BenchmarkAPIPutRecord, with the audit log off, on for the control plane only (PutRecord is
// not logged: the cost is the hook's check) and on for data-plane calls (a line queued per
// call, synced in groups by the writer), and CreateStream+DeleteStream pairs with the
// control plane audited (two lines, each synced before its answer). Bytes are record data
// bytes.
func BenchmarkAuditPutRecord(b *testing.B) {
	body := []byte(`{"StreamName":"s","PartitionKey":"latency","Data":"` + b64(string(bytes.Repeat([]byte{0xab}, 100))) + `"}`)
	for _, mode := range []string{"off", "control", "data"} {
		b.Run(mode, func(b *testing.B) {
			c := auditBench(b, mode)
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseResponse(resp)
			b.SetBytes(100)
			b.ReportAllocs()
			for b.Loop() {
				call(b, c, "PutRecord", body, resp)
			}
		})
	}
	for _, mode := range []string{"off", "control"} {
		b.Run(mode+"/CreateDeleteStream", func(b *testing.B) {
			c := auditBench(b, mode)
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseResponse(resp)
			b.ReportAllocs()
			for b.Loop() {
				call(b, c, "CreateStream", []byte(`{"StreamName":"t","ShardCount":1}`), resp)
				call(b, c, "DeleteStream", []byte(`{"StreamName":"t"}`), resp)
			}
		})
	}
}

// auditBench is apiBench with the audit log of mode: off, control or data.
func auditBench(b *testing.B, mode string) *fasthttp.HostClient {
	eng := openTestEngine(b, 4)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var opts Options
	if mode != "off" {
		w, err := audit.Open(b.TempDir(), audit.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { w.Close() })
		opts = Options{Audit: w, AuditData: mode == "data"}
	}
	srv := New(eng, opts)
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Shutdown() })
	return &fasthttp.HostClient{Addr: ln.Addr().String(), MaxResponseBodySize: 64 << 20}
}
