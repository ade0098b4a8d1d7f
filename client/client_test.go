//go:build linux

// Linux only: these tests run the in-process server of server_test.go.

package client

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

func TestSeqNum(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	cases := []SeqNum{{0, 0}, {0, 1}, {7, 42}, {math.MaxUint32, math.MaxUint64}, {1, math.MaxUint64}, {math.MaxUint32, 0}}
	for range 1000 {
		cases = append(cases, SeqNum{Shard: rng.Uint32(), Position: rng.Uint64()})
	}
	for _, s := range cases {
		want := stream.SeqNum{Shard: stream.ShardID(s.Shard), Pos: s.Position}.String()
		if got := s.String(); got != want {
			t.Fatalf("%+v: %s, want the engine's %s", s, got, want)
		}
		back, err := ParseSeqNum(want)
		if err != nil || back != s {
			t.Fatalf("ParseSeqNum(%s) = %+v, %v; want %+v", want, back, err, s)
		}
	}
	for _, bad := range []string{"", "1", "2" + string(make([]byte, 55)), "10000000000000000000000000000000000000000000000000000000x",
		"20000000000000000000000000000000000000000000000000000000", "10000100000000000000000000000000000000000000000000000000",
		// 2^96 is more than a shard index and a position can say.
		fmt.Sprintf("1%026d%029s", 0, "79228162514264337593543950336")} {
		if _, err := ParseSeqNum(bad); err == nil {
			t.Errorf("ParseSeqNum(%q) accepted", bad)
		}
	}
	if !(SeqNum{1, 5}).Less(SeqNum{2, 0}) || (SeqNum{1, 5}).Less(SeqNum{1, 5}) || !(SeqNum{1, 4}).Less(SeqNum{1, 5}) {
		t.Error("Less")
	}
}

