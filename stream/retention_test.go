package stream

import (
	"errors"
	"testing"
	"time"
)

func TestRetention(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, dir, c, "off")
	if err := e.CreateStream(CreateStreamInput{Name: "r", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	put := func(data string) {
		res, err := e.PutRecords("r", []PutEntry{{PartitionKey: "k", Data: []byte(data)}})
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res[0].Err)
		}
	}
	read := func() []got {
		it, err := e.GetShardIterator(IteratorInput{Stream: "r", Shard: 0, Type: TrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		recs, _ := drain(t, e, it, 0)
		return recs
	}
	put("day 0")
	c.Advance(30 * time.Hour)
	put("day 1")
	if err := e.IncreaseRetention("r", 48); err != nil {
		t.Fatal(err)
	}
	if err := e.Maintain(); err != nil {
		t.Fatal(err)
	}
	if n := len(read()); n != 2 {
		t.Fatalf("%d records within 48 h, want 2", n)
	}
	// A decrease hides the older record at once.
	if err := e.DecreaseRetention("r", 24); err != nil {
		t.Fatal(err)
	}
	if recs := read(); len(recs) != 1 || recs[0].data != "day 1" {
		t.Fatalf("after decreasing: %+v", recs)
	}
	// And it persists.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = testEngine(t, dir, c, "off")
	defer e.Close()
	if d, _ := e.Describe("r"); d.RetentionHours != 24 {
		t.Fatalf("retention after restart: %d", d.RetentionHours)
	}
	if recs := read(); len(recs) != 1 {
		t.Fatalf("after restart: %+v", recs)
	}
	// The reaper expires the rest as time passes.
	c.Advance(25 * time.Hour)
	if err := e.Maintain(); err != nil {
		t.Fatal(err)
	}
	if recs := read(); len(recs) != 0 {
		t.Fatalf("expired records still readable: %+v", recs)
	}
	for _, tc := range []struct {
		err  error
		want error
	}{
		{e.IncreaseRetention("r", 8761), ErrInvalidArgument},
		{e.DecreaseRetention("r", 23), ErrInvalidArgument},
		{e.IncreaseRetention("r", 12), ErrInvalidArgument},
		{e.DecreaseRetention("r", 100), ErrInvalidArgument},
		{e.IncreaseRetention("nope", 48), ErrResourceNotFound},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Fatalf("%v, want %v", tc.err, tc.want.(*Error).Kind)
		}
	}
}
