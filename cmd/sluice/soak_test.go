// The soak runs only when asked for, with the build tag soak (`make soak`, and a short one in
// `make ci`): it needs root to mount the tmpfs of its full-disk episode, and minutes. Like
// overload_test.go it runs without the race detector, whose slowness would be its subject.

//go:build soak && !race

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-streams/sluice/client"
)

// The soak's settings. SLUICE_SOAK_DURATION sets its length (default 10m; `make ci` runs
// 75s, `make nightly` 2h); SLUICE_SOAK_OUT the directory of its plot and samples (default a
// new directory in the system's temporary directory, named in the log).
const (
	soakDurationEnv = "SLUICE_SOAK_DURATION"
	soakOutEnv      = "SLUICE_SOAK_OUT"
	soakTmpfs       = 256 << 20
	soakRetention   = time.Second // an hour of retention: 24 s (SLUICE_TEST_RETENTION_HOUR)
	soakStream      = "soak"
	soakRecord      = 512
	soakBatch       = 25
)

// soakAck is an acknowledged record: where it is and when its put was sent.
type soakAck struct {
	seq  string
	sent time.Time
}

// soak is the state of TestSoak shared by its goroutines.
type soak struct {
	t    *testing.T
	dir  string // the tmpfs; the data directory is dir/data
	addr string // the server's address, the same across restarts
	base string

	mu   sync.Mutex // guards proc and acks
	proc *serveProc
	acks map[string][]soakAck // shard id → acknowledged records

	putErrs, readRecs, subRecs, reshards atomic.Int64
}

func (s *soak) server() *serveProc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// start starts the server on s.addr.
func (s *soak) start() {
	p := startServeProcAt(s.t, filepath.Join(s.dir, "data"), s.addr, "--durability", "sync", "--limits", "kinesis", "--segment-size", "1MiB")
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
}

// restart stops the server, gracefully or with SIGKILL, and starts it again.
func (s *soak) restart(kill bool) {
	p := s.server()
	if kill {
		p.kill()
	} else if !p.stop() {
		s.t.Errorf("a graceful stop failed:\n%s", lastLines(p.stderr.String(), 20))
	}
	s.start()
}

func (s *soak) ack(shard, seq string, sent time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acks[shard] = append(s.acks[shard], soakAck{seq, sent})
}

