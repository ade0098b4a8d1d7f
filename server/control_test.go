package server

import (
	"errors"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// controlServer runs a server over an engine with the test's clock and shard limit, and
// returns an AWS SDK client of it.
func controlServer(t *testing.T, clk *nativeClock, shardLimit int) *kinesis.Client {
	t.Helper()
	eng, err := stream.Open(stream.Options{Dir: t.TempDir(), Now: clk.Now, Durability: segment.Durability{Mode: segment.None},
		SegmentSize: segment.MinSegmentSize, Limits: stream.Limits{Off: true}, ShardLimit: shardLimit})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(eng, Options{})
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Shutdown()
		eng.Close()
	})
	return sdkClient(ln.Addr().String(), aws.AnonymousCredentials{})
}

func shardIDs(shards []types.Shard) []string {
	out := []string{}
	for _, s := range shards {
		out = append(out, aws.ToString(s.ShardId))
	}
	return out
}

// TestSDKListShardsFilters lists a stream's lineage with every ShardFilter type through the
// AWS SDK: shards 0 and 1 created at t0, 0 split into 2 and 3 at t0+1h, listed at t0+2h.
func TestSDKListShardsFilters(t *testing.T) {
	clk := newNativeClock()
	t0 := clk.Now()
	kc := controlServer(t, clk, 0)
	c := ctx(t)
	if _, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: aws.String("f"), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Hour)
	if _, err := kc.SplitShard(c, &kinesis.SplitShardInput{StreamName: aws.String("f"), ShardToSplit: aws.String("shardId-000000000000"),
		NewStartingHashKey: aws.String("1000")}); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Hour)
	at := func(d time.Duration) *time.Time { v := t0.Add(d); return &v }
	for _, tc := range []struct {
		name   string
		filter *types.ShardFilter
		want   string
	}{
		{"no filter", nil, "0 1 2 3"},
		{"FROM_TRIM_HORIZON", &types.ShardFilter{Type: types.ShardFilterTypeFromTrimHorizon}, "0 1 2 3"},
		{"AFTER_SHARD_ID", &types.ShardFilter{Type: types.ShardFilterTypeAfterShardId, ShardId: aws.String("shardId-000000000001")}, "2 3"},
		{"AFTER_SHARD_ID, short spelling", &types.ShardFilter{Type: types.ShardFilterTypeAfterShardId, ShardId: aws.String("shardId-2")}, "3"},
		{"AT_LATEST", &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}, "1 2 3"},
		{"AT_TRIM_HORIZON", &types.ShardFilter{Type: types.ShardFilterTypeAtTrimHorizon}, "0 1"},
		{"AT_TIMESTAMP before the split", &types.ShardFilter{Type: types.ShardFilterTypeAtTimestamp, Timestamp: at(30 * time.Minute)}, "0 1"},
		{"AT_TIMESTAMP after the split", &types.ShardFilter{Type: types.ShardFilterTypeAtTimestamp, Timestamp: at(90 * time.Minute)}, "1 2 3"},
		{"FROM_TIMESTAMP before the split", &types.ShardFilter{Type: types.ShardFilterTypeFromTimestamp, Timestamp: at(30 * time.Minute)}, "0 1 2 3"},
		{"FROM_TIMESTAMP after the split", &types.ShardFilter{Type: types.ShardFilterTypeFromTimestamp, Timestamp: at(90 * time.Minute)}, "1 2 3"},
	} {
		out, err := kc.ListShards(c, &kinesis.ListShardsInput{StreamName: aws.String("f"), ShardFilter: tc.filter})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var want []string
		for _, n := range strings.Fields(tc.want) {
			want = append(want, "shardId-00000000000"+n)
		}
		if got := shardIDs(out.Shards); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", tc.name, got, want)
		}
	}

	var invalid *types.InvalidArgumentException
	var validationErr *types.ValidationException
	for _, tc := range []struct {
		name   string
		filter types.ShardFilter
		msg    string
	}{
		{"AFTER_SHARD_ID without ShardId", types.ShardFilter{Type: types.ShardFilterTypeAfterShardId}, "ShardFilter ShardId must be provided for the AFTER_SHARD_ID type."},
		{"ShardId with AT_LATEST", types.ShardFilter{Type: types.ShardFilterTypeAtLatest, ShardId: aws.String("shardId-000000000000")}, "ShardFilter ShardId can only be provided for the AFTER_SHARD_ID type."},
		{"AT_TIMESTAMP without Timestamp", types.ShardFilter{Type: types.ShardFilterTypeAtTimestamp}, "ShardFilter Timestamp must be provided for the AT_TIMESTAMP type."},
		{"FROM_TIMESTAMP without Timestamp", types.ShardFilter{Type: types.ShardFilterTypeFromTimestamp}, "ShardFilter Timestamp must be provided for the FROM_TIMESTAMP type."},
		{"Timestamp with AT_TRIM_HORIZON", types.ShardFilter{Type: types.ShardFilterTypeAtTrimHorizon, Timestamp: at(0)}, "ShardFilter Timestamp can only be provided for the AT_TIMESTAMP and FROM_TIMESTAMP types."},
		{"a ShardId that is none", types.ShardFilter{Type: types.ShardFilterTypeAfterShardId, ShardId: aws.String("shard-x")}, "Invalid ShardFilter ShardId shard-x."},
	} {
		_, err := kc.ListShards(c, &kinesis.ListShardsInput{StreamName: aws.String("f"), ShardFilter: &tc.filter})
		if !errors.As(err, &invalid) || aws.ToString(invalid.Message) != tc.msg {
			t.Errorf("%s: %v, want InvalidArgumentException %q", tc.name, err, tc.msg)
		}
	}
	if _, err := kc.ListShards(c, &kinesis.ListShardsInput{StreamName: aws.String("f"), ShardFilter: &types.ShardFilter{Type: "AT_SOMETIME"}}); !errors.As(err, &validationErr) {
		t.Errorf("unknown filter type: %v", err)
	}
	var notFound *types.ResourceNotFoundException
	if _, err := kc.ListShards(c, &kinesis.ListShardsInput{StreamName: aws.String("nope")}); !errors.As(err, &notFound) {
		t.Errorf("missing stream: %v", err)
	}
	if _, err := kc.ListShards(c, &kinesis.ListShardsInput{StreamName: aws.String("f"), StreamCreationTimestamp: at(time.Second)}); !errors.As(err, &notFound) {
		t.Errorf("another incarnation's StreamCreationTimestamp: %v", err)
	}
	if out, err := kc.ListShards(c, &kinesis.ListShardsInput{StreamName: aws.String("f"), StreamCreationTimestamp: at(0)}); err != nil || len(out.Shards) != 4 {
		t.Errorf("the stream's StreamCreationTimestamp: %v", err)
	}
}

