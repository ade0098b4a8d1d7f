package server

import (
	"errors"
	"testing"

	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/stream"
)

func TestDecodeAndPut(t *testing.T) {
	eng := openTestEngine(t, 2)
	failed, err := DecodeAndPut(eng, putRecordsBody(10, 100))
	if err != nil || failed != 0 {
		t.Fatalf("DecodeAndPut: %d failed, %v", failed, err)
	}
	total := 0
	for shard := range stream.ShardID(2) {
		it, err := eng.GetShardIterator(stream.IteratorInput{Stream: "s", Shard: shard, Type: stream.TrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		r, err := eng.GetRecords(it, 100)
		if err != nil {
			t.Fatal(err)
		}
		total += r.Records.Count
		r.Release()
	}
	if total != 10 {
		t.Fatalf("%d records in the stream, want 10", total)
	}

	var ae apiError
	if _, err := DecodeAndPut(eng, []byte(`{"StreamName":"s","Records":[{"Data":"AA==",`)); !errors.As(err, &ae) || ae.code != wire.Serialization {
		t.Fatalf("a truncated body: %v, want a SerializationException", err)
	}
	if _, err := DecodeAndPut(eng, putRecordsBody(1, 1)[:0]); err == nil {
		t.Fatal("an empty body was accepted")
	}
}