// TestSoak runs a server for SLUICE_SOAK_DURATION under everything at once: producers over
// the Kinesis API and the native protocol, a shared (GetRecords) and an enhanced fan-out
// consumer, resharding every eighth of the run, retention deleting segments (an hour lasts a
// second), graceful and kill -9 restarts, a full-disk episode on a tmpfs, idle and slowloris
// clients. Every second it samples the server's resident set, open files, goroutines and
// mapped segment bytes, and plots them; none may grow by more than half (plus a margin)
// between the second and the last quarter of the run. At the end every acknowledged record
// must be readable, unless retention may have deleted it.
func TestSoak(t *testing.T) {
	d := envDuration(t, soakDurationEnv, 10*time.Minute)
	out := os.Getenv(soakOutEnv)
	if out == "" {
		var err error
		if out, err = os.MkdirTemp("", "sluice-soak-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &soak{t: t, dir: t.TempDir(), acks: map[string][]soakAck{}}
	if err := unix.Mount("tmpfs", s.dir, "tmpfs", 0, fmt.Sprintf("size=%d", soakTmpfs)); err != nil {
		t.Fatalf("mount a tmpfs for the full-disk episode: %v (the soak needs root)", err)
	}
	t.Cleanup(func() { unix.Unmount(s.dir, unix.MNT_DETACH) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.base = "http://" + s.addr
	ln.Close()
	t.Setenv(testRetentionHourEnv, soakRetention.String())
	s.start()
	kc := newKinesisClient(s.base, 16, "")
	kc.createStream(t, soakStream, 2)
	var desc struct{ StreamDescriptionSummary struct{ StreamARN string } }
	kc.must(t, "DescribeStreamSummary", map[string]any{"StreamName": soakStream}, &desc)
	var reg struct{ Consumer struct{ ConsumerARN string } }
	kc.must(t, "RegisterStreamConsumer", map[string]any{"StreamARN": desc.StreamDescriptionSummary.StreamARN, "ConsumerName": "efo"}, &reg)
	seed := time.Now().UnixNano()
	t.Logf("seed %d; %v; plot and samples in %s", seed, d, out)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 2 {
		rnd := rand.New(rand.NewPCG(uint64(seed), uint64(i)))
		wg.Go(func() { s.apiProducer(ctx, kc, rnd) })
	}
	wg.Go(func() { s.nativeProducer(ctx, rand.New(rand.NewPCG(uint64(seed), 9))) })
	wg.Go(func() { s.sharedConsumer(ctx, kc) })
	wg.Go(func() { s.fanOutConsumer(ctx, kc, reg.Consumer.ConsumerARN) })
	for i := range 100 {
		wg.Go(func() { s.idleClient(ctx, fmt.Sprintf("127.0.0.%d", 2+i%10)) })
	}
	var slowOpen, slowClosed atomic.Int64
	for i := range 20 {
		wg.Go(func() { slowloris(ctx, s.addr, fmt.Sprintf("127.0.0.%d", 20+i%5), &slowOpen, &slowClosed) })
	}
	samples := make(chan []soakSample, 1)
	start := time.Now()
	go func() { samples <- s.sample(ctx, start) }()

	// The schedule: resharding every eighth, restarts every sixth (graceful, then kill -9,
	// alternately), the disk full for five seconds past the middle.
	events := []soakEvent{}
	for i := 1; i < 8; i++ {
		events = append(events, soakEvent{d * time.Duration(i) / 8, "reshard", func() { s.reshard(kc, 2+2*(i%2)) }})
	}
	for i := 1; i < 6; i++ {
		events = append(events, soakEvent{d * time.Duration(i) / 6, "restart", func() { s.restart(i%2 == 0) }})
	}
	events = append(events, soakEvent{d * 55 / 100, "full disk", func() { s.fullDisk(5 * time.Second) }})
	slices.SortFunc(events, func(a, b soakEvent) int { return int(a.at - b.at) })
	for _, ev := range events {
		time.Sleep(time.Until(start.Add(ev.at))) // the schedule, not synchronisation
		t.Logf("%v: %s", time.Since(start).Round(time.Second), ev.name)
		ev.do()
	}
	time.Sleep(time.Until(start.Add(d)))
	cancel()
	wg.Wait()
	got := <-samples

	if err := writeSoakPlot(filepath.Join(out, "soak.png"), got); err != nil {
		t.Errorf("plot: %v", err)
	}
	if err := writeSoakSamples(filepath.Join(out, "soak.tsv"), got); err != nil {
		t.Errorf("samples: %v", err)
	}
	t.Logf("%d put errors (the full disk and the restarts), %d records read by GetRecords, %d pushed to the fan-out consumer, %d reshards, %d slow connections closed by the server",
		s.putErrs.Load(), s.readRecs.Load(), s.subRecs.Load(), s.reshards.Load(), slowClosed.Load())
	if s.readRecs.Load() == 0 || s.subRecs.Load() == 0 {
		t.Errorf("the consumers read nothing: %d by GetRecords, %d by fan-out", s.readRecs.Load(), s.subRecs.Load())
	}
	checkSoakGrowth(t, got, d)
	s.verify(kc)
}

type soakEvent struct {
	at   time.Duration
	name string
	do   func()
}

// apiProducer puts soakBatch records every 100 ms through Kinesis PutRecords until ctx ends.
func (s *soak) apiProducer(ctx context.Context, kc *kinesisClient, rnd *rand.Rand) {
	data := make([]byte, soakRecord)
	for tick := time.NewTicker(100 * time.Millisecond); ctx.Err() == nil; <-tick.C {
		keys := make([]string, soakBatch)
		for i := range keys {
			keys[i] = strconv.FormatUint(rnd.Uint64(), 36)
		}
		sent := time.Now()
		a, err := kc.call(context.Background(), "PutRecords", putRecordsBody(soakStream, keys, data))
		var ans putRecordsAnswer
		if err != nil || a.status != 200 || json.Unmarshal(a.body, &ans) != nil {
			s.putErrs.Add(1)
			continue
		}
		for _, r := range ans.Records {
			if r.ErrorCode == "" {
				s.ack(r.ShardId, r.SequenceNumber, sent)
			}
		}
	}
}

// nativeProducer puts soakBatch records every 100 ms through the native protocol.
func (s *soak) nativeProducer(ctx context.Context, rnd *rand.Rand) {
	c, err := client.New(client.Config{Endpoint: s.base})
	if err != nil {
		s.t.Error(err)
		return
	}
	defer c.Close()
	data := make([]byte, soakRecord)
	for tick := time.NewTicker(100 * time.Millisecond); ctx.Err() == nil; <-tick.C {
		entries := make([]client.PutEntry, soakBatch)
		for i := range entries {
			entries[i] = client.PutEntry{Key: strconv.FormatUint(rnd.Uint64(), 36), Data: data}
		}
		sent := time.Now()
		res, err := c.PutRecords(context.Background(), soakStream, entries)
		if err != nil {
			s.putErrs.Add(1)
			continue
		}
		for _, r := range res {
			if r.Err == nil {
				s.ack(fmt.Sprintf("shardId-%012d", r.Shard), r.String(), sent)
			}
		}
	}
}

// sharedConsumer reads every shard with GetRecords, from the start, following the shards
// resharding opens, until ctx ends.
func (s *soak) sharedConsumer(ctx context.Context, kc *kinesisClient) {
	iters := map[string]string{} // shard → next iterator; "" once the shard ended
	last := map[string]string{}  // shard → the last sequence number read
	for ctx.Err() == nil {
		for _, sh := range s.listShards(kc) {
			if _, ok := iters[sh]; !ok || iters[sh] == "-" {
				iters[sh] = s.iterator(kc, sh, last[sh])
			}
		}
		for sh, it := range iters {
			if it == "" || it == "-" {
				continue
			}
			var out struct {
				Records           []struct{ SequenceNumber string }
				NextShardIterator string
			}
			a, err := kc.call(context.Background(), "GetRecords", []byte(`{"ShardIterator":"`+it+`","Limit":1000}`))
			if err != nil || a.status != 200 || json.Unmarshal(a.body, &out) != nil {
				iters[sh] = "-" // get a new one from where it was
				continue
			}
			s.readRecs.Add(int64(len(out.Records)))
			if n := len(out.Records); n > 0 {
				last[sh] = out.Records[n-1].SequenceNumber
			}
			iters[sh] = out.NextShardIterator
		}
		sleepCtx(ctx, 300*time.Millisecond) // within the 5 GetRecords calls/s of a shard
	}
}

// iterator returns an iterator of shard after seq ("" : from the start); "-" on failure.
func (s *soak) iterator(kc *kinesisClient, shard, seq string) string {
	in := `{"StreamName":"` + soakStream + `","ShardId":"` + shard + `","ShardIteratorType":"TRIM_HORIZON"}`
	if seq != "" {
		in = `{"StreamName":"` + soakStream + `","ShardId":"` + shard + `","ShardIteratorType":"AFTER_SEQUENCE_NUMBER","StartingSequenceNumber":"` + seq + `"}`
	}
	var out struct{ ShardIterator string }
	a, err := kc.call(context.Background(), "GetShardIterator", []byte(in))
	if err != nil || a.status != 200 || json.Unmarshal(a.body, &out) != nil {
		return "-"
	}
	return out.ShardIterator
}

// listShards returns the ids of the stream's shards; nil if the call failed.
func (s *soak) listShards(kc *kinesisClient) []string {
	var out struct{ Shards []struct{ ShardId string } }
	a, err := kc.call(context.Background(), "ListShards", []byte(`{"StreamName":"`+soakStream+`"}`))
	if err != nil || a.status != 200 || json.Unmarshal(a.body, &out) != nil {
		return nil
	}
	ids := make([]string, len(out.Shards))
	for i, sh := range out.Shards {
		ids[i] = sh.ShardId
	}
	return ids
}

// fanOutConsumer subscribes consumer to every shard, from the start, and resubscribes from
// its continuation whenever a subscription ends, until ctx ends; a shard's reader stops when
// the shard ended.
func (s *soak) fanOutConsumer(ctx context.Context, kc *kinesisClient, consumer string) {
	var wg sync.WaitGroup
	started := map[string]bool{}
	for ctx.Err() == nil {
		for _, sh := range s.listShards(kc) {
			if !started[sh] {
				started[sh] = true
				wg.Go(func() { s.readShard(ctx, consumer, sh) })
			}
		}
		sleepCtx(ctx, 2*time.Second)
	}
	wg.Wait()
}

func (s *soak) readShard(ctx context.Context, consumer, shard string) {
	typ, cont := "TRIM_HORIZON", ""
	for ctx.Err() == nil {
		r, c, err := openSubscription(ctx, s.base, consumer, shard, typ, cont)
		if err != nil {
			sleepCtx(ctx, time.Second) // the server restarts, or the shard is gone
			continue
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		ended := false
		for {
			et, payload, err := readEventStream(r)
			if err != nil || et != "SubscribeToShardEvent" {
				if err == nil && et == "initial-response" {
					continue
				}
				break
			}
			var ev struct {
				ContinuationSequenceNumber *string
				Records                    []struct{ SequenceNumber string }
			}
			if json.Unmarshal(payload, &ev) != nil {
				break
			}
			s.subRecs.Add(int64(len(ev.Records)))
			if n := len(ev.Records); n > 0 {
				typ, cont = "AFTER_SEQUENCE_NUMBER", ev.Records[n-1].SequenceNumber
			}
			if ev.ContinuationSequenceNumber == nil || *ev.ContinuationSequenceNumber == "" {
				ended = true // the shard ended (resharding)
				break
			}
		}
		stop()
		c.Close()
		if ended {
			return
		}
	}
}

// idleClient keeps a connection from the address from open and idle, opening another when
// the server closes it (its idle timeout, a restart), until ctx ends.
func (s *soak) idleClient(ctx context.Context, from string) {
	for ctx.Err() == nil {
		c, err := healthzConn(s.addr, from)
		if err != nil {
			sleepCtx(ctx, time.Second)
			continue
		}
		stop := context.AfterFunc(ctx, func() { c.Close() })
		io.Copy(io.Discard, c) // returns when the server or ctx closes it
		stop()
		c.Close()
	}
}

// reshard sets the stream's shard count to n.
func (s *soak) reshard(kc *kinesisClient, n int) {
	a, err := kc.call(context.Background(), "UpdateShardCount", []byte(`{"StreamName":"`+soakStream+`","TargetShardCount":`+strconv.Itoa(n)+`,"ScalingType":"UNIFORM_SCALING"}`))
	if err != nil || a.status != 200 {
		s.t.Logf("UpdateShardCount to %d: %d %s %v", n, a.status, a.errType, err)
		return
	}
	s.reshards.Add(1)
}

// fullDisk fills the tmpfs with a file for hold, then removes it.
func (s *soak) fullDisk(hold time.Duration) {
	name := filepath.Join(s.dir, "filler")
	f, err := os.Create(name)
	if err != nil {
		s.t.Errorf("filler: %v", err)
		return
	}
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				s.t.Errorf("filler: %v", err)
			}
			break
		}
	}
	f.Close()
	time.Sleep(hold) // the episode's length
	if err := os.Remove(name); err != nil {
		s.t.Errorf("filler: %v", err)
	}
}

// verify reads every shard of the stream from the start and checks the acknowledged records:
// each one sent after the retention horizon of the moment its shard's read began (less a
// margin) is there, and so is each one between the first and the last record read from its
// shard.
func (s *soak) verify(kc *kinesisClient) {
	t := s.t
	retention := 24 * soakRetention
	present := map[string][]string{}
	horizon := map[string]time.Time{} // shard → what was sent before may have expired
	for _, sh := range s.listShards(kc) {
		horizon[sh] = time.Now().Add(-retention + 5*time.Second)
		it := s.iterator(kc, sh, "")
		for it != "" {
			if it == "-" {
				t.Fatalf("no iterator for %s", sh)
			}
			var out struct {
				Records            []struct{ SequenceNumber string }
				NextShardIterator  string
				MillisBehindLatest int64
			}
			kc.must(t, "GetRecords", map[string]any{"ShardIterator": it, "Limit": 10000}, &out)
			for _, r := range out.Records {
				present[sh] = append(present[sh], r.SequenceNumber)
			}
			if len(out.Records) == 0 && out.MillisBehindLatest == 0 {
				break
			}
			it = out.NextShardIterator
			time.Sleep(250 * time.Millisecond) // within the 5 GetRecords calls/s of a shard
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	checked, missing := 0, 0
	for sh, acks := range s.acks {
		got := present[sh]
		have := make(map[string]bool, len(got))
		for _, q := range got {
			have[q] = true
		}
		lo, hi := "", ""
		if len(got) > 0 {
			lo, hi = slices.MinFunc(got, bySeq), slices.MaxFunc(got, bySeq)
		}
		for _, a := range acks {
			within := lo != "" && bySeq(a.seq, lo) >= 0 && bySeq(a.seq, hi) <= 0
			// A shard no longer listed was dropped once retention had deleted its records.
			if h, listed := horizon[sh]; (!listed || !a.sent.After(h)) && !within {
				continue // retention may have deleted it
			}
			checked++
			if !have[a.seq] {
				missing++
				if missing <= 5 {
					t.Errorf("%s: acknowledged record %s (sent %v) is missing", sh, a.seq, a.sent.Format(time.StampMilli))
				}
			}
		}
	}
	total := 0
	for _, acks := range s.acks {
		total += len(acks)
	}
	t.Logf("%d records acknowledged; %d within retention or among the records read, checked; %d missing", total, checked, missing)
	if checked == 0 {
		t.Error("no acknowledged record was checked")
	}
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// metricValue returns the value of the first sample of name in a /metrics body.
func metricValue(body, name string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}
