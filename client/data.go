package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/shardmap"
)

// Start is where a read starts (GetInput.Start, ConsumerConfig.Start): the Kinesis iterator
// types.
type Start = wire.Start

// The starting positions.
const (
	AtSequenceNumber    = wire.AtSequenceNumber    // at a position
	AfterSequenceNumber = wire.AfterSequenceNumber // after a position
	TrimHorizon         = wire.TrimHorizon         // the oldest record kept
	Latest              = wire.Latest              // the next record appended
	AtTimestamp         = wire.AtTimestamp         // the first record that arrived at or after a time
)

// Record is a record read from a shard. Key and Data alias the answer they came in: they
// stay valid until that answer is released (GetOutput.Release), or, in a Consumer's handler,
// until the handler returns. Copy what must live longer.
type Record struct {
	Key      []byte
	Data     []byte
	Shard    uint32
	Position uint64
	Arrival  time.Time // when the server appended it
	Flags    uint16    // the frame's flags; bit 0: written while server-side encryption was on

	// A user record of a KPL aggregated record (see Deaggregator) shares the Position of the
	// record it came in; SubSeq is its index there, Key its own partition key and
	// ExplicitHashKey its explicit hash key in decimal, if it has one.
	Aggregated      bool
	SubSeq          uint64
	ExplicitHashKey []byte
}

// Seq returns the record's sequence number.
func (r *Record) Seq() SeqNum { return SeqNum{Shard: r.Shard, Position: r.Position} }

// SequenceNumber returns the record's 56-digit Kinesis sequence number.
func (r *Record) SequenceNumber() string { return r.Seq().String() }

// nativeError reads the error of a refused native request.
func nativeError(op string, resp *fasthttp.Response) *Error {
	name := string(resp.Header.Peek(wire.HeaderError))
	if name == "" {
		// A server without the native protocol answers as the Kinesis API does.
		name, _, _ = strings.Cut(string(resp.Header.Peek("X-Amzn-ErrorType")), ":")
	}
	body := resp.Body()
	if len(body) > 4096 {
		body = body[:4096]
	}
	msg := string(body)
	if !utf8.ValidString(msg) {
		msg = strconv.Quote(msg)
	}
	return answerError(op, resp.StatusCode(), name, string(resp.Header.Peek(wire.HeaderErrorCode)), msg)
}

func (c *Client) nativeRequest(req *fasthttp.Request, path string, body []byte) {
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(path)
	req.Header.SetHost(c.host)
	req.Header.SetContentType(wire.ContentType)
	req.SetBodyRaw(body)
	c.sign(req, path, wire.ContentType, "")
}

// ---- put ----------------------------------------------------------------------------------

// PutEntry is one record for PutRecords.
type PutEntry struct {
	Key     string
	Data    []byte
	HashKey *shardmap.Key // routes the record instead of the MD5 of Key when set
}

// PutResult is the outcome of one record of PutRecords: where it was appended, or why not
// (Err is an *Error: ErrThrottled when its shard was over capacity, ErrInternal on a failure
// of the server).
type PutResult struct {
	SeqNum
	Err error
}

// PutRecords appends up to 500 records to a stream in one native put request, as Kinesis
// PutRecords does: the records succeed or fail independently, and the results are in their
// order. It does not retry; a Producer does. An error means no record was appended, except
// a network error, after which any of them may have been.
func (c *Client) PutRecords(ctx context.Context, stream string, entries []PutEntry) ([]PutResult, error) {
	if len(entries) == 0 || len(entries) > wire.MaxPutRecords {
		return nil, fmt.Errorf("sluice put: %d records: %w", len(entries), ErrValidation)
	}
	body, countOff := wire.BeginPut(nil, stream)
	for i := range entries {
		e := &entries[i]
		r := wire.PutRecord{Key: []byte(e.Key), Data: e.Data}
		if e.HashKey != nil {
			r.HasHash = true
			putKey(r.HashKey[:], *e.HashKey)
		}
		body = wire.AppendPutRecord(body, &r)
	}
	wire.FinishPut(body, countOff, len(entries))
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	ans, err := c.put(ctx, body, len(entries), resp)
	if err != nil {
		return nil, err
	}
	out := make([]PutResult, ans.Count)
	for i := range out {
		r := ans.Result(i)
		out[i].SeqNum = SeqNum{Shard: r.Shard, Position: r.Position}
		if r.Code != wire.OK {
			out[i].Err = recordError(r.Code)
		}
	}
	return out, nil
}

// putKey writes k big-endian into b (16 bytes).
func putKey(b []byte, k shardmap.Key) {
	for i := range 8 {
		b[i] = byte(k.Hi >> (56 - 8*i))
		b[8+i] = byte(k.Lo >> (56 - 8*i))
	}
}

// recordErrors are the *Errors of refused records, one per code, shared: a put answer with
// many refusals allocates nothing for them.
var recordErrors = func() (e [32]*Error) {
	for c := range e {
		e[c] = &Error{Code: wire.Code(c), Name: wire.Code(c).Name(), Op: "put", Message: "record refused"}
	}
	return e
}()

