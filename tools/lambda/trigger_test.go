//go:build linux

package lambda

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/sluice-streams/sluice/client"
)

// fixture is a server, a stream on it, and a trigger of the test handler.
type fixture struct {
	ts       *testServer
	stream   string
	arn      string
	dir      string
	log      string // the handler's log
	release  string // the file that releases a blocked handler
	dest     string // the on-failure destination file
	trig     *Trigger
	stopped  chan error
	cancel   context.CancelFunc
	timeout  time.Duration
	env      []string
	checkpnt string
	now      func() time.Time // the trigger's clock; nil means time.Now
}

func newFixture(t *testing.T, shards int) *fixture {
	ts := startServer(t)
	dir := t.TempDir()
	f := &fixture{ts: ts, stream: "events", dir: dir, log: filepath.Join(dir, "handler.log"),
		release: filepath.Join(dir, "release"), dest: filepath.Join(dir, "failures.jsonl"),
		checkpnt: filepath.Join(dir, "checkpoint.json")}
	f.arn = ts.createStream(t, f.stream, shards)
	return f
}

// start runs a trigger with the mapping's JSON (EventSourceArn and StartingPosition
// TRIM_HORIZON added unless present) until the test ends or stop.
func (f *fixture) start(t *testing.T, mapping map[string]any) {
	t.Helper()
	if _, ok := mapping["EventSourceArn"]; !ok {
		mapping["EventSourceArn"] = f.arn
	}
	if _, ok := mapping["StartingPosition"]; !ok {
		mapping["StartingPosition"] = "TRIM_HORIZON"
	}
	b, err := json.Marshal(mapping)
	if err != nil {
		t.Fatal(err)
	}
	m, warnings, err := ParseMapping(b)
	if err != nil || len(warnings) > 0 {
		t.Fatal(err, warnings)
	}
	env := append([]string{"HANDLER_LOG=" + f.log, "RELEASE=" + f.release}, f.env...)
	f.trig, err = New(f.ts.c, Options{Mapping: m, CheckpointFile: f.checkpnt,
		Function:     FunctionConfig{Handler: buildHandler(t), Env: env, Timeout: f.timeout, Output: t.Output()},
		PollInterval: 50 * time.Millisecond, RetryBackoff: 10 * time.Millisecond, MaxRetryBackoff: 50 * time.Millisecond,
		Now: f.now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel, f.stopped = cancel, make(chan error, 1)
	go func() { f.stopped <- f.trig.Run(ctx) }()
	t.Cleanup(func() { f.stop(t) })
}

// stop stops the trigger and fails the test if it stopped for another reason.
func (f *fixture) stop(t *testing.T) {
	if f.cancel == nil {
		return
	}
	f.cancel()
	f.cancel = nil
	if err := <-f.stopped; !errors.Is(err, context.Canceled) {
		t.Errorf("the trigger stopped: %v", err)
	}
	f.trig.Close()
}

// delivered returns the sequence numbers each logLine got, and the data of each record.
func delivered(invs []logLine) (batches [][]string, data map[string]string) {
	data = map[string]string{}
	for _, inv := range invs {
		var seqs []string
		for _, r := range inv.Records {
			seqs = append(seqs, r.Kinesis.SequenceNumber)
			data[r.Kinesis.SequenceNumber] = string(r.Kinesis.Data)
		}
		batches = append(batches, seqs)
	}
	return batches, data
}

// countRecords is the number of records in invs.
func countRecords(invs []logLine) int {
	n := 0
	for _, inv := range invs {
		n += len(inv.Records)
	}
	return n
}

// TestDeliversEachShardInOrderOnce puts records in two shards and checks that the handler,
// a function built with aws-lambda-go, gets each exactly once, in order within its shard,
// in batches of at most BatchSize, in events that carry what Lambda's do.
func TestDeliversEachShardInOrderOnce(t *testing.T) {
	f := newFixture(t, 2)
	const n = 300
	keys, data := make([]string, n), make([]string, n)
	for i := range n {
		keys[i], data[i] = fmt.Sprintf("key-%d", i%17), fmt.Sprintf("record %d", i)
	}
	f.ts.put(t, f.stream, keys[:n/2], data[:n/2])
	f.start(t, map[string]any{"BatchSize": 40, "FunctionName": "recorder"})
	f.ts.put(t, f.stream, keys[n/2:], data[n/2:])
	waitFor(t, "every record", func() bool { return countRecords(readLog(t, f.log)) >= n })
	// The handler logs a batch before it answers: the trigger counts the answer after.
	waitFor(t, "the trigger to count every record", func() bool { return f.trig.Stats().Records >= uint64(n) })
	f.stop(t)

	invs := readLog(t, f.log)
	if got := countRecords(invs); got != n {
		t.Fatalf("%d records delivered, want %d", got, n)
	}
	perShard := map[string][]client.SeqNum{}
	seen := map[string]bool{}
	for _, inv := range invs {
		if len(inv.Records) > 40 || len(inv.Records) == 0 {
			t.Errorf("an logLine of %d records, want 1…40", len(inv.Records))
		}
		if inv.Function != "recorder" || !inv.Deadline || inv.RequestID == "" {
			t.Errorf("logLine context: function %q, deadline %v, request id %q", inv.Function, inv.Deadline, inv.RequestID)
		}
		shard := ""
		for _, r := range inv.Records {
			seq, err := client.ParseSeqNum(r.Kinesis.SequenceNumber)
			if err != nil {
				t.Fatal(err)
			}
			id, _, _ := strings.Cut(r.EventID, ":")
			if shard == "" {
				shard = id
			} else if id != shard {
				t.Errorf("one logLine has records of %s and %s", shard, id)
			}
			if r.EventID != fmt.Sprintf("shardId-%012d:%s", seq.Shard, r.Kinesis.SequenceNumber) {
				t.Errorf("eventID %q of %s", r.EventID, r.Kinesis.SequenceNumber)
			}
			if r.EventSource != "aws:kinesis" || r.EventName != "aws:kinesis:record" || r.EventVersion != "1.0" ||
				r.Kinesis.KinesisSchemaVersion != "1.0" || r.EventSourceArn != f.arn || r.AwsRegion == "" ||
				!strings.HasPrefix(r.InvokeIdentityArn, "arn:aws:iam::") {
				t.Errorf("record fields: %+v", r)
			}
			if age := time.Since(r.Kinesis.ApproximateArrivalTimestamp.Time); age < 0 || age > time.Hour {
				t.Errorf("approximateArrivalTimestamp %v", r.Kinesis.ApproximateArrivalTimestamp.Time)
			}
			if seen[r.Kinesis.SequenceNumber] {
				t.Errorf("record %s delivered twice", r.Kinesis.SequenceNumber)
			}
			seen[r.Kinesis.SequenceNumber] = true
			perShard[id] = append(perShard[id], seq)
			var i int
			if _, err := fmt.Sscanf(string(r.Kinesis.Data), "record %d", &i); err != nil || r.Kinesis.PartitionKey != keys[i] {
				t.Errorf("record %s: data %q, key %q", r.Kinesis.SequenceNumber, r.Kinesis.Data, r.Kinesis.PartitionKey)
			}
		}
	}
	if len(perShard) != 2 {
		t.Errorf("records of %d shards, want 2", len(perShard))
	}
	for id, seqs := range perShard {
		if !slices.IsSortedFunc(seqs, func(a, b client.SeqNum) int {
			if a.Less(b) {
				return -1
			}
			return 1
		}) {
			t.Errorf("%s delivered out of order", id)
		}
	}
	if st := f.trig.Stats(); st.Records != n || st.FunctionErrors != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestParallelizationKeepsKeyOrder reads one shard with ParallelizationFactor 4: every
// record comes exactly once, each key's records in order, and a key's records never share
// an invocation with another lane's keys.
func TestParallelizationKeepsKeyOrder(t *testing.T) {
	f := newFixture(t, 1)
	const n = 200
	keys, data := make([]string, n), make([]string, n)
	for i := range n {
		keys[i], data[i] = fmt.Sprintf("key-%d", i%13), fmt.Sprintf("%d", i)
	}
	f.ts.put(t, f.stream, keys, data)
	f.start(t, map[string]any{"BatchSize": 7, "ParallelizationFactor": 4})
	waitFor(t, "every record", func() bool { return countRecords(readLog(t, f.log)) >= n })
	f.stop(t)

	seen := map[string]bool{}
	perKey := map[string][]int{}
	lanes := map[string]int{}
	for _, inv := range readLog(t, f.log) {
		lane := -1
		for _, r := range inv.Records {
			if seen[r.Kinesis.SequenceNumber] {
				t.Errorf("record %s delivered twice", r.Kinesis.SequenceNumber)
			}
			seen[r.Kinesis.SequenceNumber] = true
			var i int
			fmt.Sscan(string(r.Kinesis.Data), &i)
			perKey[r.Kinesis.PartitionKey] = append(perKey[r.Kinesis.PartitionKey], i)
			l := f.trig.laneOf([]byte(r.Kinesis.PartitionKey))
			if lane >= 0 && l != lane {
				t.Errorf("an invocation mixes lanes %d and %d", lane, l)
			}
			lane = l
			lanes[r.Kinesis.PartitionKey] = l
		}
	}
	if len(seen) != n {
		t.Errorf("%d records delivered, want %d", len(seen), n)
	}
	for k, is := range perKey {
		if !slices.IsSorted(is) {
			t.Errorf("key %s out of order: %v", k, is)
		}
	}
	used := map[int]bool{}
	for _, l := range lanes {
		used[l] = true
	}
	if len(used) < 2 {
		t.Errorf("13 keys in %d lanes", len(used))
	}
}

// TestFailuresToAStream sends the failure record to a stream of the same server.
func TestFailuresToAStream(t *testing.T) {
	f := newFixture(t, 1)
	dlq := f.ts.createStream(t, "dlq", 1)
	f.putNumbered(t, 3, map[int]string{1: "fail"})
	f.start(t, map[string]any{"BatchSize": 1, "MaximumRetryAttempts": 0,
		"DestinationConfig": map[string]any{"OnFailure": map[string]any{"Destination": dlq}}})
	waitFor(t, "r2", func() bool { return slices.Contains(succeeded(readLog(t, f.log), "fail"), "r2") })
	f.stop(t)
	out, err := f.ts.c.GetRecords(context.Background(), "dlq", client.GetInput{Shard: 0, Start: client.TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	if len(out.Records) != 1 {
		t.Fatalf("%d records in the destination stream, want 1", len(out.Records))
	}
	var fr failureRecord
	if err := json.Unmarshal(out.Records[0].Data, &fr); err != nil {
		t.Fatal(err)
	}
	if fr.KinesisBatchInfo.BatchSize != 1 || fr.KinesisBatchInfo.StreamArn != f.arn || string(out.Records[0].Key) != "shardId-000000000000" ||
		fr.RequestContext.ApproximateInvokeCount != 1 {
		t.Errorf("failure record %+v, key %q", fr, out.Records[0].Key)
	}
}

// TestParallelRestartRepeatsOnlyTheBatchesInFlight stops a trigger with
// ParallelizationFactor 3 while two lanes' invocations are blocked and the third lane has
// finished its records of the same read, and starts it again on the same checkpoint file:
// the records of the blocked invocations come again, every other record exactly once (the
// third lane's are not repeated although the read they came in is), each key's records in
// order.
func TestParallelRestartRepeatsOnlyTheBatchesInFlight(t *testing.T) {
	f := newFixture(t, 1)
	lanes := &Trigger{m: Mapping{ParallelizationFactor: 3}}
	keyOfLane := map[int]string{}
	for i := 0; len(keyOfLane) < 3; i++ {
		k := fmt.Sprintf("key-%d", i)
		if _, ok := keyOfLane[lanes.laneOf([]byte(k))]; !ok {
			keyOfLane[lanes.laneOf([]byte(k))] = k
		}
	}
	var keys, data []string
	add := func(lane int, d string) { keys, data = append(keys, keyOfLane[lane]), append(data, d) }
	for i := range 12 { // two reads of 6 records
		add(i%3, fmt.Sprintf("r%d", i))
	}
	add(0, "block") // the third read: two lanes block, the third does 4 records
	add(1, "block")
	for i := range 4 {
		add(2, fmt.Sprintf("lane2-%d", i))
	}
	for i := 16; i < 28; i++ {
		add(i%3, fmt.Sprintf("r%d", i))
	}
	f.ts.put(t, f.stream, keys, data)
	mapping := func() map[string]any { return map[string]any{"BatchSize": 2, "ParallelizationFactor": 3} }
	f.start(t, mapping())
	isBlocked := func(inv logLine) bool {
		return slices.ContainsFunc(inv.Records, func(r events.KinesisEventRecord) bool { return string(r.Kinesis.Data) == "block" })
	}
	waitFor(t, "two blocked invocations and 16 records done", func() bool {
		n := 0
		for _, inv := range readLog(t, f.log) {
			if isBlocked(inv) {
				n++
			}
		}
		return n == 2 && f.trig.Stats().Records == 16
	})
	f.stop(t)
	inFlight := map[string]bool{}
	for _, inv := range readLog(t, f.log) {
		if isBlocked(inv) {
			for _, r := range inv.Records {
				inFlight[r.Kinesis.SequenceNumber] = true
			}
		}
	}
	if err := os.WriteFile(f.release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f.start(t, mapping())
	waitFor(t, "every record", func() bool {
		seen := map[string]bool{}
		for _, inv := range readLog(t, f.log) {
			for _, r := range inv.Records {
				seen[r.Kinesis.SequenceNumber] = true
			}
		}
		return len(seen) == len(keys)
	})
	f.stop(t)

	count := map[string]int{}
	perKey := map[string][]string{}
	firstBlocked := map[string]bool{}
	for _, inv := range readLog(t, f.log) {
		k := inv.Records[0].Kinesis.PartitionKey
		skip := isBlocked(inv) && !firstBlocked[k]
		if isBlocked(inv) {
			firstBlocked[k] = true
		}
		for _, r := range inv.Records {
			count[r.Kinesis.SequenceNumber]++
			if !skip {
				perKey[k] = append(perKey[k], r.Kinesis.SequenceNumber)
			}
		}
	}
	if len(count) != len(keys) {
		t.Errorf("%d records delivered, want %d", len(count), len(keys))
	}
	for s, n := range count {
		want := 1
		if inFlight[s] {
			want = 2
		}
		if n != want {
			t.Errorf("record %s delivered %d times, want %d", s, n, want)
		}
	}
	for k, seqs := range perKey {
		if !slices.IsSorted(seqs) || len(slices.Compact(slices.Clone(seqs))) != len(seqs) {
			t.Errorf("key %s: %v", k, seqs)
		}
	}
}

// TestStartingPositionLatest starts at LATEST: the records put before are not delivered,
// those put once the trigger has anchored its position are.
func TestStartingPositionLatest(t *testing.T) {
	f := newFixture(t, 1)
	f.putNumbered(t, 3, nil)
	f.start(t, map[string]any{"StartingPosition": "LATEST"})
	waitFor(t, "the anchored position", func() bool {
		cp, ok, err := f.trig.cp.Get(context.Background(), 0)
		return err == nil && ok && !cp.Ended
	})
	f.ts.put(t, f.stream, []string{"k", "k"}, []string{"new 1", "new 2"})
	waitFor(t, "the new records", func() bool { return countRecords(readLog(t, f.log)) >= 2 })
	f.stop(t)
	if got := succeeded(readLog(t, f.log)); !slices.Equal(got, []string{"new 1", "new 2"}) {
		t.Errorf("delivered %v, want [new 1 new 2]", got)
	}
}

// TestStartingPositionTimestamp starts a trigger AT_TIMESTAMP a millisecond after the
// arrival of the last of three records: it delivers only the records put after them.
func TestStartingPositionTimestamp(t *testing.T) {
	f := newFixture(t, 1)
	f.putNumbered(t, 3, nil)
	out, err := f.ts.c.GetRecords(context.Background(), f.stream, client.GetInput{Shard: 0, Start: client.TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Records) != 3 {
		t.Fatalf("%d records read back, want 3", len(out.Records))
	}
	at := out.Records[2].Arrival.Truncate(time.Millisecond).Add(time.Millisecond)
	out.Release()
	waitFor(t, "the clock to pass the start", func() bool { return time.Now().After(at) })
	f.ts.put(t, f.stream, []string{"k", "k"}, []string{"new 1", "new 2"})
	f.start(t, map[string]any{"StartingPosition": "AT_TIMESTAMP", "StartingPositionTimestamp": float64(at.UnixMilli()) / 1000})
	waitFor(t, "the new records", func() bool { return countRecords(readLog(t, f.log)) >= 2 })
	f.stop(t)
	if got := succeeded(readLog(t, f.log)); !slices.Equal(got, []string{"new 1", "new 2"}) {
		t.Errorf("delivered %v, want [new 1 new 2]", got)
	}
}

// TestTumblingWindows puts records in two one-second windows: each invocation holds
// records of its window only, gets the state the previous invocation of the window
// returned, and the first window ends with a final invocation (no records) whose state
// counts every record of the window, before any record of the next.
func TestTumblingWindows(t *testing.T) {
	f := newFixture(t, 1)
	f.start(t, map[string]any{"BatchSize": 2, "TumblingWindowInSeconds": 1})
	f.putNumbered(t, 5, nil)
	// Let the clock leave the window of the last record.
	time.Sleep(1100 * time.Millisecond)
	f.putNumbered(t, 3, nil)
	waitFor(t, "a final invocation and every record", func() bool {
		invs := readLog(t, f.log)
		return countRecords(invs) >= 8 && slices.ContainsFunc(invs, func(l logLine) bool { return l.Final })
	})
	f.stop(t)

	perWindow := map[time.Time]int{} // records delivered so far per window
	finals := 0
	for _, inv := range readLog(t, f.log) {
		if inv.Window == nil {
			t.Fatalf("an invocation without a window: %+v", inv)
		}
		start, end := inv.Window.Start.Time, inv.Window.End.Time
		if end.Sub(start) != time.Second || start.UnixMilli()%1000 != 0 {
			t.Errorf("window %v–%v", start, end)
		}
		if got := inv.State["count"]; got != "" && got != fmt.Sprint(perWindow[start]) || got == "" && perWindow[start] != 0 {
			t.Errorf("window %v: state count %q after %d records", start, got, perWindow[start])
		}
		if inv.Final {
			finals++
			if len(inv.Records) != 0 {
				t.Errorf("a final invocation with %d records", len(inv.Records))
			}
			for w := range perWindow {
				if w.After(start) {
					t.Errorf("the final invocation of %v came after records of %v", start, w)
				}
			}
			continue
		}
		for _, r := range inv.Records {
			at := r.Kinesis.ApproximateArrivalTimestamp.Time
			if at.Before(start) || !at.Before(end) {
				t.Errorf("record of %v in window %v–%v", at, start, end)
			}
		}
		perWindow[start] += len(inv.Records)
	}
	if finals < 1 {
		t.Error("no final invocation")
	}
}
