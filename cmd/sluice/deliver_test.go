package main

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/klauspost/compress/snappy"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/kpl"
)

// readObject decompresses an object by its key's extension, with readers independent of
// the delivery's writers; a .snappy object is tried as Snappy's framing format first (the
// stream identifier), else as Hadoop's block framing.
func readObject(key string, body []byte) ([]byte, error) {
	switch filepath.Ext(key) {
	case ".gz":
		r, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		return io.ReadAll(r)
	case ".zip":
		zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
		if err != nil {
			return nil, err
		}
		if len(zr.File) != 1 {
			return nil, fmt.Errorf("%d files in a ZIP object", len(zr.File))
		}
		f, err := zr.File[0].Open()
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(f)
	case ".snappy":
		if bytes.HasPrefix(body, []byte("\xff\x06\x00\x00sNaPpY")) {
			return io.ReadAll(snappy.NewReader(bytes.NewReader(body)))
		}
		var out []byte
		for len(body) > 0 {
			if len(body) < 8 {
				return nil, fmt.Errorf("a truncated Hadoop snappy block")
			}
			want, n := binary.BigEndian.Uint32(body), int(binary.BigEndian.Uint32(body[4:]))
			if n > len(body)-8 {
				return nil, fmt.Errorf("a Hadoop snappy chunk of %d bytes", n)
			}
			dec, err := snappy.Decode(nil, body[8:8+n])
			if err != nil || len(dec) != int(want) {
				return nil, fmt.Errorf("a Hadoop snappy block of %d bytes, header %d: %v", len(dec), want, err)
			}
			out, body = append(out, dec...), body[8+n:]
		}
		return out, nil
	}
	return body, nil
}

// bucketLines returns how many times each line occurs in the bucket's objects.
func bucketLines(t *testing.T, c *s3.Client, bucket string) map[string]int {
	t.Helper()
	ctx := context.Background()
	counts := map[string]int{}
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
			body, err := io.ReadAll(g.Body)
			g.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			raw, err := readObject(*o.Key, body)
			if err != nil {
				t.Fatalf("%s: %v", *o.Key, err)
			}
			for l := range strings.SplitSeq(strings.TrimSuffix(string(raw), "\n"), "\n") {
				counts[l]++
			}
		}
	}
	return counts
}

// TestDeliverSurvivesKill runs `sluice deliver` as a child process against a real server
// and an in-process S3 (gofakes3, path-style), for each compression format, and kills it
// with SIGKILL at random points while a producer writes plain and KPL aggregated records;
// after a last run drains the stream and stops on SIGTERM, every record is in the bucket
// exactly once. SLUICE_DELIVER_KILLS sets the kills per format (3 by default).
func TestDeliverSurvivesKill(t *testing.T) {
	kills := 3
	if s := os.Getenv("SLUICE_DELIVER_KILLS"); s != "" {
		var err error
		if kills, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	ep := startServe(t)
	c, err := client.New(client.Config{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	backend := s3mem.New()
	s3srv := httptest.NewServer(gofakes3.New(backend).Server())
	defer s3srv.Close()
	s3c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(s3srv.URL), UsePathStyle: true, Credentials: aws.AnonymousCredentials{}})

	for _, format := range []string{"UNCOMPRESSED", "GZIP", "ZIP", "Snappy", "HADOOP_SNAPPY"} {
		t.Run(format, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			name := strings.ToLower(strings.ReplaceAll(format, "_", "-"))
			if err := c.CreateStream(ctx, name, 2); err != nil {
				t.Fatal(err)
			}
			sum, err := c.DescribeStreamSummary(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if err := backend.CreateBucket(name); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			config := filepath.Join(dir, "delivery.json")
			if err := os.WriteFile(config, fmt.Appendf(nil, `{"DeliveryStreamName": "d-%s",
			  "KinesisStreamSourceConfiguration": {"KinesisStreamARN": %q},
			  "ExtendedS3DestinationConfiguration": {"BucketARN": "arn:aws:s3:::%s", "CompressionFormat": %q,
			    "Prefix": "events/!{timestamp:yyyy/MM/dd}/", "ErrorOutputPrefix": "errors/!{firehose:error-output-type}/",
			    "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 1},
			    "ProcessingConfiguration": {"Enabled": true, "Processors": [{"Type": "AppendDelimiterToRecord"}]}}}`,
				name, sum.ARN, name, format), 0o644); err != nil {
				t.Fatal(err)
			}

			// The producer: requests of 20 plain records or of one aggregated record of
			// 20 user records, until the kills are done.
			var (
				mu     sync.Mutex
				sent   []string
				stop   = make(chan struct{})
				doneWG sync.WaitGroup
			)
			prng := rand.New(rand.NewPCG(uint64(seed), 1)) // the producer's own: rng is the kill loop's
			doneWG.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					var entries []client.PutEntry
					var data []string
					if i%3 == 2 {
						var b kpl.Builder
						for j := range 20 {
							d := fmt.Sprintf("%s-%d-%d-%s", name, i, j, strings.Repeat("x", prng.IntN(200)))
							b.Add(fmt.Sprintf("agg%d", i), "", []byte(d)) // one shard's, as the KPL aggregates
							data = append(data, d)
						}
						entries = []client.PutEntry{{Key: fmt.Sprintf("agg%d", i), Data: b.AppendTo(nil)}}
					} else {
						for j := range 20 {
							d := fmt.Sprintf("%s-%d-%d-%s", name, i, j, strings.Repeat("y", prng.IntN(200)))
							entries = append(entries, client.PutEntry{Key: fmt.Sprintf("k%d-%d", i, j), Data: []byte(d)})
							data = append(data, d)
						}
					}
					res, err := c.PutRecords(ctx, name, entries)
					if err == nil {
						for _, r := range res {
							if r.Err != nil {
								err = r.Err
							}
						}
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					sent = append(sent, data...)
					mu.Unlock()
					time.Sleep(25 * time.Millisecond)
				}
			})
			start := func() (*exec.Cmd, *syncBuffer) {
				cmd := sluiceCmd("deliver", "--endpoint", ep, "--config", config, "--s3-endpoint", s3srv.URL, "--starting-position", "TRIM_HORIZON")
				var out syncBuffer
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				return cmd, &out
			}
			for k := range kills {
				cmd, out := start()
				after := time.Duration(300+rng.IntN(2500)) * time.Millisecond
				time.Sleep(after)
				cmd.Process.Kill()
				cmd.Wait()
				t.Logf("kill %d after %v:\n%s", k, after, out.String())
			}
			close(stop)
			doneWG.Wait()
			cmd, out := start()
			mu.Lock()
			want := sent
			mu.Unlock()
			counts := bucketLines(t, s3c, name)
			for deadline := time.Now().Add(time.Minute); len(counts) < len(want); counts = bucketLines(t, s3c, name) {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("after a minute, the bucket holds %d of the %d records sent; sluice deliver said:\n%s", len(counts), len(want), out.String())
				}
				time.Sleep(100 * time.Millisecond)
			}
			cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("sluice deliver: %v\n%s", err, out.String())
			}
			counts = bucketLines(t, s3c, name)
			for _, d := range want {
				if counts[d] != 1 {
					t.Errorf("record %.30s… is in the bucket %d times", d, counts[d])
				}
			}
			if len(counts) != len(want) {
				t.Errorf("the bucket holds %d distinct records, %d were sent", len(counts), len(want))
			}
			t.Logf("%d records; last run:\n%s", len(want), out.String())
		})
	}
}
