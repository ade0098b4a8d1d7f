package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/iam"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// The native protocol, version 1 (docs/PROTOCOL.md; codec in package wire): POST
// /sluice/v1/put, /sluice/v1/get and /sluice/v1/subscribe on the Kinesis API's port.
//
//   - put decodes the body record by record straight into engine entries that alias it
//     (partition keys through bytesString, data as sub-slices), so a put allocates nothing per
//     record; the answer is appended into a pooled buffer that becomes the response body
//     (BenchmarkNativePut, and BenchmarkNativePutHandler for the allocations per request).
//   - get answers with the frames of a segment view, written to the socket from the mapping
//     (viewBody); the view is released once fasthttp is done with the body (BenchmarkNativeGet).
//     A view of an encrypted stream's sealed records is the engine's decrypted copy in
//     memory instead (stream's encrypt.go): the same frames, plaintext, sent the same way.
//   - subscribe streams messages over a chunked response written by the connection's own
//     goroutine (subscribeBody): the next event is taken from the engine only once the
//     previous message has been written, so a consumer that does not read holds one event
//     (a view of the mapping, not heap) and blocks nobody but itself.

// nativePrefix starts the paths of the native protocol, every version.
const nativePrefix = "/sluice/"

// isNativePath reports whether a request path belongs to the native protocol.
func isNativePath(path []byte) bool { return bytes.HasPrefix(path, []byte(nativePrefix)) }

// isNativeSubscribe reports whether a request URI (origin or absolute form, with or without a
// query) names the native subscribe operation, whose answer outlives the write timeout.
func isNativeSubscribe(uri []byte) bool {
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	return bytes.HasSuffix(uri, []byte(wire.PathSubscribe))
}

// serveNative routes a native request by its path.
func (s *Server) serveNative(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		s.nativeFail(ctx, wire.UnknownOperation, "native operations are POST requests")
		return
	}
	var op string   // put, get, subscribe or leaders, once routed
	var p Principal // the caller, once authenticated
	if s.audit != nil && s.auditData {
		defer func() { s.auditNative(ctx, op, p) }() // audit.go
	}
	p, err := s.auth.Authenticate(&ctx.Request)
	if err != nil {
		// The protocol has one code for a refused request: the message keeps the Kinesis
		// name (IncompleteSignatureException, …).
		s.nativeError(ctx, err)
		return
	}
	var serve func(*fasthttp.RequestCtx, *opCall)
	switch string(ctx.Path()) {
	case wire.PathPut:
		serve, op = s.nativePut, "put"
	case wire.PathGet:
		serve, op = s.nativeGet, "get"
	case wire.PathSubscribe:
		serve, op = s.nativeSubscribe, "subscribe"
	case wire.PathLeaders:
		serve, op = s.nativeLeaders, "leaders" // leaders.go
	default:
		s.nativeFail(ctx, wire.UnknownOperation, "unknown native operation "+string(ctx.Path()))
		return
	}
	// Each request is authorised as its Kinesis counterpart (iam.NativeActions), once its
	// stream or consumer is decoded.
	c := s.newCall(ctx, iam.NativeActions[op], p)
	defer c.release()
	serve(ctx, c)
}

// nativeFail answers a request that failed as a whole: the status of code, its name and
// number in headers, the message as a text body.
func (s *Server) nativeFail(ctx *fasthttp.RequestCtx, code wire.Code, msg string) {
	status := code.Status()
	var num [8]byte
	ctx.Response.Header.Set(wire.HeaderError, code.Name())
	ctx.Response.Header.SetBytesV(wire.HeaderErrorCode, strconv.AppendUint(num[:0], uint64(code), 10))
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(msg)
}

// nativeError answers with an error in its Kinesis shape (toAPIError). An internal failure
// is logged with its cause and the request id, which is all the client is told of it.
func (s *Server) nativeError(ctx *fasthttp.RequestCtx, err error) {
	ae := toAPIError(err)
	if ae.code == wire.InternalFailure {
		id := string(ctx.Response.Header.Peek("x-amzn-RequestId"))
		if s.logFailure(ae.cause) {
			s.log.Error("native request failed", "request_id", id, "err", ae.cause, "path", string(ctx.Path()))
		}
		ae.msg += " Request id " + id + "."
	}
	s.nativeFail(ctx, ae.code, ae.msg)
}

// codeOf returns the wire code of an engine error.
func codeOf(err error) wire.Code { return toAPIError(err).code }

