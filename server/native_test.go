package server

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// nativeEnv is a server on a loopback port over an engine with one stream "s", and a plain
// fasthttp client for it.
type nativeEnv struct {
	dir      string // the engine's data directory
	eng      *stream.Engine
	srv      *Server
	addr     string
	c        *fasthttp.HostClient
	stopOnce sync.Once
	served   chan struct{}
}

// startNative opens an engine with opts (durability none, limits off unless opts sets them)
// and one stream "s" of shards shards, and serves it on 127.0.0.1.
func startNative(t testing.TB, opts stream.Options, shards int) *nativeEnv {
	t.Helper()
	return startNativeWith(t, opts, Options{}, shards)
}

// startNativeWith is startNative with the server's options.
func startNativeWith(t testing.TB, opts stream.Options, sopts Options, shards int) *nativeEnv {
	t.Helper()
	opts.Dir = t.TempDir()
	opts.Durability = segment.Durability{Mode: segment.None}
	if opts.Limits == (stream.Limits{}) {
		opts.Limits = stream.Limits{Off: true}
	}
	eng, err := stream.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	if err := eng.CreateStream(stream.CreateStreamInput{Name: "s", ShardCount: shards}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &nativeEnv{dir: opts.Dir, eng: eng, srv: New(eng, sopts), addr: ln.Addr().String(), served: make(chan struct{})}
	e.c = &fasthttp.HostClient{Addr: e.addr, MaxResponseBodySize: 64 << 20}
	go func() {
		e.srv.Serve(ln)
		close(e.served)
	}()
	t.Cleanup(e.stop)
	return e
}

// stop shuts the server down and waits for Serve to return.
func (e *nativeEnv) stop() {
	e.stopOnce.Do(func() {
		e.srv.Shutdown()
		<-e.served
	})
}

// nativeAnswer is a response: status, the native headers, a copy of the body.
type nativeAnswer struct {
	status int
	h      map[string]string
	body   []byte
}

var nativeHeaders = []string{wire.HeaderCount, wire.HeaderNext, wire.HeaderMillisBehind, wire.HeaderShardEnd,
	wire.HeaderChildren, wire.HeaderError, wire.HeaderErrorCode, "Content-Type"}

func (e *nativeEnv) send(t testing.TB, method, path string, body []byte) nativeAnswer {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + e.addr + path)
	req.Header.SetMethod(method)
	req.Header.SetContentType(wire.ContentType)
	req.SetBody(body)
	if err := e.c.DoTimeout(req, resp, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	a := nativeAnswer{status: resp.StatusCode(), h: map[string]string{}, body: append([]byte(nil), resp.Body()...)}
	for _, k := range nativeHeaders {
		if v := resp.Header.Peek(k); v != nil {
			a.h[k] = string(v)
		}
	}
	return a
}

func (e *nativeEnv) post(t testing.TB, path string, body []byte) nativeAnswer {
	t.Helper()
	return e.send(t, "POST", path, body)
}

// wantFail checks a whole-request error answer.
func wantFail(t testing.TB, what string, a nativeAnswer, code wire.Code) {
	t.Helper()
	if a.status != code.Status() || a.h[wire.HeaderError] != code.Name() || a.h[wire.HeaderErrorCode] != strconv.Itoa(int(code)) {
		t.Fatalf("%s: got %d %s=%q %s=%q (%q), want %d %s code %d", what, a.status, wire.HeaderError, a.h[wire.HeaderError],
			wire.HeaderErrorCode, a.h[wire.HeaderErrorCode], a.body, code.Status(), code.Name(), code)
	}
	if len(a.body) == 0 || !strings.HasPrefix(a.h["Content-Type"], "text/plain") {
		t.Fatalf("%s: error answer without a text message: %q %q", what, a.h["Content-Type"], a.body)
	}
}

func putBody(streamName string, recs []wire.PutRecord) []byte {
	b, off := wire.BeginPut(nil, streamName)
	for i := range recs {
		b = wire.AppendPutRecord(b, &recs[i])
	}
	wire.FinishPut(b, off, len(recs))
	return b
}

// put puts recs natively and returns the decoded answer.
func (e *nativeEnv) put(t testing.TB, streamName string, recs []wire.PutRecord) wire.PutAnswer {
	t.Helper()
	a := e.post(t, wire.PathPut, putBody(streamName, recs))
	if a.status != 200 {
		t.Fatalf("put: %d %s: %s", a.status, a.h[wire.HeaderError], a.body)
	}
	ans, err := wire.ReadPutAnswer(a.body)
	if err != nil || ans.Count != len(recs) {
		t.Fatalf("put answer: %v, count %d of %d", err, ans.Count, len(recs))
	}
	return ans
}

// get reads natively; it fails the test unless the answer is 200 with frames whose CRCs
// check and whose number is X-Sluice-Count.
func (e *nativeEnv) get(t testing.TB, r wire.GetRequest) (nativeAnswer, []segment.Record) {
	t.Helper()
	a := e.post(t, wire.PathGet, wire.AppendGetRequest(nil, &r))
	if a.status != 200 {
		t.Fatalf("get %+v: %d %s: %s", r, a.status, a.h[wire.HeaderError], a.body)
	}
	var recs []segment.Record
	f := wire.NewFrames(a.body)
	for f.Next() {
		recs = append(recs, f.Record())
	}
	if f.Err() != nil {
		t.Fatalf("get %+v: frames: %v", r, f.Err())
	}
	if a.h[wire.HeaderCount] != strconv.Itoa(len(recs)) {
		t.Fatalf("get %+v: %s %q for %d frames", r, wire.HeaderCount, a.h[wire.HeaderCount], len(recs))
	}
	return a, recs
}

func headerUint(t testing.TB, a nativeAnswer, name string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(a.h[name], 10, 64)
	if err != nil {
		t.Fatalf("header %s: %q: %v", name, a.h[name], err)
	}
	return v
}

// api calls a Kinesis operation through the JSON API and returns the 200 answer.
func (e *nativeEnv) api(t testing.TB, op, body string) []byte {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + e.addr + "/")
	req.Header.SetMethod("POST")
	req.Header.Set("X-Amz-Target", targetPrefix+op)
	req.Header.SetContentType(jsonContentType)
	req.SetBodyString(body)
	if err := e.c.DoTimeout(req, resp, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode() != 200 {
		t.Fatalf("%s: %d %s", op, resp.StatusCode(), resp.Body())
	}
	return append([]byte(nil), resp.Body()...)
}

// nativeClock is an engine clock the test moves.
type nativeClock struct{ ns atomic.Int64 }

func newNativeClock() *nativeClock {
	c := &nativeClock{}
	c.ns.Store(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *nativeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *nativeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func hashKeyBytes(k shardmap.Key) (b [16]byte) {
	binary.BigEndian.PutUint64(b[:8], k.Hi)
	binary.BigEndian.PutUint64(b[8:], k.Lo)
	return b
}

// TestNativePutGet puts records natively, some with explicit hash keys, and reads them back
// natively and through the Kinesis API: same shards, same sequence numbers, same bytes.
func TestNativePutGet(t *testing.T) {
	env := startNative(t, stream.Options{}, 4)
	m, err := shardmap.New(4)
	if err != nil {
		t.Fatal(err)
	}
	var recs []wire.PutRecord
	wantShard := map[int]uint32{}
	for i := range 200 {
		r := wire.PutRecord{Key: []byte("key-" + strconv.Itoa(i)), Data: bytes.Repeat([]byte{byte(i), 0xff}, i%50)}
		k := shardmap.KeyOf(r.Key)
		if i%10 == 0 {
			// An explicit hash key inside shard j's quarter of the range, whatever the MD5 says.
			j := uint32(i / 10 % 4)
			k = shardmap.Key{Hi: uint64(j)<<62 | uint64(i), Lo: uint64(i) * 7919}
			r.HashKey, r.HasHash = hashKeyBytes(k), true
		}
		wantShard[i] = uint32(m.Route(k).ID)
		recs = append(recs, r)
	}
	ans := env.put(t, "s", recs)
	if ans.Failed != 0 {
		t.Fatalf("%d records failed", ans.Failed)
	}
	byShard := map[uint32][]int{} // record indexes in put order
	for i := range recs {
		r := ans.Result(i)
		if r.Code != wire.OK || r.Shard != wantShard[i] || r.Position == 0 {
			t.Fatalf("record %d: %+v, want shard %d", i, r, wantShard[i])
		}
		if recs[i].HasHash && r.Shard != uint32(i/10%4) {
			t.Fatalf("record %d with hash key in shard %d went to %d", i, i/10%4, r.Shard)
		}
		byShard[r.Shard] = append(byShard[r.Shard], i)
	}
	if len(byShard) != 4 {
		t.Fatalf("records reached %d shards", len(byShard))
	}
	for shard, idx := range byShard {
		a, got := env.get(t, wire.GetRequest{Stream: []byte("s"), Shard: shard, Start: wire.TrimHorizon})
		if len(got) != len(idx) {
			t.Fatalf("shard %d: %d records, want %d", shard, len(got), len(idx))
		}
		for j, i := range idx {
			if got[j].Seq != ans.Result(i).Position || string(got[j].Key) != string(recs[i].Key) || !bytes.Equal(got[j].Data, recs[i].Data) {
				t.Fatalf("shard %d record %d: seq %d key %q, want seq %d key %q", shard, j, got[j].Seq, got[j].Key, ans.Result(i).Position, recs[i].Key)
			}
		}
		if next := headerUint(t, a, wire.HeaderNext); next != got[len(got)-1].Seq+1 {
			t.Fatalf("shard %d: next %d after %d", shard, next, got[len(got)-1].Seq)
		}
		if a.h[wire.HeaderMillisBehind] != "0" || a.h[wire.HeaderShardEnd] != "" || a.h["Content-Type"] != wire.ContentType {
			t.Fatalf("shard %d: headers %v", shard, a.h)
		}

		// The Kinesis API returns the same records under the same sequence numbers.
		var it struct{ ShardIterator string }
		json.Unmarshal(env.api(t, "GetShardIterator", `{"StreamName":"s","ShardId":"`+shardmap.ShardID(shard).String()+`","ShardIteratorType":"TRIM_HORIZON"}`), &it)
		var out struct {
			Records []struct {
				SequenceNumber string
				PartitionKey   string
				Data           []byte
			}
		}
		if err := json.Unmarshal(env.api(t, "GetRecords", `{"ShardIterator":"`+it.ShardIterator+`"}`), &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Records) != len(idx) {
			t.Fatalf("shard %d: Kinesis API returned %d records, want %d", shard, len(out.Records), len(idx))
		}
		for j, i := range idx {
			want := stream.SeqNum{Shard: stream.ShardID(shard), Pos: ans.Result(i).Position}.String()
			r := out.Records[j]
			if r.SequenceNumber != want || len(want) != 56 || r.PartitionKey != string(recs[i].Key) || !bytes.Equal(r.Data, recs[i].Data) {
				t.Fatalf("shard %d record %d: Kinesis API has %s %q, native put said %s %q", shard, j, r.SequenceNumber, r.PartitionKey, want, recs[i].Key)
			}
		}
	}

	// The same explicit hash keys, put through the Kinesis API, go to the same shards.
	var jb strings.Builder
	jb.WriteString(`{"StreamName":"s","Records":[`)
	var hashed []int
	for i := range recs {
		if !recs[i].HasHash {
			continue
		}
		if len(hashed) > 0 {
			jb.WriteByte(',')
		}
		hashed = append(hashed, i)
		k := shardmap.Key{Hi: binary.BigEndian.Uint64(recs[i].HashKey[:8]), Lo: binary.BigEndian.Uint64(recs[i].HashKey[8:])}
		fmt.Fprintf(&jb, `{"Data":"AA==","PartitionKey":"x","ExplicitHashKey":"%s"}`, k.String())
	}
	jb.WriteString("]}")
	var pr struct{ Records []struct{ ShardId string } }
	if err := json.Unmarshal(env.api(t, "PutRecords", jb.String()), &pr); err != nil || len(pr.Records) != len(hashed) {
		t.Fatalf("PutRecords: %v %+v", err, pr)
	}
	for j, i := range hashed {
		if pr.Records[j].ShardId != shardmap.ShardID(ans.Result(i).Shard).String() {
			t.Fatalf("hash key of record %d: Kinesis API routed it to %s, native to %d", i, pr.Records[j].ShardId, ans.Result(i).Shard)
		}
	}
}

// TestNativeGetStart reads from each of the five starting positions, on an engine clock that
// moves a second per record.
func TestNativeGetStart(t *testing.T) {
	clk := newNativeClock()
	t0 := clk.Now()
	env := startNative(t, stream.Options{Now: clk.Now}, 1)
	var pos []uint64
	for i := range 10 {
		clk.advance(time.Second) // record i arrives at t0 + (i+1) s
		ans := env.put(t, "s", []wire.PutRecord{{Key: []byte("k"), Data: []byte("r" + strconv.Itoa(i))}})
		pos = append(pos, ans.Result(0).Position)
	}
	first := func(start wire.Start, value uint64) (nativeAnswer, []segment.Record) {
		t.Helper()
		return env.get(t, wire.GetRequest{Stream: []byte("s"), Start: start, Value: value, MaxRecords: 1})
	}
	for _, c := range []struct {
		start wire.Start
		value uint64
		want  int // index of the first record returned
	}{
		{wire.AtSequenceNumber, pos[3], 3},
		{wire.AfterSequenceNumber, pos[3], 4},
		{wire.TrimHorizon, 12345, 0},
		{wire.AtTimestamp, uint64(t0.Add(6 * time.Second).UnixMilli()), 5},
		{wire.AtTimestamp, uint64(t0.Add(5500 * time.Millisecond).UnixMilli()), 5},
		{wire.AtTimestamp, 0, 0},
	} {
		a, got := first(c.start, c.value)
		if len(got) != 1 || got[0].Seq != pos[c.want] || string(got[0].Data) != "r"+strconv.Itoa(c.want) {
			t.Fatalf("%v %d: got %+v, want record %d", c.start, c.value, got, c.want)
		}
		if next := headerUint(t, a, wire.HeaderNext); next != pos[c.want]+1 {
			t.Fatalf("%v: next %d, want %d", c.start, next, pos[c.want]+1)
		}
		// MillisBehind: from this record's arrival to the tip's, a second a record.
		if mb := headerUint(t, a, wire.HeaderMillisBehind); mb != uint64(9-c.want)*1000 {
			t.Fatalf("%v: millis behind %d, want %d", c.start, mb, (9-c.want)*1000)
		}
	}
	// LATEST: nothing yet, and Next is where the next record lands.
	a, got := first(wire.Latest, 0)
	next := headerUint(t, a, wire.HeaderNext)
	if len(got) != 0 || len(a.body) != 0 || next != pos[9]+1 {
		t.Fatalf("LATEST: %d records, next %d, want none and %d", len(got), next, pos[9]+1)
	}
	ans := env.put(t, "s", []wire.PutRecord{{Key: []byte("k"), Data: []byte("later")}})
	_, got = first(wire.AtSequenceNumber, next)
	if len(got) != 1 || string(got[0].Data) != "later" || got[0].Seq != ans.Result(0).Position {
		t.Fatalf("after LATEST: %+v", got)
	}
	// Past the tip: nothing, and Next stays.
	a, got = first(wire.AtSequenceNumber, 1<<40)
	if len(got) != 0 || headerUint(t, a, wire.HeaderNext) != 1<<40 {
		t.Fatalf("past the tip: %d records, next %s", len(got), a.h[wire.HeaderNext])
	}
	// After the last possible position there is nothing, not the whole shard.
	if _, got = first(wire.AfterSequenceNumber, ^uint64(0)); len(got) != 0 {
		t.Fatalf("after the last position: %d records", len(got))
	}
	wantFail(t, "a timestamp in the future", env.post(t, wire.PathGet, wire.AppendGetRequest(nil, &wire.GetRequest{
		Stream: []byte("s"), Start: wire.AtTimestamp, Value: uint64(clk.Now().Add(time.Hour).UnixMilli())})), wire.InvalidArgument)
}

// TestNativeGetLimits checks maxRecords and maxBytes, and that following Next reads every
// record once, in order.
func TestNativeGetLimits(t *testing.T) {
	env := startNative(t, stream.Options{}, 1)
	var want []uint64
	for range 4 {
		var recs []wire.PutRecord
		for i := range 25 {
			recs = append(recs, wire.PutRecord{Key: []byte(fmt.Sprintf("k%03d", len(want)+i)), Data: bytes.Repeat([]byte{'d'}, 100)})
		}
		ans := env.put(t, "s", recs)
		for i := range recs {
			want = append(want, ans.Result(i).Position)
		}
	}
	var got []uint64
	req := wire.GetRequest{Stream: []byte("s"), Start: wire.TrimHorizon, MaxRecords: 7}
	for range 100 {
		a, recs := env.get(t, req)
		if len(recs) > 7 {
			t.Fatalf("%d records for maxRecords 7", len(recs))
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			got = append(got, r.Seq)
		}
		req.Start, req.Value = wire.AtSequenceNumber, headerUint(t, a, wire.HeaderNext)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	// Every frame here is the same size: maxBytes counts whole frames, and one record is
	// returned even when it alone is larger.
	a, _ := env.get(t, wire.GetRequest{Stream: []byte("s"), Start: wire.TrimHorizon, MaxRecords: 1})
	frame := len(a.body)
	for _, c := range []struct{ maxBytes, want int }{{frame * 3, 3}, {frame*4 - 1, 3}, {frame - 1, 1}, {1, 1}, {0, 100}} {
		_, recs := env.get(t, wire.GetRequest{Stream: []byte("s"), Start: wire.TrimHorizon, MaxBytes: c.maxBytes})
		if len(recs) != c.want {
			t.Fatalf("maxBytes %d (frames of %d bytes): %d records, want %d", c.maxBytes, frame, len(recs), c.want)
		}
	}
}

// TestNativeShardEnd splits a shard and reads the parent to its end: the last answers say so
// and name the children.
func TestNativeShardEnd(t *testing.T) {
	env := startNative(t, stream.Options{}, 1)
	var recs []wire.PutRecord
	for i := range 5 {
		recs = append(recs, wire.PutRecord{Key: []byte("k" + strconv.Itoa(i)), Data: []byte{byte(i)}})
	}
	env.put(t, "s", recs)
	if err := env.eng.SplitShard("s", 0, shardmap.Key{Hi: 1 << 63}); err != nil {
		t.Fatal(err)
	}
	a, got := env.get(t, wire.GetRequest{Stream: []byte("s"), Start: wire.TrimHorizon, MaxRecords: 2})
	if len(got) != 2 || a.h[wire.HeaderShardEnd] != "" || a.h[wire.HeaderChildren] != "" {
		t.Fatalf("first read: %d records, headers %v", len(got), a.h)
	}
	a, got = env.get(t, wire.GetRequest{Stream: []byte("s"), Start: wire.AtSequenceNumber, Value: headerUint(t, a, wire.HeaderNext)})
	if len(got) != 3 || a.h[wire.HeaderShardEnd] != "1" || a.h[wire.HeaderChildren] != "1,2" {
		t.Fatalf("last read: %d records, headers %v", len(got), a.h)
	}
	a, got = env.get(t, wire.GetRequest{Stream: []byte("s"), Start: wire.AtSequenceNumber, Value: headerUint(t, a, wire.HeaderNext)})
	if len(got) != 0 || a.h[wire.HeaderShardEnd] != "1" || a.h[wire.HeaderChildren] != "1,2" {
		t.Fatalf("read past the end: %d records, headers %v", len(got), a.h)
	}
	// New records go to the children.
	ans := env.put(t, "s", recs)
	for i := range recs {
		if s := ans.Result(i).Shard; s != 1 && s != 2 {
			t.Fatalf("record %d went to shard %d after the split", i, s)
		}
	}
	for _, child := range []uint32{1, 2} {
		a, _ := env.get(t, wire.GetRequest{Stream: []byte("s"), Shard: child, Start: wire.TrimHorizon})
		if a.h[wire.HeaderShardEnd] != "" {
			t.Fatalf("open shard %d: headers %v", child, a.h)
		}
	}
}

// TestNativeErrors checks whole-request errors: status, name, code and message.
func TestNativeErrors(t *testing.T) {
	env := startNative(t, stream.Options{}, 1)
	one := []wire.PutRecord{{Key: []byte("k"), Data: []byte("d")}}
	valid := putBody("s", one)
	getReq := func(r wire.GetRequest) []byte { return wire.AppendGetRequest(nil, &r) }
	for _, c := range []struct {
		what, path string
		body       []byte
		code       wire.Code
	}{
		{"put to an unknown stream", wire.PathPut, putBody("nope", one), wire.ResourceNotFound},
		{"get from an unknown stream", wire.PathGet, getReq(wire.GetRequest{Stream: []byte("nope"), Start: wire.TrimHorizon}), wire.ResourceNotFound},
		{"get from an unknown shard", wire.PathGet, getReq(wire.GetRequest{Stream: []byte("s"), Shard: 9, Start: wire.TrimHorizon}), wire.ResourceNotFound},
		{"put with an invalid stream name", wire.PathPut, putBody("no such/name", one), wire.Validation},
		{"put with a key of 300 characters", wire.PathPut, putBody("s", []wire.PutRecord{{Key: bytes.Repeat([]byte("é"), 300)}}), wire.Validation},
		{"empty put", wire.PathPut, nil, wire.Serialization},
		{"truncated put", wire.PathPut, valid[:len(valid)-1], wire.Serialization},
		{"put with trailing bytes", wire.PathPut, append(append([]byte(nil), valid...), 0), wire.Serialization},
		{"put of no records", wire.PathPut, putBody("s", nil), wire.Serialization},
		{"put with unknown flags", wire.PathPut, func() []byte {
			b := append([]byte(nil), valid...)
			b[2+1+4+2] = 2 // the first record's flags
			return b
		}(), wire.Serialization},
		{"put with a key that is not UTF-8", wire.PathPut, putBody("s", []wire.PutRecord{{Key: []byte{0xff, 0xfe}}}), wire.Serialization},
		{"get with trailing bytes", wire.PathGet, append(getReq(wire.GetRequest{Stream: []byte("s")}), 0), wire.Serialization},
		{"get with an unknown start", wire.PathGet, getReq(wire.GetRequest{Stream: []byte("s"), Start: 9}), wire.Serialization},
		{"garbage subscribe", wire.PathSubscribe, []byte{1}, wire.Serialization},
		{"subscribe of an unknown consumer", wire.PathSubscribe, wire.AppendSubscribeRequest(nil, &wire.SubscribeRequest{
			ConsumerARN: []byte(env.eng.ARN("s") + "/consumer/nobody:1"), Start: wire.Latest}), wire.ResourceNotFound},
		{"unknown operation", "/sluice/v1/nope", valid, wire.UnknownOperation},
		{"unknown version", "/sluice/v2/put", valid, wire.UnknownOperation},
	} {
		wantFail(t, c.what, env.post(t, c.path, c.body), c.code)
	}
	wantFail(t, "GET of a native path", env.send(t, "GET", wire.PathPut, nil), wire.UnknownOperation)
	// The Authorization header goes through the same hook as the Kinesis API's.
	for _, c := range []struct {
		auth string
		code wire.Code
	}{
		{"Basic dXNlcjpwYXNz", wire.IncompleteSignature},
		{"AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=" + strings.Repeat("ab", 32), wire.OK},
	} {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		req.SetRequestURI("http://" + env.addr + wire.PathPut)
		req.Header.SetMethod("POST")
		req.Header.Set("Authorization", c.auth)
		req.SetBody(valid)
		if err := env.c.DoTimeout(req, resp, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		a := nativeAnswer{status: resp.StatusCode(), body: append([]byte(nil), resp.Body()...), h: map[string]string{}}
		for _, k := range nativeHeaders {
			a.h[k] = string(resp.Header.Peek(k))
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
		if c.code == wire.OK {
			if a.status != 200 {
				t.Fatalf("signed put: %d %s", a.status, a.body)
			}
			continue
		}
		wantFail(t, "put with "+c.auth, a, c.code)
		if !strings.HasPrefix(string(a.body), "Authorization header requires") {
			t.Fatalf("refused put: message %q", a.body)
		}
	}
	// None of that wrote anything but the signed put.
	if _, got := env.get(t, wire.GetRequest{Stream: []byte("s"), Start: wire.TrimHorizon}); len(got) != 1 {
		t.Fatalf("%d records written, want the signed put's 1", len(got))
	}
}

// TestNativeThrottling runs under the kinesis limits on a clock that does not move: a shard
// takes 1,000 records and 5 reads, then refuses.
func TestNativeThrottling(t *testing.T) {
	clk := newNativeClock()
	env := startNative(t, stream.Options{Now: clk.Now, Limits: stream.Limits{Factor: 1}}, 1)
	recs := make([]wire.PutRecord, 500)
	for i := range recs {
		recs[i] = wire.PutRecord{Key: []byte("k" + strconv.Itoa(i)), Data: []byte{1}}
	}
	accepted, throttled := 0, 0
	for range 4 {
		ans := env.put(t, "s", recs)
		failed := 0
		for i := range ans.Count {
			switch r := ans.Result(i); r.Code {
			case wire.OK:
				accepted++
			case wire.ProvisionedThroughputExceeded:
				if r.Position != 0 {
					t.Fatalf("throttled record with position %d", r.Position)
				}
				throttled++
				failed++
			default:
				t.Fatalf("record %d: code %d", i, r.Code)
			}
		}
		if ans.Failed != failed {
			t.Fatalf("the answer counts %d failed records, its results %d", ans.Failed, failed)
		}
	}
	if accepted != stream.WriteRecordsPerSec || throttled != 4*500-stream.WriteRecordsPerSec {
		t.Fatalf("%d records accepted and %d throttled, want %d and %d", accepted, throttled, stream.WriteRecordsPerSec, 4*500-stream.WriteRecordsPerSec)
	}
	req := wire.AppendGetRequest(nil, &wire.GetRequest{Stream: []byte("s"), Start: wire.TrimHorizon, MaxRecords: 1})
	for i := range 20 {
		a := env.post(t, wire.PathGet, req)
		if a.status == 200 {
			continue
		}
		wantFail(t, "a read over the limit", a, wire.ProvisionedThroughputExceeded)
		if i != stream.ReadCallsPerSec {
			t.Fatalf("read %d refused, want read %d", i+1, stream.ReadCallsPerSec+1)
		}
		return
	}
	t.Fatal("20 reads on a stopped clock were all admitted")
}

// TestNativeGetReleasesViews checks that answers release their views: after many gets, and
// after a client that hangs up in the middle of a 10 MiB body, retention can still delete
// every segment file (a segment's file goes when its last view is released).
func TestNativeGetReleasesViews(t *testing.T) {
	clk := newNativeClock()
	dir := t.TempDir()
	eng, err := stream.Open(stream.Options{Dir: dir, Now: clk.Now, Durability: segment.Durability{Mode: segment.None},
		Limits: stream.Limits{Off: true}, SegmentSize: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := eng.CreateStream(stream.CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env := &nativeEnv{eng: eng, srv: New(eng, Options{}), addr: ln.Addr().String(), served: make(chan struct{})}
	env.c = &fasthttp.HostClient{Addr: env.addr, MaxResponseBodySize: 64 << 20}
	go func() {
		env.srv.Serve(ln)
		close(env.served)
	}()
	defer env.stop()

	data := bytes.Repeat([]byte{0x5a}, 1024)
	var last uint64
	for range 48 { // 24,000 records of 1 KiB: about 24 MiB in two segments
		recs := make([]wire.PutRecord, 500)
		for i := range recs {
			recs[i] = wire.PutRecord{Key: []byte("k" + strconv.Itoa(i)), Data: data}
		}
		ans := env.put(t, "s", recs)
		last = ans.Result(499).Position
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	for range 100 {
		env.get(t, wire.GetRequest{Stream: []byte("s"), Start: wire.AtSequenceNumber, Value: rng.Uint64N(last + 10),
			MaxRecords: 1 + rng.IntN(2000), MaxBytes: rng.IntN(2 << 20)})
	}

	// A client that reads the start of a 10 MiB answer, more than the socket buffers hold,
	// and hangs up.
	conn, err := net.Dial("tcp", env.addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	body := wire.AppendGetRequest(nil, &wire.GetRequest{Stream: []byte("s"), Start: wire.TrimHorizon})
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", wire.PathGet, len(body), body)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	start := make([]byte, 64<<10)
	if _, err := io.ReadFull(conn, start); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	_, rest, _ := bytes.Cut(start, []byte("Content-Length: "))
	digits, _, _ := bytes.Cut(rest, []byte("\r\n"))
	if n, err := strconv.Atoi(string(digits)); err != nil || n < 8<<20 {
		t.Fatalf("the answer's head: %q", start[:min(len(start), 300)])
	}

	files, err := filepath.Glob(filepath.Join(dir, "streams", "s", "shard-0", "*.seg"))
	if err != nil || len(files) < 2 {
		t.Fatalf("segment files %v %v", files, err)
	}
	// Everything falls out of retention; the files go once no view holds them.
	clk.advance(25 * time.Hour)
	if err := eng.Maintain(); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		var left []string
		for _, f := range files {
			if _, err := os.Stat(f); err == nil {
				left = append(left, filepath.Base(f))
			}
		}
		if len(left) == 0 {
			break
		}
		if i == 1000 {
			t.Fatalf("segment files still there: %v", left)
		}
		time.Sleep(10 * time.Millisecond) // the hung-up answer is released when the server's write fails
	}
}

// FuzzNativePut posts arbitrary bodies to the put handler: it never panics, and answers 200
// with a well-formed answer for every record, or a 4xx carrying a wire code.
func FuzzNativePut(f *testing.F) {
	srv := New(openTestEngine(f, 2), Options{})
	f.Add(putBody("s", []wire.PutRecord{{Key: []byte("k"), Data: []byte("hello")},
		{Key: []byte("h"), HasHash: true, HashKey: hashKeyBytes(shardmap.MaxKey)}}))
	f.Add(putBody("nope", []wire.PutRecord{{Key: []byte("k")}}))
	f.Add(putBody("s", []wire.PutRecord{{Key: bytes.Repeat([]byte("é"), 300)}}))
	f.Add([]byte{1, 0, 's', 1, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 'k'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		var req fasthttp.Request
		req.Header.SetMethod("POST")
		req.SetRequestURI(wire.PathPut)
		req.SetBody(body)
		var ctx fasthttp.RequestCtx
		ctx.Init(&req, nil, nil)
		srv.handle(&ctx)
		status := ctx.Response.StatusCode()
		if status == 200 {
			r, err := wire.ReadPut(body)
			if err != nil {
				t.Fatalf("200 for a body that does not decode: %v", err)
			}
			ans, err := wire.ReadPutAnswer(ctx.Response.Body())
			if err != nil || ans.Count != r.Count {
				t.Fatalf("answer %v with %d results for %d records", err, ans.Count, r.Count)
			}
			failed := 0
			for i := range ans.Count {
				res := ans.Result(i)
				if res.Code != wire.OK {
					failed++
					if res.Code != wire.ProvisionedThroughputExceeded && res.Code != wire.InternalFailure || res.Position != 0 {
						t.Fatalf("result %d: %+v", i, res)
					}
				}
			}
			if failed != ans.Failed {
				t.Fatalf("%d failed results, the answer says %d", failed, ans.Failed)
			}
			return
		}
		code, err := strconv.Atoi(string(ctx.Response.Header.Peek(wire.HeaderErrorCode)))
		if err != nil || status/100 != 4 || wire.Code(code).Status() != status || code == 0 ||
			string(ctx.Response.Header.Peek(wire.HeaderError)) != wire.Code(code).Name() {
			t.Fatalf("status %d with %s %q and %s %q", status, wire.HeaderError, ctx.Response.Header.Peek(wire.HeaderError),
				wire.HeaderErrorCode, ctx.Response.Header.Peek(wire.HeaderErrorCode))
		}
	})
}
