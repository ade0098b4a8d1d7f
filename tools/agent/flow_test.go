//go:build linux

package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/shardmap"
)

// TestTruncatedInPlace truncates a file without a copy after its lines were sent and writes
// new lines: fewer bytes than were read (the size tells), or more (the first bytes tell).
// The new lines are sent from the file's start, each once, and the old ones are not sent
// again.
func TestTruncatedInPlace(t *testing.T) {
	for _, tc := range []struct{ name, after string }{
		{"shorter", "b1\nb2\n"},
		{"longer", "b1 " + strings.Repeat("y", 200) + "\nb2\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t)
			ts.createStream(t, "s", 1)
			dir, ckpt := logDir(t)
			path := filepath.Join(dir, "app.log")
			before := "a1 " + strings.Repeat("x", 40) + "\na2\na3\n"
			appendTo(t, path, before)
			startAgent(t, ts, ckpt, flowOf("s", filepath.Join(dir, "*.log")))
			ts.waitRecords(t, "s", 3)
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			appendTo(t, path, tc.after)
			ts.waitRecords(t, "s", 5)
			appendTo(t, path, "b3\n")
			got := ts.waitRecords(t, "s", 6)
			want := slices.Concat(lines(before), lines(tc.after), []string{"b3\n"})
			if !slices.Equal(got, want) {
				t.Fatalf("stream holds\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// lines splits s into its lines, each with its '\n'.
func lines(s string) []string {
	l := strings.SplitAfter(s, "\n")
	return l[:len(l)-1]
}

// TestRenamedOutOfPattern renames a file to a name the pattern does not match while its
// writer still holds it open: the lines written after the rename are sent, the new file
// at the old name is followed, and the renamed file is let go (neither in the stats nor in
// the checkpoint) once it stayed read to its end.
func TestRenamedOutOfPattern(t *testing.T) {
	ts := startServer(t)
	ts.createStream(t, "s", 1)
	dir, ckpt := logDir(t)
	path := filepath.Join(dir, "app.log")
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	write := func(s string) {
		if _, err := w.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	write("l1\nl2\n")
	a := startAgent(t, ts, ckpt, flowOf("s", path))
	ts.waitRecords(t, "s", 2)
	old := filepath.Join(dir, "app.old")
	if err := os.Rename(path, old); err != nil {
		t.Fatal(err)
	}
	write("l3\nl4\n")
	appendTo(t, path, "n1\n")
	got := ts.waitRecords(t, "s", 5)
	slices.Sort(got)
	if want := []string{"l1\n", "l2\n", "l3\n", "l4\n", "n1\n"}; !slices.Equal(got, want) {
		t.Fatalf("stream holds %q, want %q", got, want)
	}
	waitUntil(t, "the renamed file is let go", func() bool {
		fs := a.Stats()[0].Files
		return len(fs) == 1 && fs[0].Path == path
	})
	a.stop(t)
	ck, err := loadCheckpoint(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	st := ck.Flows["s "+path]
	if st == nil || len(st.Files) != 1 || st.Files[0].Path != path || st.Files[0].Off != 3 {
		t.Fatalf("checkpoint keeps %+v, want only %s at offset 3", st, path)
	}
	if got := ts.records(t, "s"); len(got) != 5 {
		t.Fatalf("stream holds %d records after the stop, want 5: %q", len(got), got)
	}
}

// TestMultiLineFlushedWhenIdle sends records of several lines (multiLineStartPattern): a
// record ends where the next one starts, and the file's last record is sent, whole, once
// the file stayed idle for the buffer age.
func TestMultiLineFlushedWhenIdle(t *testing.T) {
	ts := startServer(t)
	ts.createStream(t, "s", 1)
	dir, ckpt := logDir(t)
	fl := flowOf("s", filepath.Join(dir, "*.log"))
	fl.MultiLineStart = regexp.MustCompile(`^\[`)
	fl.MaxBufferAge = 200 * time.Millisecond
	appendTo(t, filepath.Join(dir, "app.log"), "[1] first\n  at a\n  at b\n[2] second\n  at c\n")
	a := startAgent(t, ts, ckpt, fl)
	got := ts.waitRecords(t, "s", 2)
	if want := []string{"[1] first\n  at a\n  at b\n", "[2] second\n  at c\n"}; !slices.Equal(got, want) {
		t.Fatalf("stream holds %q, want %q", got, want)
	}
	waitUntil(t, "the records are counted as sent", func() bool { return a.Stats()[0].RecordsSent == 2 })
	if s := a.Stats()[0]; s.LinesRead != 5 {
		t.Fatalf("stats: %d lines read, want 5", s.LinesRead)
	}
}

// TestSkipHeaderLines leaves out the first skipHeaderLines lines of every file, of a file
// found at the start and of one created later, and counts them as read.
func TestSkipHeaderLines(t *testing.T) {
	ts := startServer(t)
	ts.createStream(t, "s", 1)
	dir, ckpt := logDir(t)
	fl := flowOf("s", filepath.Join(dir, "*.csv"))
	fl.SkipHeaderLines = 2
	appendTo(t, filepath.Join(dir, "a.csv"), "h1\nh2\nr1\nr2\n")
	a := startAgent(t, ts, ckpt, fl)
	ts.waitRecords(t, "s", 2)
	appendTo(t, filepath.Join(dir, "b.csv"), "h1\n")
	appendTo(t, filepath.Join(dir, "b.csv"), "h2\nr3\n")
	got := ts.waitRecords(t, "s", 3)
	if want := []string{"r1\n", "r2\n", "r3\n"}; !slices.Equal(got, want) {
		t.Fatalf("stream holds %q, want %q", got, want)
	}
	waitUntil(t, "every line is counted", func() bool { return a.Stats()[0].LinesRead == 7 })
}

// TestInitialPosition starts a flow for the first time over a file already there: with
// END_OF_FILE its lines are not sent, with START_OF_FILE they are. The lines appended
// afterwards, a file created later, and a file created while the agent was stopped are sent
// from their start either way: initialPosition applies to a flow's very first start only.
func TestInitialPosition(t *testing.T) {
	for _, tc := range []struct {
		name string
		pos  Position
		want []string
	}{
		{"END_OF_FILE", EndOfFile, []string{"d1\n", "l1\n", "new1\n"}},
		{"START_OF_FILE", StartOfFile, []string{"d1\n", "l1\n", "new1\n", "old1\n", "old2\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t)
			ts.createStream(t, "s", 1)
			dir, ckpt := logDir(t)
			fl := flowOf("s", filepath.Join(dir, "*.log"))
			fl.InitialPosition = tc.pos
			appendTo(t, filepath.Join(dir, "app.log"), "old1\nold2\n")
			a := startAgent(t, ts, ckpt, fl)
			waitUntil(t, "the file is followed", func() bool { return len(a.Stats()[0].Files) == 1 })
			appendTo(t, filepath.Join(dir, "app.log"), "new1\n")
			appendTo(t, filepath.Join(dir, "later.log"), "l1\n")
			ts.waitRecords(t, "s", len(tc.want)-1)
			a.stop(t)
			appendTo(t, filepath.Join(dir, "down.log"), "d1\n")
			startAgent(t, ts, ckpt, fl)
			got := ts.waitRecords(t, "s", len(tc.want))
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("stream holds %q, want %q", got, tc.want)
			}
		})
	}
}

// TestReconcileReadsChildShards restarts a flow whose checkpoint holds a batch in flight
// and marks taken before a shard was split: some records of the batch are in the children,
// which have no mark. The agent finds them there and puts only the others: each record of
// the batch is in the stream once.
func TestReconcileReadsChildShards(t *testing.T) {
	ts := startServer(t)
	ts.createStream(t, "s", 1)
	ctx := context.Background()
	put := func(recs []pendingRecord) {
		t.Helper()
		var e []client.PutEntry
		for _, r := range recs {
			e = append(e, client.PutEntry{Key: r.Key, Data: r.Data})
		}
		res, err := ts.c.PutRecords(ctx, "s", e)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	var m recordMaker
	mk := func(prefix string, n int) []pendingRecord {
		var out []pendingRecord
		for i := range n {
			key, data, _ := m.make(fmt.Appendf(nil, "%s%d\n", prefix, i))
			out = append(out, pendingRecord{Key: key, Data: data})
		}
		return out
	}
	put(mk("before-", 20)) // on shard 0, before its mark
	tip, err := ts.c.GetRecords(ctx, "s", client.GetInput{Shard: 0, Start: client.Latest, MaxRecords: 1})
	if err != nil {
		t.Fatal(err)
	}
	mark := tip.Next
	tip.Release()
	batch := mk("batch-", 60)
	put(batch[:10]) // on shard 0, after its mark
	half, err := shardmap.ParseKey("170141183460469231731687303715884105728")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.eng.SplitShard("s", 0, half); err != nil {
		t.Fatal(err)
	}
	put(batch[10:40]) // in the children, created after the mark
	dir, ckpt := logDir(t)
	fl := flowOf("s", filepath.Join(dir, "*.log"))
	ck := &checkpoint{Version: checkpointVersion, Flows: map[string]*flowState{
		"s " + fl.FilePattern: {Marks: map[uint32]uint64{0: mark}, Pending: batch}}}
	if err := ck.save(ckpt); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, ts, ckpt, fl)
	waitUntil(t, "the batch is delivered", func() bool { return a.Stats()[0].Batches == 1 })
	if s := a.Stats()[0]; s.FoundInStream != 40 || s.RecordsSent != 60 {
		t.Errorf("found %d records of the batch in the stream and sent %d, want 40 and 60", s.FoundInStream, s.RecordsSent)
	}
	count := map[string]int{}
	for _, r := range ts.records(t, "s") {
		count[r]++
	}
	for _, r := range batch {
		if n := count[string(r.Data)]; n != 1 {
			t.Errorf("%q is in the stream %d times", r.Data, n)
		}
	}
}

// TestBatchBytesBound fills batches by maxBufferSizeBytes: a batch never holds more keys
// and data than the limit, the record that would pass it opens the next batch, and every
// line is sent once, in order.
func TestBatchBytesBound(t *testing.T) {
	ts := startServer(t)
	ts.createStream(t, "s", 1)
	dir, ckpt := logDir(t)
	var text strings.Builder
	for i := range 10 {
		fmt.Fprintf(&text, "line %d %s\n", i, strings.Repeat("z", 60)) // 32 bytes of key, 68 of data
	}
	appendTo(t, filepath.Join(dir, "app.log"), text.String())
	fl := flowOf("s", filepath.Join(dir, "*.log"))
	fl.MaxBufferBytes = 350 // 3 records and a half
	a := startAgent(t, ts, ckpt, fl)
	got := ts.waitRecords(t, "s", 10)
	if want := lines(text.String()); !slices.Equal(got, want) {
		t.Fatalf("stream holds %q, want %q", got, want)
	}
	waitUntil(t, "every record is acknowledged", func() bool { return a.Stats()[0].RecordsSent == 10 })
	a.stop(t) // the batch's count follows its records' acknowledgement
	if s := a.Stats()[0]; s.Batches != 4 || s.LinesRead != 10 {
		t.Errorf("%d batches, %d lines read; want 4 batches of at most 3 records, 10 lines", s.Batches, s.LinesRead)
	}
}

// TestCallCutter cuts runs of records into PutRecords calls by records and by bytes, at
// least one record a call, and tells when a call is full.
func TestCallCutter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []int
		calls []int // the records of each call
		full  bool
	}{
		{"by records", []int{1, 1, 1, 1, 1, 1, 1}, []int{3, 3, 1}, true},
		{"by bytes", []int{40, 40, 30, 90, 10}, []int{2, 1, 2}, true},
		{"a record over the bytes", []int{150, 10}, []int{1, 1}, true},
		{"one call not full", []int{10, 10}, []int{2}, false},
		{"one call at the records", []int{10, 10, 10}, []int{3}, true},
		{"one call at the bytes", []int{50, 50}, []int{2}, true},
	} {
		c := callCutter{maxRecords: 3, maxBytes: 100}
		var calls []int
		for _, n := range tc.sizes {
			if c.opens(n) {
				calls = append(calls, 0)
			}
			c.add(n)
			calls[len(calls)-1]++
		}
		if !slices.Equal(calls, tc.calls) || c.n != len(tc.calls) || c.oneFull() != tc.full {
			t.Errorf("%s: calls %v (counted %d), full %v; want %v, %v", tc.name, calls, c.n, c.oneFull(), tc.calls, tc.full)
		}
	}
}

// TestTwoFlows runs two flows that share the checkpoint file, each with many small calls:
// each stream holds its file's lines once, in order, and each flow's state is saved under
// its own key. Under -race, it checks that one flow's save never reads the records another
// flow is filling.
func TestTwoFlows(t *testing.T) {
	ts := startServer(t)
	dir, ckpt := logDir(t)
	var flows []Flow
	want := map[string][]string{}
	for _, name := range []string{"a", "b"} {
		ts.createStream(t, name, 1)
		var text strings.Builder
		for i := range 3000 {
			fmt.Fprintf(&text, "%s %d\n", name, i)
		}
		appendTo(t, filepath.Join(dir, "app."+name), text.String())
		want[name] = lines(text.String())
		fl := flowOf(name, filepath.Join(dir, "*."+name))
		fl.MaxBufferRecords = 7
		flows = append(flows, fl)
	}
	a := startAgent(t, ts, ckpt, flows...)
	for name, w := range want {
		if got := ts.waitRecords(t, name, len(w)); !slices.Equal(got, w) {
			t.Errorf("stream %s: %d records, want the %d lines of its file in order", name, len(got), len(w))
		}
	}
	a.stop(t)
	ck, err := loadCheckpoint(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	for _, fl := range flows {
		st := ck.Flows[fl.Stream+" "+fl.FilePattern]
		if st == nil || len(st.Pending) != 0 || len(st.Files) != 1 || st.Files[0].Line != 3000 {
			t.Errorf("flow %s: checkpoint %+v, want its file at line 3000 and nothing pending", fl.Stream, st)
		}
	}
}

// TestBytesBehindUntilSent reads three lines into a batch that waits (its age limit is an
// hour, its record limit four): they are counted as read, not sent, and their bytes as
// behind. A fourth line fills the batch, which is sent: nothing is behind then.
func TestBytesBehindUntilSent(t *testing.T) {
	ts := startServer(t)
	ts.createStream(t, "s", 1)
	dir, ckpt := logDir(t)
	path := filepath.Join(dir, "app.log")
	fl := flowOf("s", filepath.Join(dir, "*.log"))
	fl.MaxBufferAge, fl.MaxBufferRecords = time.Hour, 4
	const three = "l1\nl2\nl3\n"
	appendTo(t, path, three)
	a := startAgent(t, ts, ckpt, fl)
	fileSeen := func(size int64) bool {
		s := a.Stats()[0]
		return len(s.Files) == 1 && s.Files[0].Size == size
	}
	waitUntil(t, "three lines read", func() bool { return a.Stats()[0].LinesRead == 3 && fileSeen(int64(len(three))) })
	s := a.Stats()[0]
	if s.RecordsSent != 0 || s.BytesBehind != int64(len(three)) || s.Files[0].BytesBehind != int64(len(three)) {
		t.Fatalf("with three lines waiting: %d records sent, %d bytes behind (file %+v), want 0 and %d",
			s.RecordsSent, s.BytesBehind, s.Files[0], len(three))
	}
	appendTo(t, path, "l4\n")
	if got := ts.waitRecords(t, "s", 4); !slices.Equal(got, []string{"l1\n", "l2\n", "l3\n", "l4\n"}) {
		t.Fatalf("stream holds %q", got)
	}
	waitUntil(t, "nothing behind", func() bool {
		s := a.Stats()[0]
		return s.RecordsSent == 4 && s.BytesBehind == 0 && fileSeen(int64(len(three)+3)) && s.Files[0].BytesBehind == 0
	})
}
