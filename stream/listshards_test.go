package stream

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/shardmap"
)

func ids(shards []ShardDescription) []ShardID {
	out := make([]ShardID, 0, len(shards))
	for _, sd := range shards {
		out = append(out, sd.ID)
	}
	return out
}

// TestListShardsFilters builds a lineage at known times and checks each filter type against
// it, across a restart (the times come from the catalog):
//
//	t0        stream created with shards 0 and 1
//	t0+1h     0 splits into 2 and 3
//	t0+2h     2 and 3 merge into 4
//	t0+3h     now; retention 24 h, so the trim horizon is before t0
func TestListShardsFilters(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	c := &clock{t: t0}
	dir := t.TempDir()
	e := testEngine(t, dir, c, "off")
	if err := e.CreateStream(CreateStreamInput{Name: "f", ShardCount: 2}); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour)
	d, _ := e.Describe("f")
	if err := e.SplitShard("f", 0, d.Shards[0].Range.Start.Next().Next()); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour)
	if err := e.MergeShards("f", 2, 3); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour)
	e.Close()
	e = testEngine(t, dir, c, "off")
	defer e.Close()

	cases := []struct {
		name string
		f    ShardFilter
		want []ShardID
	}{
		{"default: every shard held", ShardFilter{}, []ShardID{0, 1, 2, 3, 4}},
		{"after shard 1", ShardFilter{Type: AfterShardID, After: 1}, []ShardID{2, 3, 4}},
		{"after the last", ShardFilter{Type: AfterShardID, After: 4}, []ShardID{}},
		{"at latest", ShardFilter{Type: AtLatest}, []ShardID{1, 4}},
		{"at trim horizon (before creation: the first shards)", ShardFilter{Type: AtTrimHorizon}, []ShardID{0, 1}},
		{"at creation", ShardFilter{Type: AtTimestampFilter, At: t0}, []ShardID{0, 1}},
		{"at a time before creation", ShardFilter{Type: AtTimestampFilter, At: t0.Add(-time.Hour)}, []ShardID{0, 1}},
		{"at the split: parent and children", ShardFilter{Type: AtTimestampFilter, At: t0.Add(time.Hour)}, []ShardID{0, 1, 2, 3}},
		{"between split and merge", ShardFilter{Type: AtTimestampFilter, At: t0.Add(90 * time.Minute)}, []ShardID{1, 2, 3}},
		{"after the merge", ShardFilter{Type: AtTimestampFilter, At: t0.Add(150 * time.Minute)}, []ShardID{1, 4}},
		{"from creation", ShardFilter{Type: FromTimestamp, At: t0}, []ShardID{0, 1, 2, 3, 4}},
		{"from between split and merge", ShardFilter{Type: FromTimestamp, At: t0.Add(90 * time.Minute)}, []ShardID{1, 2, 3, 4}},
		{"from after the merge", ShardFilter{Type: FromTimestamp, At: t0.Add(150 * time.Minute)}, []ShardID{1, 4}},
	}
	for _, tc := range cases {
		got, err := e.ListShards("f", tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(ids(got), tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, ids(got), tc.want)
		}
	}
	got, _ := e.ListShards("f", ShardFilter{})
	if !got[0].Created.Equal(t0) || !got[0].Closed.Equal(t0.Add(time.Hour)) || !got[4].Created.Equal(t0.Add(2*time.Hour)) || !got[4].Closed.IsZero() {
		t.Errorf("times after a restart: %+v", got)
	}
	if _, err := e.ListShards("nope", ShardFilter{}); !errors.Is(err, ErrResourceNotFound) {
		t.Fatalf("missing stream: %v", err)
	}
}

// TestListShardsTrimHorizon moves the trim horizon past a resharding: AT_TRIM_HORIZON then
// lists the shards open at it, and FROM_TIMESTAMP before it counts from it.
func TestListShardsTrimHorizon(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	c := &clock{t: t0}
	e := testEngine(t, t.TempDir(), c, "off")
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "h", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour)
	if err := e.SplitShard("h", 0, shardmap.Key{}.Next().Next()); err != nil {
		t.Fatal(err)
	}
	c.Advance(25 * time.Hour) // the trim horizon is now an hour after the split
	for _, tc := range []struct {
		name string
		f    ShardFilter
		want []ShardID
	}{
		{"at trim horizon", ShardFilter{Type: AtTrimHorizon}, []ShardID{1, 2}},
		{"from before the trim horizon", ShardFilter{Type: FromTimestamp, At: t0}, []ShardID{1, 2}},
		{"from trim horizon: everything held", ShardFilter{Type: FromTrimHorizon}, []ShardID{0, 1, 2}},
	} {
		got, err := e.ListShards("h", tc.f)
		if err != nil || !slices.Equal(ids(got), tc.want) {
			t.Errorf("%s: %v %v, want %v", tc.name, ids(got), err, tc.want)
		}
	}
}