// iteratorTypes maps the native protocol's starting positions to the engine's.
var iteratorTypes = [...]stream.IteratorType{
	wire.AtSequenceNumber:    stream.AtSequenceNumber,
	wire.AfterSequenceNumber: stream.AfterSequenceNumber,
	wire.TrimHorizon:         stream.TrimHorizon,
	wire.Latest:              stream.Latest,
	wire.AtTimestamp:         stream.AtTimestamp,
}

// iteratorType returns the engine's type for a starting position the wire decoder accepted
// (an unknown one is 0, which the engine refuses as a ValidationException).
func iteratorType(st wire.Start) stream.IteratorType {
	if int(st) < len(iteratorTypes) {
		return iteratorTypes[st]
	}
	return 0
}

// nativeBatch holds the entries of a native put while the engine appends them. It is pooled;
// entries alias the request body (keys and data) and hashKeys, so a batch is valid only while
// the request is, and release clears it. hashKeys has room for MaxPutRecords keys from the
// start, so it never moves while entries point into it.
type nativeBatch struct {
	entries  []stream.PutEntry
	hashKeys []shardmap.Key
}

var nativeBatches = sync.Pool{New: func() any {
	return &nativeBatch{entries: make([]stream.PutEntry, 0, wire.MaxPutRecords), hashKeys: make([]shardmap.Key, 0, wire.MaxPutRecords)}
}}

func (b *nativeBatch) release() {
	clear(b.entries) // drop the references into the request body
	b.entries, b.hashKeys = b.entries[:0], b.hashKeys[:0]
	nativeBatches.Put(b)
}

// nativePut serves POST /sluice/v1/put.
func (s *Server) nativePut(ctx *fasthttp.RequestCtx, c *opCall) {
	r, err := wire.ReadPut(ctx.Request.Body())
	if err != nil {
		s.nativeFail(ctx, wire.Serialization, "put: "+err.Error())
		return
	}
	b := nativeBatches.Get().(*nativeBatch)
	defer b.release()
	var rec wire.PutRecord
	for {
		more, err := r.Next(&rec)
		if err != nil {
			s.nativeFail(ctx, wire.Serialization, "put: record "+strconv.Itoa(len(b.entries)+1)+": "+err.Error())
			return
		}
		if !more {
			break
		}
		if !utf8.Valid(rec.Key) {
			s.nativeFail(ctx, wire.Serialization, "put: record "+strconv.Itoa(len(b.entries)+1)+": the partition key is not valid UTF-8")
			return
		}
		// The key is viewed, not copied: the engine copies it into the frame and keeps
		// nothing of it, and the body outlives the call (see bytesString).
		en := stream.PutEntry{PartitionKey: bytesString(rec.Key), Data: rec.Data}
		if rec.HasHash {
			b.hashKeys = append(b.hashKeys, shardmap.Key{
				Hi: binary.BigEndian.Uint64(rec.HashKey[:8]), Lo: binary.BigEndian.Uint64(rec.HashKey[8:])})
			en.ExplicitHashKey = &b.hashKeys[len(b.hashKeys)-1]
		}
		b.entries = append(b.entries, en)
	}
	if err := s.authorizeStream(c, bytesString(r.Stream)); err != nil {
		s.nativeError(ctx, err)
		return
	}
	res, err := s.putRecords(bytesString(r.Stream), b.entries)
	if err != nil {
		s.nativeError(ctx, err)
		return
	}
	failed := 0
	for i := range res {
		if res[i].Err != nil {
			failed++
		}
	}
	out := wire.AppendPutAnswerHead(getBodyBuf(8+16*len(res)), len(res), failed)
	for i := range res {
		pr := wire.PutResult{Shard: uint32(res[i].Shard), Position: res[i].Seq.Pos}
		if res[i].Err != nil {
			pr.Code, pr.Position = codeOf(res[i].Err), 0
		}
		out = wire.AppendPutResult(out, pr)
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(wire.ContentType)
	putBodyBuf(ctx.Response.SwapBody(out)) // out comes from bodyBufs, as rawJSON does
}

// unixMillis converts a wire timestamp; values past the int64 range are the far future.
func unixMillis(ms uint64) time.Time { return time.UnixMilli(int64(min(ms, math.MaxInt64))) }

// nativeGet serves POST /sluice/v1/get.
func (s *Server) nativeGet(ctx *fasthttp.RequestCtx, c *opCall) {
	req, err := wire.ReadGetRequest(ctx.Request.Body())
	if err != nil {
		s.nativeFail(ctx, wire.Serialization, "get: "+err.Error())
		return
	}
	in := stream.ReadInput{Stream: bytesString(req.Stream), Shard: stream.ShardID(req.Shard), Type: iteratorType(req.Start),
		Pos: req.Value, MaxRecords: req.MaxRecords, MaxBytes: req.MaxBytes}
	if req.Start == wire.AtTimestamp {
		in.Timestamp = unixMillis(req.Value)
	}
	if err := s.authorizeStream(c, in.Stream); err != nil {
		s.nativeError(ctx, err)
		return
	}
	r, err := s.engine.ReadShard(in)
	if err != nil {
		s.nativeError(ctx, err)
		return
	}
	h := &ctx.Response.Header
	var num [24]byte
	h.SetBytesV(wire.HeaderCount, strconv.AppendInt(num[:0], int64(r.Records.Count), 10))
	h.SetBytesV(wire.HeaderNext, strconv.AppendUint(num[:0], r.Records.Next, 10))
	h.SetBytesV(wire.HeaderMillisBehind, strconv.AppendInt(num[:0], r.MillisBehind, 10))
	if r.ShardEnd {
		h.Set(wire.HeaderShardEnd, "1")
		var list [64]byte
		h.SetBytesV(wire.HeaderChildren, appendChildIndexes(list[:0], r.ChildShards))
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(wire.ContentType)
	if r.Records.Count == 0 {
		r.Release()
		return
	}
	ctx.Response.SetBodyStream(&viewBody{v: r.Records}, r.Records.Len())
}

// appendChildIndexes appends the indexes of child shards, comma-separated.
func appendChildIndexes(dst []byte, cs []stream.ChildShard) []byte {
	for i, c := range cs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendUint(dst, uint64(c.ID), 10)
	}
	return dst
}

// viewBody is the body of a get answer: the frames of a segment view, handed to the socket
// from the mapping. It holds the view's reference until Close, which fasthttp calls once the
// body is written, when writing it fails, and when the response is reset unwritten (the
// connection failed first): every path of Response.writeBodyStream and Response.ResetBody in
// fasthttp v1.78.0. The HTTP/2 front (h2.go) reads it with Read and may Close it from another
// goroutine when the client goes away, hence the lock: the view is never released while a
// Read or WriteTo is using its bytes.
type viewBody struct {
	mu  sync.Mutex
	v   segment.View
	off int // bytes already handed out
}

// SupportsBodyWriteTo tells fasthttp to use WriteTo: fasthttp then passes the frames to the
// connection's writer in one Write, which copies at most its buffer's free space and writes
// the rest to the socket straight from the mapping (BenchmarkNativeGet).
func (b *viewBody) SupportsBodyWriteTo() bool { return true }

// WriteTo writes the frames left in one Write.
func (b *viewBody) WriteTo(w io.Writer) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.v.Bytes()[b.off:]
	if len(p) == 0 {
		return 0, nil
	}
	n, err := w.Write(p)
	b.off += n
	return int64(n), err
}

