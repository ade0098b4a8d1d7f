// The overload tests need the load they offer to be an overload: under the race detector
// both this test process and the server (the same binary) run several times slower, and the
// producers fall short of three times the limit. `make overload` runs them without it (and
// `make ci` runs that target).

//go:build !race

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// overloadEnv names the variable that sets how long TestShardOverload offers its load
// (a Go duration; default 10s, 30s in `make nightly`).
const overloadEnv = "SLUICE_OVERLOAD_DURATION"

// shardCase is one kind of producer of TestShardOverload, on a stream of one shard.
type shardCase struct {
	name  string
	size  int  // bytes of data per record
	batch bool // PutRecords of batchRecords records, else PutRecord
}

// batchRecords is the records per PutRecords call of TestShardOverload.
const batchRecords = 100

// shardTally counts a case's outcome over the measured window; its fields are changed
// atomically by the producers and read once they stopped.
type shardTally struct {
	offered, accepted, throttled, other atomic.Int64 // records
	lastDone                            atomic.Int64 // Unix ns of the last measured answer
	acceptedBytes                       atomic.Int64 // data and partition keys
	mu                                  sync.Mutex   // guards latency and firstOther
	latency                             []time.Duration
	firstOther                          string
}

// TestShardOverload offers each shard three times its write capacity (1,000 records/s and
// 1 MiB/s under --limits kinesis) for SLUICE_OVERLOAD_DURATION, with 1 KiB and 100 B
// records through PutRecords and PutRecord, one stream of one shard per case, all at once:
// over the window after the first second's burst is spent, each shard accepts within ±10 % of
// its binding limit and refuses every other record with ProvisionedThroughputExceeded. The
// latency of accepted requests is reported, not asserted.
func TestShardOverload(t *testing.T) {
	d := envDuration(t, overloadEnv, 10*time.Second)
	p := startServeProc(t, t.TempDir(), "--durability", "none", "--limits", "kinesis")
	admin := newKinesisClient(p.base, 4, "")
	cases := []shardCase{
		{"PutRecords-1KiB", 1 << 10, true}, {"PutRecords-100B", 100, true},
		{"PutRecord-1KiB", 1 << 10, false}, {"PutRecord-100B", 100, false},
	}
	for _, c := range cases {
		admin.createStream(t, c.name, 1)
	}
	const warmup = 2 * time.Second // the bucket's 1-second burst is spent within it
	start := time.Now().Add(500 * time.Millisecond)
	measureFrom, end := start.Add(warmup), start.Add(warmup+d)
	tallies := make([]*shardTally, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		tallies[i] = &shardTally{}
		wg.Go(func() { offerOverload(t, p.base, c, tallies[i], start, measureFrom, end) })
	}
	wg.Wait()
	for i, c := range cases {
		tl := tallies[i]
		// The window runs from measureFrom to the last answer: a producer that fell behind its
		// schedule sent its last requests after end.
		secs := time.Unix(0, tl.lastDone.Load()).Sub(measureFrom).Seconds()
		keyLen := len(c.name) + 4 // the keys are "<name>-NNN"
		recs, kib := float64(tl.accepted.Load())/secs, float64(tl.acceptedBytes.Load())/secs/1024
		offered := float64(tl.offered.Load()) / secs
		slices.Sort(tl.latency)
		t.Logf("%s: over %.1f s, offered %.0f records/s, accepted %.0f records/s = %.0f KiB/s, throttled %d, accepted requests' latency p50 %v p99 %v (%d requests)",
			c.name, secs, offered, recs, kib, tl.throttled.Load(), pct(tl.latency, 50), pct(tl.latency, 99), len(tl.latency))
		if tl.other.Load() > 0 {
			t.Errorf("%s: %d records failed otherwise than ProvisionedThroughputExceeded, the first %s", c.name, tl.other.Load(), tl.firstOther)
		}
		if tl.accepted.Load()+tl.throttled.Load()+tl.other.Load() != tl.offered.Load() {
			t.Errorf("%s: %d offered, %d accepted, %d throttled, %d failed", c.name, tl.offered.Load(), tl.accepted.Load(), tl.throttled.Load(), tl.other.Load())
		}
		// The load must have been an overload for the figures to mean anything.
		if offered < 2*1000 {
			t.Errorf("%s: only %.0f records/s were offered, not an overload of 1,000/s", c.name, offered)
		}
		// The binding limit: records, unless the bytes of 1,000 records exceed 1 MiB.
		wantRecs := math.Min(1000, float64(1<<20)/float64(c.size+keyLen))
		if math.Abs(recs-wantRecs) > 0.1*wantRecs {
			t.Errorf("%s: accepted %.0f records/s, want %.0f ± 10 %%", c.name, recs, wantRecs)
		}
		if c.size == 1<<10 && math.Abs(kib-1024) > 0.1*1024 {
			t.Errorf("%s: accepted %.0f KiB/s, want 1024 ± 10 %%", c.name, kib)
		}
	}
}

