// Like overload_test.go, these tests load a real server and run without the race detector
// (`make overload`).

//go:build !race

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Idle subscribers: the shape of TestIdleSubscribers.
const (
	idleShards    = 5
	idleConsumers = 20      // Kinesis's most per stream: 20 × 5 shards = 100 subscriptions
	idleRecords   = 400     // records/s per shard from the producers
	idleSize      = 1 << 10 // a shard's records outgrow a socket's largest send buffer (4 MiB) within 10 s
	// idleProducers is how many goroutines share the producers' rate.
	idleProducers = 4
	// idleRSSBound is what the server's anonymous resident set may reach with the 100
	// subscriptions stalled (docs/OPERATIONS.md): each holds the event it is writing, at most
	// 2 MiB of records, under 4 MiB as JSON; twice that for the collector's headroom, and
	// 128 MiB for the rest of the server.
	idleRSSBound = 128<<20 + idleConsumers*idleShards*2*(4<<20)
)

// ackLog is the sequence numbers acknowledged to the producers, per shard, in acknowledgement
// order (with several producers, not sequence order: see bySeq).
type ackLog struct {
	mu    sync.Mutex
	seqs  map[string][]string // shard id → sequence numbers
	put   atomic.Int64        // records acknowledged
	other atomic.Int64        // records refused, or calls failed
	first string              // the first failure
}

// produce puts its share (1/idleProducers) of idleRecords records/s per shard, in
// PutRecords calls of random keys, until stop is set; it returns the records it offered.
func (l *ackLog) produce(kc *kinesisClient, streamName string, rnd *rand.Rand, stop *atomic.Bool) int64 {
	const perCall = 50
	data := make([]byte, idleSize)
	every := time.Duration(float64(time.Second) * perCall * idleProducers / (idleRecords * idleShards))
	next := time.Now()
	var offered int64
	for !stop.Load() {
		time.Sleep(time.Until(next)) // pacing the producer, not synchronisation
		// A producer that fell behind goes on from now: catching up would be a burst.
		if now := time.Now(); now.After(next) {
			next = now
		}
		next = next.Add(every)
		keys := make([]string, perCall)
		for i := range keys {
			keys[i] = strconv.FormatUint(rnd.Uint64(), 36)
		}
		offered += perCall
		a, err := kc.call(context.Background(), "PutRecords", putRecordsBody(streamName, keys, data))
		var out putRecordsAnswer
		if err != nil || a.status != 200 || json.Unmarshal(a.body, &out) != nil || len(out.Records) != perCall {
			l.fail(perCall, fmt.Sprintf("%d %s %s %v", a.status, a.errType, a.body, err))
			continue
		}
		l.mu.Lock()
		for _, r := range out.Records {
			if r.ErrorCode != "" {
				l.other.Add(1)
				if l.first == "" {
					l.first = r.ErrorCode
				}
				continue
			}
			l.seqs[r.ShardId] = append(l.seqs[r.ShardId], r.SequenceNumber)
			l.put.Add(1)
		}
		l.mu.Unlock()
	}
	return offered
}

func (l *ackLog) fail(n int, what string) {
	l.other.Add(int64(n))
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.first == "" {
		l.first = what
	}
}