// TestListShardsOldCatalog reads a catalog written before shards had creation times (no
// createdAt): every shard then dates from the stream's creation.
func TestListShardsOldCatalog(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	c := &clock{t: t0}
	dir := t.TempDir()
	e := testEngine(t, dir, c, "off")
	if err := e.CreateStream(CreateStreamInput{Name: "o", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour)
	if _, _, err := e.UpdateShardCount("o", 2); err != nil {
		t.Fatal(err)
	}
	e.Close()
	path := filepath.Join(dir, streamsDir, "o", metaFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	old := regexp.MustCompile(`(?s),\s*"createdAt": \{[^}]*\}`).ReplaceAll(b, nil)
	if len(old) == len(b) || strings.Contains(string(old), "createdAt") {
		t.Fatalf("catalog without createdAt not made: %s", b)
	}
	if err := os.WriteFile(path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	e = testEngine(t, dir, c, "off")
	defer e.Close()
	got, err := e.ListShards("o", ShardFilter{Type: AtTimestampFilter, At: t0})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(got), []ShardID{0, 1, 2}) { // 0 closed at t0+1h; 1 and 2 date from t0
		t.Fatalf("old catalog at creation: %v", ids(got))
	}
	for _, sd := range got {
		if !sd.Created.Equal(t0) {
			t.Fatalf("shard %v created %v, want the stream's creation", sd.ID, sd.Created)
		}
	}
}

// TestNextToken checks the page tokens: they round-trip, expire after PageTokenTTL, and a
// token altered, of another listing, or of a stream deleted or recreated is refused.
func TestNextToken(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "off")
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "p", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	f := ShardFilter{Type: AtTimestampFilter, At: time.UnixMilli(1_699_999_999_123), After: 7}
	tok, err := e.NextToken(PageShards, "p", 42, f)
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.ParseNextToken(PageShards, tok)
	if err != nil || p.Stream != "p" || p.After != 42 || p.Filter.Type != f.Type || !p.Filter.At.Equal(f.At) || p.Filter.After != 7 {
		t.Fatalf("round trip: %+v %v", p, err)
	}
	if _, err := e.ParseNextToken(PageConsumers, tok); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a shards token used for consumers: %v", err)
	}
	if _, err := e.GetRecords(tok, 1); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("a page token used as an iterator: %v", err)
	}
	b := []byte(tok)
	b[10] ^= 1
	for _, bad := range []string{string(b), "x", "", strings.Repeat("A", 600), tok[:len(tok)-2]} {
		if _, err := e.ParseNextToken(PageShards, bad); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("altered token %q: %v", bad, err)
		}
	}
	c.Advance(PageTokenTTL)
	if _, err := e.ParseNextToken(PageShards, tok); err != nil {
		t.Fatalf("at its TTL: %v", err)
	}
	c.Advance(time.Millisecond)
	if _, err := e.ParseNextToken(PageShards, tok); !errors.Is(err, ErrExpiredNextToken) {
		t.Fatalf("expired: %v", err)
	}
	tok, _ = e.NextToken(PageShards, "p", 0, ShardFilter{})
	if err := e.DeleteStream("p", false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ParseNextToken(PageShards, tok); !errors.Is(err, ErrResourceNotFound) {
		t.Fatalf("deleted stream: %v", err)
	}
	c.Advance(time.Second)
	if err := e.CreateStream(CreateStreamInput{Name: "p", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ParseNextToken(PageShards, tok); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("recreated stream: %v", err)
	}
}

// TestShardLimit checks that the account's shard limit counts open shards across streams,
// is enforced by CreateStream, SplitShard and UpdateShardCount with the real count in the
// message, is given back by DeleteStream, MergeShards and failed changes, and is counted
// again after a restart.
func TestShardLimit(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	dir := t.TempDir()
	open := func() *Engine {
		e, err := Open(Options{Dir: dir, Now: c.Now, Limits: Limits{Off: true}, SegmentSize: segment.MinSegmentSize, ShardLimit: 6})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := open()
	defer func() { e.Close() }()
	if err := e.CreateStream(CreateStreamInput{Name: "a", ShardCount: 4}); err != nil {
		t.Fatal(err)
	}
	if err := e.CreateStream(CreateStreamInput{Name: "b", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	if n := e.OpenShardCount(); n != 5 {
		t.Fatalf("open shards %d, want 5", n)
	}
	want := "This request would exceed the shard limit for the account 000000000000 in us-east-1. Current shard count for the account: 5. Limit: 6. Number of additional shards that would have resulted from this request: 2."
	if err := e.CreateStream(CreateStreamInput{Name: "c", ShardCount: 2}); !errors.Is(err, ErrLimitExceeded) || KindOf(err) != KindLimitExceeded || err.(*Error).Msg != want {
		t.Fatalf("CreateStream past the limit: %v", err)
	}
	if _, err := e.Describe("c"); !errors.Is(err, ErrResourceNotFound) {
		t.Fatalf("a refused CreateStream left a stream: %v", err)
	}
	if _, _, err := e.UpdateShardCount("b", 2); err != nil { // 6: at the limit
		t.Fatal(err)
	}
	d, _ := e.Describe("a")
	if err := e.SplitShard("a", 0, d.Shards[0].Range.Start.Next().Next()); !errors.Is(err, ErrLimitExceeded) || !strings.Contains(err.Error(), "Current shard count for the account: 6. Limit: 6.") {
		t.Fatalf("SplitShard past the limit: %v", err)
	}
	if _, _, err := e.UpdateShardCount("a", 8); !errors.Is(err, ErrLimitExceeded) {
		t.Fatalf("UpdateShardCount past the limit: %v", err)
	}
	if n := e.OpenShardCount(); n != 6 {
		t.Fatalf("refused changes kept shards: %d open, want 6", n)
	}
	if err := e.MergeShards("a", 0, 1); err != nil { // 5
		t.Fatal(err)
	}
	if err := e.SplitShard("a", 2, d.Shards[2].Range.Start.Next().Next()); err != nil { // 6
		t.Fatal(err)
	}
	if limit, open, od := e.Config().ShardLimit, e.OpenShardCount(), e.OnDemandStreamCount(); limit != 6 || open != 6 || od != 0 {
		t.Fatalf("limits: shard limit %d, %d open, %d on-demand streams", limit, open, od)
	}
	e.Close()
	e = open()
	if n := e.OpenShardCount(); n != 6 {
		t.Fatalf("after a restart: %d open, want 6", n)
	}
	if err := e.DeleteStream("b", false); err != nil {
		t.Fatal(err)
	}
	if err := e.CreateStream(CreateStreamInput{Name: "od", Mode: ModeOnDemand, ShardCount: 2}); err != nil {
		t.Fatalf("after DeleteStream gave shards back: %v", err)
	}
	if open, od := e.OpenShardCount(), e.OnDemandStreamCount(); open != 6 || od != 1 {
		t.Fatalf("limits: %d open, %d on-demand streams", open, od)
	}
}

// TestDeleteStreamWithConsumers: a stream with consumers is ResourceInUse unless the
// deletion is enforced, which takes its consumers with it.
func TestDeleteStreamWithConsumers(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "off")
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "d", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.RegisterConsumer("d", "app"); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteStream("d", false); !errors.Is(err, ErrResourceInUse) {
		t.Fatalf("DeleteStream with a consumer: %v", err)
	}
	if cs, err := e.ListConsumers("d"); err != nil || len(cs) != 1 {
		t.Fatalf("a refused deletion changed the stream: %v %v", cs, err)
	}
	if err := e.DeleteStream("d", true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ListConsumers("d"); !errors.Is(err, ErrResourceNotFound) {
		t.Fatalf("consumers of a deleted stream: %v", err)
	}
	if err := e.CreateStream(CreateStreamInput{Name: "d", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	if cs, _ := e.ListConsumers("d"); len(cs) != 0 {
		t.Fatalf("a new stream of the name inherited consumers: %v", cs)
	}
}

// TestOnDemandStreamLimit: at most OnDemandStreamsMax streams are ON_DEMAND, whether created
// so or switched by SetMode; a stream already on demand may be set so again.
func TestOnDemandStreamLimit(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "off")
	defer e.Close()
	for i := range OnDemandStreamsMax {
		if err := e.CreateStream(CreateStreamInput{Name: "od" + strconv.Itoa(i), Mode: ModeOnDemand, ShardCount: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.CreateStream(CreateStreamInput{Name: "one-more", Mode: ModeOnDemand, ShardCount: 1}); !errors.Is(err, ErrLimitExceeded) {
		t.Fatalf("CreateStream of a 51st on-demand stream: %v", err)
	}
	if err := e.CreateStream(CreateStreamInput{Name: "p", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	if err := e.SetMode("p", ModeOnDemand); !errors.Is(err, ErrLimitExceeded) {
		t.Fatalf("SetMode to a 51st on-demand stream: %v", err)
	}
	if err := e.SetMode("od0", ModeOnDemand); err != nil {
		t.Fatalf("SetMode of a stream already on demand: %v", err)
	}
	if err := e.SetMode("od0", ModeProvisioned); err != nil {
		t.Fatal(err)
	}
	if err := e.SetMode("p", ModeOnDemand); err != nil {
		t.Fatalf("SetMode after one left on-demand mode: %v", err)
	}
	if n := e.OnDemandStreamCount(); n != OnDemandStreamsMax {
		t.Fatalf("on-demand streams %d, want %d", n, OnDemandStreamsMax)
	}
}
