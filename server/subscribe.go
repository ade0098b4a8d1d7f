package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/stream"
)

// subscriptionKey is the request's user value holding its SubscribeToShard subscription.
const subscriptionKey = "sluice.subscription"

// subscribeWriteTimeout bounds writes of a SubscribeToShard response: it lives up to five
// minutes, so the server-wide write timeout cannot apply to it.
const subscribeWriteTimeout = stream.SubscriptionLifetime + time.Minute

// subscribe serves SubscribeToShard: an event stream over a chunked HTTP/1.1 response, first
// an initial-response event, then a SubscribeToShardEvent each time records are appended
// (or every 5 seconds), until the subscription ends. Errors found before the stream starts
// are ordinary errors; later ones are exception events. Payloads are JSON, or CBOR for a
// CBOR request. The call is authorised on the consumer's ARN; c is not used once subscribe
// returns (the event stream is written after).
func (s *Server) subscribe(ctx *fasthttp.RequestCtx, c *opCall, body []byte) {
	var in struct {
		ConsumerARN      string `json:"ConsumerARN"`
		ShardId          string `json:"ShardId"`
		StartingPosition struct {
			Type           string `json:"Type"`
			SequenceNumber string `json:"SequenceNumber"`
			Timestamp      *epoch `json:"Timestamp"`
		} `json:"StartingPosition"`
	}
	// A CBOR request gets its events in CBOR (cbor.go); the input is transcoded to JSON first.
	asCBOR := isCBOR(ctx.Request.Header.ContentType())
	if asCBOR && len(body) > 0 {
		js, err := cborToJSON(nil, body)
		if err != nil {
			s.fail(ctx, toAPIError(err))
			return
		}
		body = js
	}
	if err := decode(body, &in); err != nil {
		s.fail(ctx, toAPIError(err))
		return
	}
	if err := s.authorize(c, in.ConsumerARN); err != nil {
		s.fail(ctx, toAPIError(err))
		return
	}
	start, err := s.parseStart(consumerStream(in.ConsumerARN), in.ShardId, in.StartingPosition.Type, "startingPosition.type",
		in.StartingPosition.SequenceNumber, in.StartingPosition.Timestamp)
	if err != nil {
		s.fail(ctx, toAPIError(err))
		return
	}
	si := stream.SubscribeInput{ConsumerARN: in.ConsumerARN, Shard: start.shard, Type: start.typ, Seq: start.seq, Timestamp: start.ts}
	sub, err := s.engine.Subscribe(si)
	if err != nil {
		s.fail(ctx, toAPIError(err))
		return
	}
	s.trackSubscription(sub)
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/vnd.amazon.eventstream")
	// Over HTTP/2 the client may reset the stream while the writer waits for the next event;
	// h2.go closes the subscription then, which wakes the wait (fasthttp's HTTP/1.1 notices a
	// departed client only at the next write).
	ctx.SetUserValue(subscriptionKey, sub)
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer func() {
			sub.Close()
			s.subMu.Lock()
			delete(s.subs, sub)
			s.subMu.Unlock()
		}()
		newEvent, newException, initial := event, exceptionEvent, []byte("{}")
		if asCBOR {
			newEvent, newException, initial = cborEvent, cborExceptionEvent, cborEmptyMap
		}
		if _, err := w.Write(newEvent("initial-response", initial)); err != nil || w.Flush() != nil {
			return
		}
		for {
			ev, err := sub.Next(context.Background())
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				ae := toAPIError(err)
				w.Write(newException(ae.name(), ae.msg))
				w.Flush()
				return
			}
			payload, err := eventPayload(ev, asCBOR)
			ev.Release()
			if err != nil {
				return
			}
			if writeEvent(w, newEvent("SubscribeToShardEvent", payload)) != nil {
				return // the consumer went away
			}
		}
	})
}

// eventChunk is the most of an event message handed to the body stream at once. fasthttp's
// body stream is a pipe that copies each write and queues four of them, besides the one its
// reader is sending, before a write blocks: written whole, a subscription whose consumer
// stopped reading held up to five copies of its last events (TestIdleSubscribers: about
// 3.4 MB in the pipe per subscription, 344 MB for 100); in chunks, the pipe holds at most
// five chunks.
const eventChunk = 64 << 10

// writeEvent writes an event message to a subscription's body stream in chunks of at most
// eventChunk bytes, and flushes it.
func writeEvent(w *bufio.Writer, msg []byte) error {
	for len(msg) > 0 {
		n := min(len(msg), eventChunk)
		if _, err := w.Write(msg[:n]); err != nil {
			return err
		}
		msg = msg[n:]
	}
	return w.Flush()
}

// eventPayload encodes a SubscribeToShardEvent, in CBOR when asCBOR. It runs before the
// event's view is released, so the data is encoded straight from the mapping.
func eventPayload(ev stream.Event, asCBOR bool) ([]byte, error) {
	b := make([]byte, 0, getRecordsSize(&ev.Records))
	b = append(b, `{"Records":`...)
	b = appendRecords(b, &ev.Records, ev.Continuation.Shard)
	b = append(b, `,"ContinuationSequenceNumber":"`...)
	b = append(ev.Continuation.Append(b), '"')
	b = append(b, `,"MillisBehindLatest":`...)
	b = strconv.AppendInt(b, ev.MillisBehind, 10)
	b = appendChildShards(b, ev.ChildShards)
	b = append(b, '}')
	if !asCBOR {
		return b, nil
	}
	return jsonToCBOR(nil, b)
}

// consumerStream returns the stream name in a consumer ARN
// (arn:aws:kinesis:REGION:ACCOUNT:stream/NAME/consumer/CONSUMER:CREATED), for messages about
// a request that fails before the engine finds the consumer; "" when the ARN has no name.
func consumerStream(arn string) string {
	_, rest, ok := strings.Cut(arn, ":stream/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}
