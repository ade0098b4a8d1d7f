//go:build linux

// Linux only: these tests run the in-process server of server_test.go.

package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
)

// recordLine is a parsed record line of get's or tail's text output.
type recordLine struct {
	shard, seq, arrival, key, data string
}

// parseRecordLines parses the record lines of out and returns the "# " lines apart.
func parseRecordLines(t *testing.T, out string) (recs []recordLine, notes []string) {
	t.Helper()
	for l := range strings.Lines(out) {
		l = strings.TrimSuffix(l, "\n")
		if strings.HasPrefix(l, "# ") {
			notes = append(notes, l)
			continue
		}
		f := strings.SplitN(l, " ", 5)
		if len(f) != 5 || !strings.HasPrefix(f[0], "shardId-") || len(f[1]) != 56 {
			t.Fatalf("record line %q", l)
		}
		if _, err := time.Parse(time.RFC3339, f[2]); err != nil {
			t.Fatalf("record line %q: %v", l, err)
		}
		recs = append(recs, recordLine{f[0], f[1], f[2], f[3], f[4]})
	}
	return recs, notes
}

func TestGet(t *testing.T) {
	ts := startServer(t)
	ts.createStream(t, "s", 2)
	c, ctx := ts.client(t), testCtx(t)
	before := time.Now().Add(-time.Second)

	var out bytes.Buffer
	if _, err := PutLines(ctx, c, PutInput{Stream: "s", Key: "user1"}, strings.NewReader("one\ntwo\nthree\n"), Output{W: &out}); err != nil {
		t.Fatal(err)
	}
	puts := parsePutLines(t, out.String())
	shard := puts[0].shard
	if _, err := PutRecord(ctx, c, PutInput{Stream: "s", Key: "user1", Base64: true}, []byte("AAEC"), Output{W: &out}); err != nil {
		t.Fatal(err)
	}
	puts = parsePutLines(t, out.String())
	next := func(notes []string) string {
		t.Helper()
		for _, n := range notes {
			if s, ok := strings.CutPrefix(n, "# next: AT_SEQUENCE_NUMBER "); ok {
				return s
			}
		}
		t.Fatalf("no next position in %q", notes)
		return ""
	}
	get := func(in GetInput) ([]recordLine, []string) {
		t.Helper()
		in.Stream = "s"
		res, err := Get(ctx, c, in)
		if err != nil {
			t.Fatalf("%+v: %v", in, err)
		}
		var out bytes.Buffer
		if err := res.Write(Output{W: &out}); err != nil {
			t.Fatal(err)
		}
		return parseRecordLines(t, out.String())
	}

	// TRIM_HORIZON reads back the records with the sequence numbers put printed.
	recs, notes := get(GetInput{Shard: shard})
	if len(recs) != 4 {
		t.Fatalf("read %v", recs)
	}
	for i, want := range []string{"one", "two", "three", "base64:AAEC"} {
		if r := recs[i]; r.seq != puts[i].seq || r.shard != shard || r.key != "user1" || r.data != want {
			t.Errorf("record %d: %+v, want %s %s", i, r, puts[i].seq, want)
		}
	}
	if notes[0] != "# 4 records, 0 ms behind latest" {
		t.Errorf("notes %q", notes)
	}
	end := next(notes)

	// The next position reads nothing yet; its shard is the sequence number's.
	recs, notes = get(GetInput{SequenceNumber: end})
	if len(recs) != 0 || next(notes) != end || notes[0] != "# 0 records, 0 ms behind latest" {
		t.Errorf("at the end: %v %q", recs, notes)
	}
	recs, _ = get(GetInput{Shard: shard, Type: "AFTER_SEQUENCE_NUMBER", SequenceNumber: puts[0].seq})
	if len(recs) != 3 || recs[0].seq != puts[1].seq {
		t.Errorf("after the first: %v", recs)
	}
	recs, notes = get(GetInput{Shard: shard, Type: "at-sequence-number", SequenceNumber: puts[1].seq, Limit: 1})
	if len(recs) != 1 || recs[0].seq != puts[1].seq || next(notes) != puts[2].seq || !strings.HasPrefix(notes[0], "# 1 record, ") {
		t.Errorf("at the second, limit 1: %v %q", recs, notes)
	}
	if recs, _ = get(GetInput{Shard: shard, Type: "LATEST"}); len(recs) != 0 {
		t.Errorf("latest: %v", recs)
	}
	if recs, _ = get(GetInput{Shard: shard, Timestamp: before.Format(time.RFC3339Nano)}); len(recs) != 4 {
		t.Errorf("at a time before: %v", recs)
	}

	// JSON: the GetRecords shape, data in base64.
	res, err := Get(ctx, c, GetInput{Stream: "s", Shard: shard})
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := res.Write(Output{W: &out, JSON: true}); err != nil {
		t.Fatal(err)
	}
	var j struct {
		Records []struct {
			SequenceNumber, PartitionKey, ApproximateArrivalTimestamp string
			Data                                                      []byte
		}
		NextSequenceNumber string
		MillisBehindLatest *int64
		ChildShards        []any
	}
	if err := json.Unmarshal(out.Bytes(), &j); err != nil {
		t.Fatalf("%v\n%s", err, &out)
	}
	if len(j.Records) != 4 || j.Records[3].SequenceNumber != puts[3].seq || !bytes.Equal(j.Records[3].Data, []byte{0, 1, 2}) ||
		j.Records[0].PartitionKey != "user1" || j.NextSequenceNumber != end || j.MillisBehindLatest == nil || j.ChildShards != nil {
		t.Errorf("JSON %s", &out)
	}

	// A closed shard ends, and names its children.
	splitShard(ctx, t, c, "s", shard, "85070591730234615865843651857942052864")
	recs, notes = get(GetInput{Shard: shard})
	if len(recs) != 4 || len(notes) != 2 ||
		notes[1] != "# shard end: "+shard+" is closed and read to its end; children: shardId-000000000002 shardId-000000000003" {
		t.Errorf("closed shard: %v %q", recs, notes)
	}
	res, err = Get(ctx, c, GetInput{Stream: "s", Shard: shard, SequenceNumber: end})
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	res.Write(Output{W: &out, JSON: true})
	var ends struct {
		Records            []any
		NextSequenceNumber *string
		ChildShards        []struct {
			ShardId      string
			ParentShards []string
			HashKeyRange struct{ StartingHashKey, EndingHashKey string }
		}
	}
	if err := json.Unmarshal(out.Bytes(), &ends); err != nil {
		t.Fatal(err)
	}
	if len(ends.Records) != 0 || ends.NextSequenceNumber != nil || len(ends.ChildShards) != 2 ||
		ends.ChildShards[1].ShardId != "shardId-000000000003" || len(ends.ChildShards[1].ParentShards) != 1 ||
		ends.ChildShards[1].ParentShards[0] != shard || ends.ChildShards[1].HashKeyRange.StartingHashKey != "85070591730234615865843651857942052864" {
		t.Errorf("shard end JSON %s", &out)
	}
}

