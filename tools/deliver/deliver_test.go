//go:build linux

// Linux only: the in-process server links stream and segment, whose storage builds on Linux
// only (fallocate, fdatasync).

package deliver

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/internal/faultfs"
	"github.com/sluice-streams/sluice/internal/vfs"
	"github.com/sluice-streams/sluice/kpl"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/server"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// startServer serves a new engine in a temporary directory on 127.0.0.1 until the test
// ends, and returns it with a client.
func startServer(t testing.TB) (*stream.Engine, *client.Client) {
	t.Helper()
	eng, err := stream.Open(stream.Options{Dir: t.TempDir(), Durability: segment.Durability{Mode: segment.None}, Limits: stream.Limits{Off: true}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		eng.Close()
		t.Fatal(err)
	}
	srv := server.New(eng, server.Options{})
	served := make(chan struct{})
	go func() {
		srv.Serve(ln)
		close(served)
	}()
	c, err := client.New(client.Config{Endpoint: "http://" + ln.Addr().String(), Unsigned: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.Shutdown()
		<-served
		eng.Close()
	})
	return eng, c
}

// startS3 serves an in-process S3 (gofakes3, in memory) with the bucket until the test
// ends, and returns its endpoint and a client of it.
func startS3(t testing.TB, bucket string) (string, *s3.Client) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(ts.Close)
	return ts.URL, s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(ts.URL), UsePathStyle: true, Credentials: aws.AnonymousCredentials{}})
}

// bucketObjects returns every object of the bucket by key.
func bucketObjects(t testing.TB, c *s3.Client, bucket string) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	out := map[string][]byte{}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(g.Body)
			g.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			out[*o.Key] = b
		}
	}
	return out
}

