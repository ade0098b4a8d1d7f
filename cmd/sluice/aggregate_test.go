package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
)

// TestGetTailAggregated: records a Producer aggregated print through `sluice get` and
// `sluice tail` as their user records, each once, at the sequence number and sub-sequence
// number its Put was told; with --raw they print as stored.
func TestGetTailAggregated(t *testing.T) {
	ep := startServe(t)
	t.Setenv(endpointEnv, ep)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.New(client.Config{Endpoint: ep})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.CreateStream(ctx, "agg", 1); err != nil {
		t.Fatal(err)
	}
	p, err := c.NewProducer(ctx, "agg", client.ProducerConfig{Aggregate: true, Linger: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const n = 30
	fs := make([]*client.Future, n)
	for i := range fs {
		if fs[i], err = p.Put(ctx, fmt.Sprintf("user%d", i%7), fmt.Appendf(nil, "event-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // "seq/sub" → "key data"
	var seq client.SeqNum
	for i, f := range fs {
		o, _ := f.Outcome()
		if o.Err != nil || !o.Aggregated || i > 0 && o.SeqNum != seq {
			t.Fatalf("record %d: %+v; want it aggregated with the others", i, o)
		}
		seq = o.SeqNum
		want[fmt.Sprintf("%v/%d", o.SeqNum, o.SubSeq)] = fmt.Sprintf("user%d event-%d", i%7, i)
	}
	check := func(verb, out string) {
		t.Helper()
		got := map[string]string{}
		for l := range strings.Lines(out) {
			if strings.HasPrefix(l, "# ") {
				continue
			}
			f := strings.SplitN(strings.TrimSuffix(l, "\n"), " ", 5)
			if len(f) != 5 || f[0] != "shardId-000000000000" {
				t.Fatalf("%s printed %q", verb, l)
			}
			if _, dup := got[f[1]]; dup {
				t.Fatalf("%s printed %s twice", verb, f[1])
			}
			got[f[1]] = f[3] + " " + f[4]
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s printed\n%v\nwant\n%v", verb, got, want)
		}
	}
	check("get", mustSluice(t, "", "get", "--stream", "agg", "--shard-id", "0"))
	check("tail", mustSluice(t, "", "tail", "--stream", "agg", "--max-records", fmt.Sprint(n)))

	out := mustSluice(t, "", "get", "--stream", "agg", "--shard-id", "0", "--raw")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// One record: the aggregate, binary, so in base64 ("84mawg" is the KPL magic), then the
	// two "# " lines.
	if len(lines) != 3 || !strings.Contains(lines[0], " "+seq.String()+" ") || !strings.Contains(lines[0], " base64:84mawg") {
		t.Fatalf("get --raw printed\n%s", out)
	}
	out = mustSluice(t, "", "get", "--stream", "agg", "--shard-id", "0", "--json", "--limit", "1")
	if !strings.Contains(out, `"SubSequenceNumber": 29`) || strings.Count(out, `"SequenceNumber": "`+seq.String()) != n {
		t.Fatalf("get --json printed\n%s", out)
	}
}
