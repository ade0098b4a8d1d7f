package stream

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestSettings(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, dir, c, "off")
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1, Tags: map[string]string{"team": "a"}}); err != nil {
		t.Fatal(err)
	}
	if err := e.AddTags("s", map[string]string{"env": "ci", "team": "b"}); err != nil {
		t.Fatal(err)
	}
	if err := e.RemoveTags("s", []string{"env", "absent"}); err != nil {
		t.Fatal(err)
	}
	many := map[string]string{}
	for i := range MaxTagsPerStream {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	for _, tc := range []struct {
		err  error
		want error
	}{
		{e.AddTags("s", many), ErrLimitExceeded},
		{e.AddTags("s", map[string]string{"": "v"}), ErrInvalidArgument},
		{e.AddTags("nope", map[string]string{"k": "v"}), ErrResourceNotFound},
		{e.SetEncryption("s", "KMS", ""), ErrValidation},
		{e.SetEncryption("s", "AES", "k"), ErrValidation},
		{e.SetMode("s", "FAST"), ErrValidation},
		{e.SetMaxRecordSize("s", 20000), ErrValidation},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Fatalf("%v, want %v", tc.err, tc.want.(*Error).Kind)
		}
	}
	if err := e.SetEncryption("s", "KMS", "alias/aws/kinesis"); err != nil {
		t.Fatal(err)
	}
	if err := e.SetMode("s", ModeOnDemand); err != nil {
		t.Fatal(err)
	}
	if err := e.SetMaxRecordSize("s", 2048); err != nil {
		t.Fatal(err)
	}
	// A 2 MiB record now fits, and is marked as written under encryption.
	res, err := e.PutRecords("s", []PutEntry{{PartitionKey: "k", Data: make([]byte, 2<<20)}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res[0].Err)
	}
	it, _ := e.GetShardIterator(IteratorInput{Stream: "s", Shard: 0, Type: TrimHorizon})
	r, err := e.GetRecords(it, 1)
	if err != nil {
		t.Fatal(err)
	}
	recs := r.Records.Records()
	if !recs.Next() || recs.Record().Flags&1 == 0 {
		t.Fatal("a record written under KMS is not marked")
	}
	r.Release()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = testEngine(t, dir, c, "off")
	defer e.Close()
	tags, _ := e.Tags("s")
	d, _ := e.Describe("s")
	if len(tags) != 1 || tags[0] != (Tag{"team", "b"}) || d.Encryption != "KMS" || d.KeyID != "alias/aws/kinesis" || d.Mode != ModeOnDemand || d.MaxRecordKiB != 2048 {
		t.Fatalf("after restart: tags %v, %+v", tags, d)
	}
}

func TestClosedShardsExpire(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, t.TempDir(), c, "off")
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.PutRecords("s", []PutEntry{{PartitionKey: "k", Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if err := e.SplitShard("s", 0, mustKey(t, "1000")); err != nil {
		t.Fatal(err)
	}
	c.Advance(23 * time.Hour)
	if err := e.Maintain(); err != nil {
		t.Fatal(err)
	}
	if d, _ := e.Describe("s"); len(d.Shards) != 3 {
		t.Fatalf("a shard closed within the retention period was dropped: %d shards", len(d.Shards))
	}
	c.Advance(2 * time.Hour)
	if err := e.Maintain(); err != nil {
		t.Fatal(err)
	}
	d, _ := e.Describe("s")
	if len(d.Shards) != 2 || d.Shards[0].ID != 1 || d.Shards[0].Parent != 0 {
		t.Fatalf("after expiry: %+v", d.Shards)
	}
	if _, err := e.GetShardIterator(IteratorInput{Stream: "s", Shard: 0, Type: TrimHorizon}); !errors.Is(err, ErrResourceNotFound) {
		t.Fatalf("iterator on an expired shard: %v", err)
	}
}