// TestIdleSubscribers opens 100 enhanced fan-out subscriptions (20 consumers × 5 shards) of a
// busy stream over connections with a 4 KiB receive buffer, and reads none of them for
// SLUICE_OVERLOAD_DURATION while producers put 2,000 records/s of 1 KiB: the producers are served
// as they were before the subscriptions (every record acknowledged, the offered rate kept),
// the server's anonymous resident set stays under idleRSSBound, and then each subscriber,
// reading again and resubscribing from its continuation when its subscription ended, receives
// exactly its shard's acknowledged records, in order, from the start.
func TestIdleSubscribers(t *testing.T) {
	d := envDuration(t, overloadEnv, 10*time.Second)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(uint64(seed), 0))
	p := startServeProc(t, t.TempDir(), "--durability", "none", "--limits", "kinesis")
	kc := newKinesisClient(p.base, 8, "")
	kc.createStream(t, "busy", idleShards)
	var desc struct{ StreamDescriptionSummary struct{ StreamARN string } }
	kc.must(t, "DescribeStreamSummary", map[string]any{"StreamName": "busy"}, &desc)
	arn := desc.StreamDescriptionSummary.StreamARN
	acks := &ackLog{seqs: map[string][]string{}}

	// The producers alone, then beside the stalled subscriptions.
	phase := func(d time.Duration, before func()) (offered, acked int64) {
		before()
		var stop atomic.Bool
		put0 := acks.put.Load()
		done := make(chan int64)
		for i := range idleProducers {
			r := rand.New(rand.NewPCG(rnd.Uint64(), uint64(i)))
			go func() { done <- acks.produce(kc, "busy", r, &stop) }()
		}
		time.Sleep(d) // the length of a load phase, not synchronisation
		stop.Store(true)
		for range idleProducers {
			offered += <-done
		}
		return offered, acks.put.Load() - put0
	}
	offered0, acked0 := phase(d/2, func() {})

	consumers := make([]string, idleConsumers)
	for i := range consumers {
		var out struct{ Consumer struct{ ConsumerARN string } }
		kc.must(t, "RegisterStreamConsumer", map[string]any{"StreamARN": arn, "ConsumerName": "idle" + strconv.Itoa(i)}, &out)
		consumers[i] = out.Consumer.ConsumerARN
	}
	for _, c := range consumers {
		for {
			var out struct {
				ConsumerDescription struct{ ConsumerStatus string }
			}
			kc.must(t, "DescribeStreamConsumer", map[string]any{"ConsumerARN": c}, &out)
			if out.ConsumerDescription.ConsumerStatus == "ACTIVE" {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	type sub struct {
		consumer, shard string
		body            *bufio.Reader
		closer          io.Closer
	}
	var subs []*sub
	var peak atomic.Int64
	offered1, acked1 := phase(d, func() {
		for _, c := range consumers {
			for s := range idleShards {
				shard := fmt.Sprintf("shardId-%012d", s)
				r, cl := subscribeToShard(t, p.base, c, shard, "TRIM_HORIZON", "")
				subs = append(subs, &sub{consumer: c, shard: shard, body: r, closer: cl})
			}
		}
		go func() {
			for range 4 * int(d/time.Second) {
				if r := p.anonRSS(); r > peak.Load() {
					peak.Store(r)
				}
				time.Sleep(250 * time.Millisecond) // sampling
			}
		}()
	})
	t.Logf("producers alone: offered %d, acknowledged %d records in %v; beside 100 stalled subscriptions: offered %d, acknowledged %d in %v",
		offered0, acked0, d/2, offered1, acked1, d)
	t.Logf("anonymous resident set with the subscriptions stalled: peak %d MiB (bound %d MiB)", peak.Load()>>20, idleRSSBound>>20)
	if acks.other.Load() > 0 {
		t.Fatalf("%d records not acknowledged, the first: %s", acks.other.Load(), acks.first)
	}
	if acked0 != offered0 || acked1 != offered1 {
		t.Fatalf("acknowledged %d of %d, then %d of %d", acked0, offered0, acked1, offered1)
	}
	// The offered rate is the producers' schedule: one that fell behind offered less.
	want := float64(idleRecords*idleShards) * d.Seconds()
	if float64(offered1) < 0.9*want {
		t.Errorf("beside the stalled subscriptions the producers put %d records in %v, want %.0f ± 10 %%", offered1, d, want)
	}
	// The subscriptions did stall: the server's sockets to them hold bytes the subscribers did
	// not read (the producers' connections are idle by now).
	if n := stalledSends(t, p.addr); n < len(subs)*9/10 {
		t.Errorf("%d of the server's connections hold unread bytes, want ≥ 90 %% of the %d subscriptions", n, len(subs))
	}
	if peak.Load() > idleRSSBound {
		t.Errorf("the anonymous resident set peaked at %d MiB with the subscriptions stalled, over %d MiB", peak.Load()>>20, idleRSSBound>>20)
	}

	// Every subscriber reads again: exactly its shard's records, in order.
	for _, seqs := range acks.seqs {
		slices.SortFunc(seqs, bySeq)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(subs))
	for _, s := range subs {
		wg.Go(func() {
			want := acks.seqs[s.shard]
			got, err := readSubscription(t, p.base, s.consumer, s.shard, s.body, s.closer, len(want))
			if err == nil && !slices.Equal(got, want) {
				err = fmt.Errorf("received %d records, want %d (first difference at %d)", len(got), len(want), firstDiff(got, want))
			}
			if err != nil {
				errs <- fmt.Errorf("%s of %s: %w", s.shard, s.consumer, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// stalledSends returns how many TCP sockets of the server listening on addr have bytes in
// their send queue (/proc/net/tcp).
func stalledSends(t *testing.T, addr string) int {
	_, port, _ := net.SplitHostPort(addr)
	pn, _ := strconv.Atoi(port)
	want := fmt.Sprintf(":%04X", pn)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasSuffix(f[1], want) {
			continue
		}
		tx, _, _ := strings.Cut(f[4], ":")
		if q, err := strconv.ParseUint(tx, 16, 64); err == nil && q > 0 {
			n++
		}
	}
	return n
}

// bySeq orders decimal sequence numbers by value.
func bySeq(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// subscribeToShard opens a SubscribeToShard stream over HTTP/1.1 on a connection of its own
// whose receive buffer is 4 KiB, so that a subscriber that does not read stalls the server's
// writes within a few events; it returns the stream's body once the answer's headers came.
func subscribeToShard(t testing.TB, base, consumer, shard, typ, seq string) (*bufio.Reader, io.Closer) {
	t.Helper()
	r, c, err := openSubscription(context.Background(), base, consumer, shard, typ, seq)
	if err != nil {
		t.Fatal(err)
	}
	return r, c
}

// openSubscription is subscribeToShard, returning its error, and waiting while the server
// refuses a resubscription within 5 seconds of the last one, until ctx is done.
func openSubscription(ctx context.Context, base, consumer, shard, typ, seq string) (*bufio.Reader, io.Closer, error) {
	d := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	var pr http.Protocols
	pr.SetHTTP1(true)
	hc := &http.Client{Transport: &http.Transport{Protocols: &pr, DialContext: d.DialContext, DisableKeepAlives: true}}
	start := map[string]any{"Type": typ}
	if seq != "" {
		start["SequenceNumber"] = seq
	}
	body, _ := json.Marshal(map[string]any{"ConsumerARN": consumer, "ShardId": shard, "StartingPosition": start})
	for {
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/", bytes.NewReader(body))
		req.Header.Set("X-Amz-Target", "Kinesis_20131202.SubscribeToShard")
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp, err := hc.Do(req)
		if err != nil {
			return nil, nil, fmt.Errorf("SubscribeToShard %s: %w", shard, err)
		}
		if resp.StatusCode == 200 {
			return bufio.NewReader(resp.Body), resp.Body, nil
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if et := resp.Header.Get("X-Amzn-ErrorType"); et != "ResourceInUseException" && et != "LimitExceededException" {
			return nil, nil, fmt.Errorf("SubscribeToShard %s: %d %s %s", shard, resp.StatusCode, et, msg)
		}
		select {
		case <-time.After(time.Second): // a consumer may resubscribe to a shard once per 5 s
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// readSubscription reads a subscription's events until it received n records, resubscribing
// after its continuation when the stream ends, and returns their sequence numbers.
func readSubscription(t testing.TB, base, consumer, shard string, r *bufio.Reader, c io.Closer, n int) ([]string, error) {
	var got []string
	cont := ""
	defer func() { c.Close() }()
	for len(got) < n {
		typ, payload, err := readEventStream(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				return got, err
			}
			if cont == "" {
				return got, fmt.Errorf("the stream ended before its first event: %v", err)
			}
			c.Close()
			r, c = subscribeToShard(t, base, consumer, shard, "AFTER_SEQUENCE_NUMBER", cont)
			continue
		}
		switch typ {
		case "initial-response":
			continue
		case "SubscribeToShardEvent":
		default:
			return got, fmt.Errorf("event %s: %s", typ, payload)
		}
		var ev struct {
			ContinuationSequenceNumber string
			Records                    []struct{ SequenceNumber string }
		}
		if err := json.Unmarshal(payload, &ev); err != nil {
			return got, err
		}
		for _, rec := range ev.Records {
			got = append(got, rec.SequenceNumber)
		}
		cont = ev.ContinuationSequenceNumber
	}
	return got, nil
}

// readEventStream reads one message of an AWS event stream and returns its :event-type (or
// :exception-type) header and payload, checking both CRCs.
func readEventStream(r *bufio.Reader) (string, []byte, error) {
	var pre [12]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return "", nil, err
	}
	total, hlen := binary.BigEndian.Uint32(pre[0:4]), binary.BigEndian.Uint32(pre[4:8])
	if crc32.ChecksumIEEE(pre[:8]) != binary.BigEndian.Uint32(pre[8:12]) || total < 16 || total > 32<<20 || hlen > total-16 {
		return "", nil, fmt.Errorf("a damaged event prelude % x", pre)
	}
	m := make([]byte, total)
	copy(m, pre[:])
	if _, err := io.ReadFull(r, m[12:]); err != nil {
		return "", nil, err
	}
	if crc32.ChecksumIEEE(m[:total-4]) != binary.BigEndian.Uint32(m[total-4:]) {
		return "", nil, errors.New("an event's checksum does not match")
	}
	h, typ := m[12:12+hlen], ""
	for len(h) > 3 {
		nl := int(h[0])
		name := string(h[1 : 1+nl])
		if h[1+nl] != 7 { // every header sluice sends is a string
			return "", nil, fmt.Errorf("header %s of type %d", name, h[1+nl])
		}
		vl := int(binary.BigEndian.Uint16(h[2+nl:]))
		if name == ":event-type" || name == ":exception-type" {
			typ = string(h[4+nl : 4+nl+vl])
		}
		h = h[4+nl+vl:]
	}
	return typ, m[12+hlen : total-4], nil
}
