package stream

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/shardmap"
)

// Subscription timing, as Kinesis defines it: a subscription lasts 5 minutes; an event is
// sent at least every 5 seconds, records or not; a second subscription for the same consumer
// and shard within 5 seconds of the first is refused, and a later one replaces it.
const (
	SubscriptionLifetime = 5 * time.Minute
	HeartbeatInterval    = 5 * time.Second
	resubscribeGuard     = 5 * time.Second
	maxEventRecords      = 10_000
	maxEventBytes        = 2 << 20 // one event carries at most a second of the consumer's rate
)

// SubscribeInput is what SubscribeToShard takes.
type SubscribeInput struct {
	ConsumerARN string
	Shard       ShardID
	Type        IteratorType
	Seq         SeqNum // AT_ and AFTER_SEQUENCE_NUMBER: must belong to Shard
	Timestamp   time.Time
}

// Event is one SubscribeToShardEvent. Records is a zero-copy view the receiver releases.
type Event struct {
	Records segment.View
	// Continuation is the ContinuationSequenceNumber: the last record sent, or before any
	// record, the position before the subscription's start (Pos 0 when it starts at the
	// shard's first record). A new subscription resumes after it.
	Continuation SeqNum
	MillisBehind int64
	ChildShards  []ChildShard // at the end of a closed shard; the subscription then ends
}

// Release releases the event's records.
func (ev *Event) Release() { ev.Records.Release() }

// Subscription pushes a shard's records to one consumer as they are appended: Next waits on
// the log's change notification (woken by the append itself, never by a polling timer),
// paces the consumer to its per-shard rate, and returns io.EOF when the subscription's
// 5 minutes are over, when the shard ended (after the event carrying its ChildShards), when
// a newer subscription replaced it, or when its consumer was deregistered.
type Subscription struct {
	engine     *Engine
	stream     *Stream
	key        string
	shard      *shard
	shardID    ShardID
	pos        uint64 // next log position to send
	started    time.Time
	pacer      *Pacer
	metrics    *consumerMetrics // the consumer's counters
	behind     *atomic.Int64    // the consumer's MillisBehindLatest gauge for this shard
	ended      chan struct{}    // closed when replaced or deregistered
	endOnce    sync.Once
	done       bool
	sawClosing bool // Next was woken by the shard closing; owned by the caller of Next
}

// Subscribe starts a subscription (SubscribeToShard).
func (e *Engine) Subscribe(in SubscribeInput) (*Subscription, error) {
	s, c, err := e.findConsumer("", "", in.ConsumerARN)
	if err != nil {
		return nil, err
	}
	meta, set := s.meta.Load(), s.set.Load()
	id := in.Shard
	sh, held := set.shards[id]
	if !held {
		return nil, NoSuchShard(id.String(), meta.Name, e.opts.Account)
	}
	pos, err := e.startPosition(sh, id, in.Type, in.Seq, in.Timestamp)
	if err != nil {
		return nil, err
	}
	now := e.opts.Now()
	cm := s.metrics.consumer(c.Name)
	sub := &Subscription{engine: e, stream: s, key: e.consumerARN(meta.Name, c) + "|" + id.String(), shard: sh, shardID: id,
		pos: pos, started: now, pacer: e.opts.Limits.NewPacer(now), metrics: cm, behind: cm.shard(id), ended: make(chan struct{})}
	s.subMu.Lock()
	defer s.subMu.Unlock()
	if old := s.subs[sub.key]; old != nil {
		if now.Sub(old.started) < resubscribeGuard {
			cm.rateExceeded.Add(1)
			return nil, errorf(KindResourceInUse, "Another active subscription exists for consumer %s and shard %s.", in.ConsumerARN, id)
		}
		old.end()
	}
	if s.subs == nil {
		s.subs = map[string]*Subscription{}
	}
	s.subs[sub.key] = sub
	cm.success.Add(1)
	return sub, nil
}

