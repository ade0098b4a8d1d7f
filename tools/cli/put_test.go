//go:build linux

// Linux only: these tests run the in-process server of server_test.go.

package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/client"
)

// putLine is a parsed line of put's text output.
type putLine struct{ shard, seq string }

func parsePutLines(t *testing.T, out string) []putLine {
	t.Helper()
	var lines []putLine
	for l := range strings.Lines(out) {
		f := strings.Fields(l)
		if len(f) != 2 || !strings.HasPrefix(f[0], "shardId-") || len(f[1]) != 56 {
			t.Fatalf("put printed %q", l)
		}
		lines = append(lines, putLine{f[0], f[1]})
	}
	return lines
}

func TestPutRecord(t *testing.T) {
	ts := startServer(t)
	ts.createStream(t, "s", 2)
	c, ctx := ts.client(t), testCtx(t)

	var out bytes.Buffer
	seq, err := PutRecord(ctx, c, PutInput{Stream: "s", Key: "user1"}, []byte("hello"), Output{W: &out})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("shardId-%012d %s\n", seq.Shard, seq); out.String() != want {
		t.Errorf("printed %q, want %q", &out, want)
	}

	// An explicit hash key in the upper half routes to shard 1 whatever the key.
	out.Reset()
	seq, err = PutRecord(ctx, c, PutInput{Stream: "s", Key: "user1", ExplicitHashKey: "340282366920938463463374607431768211455"},
		[]byte("AAH/"), Output{W: &out, JSON: true})
	if err != nil {
		t.Fatal(err)
	}
	var res PutResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("%v: %s", err, &out)
	}
	if seq.Shard != 1 || res.ShardId != "shardId-000000000001" || res.SequenceNumber != seq.String() {
		t.Errorf("explicit hash key: %+v, %+v", seq, res)
	}

	// Base64 data is decoded before it is sent.
	seq, err = PutRecord(ctx, c, PutInput{Stream: "s", Key: "bin", Base64: true}, []byte("AAH/"), Output{W: &out})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetRecords(ctx, "s", client.GetInput{Shard: seq.Shard, Start: client.AtSequenceNumber, Value: seq.Position, MaxRecords: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Records) != 1 || !bytes.Equal(got.Records[0].Data, []byte{0, 1, 0xff}) {
		t.Errorf("base64 record read back as %+v", got.Records)
	}
	got.Release()

	for _, tt := range []struct {
		name  string
		in    PutInput
		data  string
		input bool // ErrInput rather than the server's refusal
		is    error
	}{
		{name: "unknown stream", in: PutInput{Stream: "nope", Key: "k"}, is: client.ErrNotFound},
		{name: "empty key", in: PutInput{Stream: "s"}, input: true},
		{name: "long key", in: PutInput{Stream: "s", Key: strings.Repeat("k", 257)}, input: true},
		{name: "bad hash key", in: PutInput{Stream: "s", Key: "k", ExplicitHashKey: "-1"}, input: true},
		{name: "hash key too big", in: PutInput{Stream: "s", Key: "k", ExplicitHashKey: "340282366920938463463374607431768211456"}, input: true},
		{name: "bad base64", in: PutInput{Stream: "s", Key: "k", Base64: true}, data: "!!", input: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := PutRecord(ctx, c, tt.in, []byte(tt.data), Output{W: &out})
			if tt.input && !errors.Is(err, ErrInput) || tt.is != nil && !errors.Is(err, tt.is) || err == nil {
				t.Errorf("err %v", err)
			}
			if out.Len() > 0 {
				t.Errorf("printed %q", &out)
			}
		})
	}
}