// TestSDKListShardsPagination pages through ListShards with NextToken through the AWS SDK:
// the token alone continues the first call's listing, filter included; the members AWS
// refuses beside it are refused with its messages; MaxResults is bounded; a token expires
// after 300 s and an altered one is refused.
func TestSDKListShardsPagination(t *testing.T) {
	clk := newNativeClock()
	kc := controlServer(t, clk, 0)
	c := ctx(t)
	if _, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: aws.String("p"), ShardCount: aws.Int32(5)}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.SplitShard(c, &kinesis.SplitShardInput{StreamName: aws.String("p"), ShardToSplit: aws.String("shardId-000000000000"),
		NewStartingHashKey: aws.String("1000")}); err != nil {
		t.Fatal(err)
	}
	// Open shards: 1 … 6, two a page.
	var got []string
	in := &kinesis.ListShardsInput{StreamName: aws.String("p"), MaxResults: aws.Int32(2), ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}}
	pages := 0
	for {
		out, err := kc.ListShards(c, in)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		got = append(got, shardIDs(out.Shards)...)
		if out.NextToken == nil {
			break
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken, MaxResults: aws.Int32(2)}
	}
	want := []string{"shardId-000000000001", "shardId-000000000002", "shardId-000000000003", "shardId-000000000004", "shardId-000000000005", "shardId-000000000006"}
	if !slices.Equal(got, want) || pages != 3 {
		t.Fatalf("pages %d: %v, want %v", pages, got, want)
	}
	// ExclusiveStartShardId on the first call.
	out, err := kc.ListShards(c, &kinesis.ListShardsInput{StreamName: aws.String("p"), ExclusiveStartShardId: aws.String("shardId-000000000004")})
	if err != nil || !slices.Equal(shardIDs(out.Shards), want[4:]) || out.NextToken != nil {
		t.Fatalf("ExclusiveStartShardId: %v %v", shardIDs(out.Shards), err)
	}

	first, err := kc.ListShards(c, &kinesis.ListShardsInput{StreamName: aws.String("p"), MaxResults: aws.Int32(1)})
	if err != nil || first.NextToken == nil {
		t.Fatalf("first page: %v", err)
	}
	tok := first.NextToken
	var invalid *types.InvalidArgumentException
	for _, tc := range []struct {
		in  kinesis.ListShardsInput
		msg string
	}{
		{kinesis.ListShardsInput{NextToken: tok, StreamName: aws.String("p")}, "NextToken and StreamName cannot be provided together."},
		{kinesis.ListShardsInput{NextToken: tok, StreamARN: aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/p")}, "NextToken and StreamARN cannot be provided together."},
		{kinesis.ListShardsInput{NextToken: tok, ExclusiveStartShardId: aws.String("shardId-000000000000")}, "NextToken and ExclusiveStartShardId cannot be provided together."},
		{kinesis.ListShardsInput{NextToken: tok, StreamCreationTimestamp: aws.Time(time.Unix(1, 0))}, "NextToken and StreamCreationTimestamp cannot be provided together."},
		{kinesis.ListShardsInput{NextToken: tok, ShardFilter: &types.ShardFilter{Type: types.ShardFilterTypeAtLatest}}, "NextToken and ShardFilter cannot be provided together."},
		{kinesis.ListShardsInput{NextToken: aws.String(strings.ToUpper(*tok))}, "Invalid NextToken."},
	} {
		if _, err := kc.ListShards(c, &tc.in); !errors.As(err, &invalid) || aws.ToString(invalid.Message) != tc.msg {
			t.Errorf("%+v: %v, want %q", tc.in, err, tc.msg)
		}
	}
	var validationErr *types.ValidationException
	for _, n := range []int32{0, 10001} {
		if _, err := kc.ListShards(c, &kinesis.ListShardsInput{StreamName: aws.String("p"), MaxResults: aws.Int32(n)}); !errors.As(err, &validationErr) {
			t.Errorf("MaxResults %d: %v", n, err)
		}
	}
	if out, err := kc.ListShards(c, &kinesis.ListShardsInput{StreamName: aws.String("p"), MaxResults: aws.Int32(10000)}); err != nil || len(out.Shards) != 7 {
		t.Errorf("MaxResults 10000: %v", err)
	}
	clk.advance(300 * time.Second)
	if out, err := kc.ListShards(c, &kinesis.ListShardsInput{NextToken: tok}); err != nil || len(out.Shards) != 6 || aws.ToString(out.Shards[0].ShardId) != "shardId-000000000001" {
		t.Fatalf("a token 300 s old: %v", err)
	}
	clk.advance(time.Second)
	var expired *types.ExpiredNextTokenException
	if _, err := kc.ListShards(c, &kinesis.ListShardsInput{NextToken: tok}); !errors.As(err, &expired) {
		t.Fatalf("a token 301 s old: %v", err)
	}
}

// TestSDKListStreamConsumersPagination pages through ListStreamConsumers.
func TestSDKListStreamConsumersPagination(t *testing.T) {
	clk := newNativeClock()
	kc := controlServer(t, clk, 0)
	c := ctx(t)
	if _, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	arn := aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/s")
	names := []string{"a", "b", "c", "d", "e"}
	for _, n := range names {
		if _, err := kc.RegisterStreamConsumer(c, &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String(n)}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	in := &kinesis.ListStreamConsumersInput{StreamARN: arn, MaxResults: aws.Int32(2)}
	var firstToken *string
	for pages := 1; ; pages++ {
		out, err := kc.ListStreamConsumers(c, in)
		if err != nil {
			t.Fatal(err)
		}
		for _, co := range out.Consumers {
			got = append(got, aws.ToString(co.ConsumerName))
		}
		if out.NextToken == nil {
			if pages != 3 {
				t.Fatalf("%d pages, want 3", pages)
			}
			break
		}
		if firstToken == nil {
			firstToken = out.NextToken
		}
		in = &kinesis.ListStreamConsumersInput{StreamARN: arn, NextToken: out.NextToken, MaxResults: aws.Int32(2)}
	}
	if !slices.Equal(got, names) {
		t.Fatalf("consumers %v, want %v", got, names)
	}
	if out, err := kc.ListStreamConsumers(c, &kinesis.ListStreamConsumersInput{StreamARN: arn}); err != nil || len(out.Consumers) != 5 || out.NextToken != nil {
		t.Fatalf("default page: %v", err)
	}
	var validationErr *types.ValidationException
	for _, n := range []int32{0, 10001} {
		if _, err := kc.ListStreamConsumers(c, &kinesis.ListStreamConsumersInput{StreamARN: arn, MaxResults: aws.Int32(n)}); !errors.As(err, &validationErr) {
			t.Errorf("MaxResults %d: %v", n, err)
		}
	}
	if _, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: aws.String("other"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	var invalid *types.InvalidArgumentException
	if _, err := kc.ListStreamConsumers(c, &kinesis.ListStreamConsumersInput{StreamARN: aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/other"), NextToken: firstToken}); !errors.As(err, &invalid) {
		t.Errorf("a token of another stream: %v", err)
	}
	if _, err := kc.ListStreamConsumers(c, &kinesis.ListStreamConsumersInput{StreamARN: arn, NextToken: firstToken, StreamCreationTimestamp: aws.Time(time.Unix(1, 0))}); !errors.As(err, &invalid) ||
		aws.ToString(invalid.Message) != "NextToken and StreamCreationTimestamp cannot be provided together." {
		t.Errorf("NextToken with StreamCreationTimestamp: %v", err)
	}
	clk.advance(301 * time.Second)
	var expired *types.ExpiredNextTokenException
	if _, err := kc.ListStreamConsumers(c, &kinesis.ListStreamConsumersInput{StreamARN: arn, NextToken: firstToken}); !errors.As(err, &expired) {
		t.Fatalf("a token 301 s old: %v", err)
	}
}

// TestSDKDeleteStreamConsumers: DeleteStream of a stream with consumers is ResourceInUse
// unless EnforceConsumerDeletion is set.
func TestSDKDeleteStreamConsumers(t *testing.T) {
	kc := controlServer(t, newNativeClock(), 0)
	c := ctx(t)
	if _, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: aws.String("d"), ShardCount: aws.Int32(1)}); err != nil {
		t.Fatal(err)
	}
	arn := aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/d")
	if _, err := kc.RegisterStreamConsumer(c, &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("app")}); err != nil {
		t.Fatal(err)
	}
	var inUse *types.ResourceInUseException
	for _, enforce := range []*bool{nil, aws.Bool(false)} {
		if _, err := kc.DeleteStream(c, &kinesis.DeleteStreamInput{StreamName: aws.String("d"), EnforceConsumerDeletion: enforce}); !errors.As(err, &inUse) {
			t.Fatalf("EnforceConsumerDeletion %v: %v", enforce, err)
		}
	}
	if _, err := kc.DeleteStream(c, &kinesis.DeleteStreamInput{StreamARN: arn, EnforceConsumerDeletion: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	var notFound *types.ResourceNotFoundException
	if _, err := kc.DescribeStreamConsumer(c, &kinesis.DescribeStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("app")}); !errors.As(err, &notFound) {
		t.Fatalf("the consumer of a deleted stream: %v", err)
	}
}

// TestSDKShardLimit: DescribeLimits reports the account's open shards and on-demand streams,
// and the shard limit it reports is the one CreateStream, UpdateShardCount and SplitShard
// enforce, with the real count in the message.
func TestSDKShardLimit(t *testing.T) {
	kc := controlServer(t, newNativeClock(), 8)
	c := ctx(t)
	if _, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: aws.String("a"), ShardCount: aws.Int32(3)}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: aws.String("od"),
		StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}}); err != nil {
		t.Fatal(err)
	}
	lim, err := kc.DescribeLimits(c, &kinesis.DescribeLimitsInput{})
	if err != nil || aws.ToInt32(lim.ShardLimit) != 8 || aws.ToInt32(lim.OpenShardCount) != 7 ||
		aws.ToInt32(lim.OnDemandStreamCount) != 1 || aws.ToInt32(lim.OnDemandStreamCountLimit) != 50 {
		t.Fatalf("DescribeLimits: %+v %v", lim, err)
	}
	var limited *types.LimitExceededException
	msg := "This request would exceed the shard limit for the account 000000000000 in us-east-1. Current shard count for the account: 7. Limit: 8. Number of additional shards that would have resulted from this request: 2."
	if _, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: aws.String("b"), ShardCount: aws.Int32(2)}); !errors.As(err, &limited) || aws.ToString(limited.Message) != msg {
		t.Fatalf("CreateStream past the limit: %v", err)
	}
	if _, err := kc.UpdateShardCount(c, &kinesis.UpdateShardCountInput{StreamName: aws.String("a"), TargetShardCount: aws.Int32(5), ScalingType: types.ScalingTypeUniformScaling}); !errors.As(err, &limited) {
		t.Fatalf("UpdateShardCount past the limit: %v", err)
	}
	if _, err := kc.SplitShard(c, &kinesis.SplitShardInput{StreamName: aws.String("a"), ShardToSplit: aws.String("shardId-000000000000"), NewStartingHashKey: aws.String("1000")}); err != nil {
		t.Fatalf("SplitShard to the limit: %v", err)
	}
	if _, err := kc.SplitShard(c, &kinesis.SplitShardInput{StreamName: aws.String("a"), ShardToSplit: aws.String("shardId-000000000001"), NewStartingHashKey: aws.String(shardStartPlus(t, kc, "a", 1))}); !errors.As(err, &limited) ||
		!strings.Contains(aws.ToString(limited.Message), "Current shard count for the account: 8. Limit: 8.") {
		t.Fatalf("SplitShard past the limit: %v", err)
	}
	if _, err := kc.DeleteStream(c, &kinesis.DeleteStreamInput{StreamName: aws.String("od")}); err != nil {
		t.Fatal(err)
	}
	lim, err = kc.DescribeLimits(c, &kinesis.DescribeLimitsInput{})
	if err != nil || aws.ToInt32(lim.OpenShardCount) != 4 || aws.ToInt32(lim.OnDemandStreamCount) != 0 {
		t.Fatalf("DescribeLimits after DeleteStream: %+v %v", lim, err)
	}
}