// offerOverload sends c's records to the stream c.name at three times the shard's record
// limit from start to end, counting in tl the outcome of the requests sent from measureFrom.
func offerOverload(t *testing.T, base string, c shardCase, tl *shardTally, start, measureFrom, end time.Time) {
	const rate = 3 * 1000 // records/s
	perReq, workers := 1, 48
	if c.batch {
		perReq, workers = batchRecords, 16
	}
	reqRate := float64(rate) / float64(perReq)
	kc := newKinesisClient(base, workers, "")
	data := make([]byte, c.size)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	keys := make([]string, perReq)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s-%03d", c.name, i%1000)
	}
	keyBytes := 0
	for _, k := range keys {
		keyBytes += len(k)
	}
	var body []byte
	if c.batch {
		body = putRecordsBody(c.name, keys, data)
	} else {
		body = putRecordBody(c.name, keys[0], data)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for k := 0; ; k++ {
				// Request k*workers+w is due at its place in an even schedule; a late one goes
				// at once.
				at := start.Add(time.Duration(float64(k*workers+w) / reqRate * float64(time.Second)))
				if !at.Before(end) {
					return
				}
				time.Sleep(time.Until(at))
				sent := time.Now()
				a, err := kc.call(context.Background(), map[bool]string{true: "PutRecords", false: "PutRecord"}[c.batch], body)
				took := time.Since(sent)
				if sent.Before(measureFrom) {
					continue
				}
				tl.done(sent.Add(took))
				tl.offered.Add(int64(perReq))
				if err != nil {
					tl.other.Add(int64(perReq))
					tl.noteOther(err.Error())
					continue
				}
				accepted := tl.count(c, a, perReq, keyBytes)
				if accepted > 0 {
					tl.mu.Lock()
					tl.latency = append(tl.latency, took)
					tl.mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
}

// count tallies the answer a to a request of n records whose keys total keyBytes, and
// returns how many it accepted.
func (tl *shardTally) count(c shardCase, a apiAnswer, n, keyBytes int) int {
	if !c.batch {
		switch {
		case a.status == 200:
			tl.accepted.Add(1)
			tl.acceptedBytes.Add(int64(c.size + keyBytes))
			return 1
		case a.errType == "ProvisionedThroughputExceededException":
			tl.throttled.Add(1)
		default:
			tl.other.Add(1)
			tl.noteOther(strconv.Itoa(a.status) + " " + a.errType + " " + string(a.body))
		}
		return 0
	}
	var out putRecordsAnswer
	if a.status != 200 || json.Unmarshal(a.body, &out) != nil || len(out.Records) != n {
		tl.other.Add(int64(n))
		tl.noteOther(strconv.Itoa(a.status) + " " + a.errType + " " + string(a.body))
		return 0
	}
	accepted := 0
	for _, r := range out.Records {
		switch {
		case r.ErrorCode == "" && r.SequenceNumber != "":
			accepted++
		case r.ErrorCode == "ProvisionedThroughputExceededException":
			tl.throttled.Add(1)
		default:
			tl.other.Add(1)
			tl.noteOther(r.ErrorCode)
		}
	}
	tl.accepted.Add(int64(accepted))
	// Every key of a batch has the same length.
	tl.acceptedBytes.Add(int64(accepted * (c.size + keyBytes/n)))
	return accepted
}

// done records t as the time of a measured answer, if it is the latest.
func (tl *shardTally) done(t time.Time) {
	for {
		last := tl.lastDone.Load()
		if t.UnixNano() <= last || tl.lastDone.CompareAndSwap(last, t.UnixNano()) {
			return
		}
	}
}

func (tl *shardTally) noteOther(what string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.firstOther == "" {
		tl.firstOther = what
	}
}

// pct returns the p-th percentile of sorted; 0 if it is empty.
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

// Server-wide overload: the limits of TestServerOverload's server, and the resident set it
// must stay under (docs/OPERATIONS.md, Overload).
const (
	overloadConcurrent = 32
	overloadInflight   = 64 << 20
	// overloadRSSBound is the bound docs/OPERATIONS.md gives for the anonymous resident set
	// of a server under overload: 256 MiB plus 8 times the in-flight budget. The body
	// buffers (within twice the budget), the buffers pooled for reuse, the decoded records
	// and the garbage collector's headroom (GOGC=100: twice the live heap) multiply the
	// budget; this test's peak was 2.1 to 3.0 times it (docs/OPERATIONS.md, Overload).
	overloadRSSBound = 256<<20 + 8*overloadInflight
)

// overloadTally counts TestServerOverload's answers; changed atomically by its producers.
type overloadTally struct {
	ok, refused, other atomic.Int64
	mu                 sync.Mutex // guards the latencies and firstOther
	okLat, refusedLat  []time.Duration
	firstOther         string
}

func (o *overloadTally) add(a apiAnswer, err error, took time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case err == nil && a.status == 200:
		o.ok.Add(1)
		o.okLat = append(o.okLat, took)
	case err == nil && a.status == 503 && a.errType == "ServiceUnavailable":
		o.refused.Add(1)
		o.refusedLat = append(o.refusedLat, took)
	default:
		o.other.Add(1)
		if o.firstOther == "" {
			o.firstOther = fmt.Sprintf("%d %s %s %v", a.status, a.errType, a.body, err)
		}
	}
}

// TestServerOverload sends a server with --limits off more requests than its CPUs can serve:
// 256 callers of small PutRecord and PutRecords calls multiplexed over HTTP/2, and 16 callers
// of 1 MiB records over HTTP/1.1, for SLUICE_OVERLOAD_DURATION. Every answer is a success or
// ServiceUnavailable (the cap on executing requests and the in-flight budget refuse the
// excess at once), the server's anonymous resident set stays under overloadRSSBound, and once the load
// stops the next calls succeed at the first attempt. Latencies are reported.
func TestServerOverload(t *testing.T) {
	d := envDuration(t, overloadEnv, 10*time.Second)
	p := startServeProc(t, t.TempDir(), "--durability", "none", "--limits", "off",
		"--max-concurrent-requests", strconv.Itoa(overloadConcurrent), "--max-inflight-bytes", strconv.Itoa(overloadInflight))
	admin := newKinesisClient(p.base, 4, "")
	admin.createStream(t, "wide", 4)
	small := make([]byte, 100)
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	smallOne := putRecordBody("wide", "k", small)
	keys := make([]string, 20)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	smallBatch := putRecordsBody("wide", keys, small)
	bigOne := putRecordBody("wide", "big", big)
	rss0 := p.anonRSS()

	var tally overloadTally
	var peak, peakAll atomic.Int64
	// The callers stop sending once stopped is set, and wait for the answers they await: when
	// they are done, the server executes nothing of theirs.
	var stopped atomic.Bool
	time.AfterFunc(d, func() { stopped.Store(true) })
	ctx := context.Background()
	var wg sync.WaitGroup
	h2 := newKinesisH2Client(p.base)
	for i := range 256 {
		body, op := smallOne, "PutRecord"
		if i%2 == 1 {
			body, op = smallBatch, "PutRecords"
		}
		wg.Go(func() {
			for !stopped.Load() {
				sent := time.Now()
				a, err := h2.call(ctx, op, body)
				tally.add(a, err, time.Since(sent))
			}
		})
	}
	h1 := newKinesisClient(p.base, 16, "")
	for range 16 {
		wg.Go(func() {
			for !stopped.Load() {
				sent := time.Now()
				a, err := h1.call(ctx, "PutRecord", bigOne)
				tally.add(a, err, time.Since(sent))
			}
		})
	}
	wg.Go(func() {
		for !stopped.Load() {
			if r := p.anonRSS(); r > peak.Load() {
				peak.Store(r)
			}
			if r := p.rss(); r > peakAll.Load() {
				peakAll.Store(r)
			}
			time.Sleep(50 * time.Millisecond) // sampling, not synchronisation
		}
	})
	wg.Wait()

	// The load stopped and every call was answered: the next calls are served at the first
	// attempt.
	for _, body := range [][]byte{smallOne, smallBatch, bigOne} {
		op := "PutRecord"
		if len(body) == len(smallBatch) {
			op = "PutRecords"
		}
		if a, err := admin.call(context.Background(), op, body); err != nil || a.status != 200 {
			t.Errorf("%s once the load stopped: %d %s %v", op, a.status, a.errType, err)
		}
	}
	slices.Sort(tally.okLat)
	slices.Sort(tally.refusedLat)
	t.Logf("over %v: %d served (p50 %v, p99 %v), %d refused with ServiceUnavailable (p50 %v, p99 %v); anonymous resident set %d MiB before, peak %d MiB (bound %d MiB); whole resident set (mapped segment pages included) peak %d MiB",
		d, tally.ok.Load(), pct(tally.okLat, 50), pct(tally.okLat, 99), tally.refused.Load(), pct(tally.refusedLat, 50), pct(tally.refusedLat, 99),
		rss0>>20, peak.Load()>>20, overloadRSSBound>>20, peakAll.Load()>>20)
	if tally.other.Load() > 0 {
		t.Errorf("%d answers were neither a success nor ServiceUnavailable, the first: %s", tally.other.Load(), tally.firstOther)
	}
	if tally.ok.Load() == 0 || tally.refused.Load() == 0 {
		t.Errorf("%d served, %d refused: the load was not an overload the server shed", tally.ok.Load(), tally.refused.Load())
	}
	if peak.Load() > overloadRSSBound {
		t.Errorf("the anonymous resident set peaked at %d MiB, over the bound of %d MiB", peak.Load()>>20, overloadRSSBound>>20)
	}
}