// dirObjects returns every file under dir by its slash-separated path, as keys.
func dirObjects(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// createStream creates a stream of shards on c's server and returns its ARN.
func createStream(t testing.TB, c *client.Client, name string, shards int) string {
	t.Helper()
	ctx := context.Background()
	if err := c.CreateStream(ctx, name, shards); err != nil {
		t.Fatal(err)
	}
	sum, err := c.DescribeStreamSummary(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return sum.ARN
}

// destination is where a test delivers: a directory or a bucket of an in-process S3.
type destination struct {
	cfg     Config
	store   Store
	dir     string                   // a temporary directory: the checkpoint's, and the objects' for "dir"
	objects func() map[string][]byte // every object by key
}

// newDestination parses the configuration of delivery stream name, reading streamARN, to
// kind ("dir": a temporary directory; "s3": the bucket "bucket" of a new gofakes3), with
// settings (JSON members, each followed by a comma) in ExtendedS3DestinationConfiguration,
// and opens its store.
func newDestination(t testing.TB, kind, name, streamARN, settings string) destination {
	t.Helper()
	dst := destination{dir: t.TempDir()}
	bucketARN, opts := "arn:aws:s3:::bucket", S3Options{}
	var s3c *s3.Client
	if kind == "dir" {
		bucketARN = "file://" + filepath.Join(dst.dir, "out")
	} else {
		opts.Endpoint, s3c = startS3(t, "bucket")
	}
	var err error
	dst.cfg, _, err = ParseConfig(fmt.Appendf(nil, `{"DeliveryStreamName": %q,
	  "KinesisStreamSourceConfiguration": {"KinesisStreamARN": %q},
	  "ExtendedS3DestinationConfiguration": {%s "BucketARN": %q}}`, name, streamARN, settings, bucketARN))
	if err != nil {
		t.Fatal(err)
	}
	if dst.store, err = OpenStore(dst.cfg.Destination, opts); err != nil {
		t.Fatal(err)
	}
	dst.objects = func() map[string][]byte {
		if kind == "dir" {
			return dirObjects(t, filepath.Join(dst.dir, "out"))
		}
		return bucketObjects(t, s3c, "bucket")
	}
	return dst
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDeliver delivers a stream that holds plain records, a KPL aggregated record and a
// malformed one, and is split halfway, to a bucket of gofakes3 and to a directory: every
// record is in exactly one object, the aggregated record's user records each on a line of
// their own, the malformed one in an error object; keys are Firehose's; the parent shard is
// stored to its end before its children. Run again from no checkpoint over the same
// records, it writes the same keys, and no record twice.
func TestDeliver(t *testing.T) {
	for _, dest := range []string{"s3", "dir"} {
		t.Run(dest, func(t *testing.T) {
			eng, c := startServer(t)
			ctx := context.Background()
			arn := createStream(t, c, "orders", 1)
			var want []string
			put := func(key string, data []byte) {
				res, err := c.PutRecords(ctx, "orders", []client.PutEntry{{Key: key, Data: data}})
				if err == nil {
					err = res[0].Err
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			for i := range 20 {
				d := "p" + string(rune('a'+i))
				put(d, []byte(d))
				want = append(want, d)
			}
			var agg kpl.Builder
			for i := range 5 {
				d := "agg" + string(rune('a'+i))
				agg.Add(d, "", []byte(d))
				want = append(want, d)
			}
			put("agg", agg.AppendTo(nil))
			bad := agg.AppendTo(nil)
			bad[len(bad)-1] ^= 0xff // the digest no longer checks
			put("bad", bad)
			mid, err := shardmap.ParseKey("170141183460469231731687303715884105728")
			if err != nil {
				t.Fatal(err)
			}
			if err := eng.SplitShard("orders", 0, mid); err != nil {
				t.Fatal(err)
			}
			for i := range 20 {
				d := "q" + string(rune('a'+i))
				put(d, []byte(d))
				want = append(want, d)
			}
			slices.Sort(want)

			dst := newDestination(t, dest, "orders-to-s3", arn, `"CompressionFormat": "GZIP",
			    "BufferingHints": {"IntervalInSeconds": 0},
			    "ProcessingConfiguration": {"Enabled": true, "Processors": [{"Type": "AppendDelimiterToRecord"}]},`)
			cfg, store, objects := dst.cfg, dst.store, dst.objects
			checkpoint := filepath.Join(dst.dir, "checkpoint")
			run := func() {
				d, err := New(c, Options{Config: cfg, Store: store, CheckpointFile: checkpoint, Start: client.TrimHorizon, PollInterval: 20 * time.Millisecond, ReadsPerSecond: 50})
				if err != nil {
					t.Fatal(err)
				}
				rctx, cancel := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- d.Run(rctx) }()
				waitFor(t, "every record", func() bool {
					st := d.Stats()
					return st.Records >= uint64(len(want)) && st.ErrorRecords >= 1
				})
				cancel()
				if err := <-done; err != context.Canceled {
					t.Fatalf("Run: %v", err)
				}
				if st := d.Stats(); st.Records != uint64(len(want)) || st.ErrorRecords != 1 {
					t.Fatalf("stats %+v, want %d records and 1 failed", st, len(want))
				}
			}
			run()

			dataKey := regexp.MustCompile(`^\d{4}/\d{2}/\d{2}/\d{2}/orders-to-s3-1-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.gz$`)
			check := func() []string {
				var got []string
				var keys []string
				errs := 0
				for k, body := range objects() {
					keys = append(keys, k)
					raw, err := decompress(Gzip, body)
					if err != nil {
						t.Fatalf("%s: %v", k, err)
					}
					if rest, ok := strings.CutPrefix(k, "processing-failed/"); ok && dataKey.MatchString(rest) {
						var e errorRecord
						if err := json.Unmarshal(bytes.TrimSpace(raw), &e); err != nil {
							t.Fatalf("%s: %v", k, err)
						}
						if e.ErrorCode != errAggregation || e.PartitionKey != "bad" || e.ShardID != "shardId-000000000000" || e.AttemptsMade != 1 {
							t.Errorf("error record %+v", e)
						}
						errs++
						continue
					}
					if !dataKey.MatchString(k) {
						t.Errorf("key %q is not a Firehose object name", k)
					}
					for l := range strings.SplitSeq(strings.TrimSuffix(string(raw), "\n"), "\n") {
						got = append(got, l)
					}
				}
				slices.Sort(got)
				if !slices.Equal(got, want) || errs != 1 {
					t.Fatalf("the objects hold %d records and %d error objects, want %d records once each and 1:\n%q", len(got), errs, len(want), got)
				}
				slices.Sort(keys)
				return keys
			}
			keys := check()
			cp, err := openCheckpointer(vfs.OS, checkpoint, arn, "orders-to-s3")
			if err != nil {
				t.Fatal(err)
			}
			if s, ok := cp.get(0); !ok || !s.Ended {
				t.Errorf("the parent's checkpoint is %+v, want ended", s)
			}
			if err := os.Remove(checkpoint); err != nil {
				t.Fatal(err)
			}
			run()
			if again := check(); !slices.Equal(again, keys) {
				t.Errorf("keys after a run from the start:\n%q\nwant\n%q", again, keys)
			}
		})
	}
}

// crashStore is a Store that records the keys it stored and, once it has stored crashAt
// objects, makes every later sync of the checkpoint's file system fail: the checkpoint
// written right after that object's store is never renamed into place, as when the process
// dies between the two.
type crashStore struct {
	Store
	fault   *faultfs.FS
	crashAt int // 0: never

	mu   sync.Mutex
	keys []string
}

func (s *crashStore) Put(ctx context.Context, key string, body []byte) error {
	if err := s.Store.Put(ctx, key, body); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys = append(s.keys, key); len(s.keys) == s.crashAt {
		s.fault.FailSyncs(syscall.EIO)
	}
	return nil
}

func (s *crashStore) stored() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.keys)
}

// TestDeliverCrashBeforeCheckpoint stops a delivery between the store of its second
// object and the checkpoint that follows it (the checkpoint's temporary file fails to
// sync, so it is never renamed over the old one), to a directory and to gofakes3. The
// checkpoint still names the first object's last record; a new delivery from it stores
// the second object again under the same key, with the same body, and goes on: the
// destination holds the four objects once each and every record once.
func TestDeliverCrashBeforeCheckpoint(t *testing.T) {
	const records, size = 44, 100_000 // 11 records (with delimiters) pass 1 MiB: four objects
	for _, dest := range []string{"dir", "s3"} {
		t.Run(dest, func(t *testing.T) {
			_, c := startServer(t)
			ctx := context.Background()
			arn := createStream(t, c, "orders", 1)
			var want []string
			var positions []uint64
			for i := 0; i < records; i += 11 {
				var entries []client.PutEntry
				for j := i; j < i+11; j++ {
					d := fmt.Sprintf("r%02d-%s", j, strings.Repeat("x", size-4))
					entries = append(entries, client.PutEntry{Key: "k", Data: []byte(d)})
					want = append(want, d)
				}
				res, err := c.PutRecords(ctx, "orders", entries)
				for _, r := range res {
					err = cmp.Or(err, r.Err)
					positions = append(positions, r.SeqNum.Position)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			dst := newDestination(t, dest, "orders-to-s3", arn, `"BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 900},
			    "ProcessingConfiguration": {"Enabled": true, "Processors": [{"Type": "AppendDelimiterToRecord"}]},`)
			cfg, store, objects := dst.cfg, dst.store, dst.objects
			checkpoint := filepath.Join(dst.dir, "checkpoint")
			newDelivery := func(crashAt int) (*Delivery, *crashStore) {
				cs := &crashStore{Store: store, fault: faultfs.New(), crashAt: crashAt}
				d, err := New(c, Options{Config: cfg, Store: cs, CheckpointFile: checkpoint, Start: client.TrimHorizon,
					PollInterval: 20 * time.Millisecond, ReadsPerSecond: 50, checkpointFS: cs.fault})
				if err != nil {
					t.Fatal(err)
				}
				return d, cs
			}

			d, cs := newDelivery(2)
			if err := d.Run(ctx); !errors.Is(err, syscall.EIO) {
				t.Fatalf("Run: %v, want the checkpoint's EIO", err)
			}
			before := cs.stored()
			if len(before) != 2 {
				t.Fatalf("stored %q before the crash, want 2 objects", before)
			}
			second := objects()[before[1]]
			if !bytes.HasPrefix(second, []byte(want[11]+"\n")) {
				t.Fatalf("the second object begins %.10q, want record 11", second)
			}
			cp, err := openCheckpointer(vfs.OS, checkpoint, arn, cfg.Name)
			if err != nil {
				t.Fatal(err)
			}
			if s, _ := cp.get(0); s.Position != positions[10] {
				t.Fatalf("the checkpoint after the crash is %+v, want position %d (the first object's last record)", s, positions[10])
			}

			d, cs = newDelivery(0)
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- d.Run(rctx) }()
			waitFor(t, "the last three objects", func() bool { return d.Stats().Records >= records-11 })
			cancel()
			if err := <-done; err != context.Canceled {
				t.Fatalf("Run: %v", err)
			}
			after := cs.stored()
			if len(after) != 3 || after[0] != before[1] {
				t.Fatalf("stored %q after the restart, want 3 objects, the first %q again", after, before[1])
			}
			got := objects()
			if !bytes.Equal(got[before[1]], second) {
				t.Errorf("the second object stored again differs from the first time")
			}
			keys := slices.Sorted(maps.Keys(got))
			if wantKeys := slices.Sorted(slices.Values(append(before[:1], after...))); !slices.Equal(keys, wantKeys) {
				t.Fatalf("the destination holds %q, want %q", keys, wantKeys)
			}
			var lines []string
			for _, k := range keys {
				for l := range strings.SplitSeq(strings.TrimSuffix(string(got[k]), "\n"), "\n") {
					lines = append(lines, l)
				}
			}
			slices.Sort(lines)
			if !slices.Equal(lines, want) {
				t.Fatalf("the objects hold %d records, want the %d once each", len(lines), len(want))
			}
		})
	}
}

// TestDeliverProducerAggregates puts records with the client's Producer with Aggregate on,
// so the stream holds KPL aggregated records, and delivers the stream to a directory: each
// user record is on a line of its own, exactly once.
func TestDeliverProducerAggregates(t *testing.T) {
	_, c := startServer(t)
	ctx := context.Background()
	arn := createStream(t, c, "kpl", 2)
	p, err := c.NewProducer(ctx, "kpl", client.ProducerConfig{Aggregate: true})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	var futures []*client.Future
	for i := range 300 {
		d := fmt.Sprintf("user-%03d", i)
		f, err := p.Put(ctx, fmt.Sprintf("key%d", i%7), []byte(d))
		if err != nil {
			t.Fatal(err)
		}
		want, futures = append(want, d), append(futures, f)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	aggregated := 0
	for _, f := range futures {
		o, ok := f.Outcome()
		if !ok || o.Err != nil {
			t.Fatalf("a put: %+v, done %v", o, ok)
		}
		if o.Aggregated {
			aggregated++
		}
	}
	if aggregated == 0 {
		t.Fatal("the producer aggregated no record")
	}

	dst := newDestination(t, "dir", "kpl-to-dir", arn, `"BufferingHints": {"IntervalInSeconds": 0},
	    "ProcessingConfiguration": {"Enabled": true, "Processors": [{"Type": "AppendDelimiterToRecord"}]},`)
	d, err := New(c, Options{Config: dst.cfg, Store: dst.store, CheckpointFile: filepath.Join(dst.dir, "checkpoint"),
		Start: client.TrimHorizon, PollInterval: 20 * time.Millisecond, ReadsPerSecond: 50})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(rctx) }()
	waitFor(t, "every user record", func() bool { return d.Stats().Records >= uint64(len(want)) })
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run: %v", err)
	}
	var got []string
	for _, body := range dst.objects() {
		got = append(got, strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")...)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("%d of %d aggregated: the objects hold %d lines, want the %d user records once each:\n%q", aggregated, len(want), len(got), len(want), got)
	}
}