func recordError(c wire.Code) *Error {
	if int(c) < len(recordErrors) {
		return recordErrors[c]
	}
	return recordErrors[wire.InternalFailure]
}

// put sends a put request body of n records and decodes its answer, which aliases resp.
func (c *Client) put(ctx context.Context, body []byte, n int, resp *fasthttp.Response) (wire.PutAnswer, error) {
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	c.nativeRequest(req, wire.PathPut, body)
	if err := c.do(ctx, req, resp); err != nil {
		return wire.PutAnswer{}, fmt.Errorf("sluice put: %w", err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return wire.PutAnswer{}, nativeError("put", resp)
	}
	ans, err := wire.ReadPutAnswer(resp.Body())
	if err == nil && ans.Count != n {
		err = fmt.Errorf("%d results for %d records", ans.Count, n)
	}
	if err != nil {
		return wire.PutAnswer{}, fmt.Errorf("sluice put: %w: %v", ErrBadAnswer, err)
	}
	return ans, nil
}

// ---- get ----------------------------------------------------------------------------------

// GetInput says what GetRecords reads.
type GetInput struct {
	Shard uint32
	Start Start
	// Value is the position for AtSequenceNumber and AfterSequenceNumber, Unix milliseconds
	// for AtTimestamp, and ignored otherwise.
	Value uint64
	// MaxRecords is 1…10,000; 0 means 10,000.
	MaxRecords int
	// MaxBytes caps the bytes of frames returned (one record is always returned when there
	// is one); 0 means 10 MiB.
	MaxBytes int
}

// GetOutput is the answer of GetRecords. Its Records alias the answer's buffer: they stay
// valid until Release.
type GetOutput struct {
	Records      []Record
	Next         uint64 // the position to read next, with AtSequenceNumber
	MillisBehind int64  // from the last record returned to the shard's tip
	ShardEnd     bool   // the shard is closed and everything in it was read
	Children     []uint32
	resp         *fasthttp.Response
}

// Release gives the answer's buffer back; Records must not be used afterwards.
func (o *GetOutput) Release() {
	if o.resp != nil {
		fasthttp.ReleaseResponse(o.resp)
		o.resp = nil
	}
	o.Records = o.Records[:0]
}

// GetRecords reads records of one shard with a native get request: the records' frames
// arrive as the segment stores them, and each frame's CRC is checked here. It counts against
// the shard's read limits (5 calls a second), like Kinesis GetRecords.
func (c *Client) GetRecords(ctx context.Context, stream string, in GetInput) (*GetOutput, error) {
	out := &GetOutput{}
	if err := c.getInto(ctx, stream, in, out); err != nil {
		out.Release()
		return nil, err
	}
	return out, nil
}

// getInto is GetRecords into out, reusing its buffers; out's previous records become invalid.
func (c *Client) getInto(ctx context.Context, stream string, in GetInput, out *GetOutput) error {
	if out.resp == nil {
		out.resp = fasthttp.AcquireResponse()
	}
	out.Records, out.Children = out.Records[:0], out.Children[:0]
	out.Next, out.MillisBehind, out.ShardEnd = 0, 0, false
	var head [64 + 256]byte
	body := wire.AppendGetRequest(head[:0], &wire.GetRequest{Stream: []byte(stream), Shard: in.Shard, Start: in.Start,
		Value: in.Value, MaxRecords: in.MaxRecords, MaxBytes: in.MaxBytes})
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	c.nativeRequest(req, wire.PathGet, body)
	resp := out.resp
	if err := c.do(ctx, req, resp); err != nil {
		return fmt.Errorf("sluice get: %w", err)
	}
	if resp.StatusCode() != fasthttp.StatusOK {
		return nativeError("get", resp)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("sluice get: %w: %s", ErrBadAnswer, fmt.Sprintf(format, args...))
	}
	count, err := strconv.Atoi(string(resp.Header.Peek(wire.HeaderCount)))
	if err != nil || count < 0 || count > wire.MaxGetRecords {
		return bad("%s %q", wire.HeaderCount, resp.Header.Peek(wire.HeaderCount))
	}
	if out.Next, err = strconv.ParseUint(string(resp.Header.Peek(wire.HeaderNext)), 10, 64); err != nil {
		return bad("%s %q", wire.HeaderNext, resp.Header.Peek(wire.HeaderNext))
	}
	if v := resp.Header.Peek(wire.HeaderMillisBehind); len(v) > 0 {
		if out.MillisBehind, err = strconv.ParseInt(string(v), 10, 64); err != nil {
			return bad("%s %q", wire.HeaderMillisBehind, v)
		}
	}
	out.ShardEnd = string(resp.Header.Peek(wire.HeaderShardEnd)) == "1"
	if v := string(resp.Header.Peek(wire.HeaderChildren)); v != "" {
		for f := range strings.SplitSeq(v, ",") {
			id, err := strconv.ParseUint(strings.TrimSpace(f), 10, 32)
			if err != nil {
				return bad("%s %q", wire.HeaderChildren, v)
			}
			out.Children = append(out.Children, uint32(id))
		}
	}
	if out.Records, err = appendFrames(out.Records, resp.Body(), in.Shard); err != nil {
		return fmt.Errorf("sluice get: %w", err)
	}
	if len(out.Records) != count {
		return bad("%d frames, %s says %d", len(out.Records), wire.HeaderCount, count)
	}
	return nil
}

// appendFrames decodes frames (CRC-checked) into records of shard.
func appendFrames(dst []Record, frames []byte, shard uint32) ([]Record, error) {
	f := wire.NewFrames(frames)
	for f.Next() {
		r := f.Record()
		dst = append(dst, Record{Key: r.Key, Data: r.Data, Shard: shard, Position: r.Seq,
			Arrival: time.Unix(0, r.Time), Flags: r.Flags})
	}
	if err := f.Err(); err != nil {
		return dst, fmt.Errorf("%w: frame %d: %v", ErrBadAnswer, len(dst), err)
	}
	return dst, nil
}

// ---- subscribe ----------------------------------------------------------------------------

// subscription is one native subscribe response being read, on a connection of its own:
// the response is long-lived, and closing the connection is how a reader stops it.
type subscription struct {
	conn net.Conn
	resp *fasthttp.Response
	body *bufio.Reader
	buf  []byte
	stop func() bool // unregisters the context watch
}

// subscribeIdle is how long a subscription may stay silent: the server sends a heartbeat at
// least every 5 seconds, so a longer silence means the connection is gone.
const subscribeIdle = 30 * time.Second

// subscribe opens a subscription for the consumer consumerARN to a shard.
func (c *Client) subscribe(ctx context.Context, consumerARN string, shard uint32, start Start, value uint64) (*subscription, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	d := net.Dialer{Timeout: c.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", c.host)
	if err != nil {
		return nil, fmt.Errorf("sluice subscribe: %w", wrapTransport(err))
	}
	if c.tls {
		cfg := &tls.Config{}
		if c.cfg.TLSConfig != nil {
			cfg = c.cfg.TLSConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(c.host)
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("sluice subscribe: %w", wrapTransport(err))
		}
		conn = tc
	}
	s := &subscription{conn: conn}
	s.stop = context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (*subscription, error) {
		s.close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	body := wire.AppendSubscribeRequest(nil, &wire.SubscribeRequest{ConsumerARN: []byte(consumerARN), Shard: shard, Start: start, Value: value})
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	c.nativeRequest(req, wire.PathSubscribe, body)
	conn.SetDeadline(time.Now().Add(c.cfg.RequestTimeout))
	bw := bufio.NewWriterSize(conn, 1024)
	if err := req.Write(bw); err != nil {
		return fail(fmt.Errorf("sluice subscribe: %w", wrapTransport(err)))
	}
	if err := bw.Flush(); err != nil {
		return fail(fmt.Errorf("sluice subscribe: %w", wrapTransport(err)))
	}
	s.resp = fasthttp.AcquireResponse()
	s.resp.StreamBody = true
	br := bufio.NewReaderSize(conn, 64<<10)
	if err := s.resp.Read(br); err != nil {
		return fail(fmt.Errorf("sluice subscribe: %w", wrapTransport(err)))
	}
	if s.resp.StatusCode() != fasthttp.StatusOK {
		// An error answer is short: read at most 64 KiB of it.
		msg, _ := io.ReadAll(io.LimitReader(s.resp.BodyStream(), 64<<10))
		s.resp.CloseBodyStream()
		s.resp.SetBodyRaw(msg)
		return fail(nativeError("subscribe", s.resp))
	}
	conn.SetWriteDeadline(time.Time{})
	s.body = bufio.NewReaderSize(s.resp.BodyStream(), 64<<10)
	return s, nil
}

// next reads the next message; its slices alias s's buffer until the next call. io.EOF
// means the server ended the subscription cleanly.
func (s *subscription) next() (wire.Message, error) {
	s.conn.SetReadDeadline(time.Now().Add(subscribeIdle))
	m, buf, err := wire.ReadMessage(s.body, s.buf)
	s.buf = buf
	if err != nil {
		if errors.Is(err, io.EOF) {
			return m, io.EOF
		}
		// A cut connection, a stalled one (the read deadline) or a damaged message: the
		// reader resubscribes from its continuation.
		return m, fmt.Errorf("sluice subscribe: %w", wrapTransport(err))
	}
	return m, nil
}

func (s *subscription) close() {
	if s.stop != nil {
		s.stop()
	}
	s.conn.Close()
	if s.resp != nil {
		s.resp.CloseBodyStream()
		fasthttp.ReleaseResponse(s.resp)
		s.resp = nil
	}
}
