package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/stream"
)

// subscribeWriteTimeout bounds writes of a SubscribeToShard response: it lives up to five
// minutes, so the server-wide write timeout cannot apply to it.
const subscribeWriteTimeout = stream.SubscriptionLifetime + time.Minute

// subscribe serves SubscribeToShard: an event stream over a chunked HTTP/1.1 response, first
// an initial-response event, then a SubscribeToShardEvent each time records are appended
// (or every 5 seconds), until the subscription ends. Errors found before the stream starts
// are ordinary JSON errors; later ones are exception events.
func (s *Server) subscribe(ctx *fasthttp.RequestCtx, body []byte) {
	var in struct {
		ConsumerARN      string `json:"ConsumerARN"`
		ShardId          string `json:"ShardId"`
		StartingPosition struct {
			Type           string `json:"Type"`
			SequenceNumber string `json:"SequenceNumber"`
			Timestamp      *epoch `json:"Timestamp"`
		} `json:"StartingPosition"`
	}
	if err := decode(body, &in); err != nil {
		s.fail(ctx, toAPIError(err))
		return
	}
	si := stream.SubscribeInput{ConsumerARN: in.ConsumerARN, ShardID: in.ShardId, Type: in.StartingPosition.Type,
		Seq: in.StartingPosition.SequenceNumber}
	if in.StartingPosition.Timestamp != nil {
		si.Timestamp = in.StartingPosition.Timestamp.Time
	}
	sub, err := s.engine.Subscribe(si)
	if err != nil {
		s.fail(ctx, toAPIError(err))
		return
	}
	s.subMu.Lock()
	if s.subs == nil {
		s.subs = map[*stream.Subscription]struct{}{}
	}
	s.subs[sub] = struct{}{}
	s.subMu.Unlock()
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/vnd.amazon.eventstream")
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer func() {
			sub.Close()
			s.subMu.Lock()
			delete(s.subs, sub)
			s.subMu.Unlock()
		}()
		if _, err := w.Write(event("initial-response", []byte("{}"))); err != nil || w.Flush() != nil {
			return
		}
		for {
			ev, err := sub.Next(context.Background())
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				ae := toAPIError(err)
				w.Write(exceptionEvent(ae.name, ae.msg))
				w.Flush()
				return
			}
			payload, err := eventPayload(ev)
			ev.Release()
			if err != nil {
				return
			}
			if _, err := w.Write(event("SubscribeToShardEvent", payload)); err != nil || w.Flush() != nil {
				return // the consumer went away
			}
		}
	})
}

// eventPayload encodes a SubscribeToShardEvent. It runs before the event's view is
// released, so the data is encoded straight from the mapping.
func eventPayload(ev stream.Event) ([]byte, error) {
	seq, err := stream.ParseSeqNum(ev.ContinuationSeq)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		Records                    []recordOut `json:"Records"`
		ContinuationSequenceNumber string      `json:"ContinuationSequenceNumber"`
		MillisBehindLatest         int64       `json:"MillisBehindLatest"`
		ChildShards                []childOut  `json:"ChildShards,omitempty"`
	}{recordsOut(ev.Records, seq.Shard, false), ev.ContinuationSeq, ev.MillisBehind, childrenOut(ev.ChildShards)})
}