func (sub *Subscription) end() { sub.endOnce.Do(func() { close(sub.ended) }) }

// Close ends the subscription.
func (sub *Subscription) Close() {
	sub.end()
	s := sub.stream
	s.subMu.Lock()
	if s.subs[sub.key] == sub {
		delete(s.subs, sub.key)
	}
	s.subMu.Unlock()
}

// endSubscriptions ends every subscription of a consumer, or of every consumer when
// consumerARN is empty.
func (s *Stream) endSubscriptions(consumerARN string) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for k, sub := range s.subs {
		if consumerARN == "" || len(k) > len(consumerARN) && k[:len(consumerARN)] == consumerARN && k[len(consumerARN)] == '|' {
			sub.end()
			delete(s.subs, k)
		}
	}
}

// Next returns the next event: records as soon as they are appended, or an empty event
// (a heartbeat with the continuation sequence number) after HeartbeatInterval.
func (sub *Subscription) Next(ctx context.Context) (Event, error) {
	if sub.done {
		return Event{}, io.EOF
	}
	e := sub.engine
	heartbeat := time.NewTimer(HeartbeatInterval)
	defer heartbeat.Stop()
	for {
		now := e.opts.Now()
		if now.Sub(sub.started) >= SubscriptionLifetime {
			sub.done = true
			return Event{}, io.EOF
		}
		select {
		case <-sub.ended:
			sub.done = true
			return Event{}, io.EOF
		default:
		}
		changed := sub.shard.log.Changed() // taken before reading: no append is missed
		v, err := sub.shard.log.Read(sub.pos, maxEventRecords, maxEventBytes)
		if err != nil {
			return Event{}, internalError(err)
		}
		if err := sub.stream.openView(&v); err != nil {
			return Event{}, err
		}
		if v.Count > 0 {
			if d := sub.pacer.Take(v.Len(), now); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					v.Release()
					return Event{}, ctx.Err()
				case <-sub.ended:
					t.Stop()
					v.Release()
					sub.done = true
					return Event{}, io.EOF
				}
			}
			sub.pos = v.Next
			ev := Event{Records: v, Continuation: SeqNum{Shard: sub.shardID, Pos: v.Last}}
			if v.Last < sub.shard.log.Tip() {
				ev.MillisBehind = max(0, sub.shard.log.TipTime()-v.LastTime) / int64(time.Millisecond)
			}
			sub.sent(&ev)
			return ev, nil
		}
		v.Release()
		set, meta := sub.stream.set.Load(), sub.stream.meta.Load()
		if info, _ := set.m.Lookup(sub.shardID); !info.Open && sub.pos > meta.Ending[sub.shardID] {
			sub.done = true
			ev := Event{Continuation: SeqNum{Shard: sub.shardID, Pos: meta.Ending[sub.shardID]},
				ChildShards: childShards(set.m, sub.shardID)}
			sub.sent(&ev)
			return ev, nil
		}
		closing := sub.shard.closing
		if sub.sawClosing {
			closing = nil // woken once; from now on appends and heartbeats only
		}
		select {
		case <-changed:
		case <-closing: // resharded: the next round sends the children
			sub.sawClosing = true
		case <-heartbeat.C:
			ev := Event{Continuation: SeqNum{Shard: sub.shardID, Pos: sub.pos - min(sub.pos, 1)}}
			sub.sent(&ev)
			return ev, nil
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-sub.ended:
			sub.done = true
			return Event{}, io.EOF
		}
	}
}

// childShards lists the children of a closed shard with their parents and ranges.
func childShards(m *shardmap.Map, id ShardID) []ChildShard {
	var out []ChildShard
	for _, c := range m.Children(id) {
		cs := ChildShard{ID: c.ID, Parents: []ShardID{c.Parent}, Range: c.Range}
		if c.HasAdjacentParent() {
			cs.Parents = append(cs.Parents, c.AdjacentParent)
		}
		out = append(out, cs)
	}
	return out
}