func TestPutLines(t *testing.T) {
	ts := startServer(t)
	ts.createStream(t, "s", 4)
	c, ctx := ts.client(t), testCtx(t)

	// One key: every record on one shard, in line order.
	var in strings.Builder
	for i := range 300 {
		fmt.Fprintf(&in, "record %d\r\n", i)
	}
	in.WriteString("\n") // an empty line is a record with no data
	var out, diag bytes.Buffer
	sum, err := PutLines(ctx, c, PutInput{Stream: "s", Key: "one"}, strings.NewReader(in.String()), Output{W: &out, Diag: &diag})
	if err != nil || sum.Appended != 301 || sum.Failed != 0 || diag.Len() > 0 {
		t.Fatalf("%+v %v %s", sum, err, &diag)
	}
	lines := parsePutLines(t, out.String())
	if len(lines) != 301 {
		t.Fatalf("%d lines printed", len(lines))
	}
	for i := 1; i < len(lines); i++ {
		if lines[i].shard != lines[0].shard || lines[i].seq <= lines[i-1].seq {
			t.Fatalf("line %d: %v after %v", i+1, lines[i], lines[i-1])
		}
	}
	shard, _ := ParseShard(lines[0].shard)
	got, err := c.GetRecords(ctx, "s", client.GetInput{Shard: shard, Start: client.TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Release()
	if len(got.Records) != 301 {
		t.Fatalf("read %d records", len(got.Records))
	}
	for i, r := range got.Records {
		want := fmt.Sprintf("record %d", i)
		if i == 300 {
			want = ""
		}
		if string(r.Key) != "one" || string(r.Data) != want || r.SequenceNumber() != lines[i].seq {
			t.Fatalf("record %d: %s %q %s, want %q %s", i, r.Key, r.Data, r.SequenceNumber(), want, lines[i].seq)
		}
	}

	// No key: a random key per record spreads them over the shards; JSON lines.
	in.Reset()
	for i := range 200 {
		fmt.Fprintf(&in, "r%d\n", i)
	}
	out.Reset()
	sum, err = PutLines(ctx, c, PutInput{Stream: "s"}, strings.NewReader(in.String()), Output{W: &out, JSON: true})
	if err != nil || sum.Appended != 200 {
		t.Fatalf("%+v %v", sum, err)
	}
	shards := map[string]int{}
	for l := range strings.Lines(out.String()) {
		var res PutResult
		if err := json.Unmarshal([]byte(l), &res); err != nil || len(res.SequenceNumber) != 56 {
			t.Fatalf("%q: %v", l, err)
		}
		shards[res.ShardId]++
	}
	if len(shards) != 4 {
		t.Errorf("200 random keys went to %v", shards)
	}

	// Base64 lines carry binary data, newlines included.
	out.Reset()
	if _, err := PutLines(ctx, c, PutInput{Stream: "s", Key: "bin", Base64: true}, strings.NewReader("AAoB\n"), Output{W: &out}); err != nil {
		t.Fatal(err)
	}
	pl := parsePutLines(t, out.String())[0]
	seq, _ := client.ParseSeqNum(pl.seq)
	bin, err := c.GetRecords(ctx, "s", client.GetInput{Shard: seq.Shard, Start: client.AtSequenceNumber, Value: seq.Position, MaxRecords: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bin.Records[0].Data, []byte{0, '\n', 1}) {
		t.Errorf("read back %q", bin.Records[0].Data)
	}
	bin.Release()
}

func TestPutLinesErrors(t *testing.T) {
	ts := startServer(t)
	ts.createStream(t, "s", 1)
	c, ctx := ts.client(t), testCtx(t)
	tests := []struct {
		name     string
		in       PutInput
		lines    string
		input    bool   // ErrInput
		is       error  // or this
		contains string // in the error
		appended int    // lines appended before the failure
	}{
		{name: "unknown stream", in: PutInput{Stream: "nope"}, lines: "a\n", is: client.ErrNotFound},
		{name: "explicit hash key", in: PutInput{Stream: "s", ExplicitHashKey: "1"}, lines: "a\n", input: true},
		{name: "bad key", in: PutInput{Stream: "s", Key: strings.Repeat("é", 257)}, lines: "a\n", input: true},
		{name: "line too long", in: PutInput{Stream: "s", Key: "k"}, lines: "a\nb\n" + strings.Repeat("x", 1<<20+1) + "\nc\n",
			contains: "line 3: longer than the stream's largest record (1024 KiB)", appended: 2},
		{name: "line far too long", in: PutInput{Stream: "s", Key: "k"}, lines: "a\n" + strings.Repeat("x", 2<<20) + "\nc\n",
			contains: "line 2: longer than the stream's largest record (1024 KiB)", appended: 1},
		{name: "bad base64", in: PutInput{Stream: "s", Key: "k", Base64: true}, lines: "YQ==\n!\n", contains: "line 2: not base64", appended: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, diag bytes.Buffer
			sum, err := PutLines(ctx, c, tt.in, strings.NewReader(tt.lines), Output{W: &out, Diag: &diag})
			switch {
			case err == nil:
				t.Fatal("no error")
			case tt.input && !errors.Is(err, ErrInput), !tt.input && errors.Is(err, ErrInput):
				t.Errorf("err %v: ErrInput is %v, want %v", err, errors.Is(err, ErrInput), tt.input)
			case tt.is != nil && !errors.Is(err, tt.is):
				t.Errorf("err %v, want %v", err, tt.is)
			case !strings.Contains(err.Error(), tt.contains):
				t.Errorf("err %q, want %q in it", err, tt.contains)
			}
			if sum.Appended != tt.appended || strings.Count(out.String(), "\n") != tt.appended {
				t.Errorf("%+v, printed %q", sum, &out)
			}
		})
	}
}
