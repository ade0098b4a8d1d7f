package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// The native subscription: over HTTP/1.1 (a chunked body written by the connection's
// goroutine) and HTTP/2; helpers in native_test.go.

// subscribeNative subscribes over net/http and returns the response once its headers arrive.
func subscribeNative(t testing.TB, addr string, r wire.SubscribeRequest) *http.Response {
	t.Helper()
	resp, err := http.Post("http://"+addr+wire.PathSubscribe, wire.ContentType, bytes.NewReader(wire.AppendSubscribeRequest(nil, &r)))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != wire.ContentType {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("subscribe: %d %s: %s", resp.StatusCode, resp.Header.Get(wire.HeaderError), b)
	}
	return resp
}

// TestNativeSubscribe follows a shard: the records there, records put later, and the end of
// the shard with its children.
func TestNativeSubscribe(t *testing.T) {
	env := startNative(t, stream.Options{}, 1)
	c, err := env.eng.RegisterConsumer("s", "app")
	if err != nil {
		t.Fatal(err)
	}
	put := func(data ...string) []uint64 {
		var recs []wire.PutRecord
		for _, d := range data {
			recs = append(recs, wire.PutRecord{Key: []byte("k"), Data: []byte(d)})
		}
		ans := env.put(t, "s", recs)
		var pos []uint64
		for i := range ans.Count {
			pos = append(pos, ans.Result(i).Position)
		}
		return pos
	}
	pos := put("a", "b", "c")
	resp := subscribeNative(t, env.addr, wire.SubscribeRequest{ConsumerARN: []byte(c.ARN), Start: wire.TrimHorizon})
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	var buf []byte
	var got []string
	var gotPos []uint64
	// receive reads records messages until n records came, skipping heartbeats.
	receive := func(n int) {
		t.Helper()
		for len(got) < n {
			var m wire.Message
			var err error
			m, buf, err = wire.ReadMessage(br, buf)
			if err != nil || m.Type != wire.MsgRecords {
				t.Fatalf("after %v: message %+v, %v", got, m, err)
			}
			f := wire.NewFrames(m.Frames)
			k := 0
			for f.Next() {
				got = append(got, string(f.Record().Data))
				gotPos = append(gotPos, f.Record().Seq)
				k++
			}
			if f.Err() != nil || k != m.Count {
				t.Fatalf("records message of %d records with %d good frames: %v", m.Count, k, f.Err())
			}
			if k > 0 && m.Continuation != gotPos[len(gotPos)-1]+1 {
				t.Fatalf("continuation %d after record %d", m.Continuation, gotPos[len(gotPos)-1])
			}
		}
	}
	receive(3)
	// A second subscription right away is refused, as SubscribeToShard's is.
	wantFail(t, "a second subscription", env.post(t, wire.PathSubscribe, wire.AppendSubscribeRequest(nil,
		&wire.SubscribeRequest{ConsumerARN: []byte(c.ARN), Start: wire.Latest})), wire.ResourceInUse)
	pos = append(pos, put("d", "e")...)
	receive(5)
	if strings.Join(got, "") != "abcde" || fmt.Sprint(gotPos) != fmt.Sprint(pos) {
		t.Fatalf("received %v at %v, want abcde at %v", got, gotPos, pos)
	}
	if err := env.eng.SplitShard("s", 0, shardmap.Key{Hi: 1 << 63}); err != nil {
		t.Fatal(err)
	}
	for {
		m, b, err := wire.ReadMessage(br, buf)
		buf = b
		if err != nil {
			t.Fatalf("waiting for the end: %v", err)
		}
		if m.Type == wire.MsgRecords && m.Count == 0 {
			continue // a heartbeat
		}
		if m.Type != wire.MsgEnd || fmt.Sprint(m.Children) != "[1 2]" {
			t.Fatalf("at the shard's end: %+v", m)
		}
		break
	}
	if _, _, err := wire.ReadMessage(br, buf); err != io.EOF {
		t.Fatalf("after the end message: %v, want the end of the body", err)
	}
}