// shardStartPlus returns a valid split point of a stream's shard n: its starting hash key
// plus 1000.
func shardStartPlus(t *testing.T, kc *kinesis.Client, name string, n int) string {
	t.Helper()
	out, err := kc.ListShards(ctx(t), &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range out.Shards {
		if aws.ToString(s.ShardId) == shardmap.ShardID(n).String() {
			start, _ := new(big.Int).SetString(aws.ToString(s.HashKeyRange.StartingHashKey), 10)
			return start.Add(start, big.NewInt(1000)).String()
		}
	}
	t.Fatalf("no shard %d", n)
	return ""
}

// TestSDKStreamSettings drives the stream operations no other test of this package calls,
// through the AWS SDK: each one's effect and an error of each.
func TestSDKStreamSettings(t *testing.T) {
	kc := controlServer(t, newNativeClock(), 0)
	c := ctx(t)
	name := aws.String("s")
	arn := aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/s")
	if _, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: name, ShardCount: aws.Int32(3),
		Tags: map[string]string{"a": "1", "b": "2"}}); err != nil {
		t.Fatal(err)
	}
	summary := func() *types.StreamDescriptionSummary {
		t.Helper()
		out, err := kc.DescribeStreamSummary(c, &kinesis.DescribeStreamSummaryInput{StreamName: name})
		if err != nil {
			t.Fatal(err)
		}
		return out.StreamDescriptionSummary
	}
	var invalid *types.InvalidArgumentException
	var validationErr *types.ValidationException
	var notFound *types.ResourceNotFoundException

	// DecreaseStreamRetentionPeriod.
	if _, err := kc.IncreaseStreamRetentionPeriod(c, &kinesis.IncreaseStreamRetentionPeriodInput{StreamName: name, RetentionPeriodHours: aws.Int32(48)}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.DecreaseStreamRetentionPeriod(c, &kinesis.DecreaseStreamRetentionPeriodInput{StreamName: name, RetentionPeriodHours: aws.Int32(30)}); err != nil || aws.ToInt32(summary().RetentionPeriodHours) != 30 {
		t.Fatalf("DecreaseStreamRetentionPeriod: %v", err)
	}
	if _, err := kc.DecreaseStreamRetentionPeriod(c, &kinesis.DecreaseStreamRetentionPeriodInput{StreamName: name, RetentionPeriodHours: aws.Int32(23)}); !errors.As(err, &invalid) {
		t.Fatalf("DecreaseStreamRetentionPeriod below 24 h: %v", err)
	}
	if _, err := kc.DecreaseStreamRetentionPeriod(c, &kinesis.DecreaseStreamRetentionPeriodInput{StreamName: name, RetentionPeriodHours: aws.Int32(40)}); !errors.As(err, &invalid) {
		t.Fatalf("DecreaseStreamRetentionPeriod upwards: %v", err)
	}

	// MergeShards.
	if _, err := kc.MergeShards(c, &kinesis.MergeShardsInput{StreamName: name, ShardToMerge: aws.String("shardId-000000000000"), AdjacentShardToMerge: aws.String("shardId-000000000001")}); err != nil {
		t.Fatal(err)
	}
	if got := aws.ToInt32(summary().OpenShardCount); got != 2 {
		t.Fatalf("open shards after a merge: %d", got)
	}
	if _, err := kc.MergeShards(c, &kinesis.MergeShardsInput{StreamName: name, ShardToMerge: aws.String("shardId-000000000002"), AdjacentShardToMerge: aws.String("shardId-000000000009")}); !errors.As(err, &notFound) {
		t.Fatalf("MergeShards of a missing shard: %v", err)
	}

	// RemoveTagsFromStream.
	if _, err := kc.RemoveTagsFromStream(c, &kinesis.RemoveTagsFromStreamInput{StreamName: name, TagKeys: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := kc.ListTagsForStream(c, &kinesis.ListTagsForStreamInput{StreamName: name})
	if err != nil || len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Key) != "b" {
		t.Fatalf("tags after RemoveTagsFromStream: %+v %v", tags, err)
	}
	if _, err := kc.RemoveTagsFromStream(c, &kinesis.RemoveTagsFromStreamInput{StreamName: aws.String("nope"), TagKeys: []string{"a"}}); !errors.As(err, &notFound) {
		t.Fatalf("RemoveTagsFromStream of a missing stream: %v", err)
	}

	// StartStreamEncryption and StopStreamEncryption.
	if _, err := kc.StartStreamEncryption(c, &kinesis.StartStreamEncryptionInput{StreamName: name, EncryptionType: types.EncryptionTypeKms, KeyId: aws.String("alias/aws/kinesis")}); err != nil {
		t.Fatal(err)
	}
	if s := summary(); s.EncryptionType != types.EncryptionTypeKms || aws.ToString(s.KeyId) != "alias/aws/kinesis" {
		t.Fatalf("after StartStreamEncryption: %s %s", s.EncryptionType, aws.ToString(s.KeyId))
	}
	if _, err := kc.StartStreamEncryption(c, &kinesis.StartStreamEncryptionInput{StreamName: name, EncryptionType: types.EncryptionTypeNone, KeyId: aws.String("k")}); !errors.As(err, &validationErr) {
		t.Fatalf("StartStreamEncryption NONE: %v", err)
	}
	if _, err := kc.StopStreamEncryption(c, &kinesis.StopStreamEncryptionInput{StreamName: name, EncryptionType: types.EncryptionTypeKms, KeyId: aws.String("alias/aws/kinesis")}); err != nil {
		t.Fatal(err)
	}
	if s := summary(); s.EncryptionType != types.EncryptionTypeNone {
		t.Fatalf("after StopStreamEncryption: %s", s.EncryptionType)
	}

	// UpdateStreamMode and UpdateMaxRecordSize.
	if _, err := kc.UpdateStreamMode(c, &kinesis.UpdateStreamModeInput{StreamARN: arn, StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}}); err != nil {
		t.Fatal(err)
	}
	if m := summary().StreamModeDetails.StreamMode; m != types.StreamModeOnDemand {
		t.Fatalf("after UpdateStreamMode: %s", m)
	}
	if _, err := kc.UpdateStreamMode(c, &kinesis.UpdateStreamModeInput{StreamARN: arn, StreamModeDetails: &types.StreamModeDetails{StreamMode: "SOMETIMES"}}); !errors.As(err, &validationErr) {
		t.Fatalf("UpdateStreamMode to an unknown mode: %v", err)
	}
	if _, err := kc.UpdateMaxRecordSize(c, &kinesis.UpdateMaxRecordSizeInput{StreamARN: arn, MaxRecordSizeInKiB: aws.Int32(2048)}); err != nil {
		t.Fatal(err)
	}
	if got := aws.ToInt32(summary().MaxRecordSizeInKiB); got != 2048 {
		t.Fatalf("after UpdateMaxRecordSize: %d", got)
	}
	if _, err := kc.UpdateMaxRecordSize(c, &kinesis.UpdateMaxRecordSizeInput{StreamARN: arn, MaxRecordSizeInKiB: aws.Int32(100)}); !errors.As(err, &validationErr) {
		t.Fatalf("UpdateMaxRecordSize below 1024: %v", err)
	}

	// DeregisterStreamConsumer.
	if _, err := kc.RegisterStreamConsumer(c, &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("app")}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.DeregisterStreamConsumer(c, &kinesis.DeregisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("app")}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.DeregisterStreamConsumer(c, &kinesis.DeregisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("app")}); !errors.As(err, &notFound) {
		t.Fatalf("DeregisterStreamConsumer twice: %v", err)
	}
	if out, err := kc.ListStreamConsumers(c, &kinesis.ListStreamConsumersInput{StreamARN: arn}); err != nil || len(out.Consumers) != 0 {
		t.Fatalf("consumers after DeregisterStreamConsumer: %v", err)
	}
}