// Read copies frames into p: the path of readers that do not use WriteTo.
func (b *viewBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rest := b.v.Bytes()[b.off:]
	if len(rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p, rest)
	b.off += n
	return n, nil
}

// Close releases the view; the body is empty afterwards. Calling it again does nothing.
func (b *viewBody) Close() error {
	b.mu.Lock()
	b.v.Release()
	b.off = 0
	b.mu.Unlock()
	return nil
}

// nativeSubscribe serves POST /sluice/v1/subscribe: errors found before the stream starts are
// ordinary error answers; later ones are error messages.
func (s *Server) nativeSubscribe(ctx *fasthttp.RequestCtx, c *opCall) {
	req, err := wire.ReadSubscribeRequest(ctx.Request.Body())
	if err != nil {
		s.nativeFail(ctx, wire.Serialization, "subscribe: "+err.Error())
		return
	}
	in := stream.SubscribeInput{ConsumerARN: string(req.ConsumerARN), Shard: stream.ShardID(req.Shard), Type: iteratorType(req.Start)}
	switch req.Start {
	case wire.AtSequenceNumber, wire.AfterSequenceNumber:
		in.Seq = stream.SeqNum{Shard: in.Shard, Pos: req.Value}
	case wire.AtTimestamp:
		in.Timestamp = unixMillis(req.Value)
	}
	if err := s.authorize(c, in.ConsumerARN); err != nil {
		s.nativeError(ctx, err)
		return
	}
	sub, err := s.engine.Subscribe(in)
	if err != nil {
		s.nativeError(ctx, err)
		return
	}
	s.trackSubscription(sub)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(wire.ContentType)
	ctx.Response.ImmediateHeaderFlush = true // the consumer learns at once that it is subscribed
	ctx.Response.SetBodyStream(&subscribeBody{srv: s, sub: sub}, -1)
}

// smallMessage bounds the messages a subscription copies into one buffer to send as one
// chunk (one write to the socket); a larger message goes as its head and then its frames,
// written from the mapping.
const smallMessage = 16 << 10

