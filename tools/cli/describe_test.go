//go:build linux

// Linux only: these tests run the in-process server of server_test.go.

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
)

// splitShard splits a shard of a stream at a hash key through the Kinesis API.
func splitShard(ctx context.Context, t *testing.T, c *client.Client, stream, shard, at string) {
	t.Helper()
	in := struct{ StreamName, ShardToSplit, NewStartingHashKey string }{stream, shard, at}
	if err := c.CallKinesis(ctx, "SplitShard", in, nil); err != nil {
		t.Fatal(err)
	}
}

// half is the first hash key of the upper half of the key space.
const half = "170141183460469231731687303715884105728"

func TestDescribe(t *testing.T) {
	ts := startServer(t)
	ts.createStream(t, "s", 1)
	c, ctx := ts.client(t), testCtx(t)
	splitShard(ctx, t, c, "s", "shardId-000000000000", half)
	sum, err := c.DescribeStreamSummary(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterStreamConsumer(ctx, sum.ARN, "billing"); err != nil {
		t.Fatal(err)
	}

	d, err := Describe(ctx, c, "s")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := d.Write(Output{W: &out}); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"Stream s\n",
		"  status           ACTIVE\n",
		"  mode             PROVISIONED\n",
		"  retention        24 hours\n",
		"  shards           2 open, 3 in all\n",
		"  max record size  1024 KiB\n",
		"  encryption       NONE\n",
		"  consumers        1\n",
		"  shardId-000000000000  closed  -                     -                100.00%\n",
		"  shardId-000000000001  open    shardId-000000000000  -                50.00%\n",
		"  shardId-000000000002  open    shardId-000000000000  -                50.00%\n",
		"  shardId-000000000000  0                                        340282366920938463463374607431768211455\n",
		"  shardId-000000000002  170141183460469231731687303715884105728  340282366920938463463374607431768211455\n",
		"  shardId-000000000000  10000000000000000000000000000000000000000000000000000000  10000000000000000000000000000000000000000000000000000000\n",
		"  shardId-000000000001  10000000000000000000000000000000000018446744073709551616  -\n",
		"  billing   ACTIVE",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("no %q in\n%s", want, text)
		}
	}

	out.Reset()
	if err := d.Write(Output{W: &out, JSON: true}); err != nil {
		t.Fatal(err)
	}
	var j struct {
		StreamDescription struct {
			StreamName              string
			StreamStatus            string
			StreamCreationTimestamp string
			HasMoreShards           bool
			OpenShardCount          int
			Shards                  []struct {
				ShardId, ParentShardId string
				HashKeyRange           struct{ StartingHashKey, EndingHashKey string }
				SequenceNumberRange    map[string]string
			}
		}
		Consumers []struct{ ConsumerName, ConsumerStatus, ConsumerARN, ConsumerCreationTimestamp string }
	}
	if err := json.Unmarshal(out.Bytes(), &j); err != nil {
		t.Fatalf("%v\n%s", err, &out)
	}
	sd := j.StreamDescription
	if sd.StreamName != "s" || sd.StreamStatus != "ACTIVE" || sd.HasMoreShards || sd.OpenShardCount != 2 || len(sd.Shards) != 3 {
		t.Errorf("%+v", sd)
	}
	if _, err := time.Parse(time.RFC3339, sd.StreamCreationTimestamp); err != nil {
		t.Errorf("StreamCreationTimestamp: %v", err)
	}
	if s := sd.Shards[0]; len(s.SequenceNumberRange) != 2 || s.ParentShardId != "" {
		t.Errorf("closed shard %+v", s)
	}
	if s := sd.Shards[2]; s.ParentShardId != "shardId-000000000000" || s.HashKeyRange.StartingHashKey != half ||
		len(s.SequenceNumberRange) != 1 {
		t.Errorf("child %+v", s)
	}
	if len(j.Consumers) != 1 || j.Consumers[0].ConsumerName != "billing" || j.Consumers[0].ConsumerStatus != "ACTIVE" {
		t.Errorf("consumers %+v", j.Consumers)
	}

	if _, err := Describe(ctx, c, "nope"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("unknown stream: %v", err)
	}
}