func TestGetErrors(t *testing.T) {
	ts := startServer(t)
	ts.createStream(t, "s", 2)
	c, ctx := ts.client(t), testCtx(t)
	seq1 := client.SeqNum{Shard: 1, Position: 1}.String()
	tests := []struct {
		name  string
		in    GetInput
		input bool  // ErrInput
		is    error // or this refusal of the server
	}{
		{name: "no shard", in: GetInput{}, input: true},
		{name: "bad shard", in: GetInput{Shard: "shard one"}, input: true},
		{name: "bad type", in: GetInput{Shard: "0", Type: "OLDEST"}, input: true},
		{name: "at without number", in: GetInput{Shard: "0", Type: "AT_SEQUENCE_NUMBER"}, input: true},
		{name: "number without at", in: GetInput{Shard: "0", Type: "TRIM_HORIZON", SequenceNumber: seq1}, input: true},
		{name: "timestamp without type", in: GetInput{Shard: "0", Type: "LATEST", Timestamp: "0"}, input: true},
		{name: "at timestamp without time", in: GetInput{Shard: "0", Type: "AT_TIMESTAMP"}, input: true},
		{name: "bad time", in: GetInput{Shard: "0", Timestamp: "noon"}, input: true},
		{name: "bad number", in: GetInput{SequenceNumber: "49590338271490256608559692538361571095921575989136588898"}, input: true},
		{name: "number of another shard", in: GetInput{Shard: "0", SequenceNumber: seq1}, input: true},
		{name: "limit", in: GetInput{Shard: "0", Limit: 10001}, input: true},
		{name: "unknown shard", in: GetInput{Shard: "shardId-000000000009"}, is: client.ErrNotFound},
		{name: "unknown stream", in: GetInput{Stream: "nope", Shard: "0"}, is: client.ErrNotFound},
		{name: "time to come", in: GetInput{Shard: "0", Timestamp: "4102444800"}, is: client.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.in.Stream == "" {
				tt.in.Stream = "s"
			}
			_, err := Get(ctx, c, tt.in)
			if tt.input != errors.Is(err, ErrInput) || tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err %v", err)
			}
		})
	}
}