// subscribeBody is the body of a native subscription: its messages, produced one at a time.
// fasthttp frames it as a chunked body and drives it with WriteTo on the connection's
// goroutine (see BodyWriterTo): WriteTo takes an event from the subscription only once the
// previous message is written, so the TCP window is the only flow control and a consumer that
// stops reading holds at most one event, whose frames are a view of the mapping. The HTTP/2
// front reads it with Read instead and may Close it from another goroutine when the client
// goes away.
//
// mu guards everything below it: WriteTo and Read hold it while they use an event, Close
// takes it to release the event left over. Close ends the subscription before it takes mu, so
// that a WriteTo or Read waiting for the next event returns at once.
type subscribeBody struct {
	srv    *Server
	sub    *stream.Subscription
	closed sync.Once

	mu     sync.Mutex
	buf    []byte       // the current message's head, or the whole of a small message
	ev     stream.Event // the current event; its frames follow buf unless copied into it
	head   []byte       // Read: the part of buf not read yet
	frames []byte       // Read: the frames not read yet
	last   bool         // the current message ends the stream
	done   bool         // nothing follows the current message
}

func (b *subscribeBody) SupportsBodyWriteTo() bool { return true }

// nextLocked replaces the current message by the subscription's next one. It reports false when
// the stream is over. Called with mu held.
func (b *subscribeBody) nextLocked() bool {
	b.ev.Release()
	b.ev, b.head, b.frames = stream.Event{}, nil, nil
	if b.last || b.done {
		b.done = true
		return false
	}
	if b.buf == nil {
		b.buf = make([]byte, 0, smallMessage)
	}
	ev, err := b.sub.Next(context.Background())
	switch {
	case errors.Is(err, io.EOF):
		b.done = true
		return false
	case err != nil:
		ae := toAPIError(err)
		if ae.code == wire.InternalFailure && b.srv.logFailure(ae.cause) {
			b.srv.log.Error("native subscription failed", "err", ae.cause)
		}
		b.buf, b.last = wire.AppendError(b.buf[:0], ae.code, ae.msg), true
		return true
	case len(ev.ChildShards) > 0 && ev.Records.Count == 0:
		ids := make([]uint32, 0, len(ev.ChildShards))
		for _, c := range ev.ChildShards {
			ids = append(ids, uint32(c.ID))
		}
		b.buf, b.last = wire.AppendEnd(b.buf[:0], ids), true
		return true
	}
	// The continuation is where a new subscription resumes with AT_SEQUENCE_NUMBER: past the
	// last record sent. The engine's Continuation names that record (Kinesis's meaning).
	cont := ev.Records.Next
	if ev.Records.Count == 0 {
		cont = ev.Continuation.Pos + 1
	}
	frames := ev.Records.Bytes()
	b.buf = wire.AppendRecordsHead(b.buf[:0], cont, ev.MillisBehind, ev.Records.Count, len(frames))
	if len(b.buf)+len(frames) <= cap(b.buf) {
		b.buf = append(b.buf, frames...)
		ev.Release()
		frames = nil
	}
	b.ev, b.frames = ev, frames
	return true
}

// WriteTo writes messages until the stream ends or a write fails. Every Write of fasthttp's
// chunked writer is a chunk, flushed to the socket.
func (b *subscribeBody) WriteTo(w io.Writer) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var n int64
	for b.nextLocked() {
		m, err := w.Write(b.buf)
		n += int64(m)
		if err == nil && len(b.frames) > 0 {
			m, err = w.Write(b.frames)
			n += int64(m)
		}
		if err != nil {
			b.ev.Release()
			return n, err
		}
	}
	return n, nil
}

// Read copies the stream's bytes into p, taking the next event when the current message is
// used up.
func (b *subscribeBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.head) == 0 && len(b.frames) == 0 {
		if !b.nextLocked() {
			return 0, io.EOF
		}
		b.head = b.buf
	}
	n := copy(p, b.head)
	b.head = b.head[n:]
	if n < len(p) {
		m := copy(p[n:], b.frames)
		b.frames = b.frames[m:]
		n += m
	}
	return n, nil
}

// Close ends the subscription, releases the event left over and forgets the subscription.
func (b *subscribeBody) Close() error {
	b.closed.Do(func() {
		b.sub.Close()
		b.mu.Lock()
		b.ev.Release()
		b.ev, b.head, b.frames, b.done = stream.Event{}, nil, nil, true
		b.mu.Unlock()
		s := b.srv
		s.subMu.Lock()
		delete(s.subs, b.sub)
		s.subMu.Unlock()
	})
	return nil
}