func TestNew(t *testing.T) {
	for _, bad := range []string{"ftp://x:1", "http://", "http://h:1/path", "::"} {
		if _, err := New(Config{Endpoint: bad}); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	c, err := New(Config{})
	if err != nil || c.host != "127.0.0.1:4567" {
		t.Fatalf("default endpoint: %v %v", c, err)
	}
	c, err = New(Config{Endpoint: "https://example.com"})
	if err != nil || c.host != "example.com:443" || !c.tls {
		t.Fatalf("https endpoint: %+v %v", c, err)
	}
}

func TestControlPlane(t *testing.T) {
	ts := startServer(t, stream.Options{})
	c := ts.client(t, Config{})
	ctx := testCtx(t, 30*time.Second)
	if err := c.CreateStream(ctx, "orders", 3); err != nil {
		t.Fatal(err)
	}
	err := c.CreateStream(ctx, "orders", 3)
	var e *Error
	if !errors.Is(err, ErrInUse) || !errors.As(err, &e) || e.Name != "ResourceInUseException" || e.Status != 400 || e.Op != "CreateStream" {
		t.Fatalf("second CreateStream: %v", err)
	}
	if errors.Is(err, ErrNotFound) {
		t.Fatal("ResourceInUse matches ErrNotFound")
	}
	sum, err := c.DescribeStreamSummary(ctx, "orders")
	if err != nil || sum.Name != "orders" || sum.OpenShards != 3 || sum.Status != "ACTIVE" || sum.ARN == "" || sum.MaxRecordKiB != 1024 {
		t.Fatalf("DescribeStreamSummary: %+v %v", sum, err)
	}
	if _, err := c.DescribeStreamSummary(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("DescribeStreamSummary of a missing stream: %v", err)
	}
	if err := ts.eng.SplitShard("orders", 0, mustKey(t, "2")); err != nil {
		t.Fatal(err)
	}
	shards, err := c.ListShards(ctx, "orders")
	if err != nil || len(shards) != 5 {
		t.Fatalf("ListShards: %v %v", shards, err)
	}
	if shards[0].Open || shards[0].HasParent() || !shards[3].Open || shards[3].Parent != 0 || shards[3].HasAdjacentParent() ||
		shards[3].Range.Start != (shardmap.Key{}) || shards[3].Range.End != (shardmap.Key{Lo: 1}) || shards[4].Range.Start != (shardmap.Key{Lo: 2}) {
		t.Fatalf("ListShards after a split: %+v", shards)
	}

	info, err := c.RegisterStreamConsumer(ctx, sum.ARN, "app")
	if err != nil || info.Name != "app" || info.ARN == "" {
		t.Fatalf("RegisterStreamConsumer: %+v %v", info, err)
	}
	got, err := c.DescribeStreamConsumer(ctx, sum.ARN, "app", "")
	if err != nil || got.ARN != info.ARN || got.Status != "ACTIVE" || got.StreamARN != sum.ARN {
		t.Fatalf("DescribeStreamConsumer: %+v %v", got, err)
	}
	if got2, err := c.DescribeStreamConsumer(ctx, "", "", info.ARN); err != nil || got2 != got {
		t.Fatalf("DescribeStreamConsumer by ARN: %+v %v", got2, err)
	}
	if err := c.DeleteStream(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := c.CreateStream(ctx, "x", 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("call on a closed client: %v", err)
	}
}

// TestListShardsPages lists more shards than one page holds.
func TestListShardsPages(t *testing.T) {
	ts := startServer(t, stream.Options{})
	ts.createStream(t, "wide", 7)
	c := ts.client(t, Config{})
	shards, err := c.listShards(testCtx(t, 30*time.Second), "wide", 2)
	if err != nil || len(shards) != 7 {
		t.Fatalf("ListShards: %d shards, %v", len(shards), err)
	}
	for i, s := range shards {
		if s.ID != shardmap.ShardID(i) || !s.Open {
			t.Fatalf("shard %d: %+v", i, s)
		}
	}
}

func TestPutAndGetRecords(t *testing.T) {
	ts := startServer(t, stream.Options{Limits: stream.Limits{Off: true}})
	ts.createStream(t, "s", 2)
	c := ts.client(t, Config{})
	ctx := testCtx(t, 30*time.Second)
	var entries []PutEntry
	for i := range 20 {
		entries = append(entries, PutEntry{Key: fmt.Sprintf("k%d", i), Data: fmt.Appendf(nil, "data-%d", i)})
	}
	entries = append(entries, PutEntry{Key: "explicit", Data: []byte("to shard 1"), HashKey: &shardmap.MaxKey})
	res, err := c.PutRecords(ctx, "s", entries)
	if err != nil || len(res) != len(entries) {
		t.Fatalf("PutRecords: %v %v", res, err)
	}
	routes := map[uint32]bool{}
	for i, r := range res {
		if r.Err != nil || r.Position == 0 {
			t.Fatalf("record %d: %+v", i, r)
		}
		routes[r.Shard] = true
	}
	if res[len(res)-1].Shard != 1 {
		t.Fatalf("the record with hash key 2^128-1 went to shard %d", res[len(res)-1].Shard)
	}
	if _, err := c.PutRecords(ctx, "nope", entries[:1]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("put to a missing stream: %v", err)
	}
	if _, err := c.PutRecords(ctx, "s", nil); !errors.Is(err, ErrValidation) {
		t.Fatalf("empty put: %v", err)
	}
	// Read both shards back and find every record at its sequence number.
	bySeq := map[SeqNum]string{}
	for _, sh := range []uint32{0, 1} {
		out, err := c.GetRecords(ctx, "s", GetInput{Shard: sh, Start: TrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range out.Records {
			if r.Shard != sh || r.Arrival.IsZero() || time.Since(r.Arrival) < 0 {
				t.Fatalf("record %+v", r)
			}
			bySeq[r.Seq()] = string(r.Key) + "=" + string(r.Data)
		}
		if out.ShardEnd || out.Next == 0 {
			t.Fatalf("get: %+v", out)
		}
		next := out.Next
		out.Release()
		// Nothing after the last one.
		out, err = c.GetRecords(ctx, "s", GetInput{Shard: sh, Start: AtSequenceNumber, Value: next})
		if err != nil || len(out.Records) != 0 || out.Next != next {
			t.Fatalf("get at the tip: %+v %v", out, err)
		}
		out.Release()
	}
	for i, r := range res {
		if want := entries[i].Key + "=" + string(entries[i].Data); bySeq[r.SeqNum] != want {
			t.Fatalf("record %d at %s: %q, want %q", i, r.SeqNum, bySeq[r.SeqNum], want)
		}
	}
	// MaxRecords and AfterSequenceNumber.
	out, err := c.GetRecords(ctx, "s", GetInput{Shard: res[0].Shard, Start: AfterSequenceNumber, Value: res[0].Position, MaxRecords: 1})
	if err != nil || len(out.Records) != 1 || out.Records[0].Position <= res[0].Position {
		t.Fatalf("get after %d: %+v %v", res[0].Position, out, err)
	}
	out.Release()
	if _, err := c.GetRecords(ctx, "s", GetInput{Shard: 9, Start: TrimHorizon}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get of a missing shard: %v", err)
	}
	// A split closes shard 0: reading it to its end names its children.
	if err := ts.eng.SplitShard("s", 0, mustKey(t, "1000")); err != nil {
		t.Fatal(err)
	}
	var end *GetOutput
	for start, value := TrimHorizon, uint64(0); ; start = AtSequenceNumber {
		out, err := c.GetRecords(ctx, "s", GetInput{Shard: 0, Start: start, Value: value})
		if err != nil {
			t.Fatal(err)
		}
		value = out.Next
		if out.ShardEnd {
			end = out
			break
		}
		out.Release()
	}
	if fmt.Sprint(end.Children) != "[2 3]" {
		t.Fatalf("children %v", end.Children)
	}
	end.Release()
}

func TestErrors(t *testing.T) {
	e := answerError("put", 400, "ProvisionedThroughputExceededException", "5", "slow down")
	if !errors.Is(e, ErrThrottled) || errors.Is(e, ErrInternal) || !retryable(e) {
		t.Fatalf("%v", e)
	}
	if e.Error() != "sluice put: ProvisionedThroughputExceededException: slow down" {
		t.Fatalf("message %q", e.Error())
	}
	wrapped := fmt.Errorf("context: %w", e)
	if !errors.Is(wrapped, ErrThrottled) {
		t.Fatal("wrapped")
	}
	for _, tt := range []struct {
		name   string
		status int
		want   wire.Code
	}{
		{"ResourceNotFoundException", 400, wire.ResourceNotFound},
		{"InternalFailure", 500, wire.InternalFailure},
		{"InvalidSignatureException", 400, wire.InvalidSignature},
		{"ExpiredTokenException", 400, wire.AccessDenied},
		{"SomethingNew", 400, wire.InvalidArgument},
		{"SomethingNew", 503, wire.InternalFailure},
	} {
		if got := codeOfName(tt.name, tt.status); got != tt.want {
			t.Errorf("codeOfName(%s, %d) = %v, want %v", tt.name, tt.status, got, tt.want)
		}
	}
	if !errors.Is(&Error{Code: wire.InvalidSignature}, ErrAccessDenied) || errors.Is(&Error{Code: wire.Validation}, ErrAccessDenied) {
		t.Error("ErrAccessDenied must match the authentication failures, and them only")
	}
	if retryable(ErrNotFound) || retryable(ErrValidation) || !retryable(ErrInternal) || !retryable(wrapTransport(errors.New("reset"))) {
		t.Error("retryable")
	}
}