// TestNativeSubscribeShutdown checks that Shutdown ends a native subscription cleanly.
func TestNativeSubscribeShutdown(t *testing.T) {
	env := startNative(t, stream.Options{}, 1)
	c, err := env.eng.RegisterConsumer("s", "app")
	if err != nil {
		t.Fatal(err)
	}
	resp := subscribeNative(t, env.addr, wire.SubscribeRequest{ConsumerARN: []byte(c.ARN), Start: wire.Latest})
	defer resp.Body.Close()
	env.stop()
	br := bufio.NewReader(resp.Body)
	for range 10 {
		m, _, err := wire.ReadMessage(br, nil)
		if err == io.EOF {
			if openSubscriptions(env.srv) != 0 {
				t.Fatal("the server still lists the subscription")
			}
			return
		}
		if err != nil || m.Type != wire.MsgRecords || m.Count != 0 {
			t.Fatalf("after Shutdown: %+v %v", m, err)
		}
	}
	t.Fatal("the stream did not end")
}

// TestNativeSubscribeSlowConsumer stalls a subscriber while 50 MiB are put: the puts keep
// succeeding, the server's heap does not take the backlog, and the subscriber then receives
// every record in order.
func TestNativeSubscribeSlowConsumer(t *testing.T) {
	env := startNative(t, stream.Options{SegmentSize: 64 << 20}, 1)
	c, err := env.eng.RegisterConsumer("s", "app")
	if err != nil {
		t.Fatal(err)
	}
	resp := subscribeNative(t, env.addr, wire.SubscribeRequest{ConsumerARN: []byte(c.ARN), Start: wire.Latest})
	defer resp.Body.Close()

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const puts, per, size = 100, 500, 1 << 10
	recs := make([]wire.PutRecord, per)
	for i := range recs {
		recs[i] = wire.PutRecord{Key: []byte("k"), Data: make([]byte, size)}
	}
	var first uint64
	for p := range puts {
		for i := range recs {
			binary.LittleEndian.PutUint64(recs[i].Data, uint64(p*per+i))
		}
		ans := env.put(t, "s", recs) // each put is answered while the subscriber reads nothing
		if ans.Failed != 0 {
			t.Fatalf("put %d: %d records failed", p, ans.Failed)
		}
		if p == 0 {
			first = ans.Result(0).Position
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 24<<20 {
		t.Fatalf("the heap grew by %d MiB while %d MiB waited for a stalled subscriber", grew>>20, puts*per*size>>20)
	}

	br := bufio.NewReader(resp.Body)
	var buf []byte
	n := 0
	for n < puts*per {
		var m wire.Message
		m, buf, err = wire.ReadMessage(br, buf)
		if err != nil || m.Type != wire.MsgRecords {
			t.Fatalf("after %d records: %+v %v", n, m.Type, err)
		}
		f := wire.NewFrames(m.Frames)
		for f.Next() {
			r := f.Record()
			if r.Seq != first+uint64(n) || len(r.Data) != size || binary.LittleEndian.Uint64(r.Data) != uint64(n) {
				t.Fatalf("record %d: seq %d, data %d bytes starting %d", n, r.Seq, len(r.Data), binary.LittleEndian.Uint64(r.Data))
			}
			n++
		}
		if f.Err() != nil {
			t.Fatal(f.Err())
		}
	}
}

// blockedWriter blocks its first Write until release is closed, then fails it.
type blockedWriter struct {
	entered, release chan struct{}
	once             sync.Once
}

func (w *blockedWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	return 0, io.ErrClosedPipe
}

// TestSubscribeBodyHoldsOneEvent checks the flow control of a native subscription: while the
// socket does not take a message, no further event is taken from the engine, however many
// records are put.
func TestSubscribeBodyHoldsOneEvent(t *testing.T) {
	eng := openTestEngine(t, 1)
	c, err := eng.RegisterConsumer("s", "app")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := eng.Subscribe(stream.SubscribeInput{ConsumerARN: c.ARN, Shard: 0, Type: stream.TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	events := func() uint64 {
		for _, sm := range eng.Metrics() {
			for _, cm := range sm.Consumers {
				if sm.Stream == "s" && cm.Consumer == "app" {
					return cm.EventSuccess
				}
			}
		}
		t.Fatal("no metrics for the consumer")
		return 0
	}
	put := func() {
		entries := make([]stream.PutEntry, 100)
		for i := range entries {
			entries[i] = stream.PutEntry{PartitionKey: "k", Data: make([]byte, 64<<10)}
		}
		if _, err := eng.PutRecords("s", entries); err != nil {
			t.Fatal(err)
		}
	}
	put()
	body := &subscribeBody{srv: New(eng, Options{}), sub: sub}
	w := &blockedWriter{entered: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := body.WriteTo(w)
		done <- err
	}()
	<-w.entered
	for range 10 {
		put() // 64 MiB in all while the first message waits
	}
	if n := events(); n != 1 {
		t.Fatalf("%d events taken from the engine while the first message was not written", n)
	}
	close(w.release)
	if err := <-done; !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("WriteTo: %v", err)
	}
	body.Close()
	if n := events(); n != 1 {
		t.Fatalf("%d events taken after the write failed", n)
	}
}

// TestNativeOverHTTP2 runs get and subscribe over HTTP/2 (prior knowledge), where the front
// reads the bodies with Read and closes them when the client goes away.
func TestNativeOverHTTP2(t *testing.T) {
	env := startNative(t, stream.Options{}, 1)
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	hc := &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 60 * time.Second}
	post := func(path string, body []byte) *http.Response {
		t.Helper()
		resp, err := hc.Post("http://"+env.addr+path, wire.ContentType, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 {
			t.Fatalf("%s: HTTP/%d %d %s", path, resp.ProtoMajor, resp.StatusCode, resp.Header.Get(wire.HeaderError))
		}
		return resp
	}
	recs := make([]wire.PutRecord, 500)
	for i := range recs {
		recs[i] = wire.PutRecord{Key: []byte("k"), Data: bytes.Repeat([]byte{byte(i)}, 1000)}
	}
	resp := post(wire.PathPut, putBody("s", recs))
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ans, err := wire.ReadPutAnswer(b); err != nil || ans.Failed != 0 || ans.Count != 500 {
		t.Fatalf("put: %+v %v", ans, err)
	}
	resp = post(wire.PathGet, wire.AppendGetRequest(nil, &wire.GetRequest{Stream: []byte("s"), Start: wire.TrimHorizon}))
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	n := 0
	for f := wire.NewFrames(b); f.Next(); n++ {
		if r := f.Record(); len(r.Data) != 1000 || r.Data[0] != byte(n) {
			t.Fatalf("record %d: %d bytes of %d", n, len(r.Data), r.Data[0])
		}
	}
	if err != nil || n != 500 || resp.Header.Get(wire.HeaderCount) != "500" {
		t.Fatalf("get: %d records, %s %q, %v", n, wire.HeaderCount, resp.Header.Get(wire.HeaderCount), err)
	}

	c, err := env.eng.RegisterConsumer("s", "app")
	if err != nil {
		t.Fatal(err)
	}
	resp = post(wire.PathSubscribe, wire.AppendSubscribeRequest(nil, &wire.SubscribeRequest{ConsumerARN: []byte(c.ARN), Start: wire.TrimHorizon}))
	br := bufio.NewReader(resp.Body)
	var buf []byte
	for n = 0; n < 500; {
		var m wire.Message
		m, buf, err = wire.ReadMessage(br, buf)
		if err != nil || m.Type != wire.MsgRecords {
			t.Fatalf("after %d records: %+v %v", n, m.Type, err)
		}
		n += m.Count
	}
	if openSubscriptions(env.srv) != 1 {
		t.Fatalf("%d subscriptions open", openSubscriptions(env.srv))
	}
	resp.Body.Close() // resets the stream: the server ends the subscription
	for i := 0; openSubscriptions(env.srv) != 0; i++ {
		if i == 3000 {
			t.Fatal("the subscription outlived its HTTP/2 stream")
		}
		time.Sleep(10 * time.Millisecond) // the server notices on its own goroutine
	}
}

// TestNativeSubscribeWriteTimeout checks that a native subscription gets the long write
// timeout SubscribeToShard has, and other native requests do not.
func TestNativeSubscribeWriteTimeout(t *testing.T) {
	srv := New(openTestEngine(t, 1), Options{})
	for _, c := range []struct {
		uri  string
		want time.Duration
	}{
		{wire.PathSubscribe, subscribeWriteTimeout},
		{wire.PathSubscribe + "?x=1", subscribeWriteTimeout},
		{"http://example.com" + wire.PathSubscribe, subscribeWriteTimeout},
		{wire.PathGet, 0},
		{wire.PathPut, 0},
	} {
		var h fasthttp.RequestHeader
		h.SetMethod("POST")
		h.SetRequestURI(c.uri)
		if got := srv.http.HeaderReceived(&h).WriteTimeout; got != c.want {
			t.Errorf("%s: write timeout %v, want %v", c.uri, got, c.want)
		}
	}
}
