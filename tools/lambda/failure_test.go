//go:build linux

package lambda

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// readFailures returns the on-failure destination's records.
func readFailures(t *testing.T, path string) []failureRecord {
	t.Helper()
	fh, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []failureRecord
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		var fr failureRecord
		if err := json.Unmarshal(sc.Bytes(), &fr); err != nil {
			t.Fatalf("destination: %v: %s", err, sc.Text())
		}
		out = append(out, fr)
	}
	return out
}

// putNumbered puts n records of one key, data "r0", "r1", …, except those in special,
// whose data it gives.
func (f *fixture) putNumbered(t *testing.T, n int, special map[int]string) {
	keys, data := make([]string, n), make([]string, n)
	for i := range n {
		keys[i], data[i] = "k", fmt.Sprintf("r%d", i)
		if s, ok := special[i]; ok {
			data[i] = s
		}
	}
	f.ts.put(t, f.stream, keys, data)
}

// succeeded returns the data of the records of invocations with no record whose data starts
// with one of bad, in delivery order: what the function handled without error.
func succeeded(invs []logLine, bad ...string) []string {
	var out []string
	for _, inv := range invs {
		var datas []string
		ok := true
		for _, r := range inv.Records {
			d := string(r.Kinesis.Data)
			datas = append(datas, d)
			for _, b := range bad {
				ok = ok && !strings.HasPrefix(d, b)
			}
		}
		if ok {
			out = append(out, datas...)
		}
	}
	return out
}

func numbered(n int, skip ...int) []string {
	var out []string
	for i := range n {
		if !slices.Contains(skip, i) {
			out = append(out, fmt.Sprintf("r%d", i))
		}
	}
	return out
}

// TestBisectionIsolatesTheFailingRecord has one record of a batch fail every time: with
// BisectBatchOnFunctionError the batch is split until that record is alone, every other
// record succeeds exactly once and in order, and the failing record, its retries
// exhausted, goes to the on-failure destination file as Lambda describes a batch there.
func TestBisectionIsolatesTheFailingRecord(t *testing.T) {
	f := newFixture(t, 1)
	f.putNumbered(t, 20, map[int]string{7: "fail 7"})
	f.start(t, map[string]any{"BatchSize": 20, "BisectBatchOnFunctionError": true, "MaximumRetryAttempts": 2,
		"DestinationConfig": map[string]any{"OnFailure": map[string]any{"Destination": f.dest}}})
	waitFor(t, "the failure record", func() bool { return len(readFailures(t, f.dest)) > 0 })
	f.putNumbered(t, 1, map[int]string{0: "after"})
	waitFor(t, "the record after", func() bool { return slices.Contains(succeeded(readLog(t, f.log), "fail"), "after") })
	f.stop(t)

	got := succeeded(readLog(t, f.log), "fail")
	if want := append(numbered(20, 7), "after"); !slices.Equal(got, want) {
		t.Errorf("succeeded:\n got %v\nwant %v", got, want)
	}
	fails := readFailures(t, f.dest)
	if len(fails) != 1 {
		t.Fatalf("%d failure records, want 1: %+v", len(fails), fails)
	}
	fr := fails[0]
	invs := readLog(t, f.log)
	var failSeq string
	for _, inv := range invs {
		for _, r := range inv.Records {
			if string(r.Kinesis.Data) == "fail 7" {
				failSeq = r.Kinesis.SequenceNumber
			}
		}
	}
	b := fr.KinesisBatchInfo
	if b.BatchSize != 1 || b.StartSequenceNumber != failSeq || b.EndSequenceNumber != failSeq ||
		b.ShardID != "shardId-000000000000" || b.StreamArn != f.arn ||
		fr.RequestContext.Condition != condRetriesExhausted || fr.RequestContext.ApproximateInvokeCount != 3 ||
		fr.ResponseContext.FunctionError != "Unhandled" || fr.Version != "1.0" {
		t.Errorf("failure record %+v", fr)
	}
	for _, ts := range []string{b.ApproximateArrivalOfFirstRecord, b.ApproximateArrivalOfLastRecord, fr.Timestamp} {
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("time %q: %v", ts, err)
		}
	}
}

// TestPartialBatchResponse has the function report a record with ReportBatchItemFailures:
// the records before it are done, the batch is retried from it, and once the retries run
// out the rest of the batch (from it to the end) goes to the destination.
func TestPartialBatchResponse(t *testing.T) {
	f := newFixture(t, 1)
	f.env = []string{"PARTIAL=1"}
	f.putNumbered(t, 10, map[int]string{4: "fail 4", 6: "fail 6"})
	f.start(t, map[string]any{"BatchSize": 10, "MaximumRetryAttempts": 2, "FunctionResponseTypes": []string{"ReportBatchItemFailures"},
		"DestinationConfig": map[string]any{"OnFailure": map[string]any{"Destination": f.dest}}})
	waitFor(t, "the failure record", func() bool { return len(readFailures(t, f.dest)) > 0 })
	f.putNumbered(t, 3, nil)
	waitFor(t, "the records after", func() bool { return countRecords(readLog(t, f.log)) >= 10+6+6+3 })
	// The handler logs a batch before it answers: the trigger counts the answer after.
	waitFor(t, "the trigger to count the last batch", func() bool { return f.trig.Stats().Records >= 4+3 })
	f.stop(t)

	batches, data := delivered(readLog(t, f.log))
	var sizes []int
	for _, b := range batches {
		sizes = append(sizes, len(b))
	}
	if !slices.Equal(sizes, []int{10, 6, 6, 3}) {
		t.Fatalf("invocations of %v records, want [10 6 6 3]", sizes)
	}
	if data[batches[1][0]] != "fail 4" || batches[1][0] != batches[2][0] {
		t.Errorf("the retries start at %s (%q), want the record of fail 4", batches[1][0], data[batches[1][0]])
	}
	fails := readFailures(t, f.dest)
	if len(fails) != 1 {
		t.Fatalf("%d failure records, want 1", len(fails))
	}
	b := fails[0].KinesisBatchInfo
	if b.BatchSize != 6 || b.StartSequenceNumber != batches[1][0] || b.EndSequenceNumber != batches[1][5] ||
		fails[0].RequestContext.ApproximateInvokeCount != 3 {
		t.Errorf("failure record %+v", fails[0])
	}
	if st := f.trig.Stats(); st.PartialErrors != 3 || st.FunctionErrors != 0 || st.Records != 4+3 || st.FailedRecords != 6 {
		t.Errorf("stats %+v", st)
	}
}

// TestCrashAndTimeoutAreFunctionErrors has the process exit during an invocation, and an
// invocation outlive the function's timeout: both are function errors, retried and then
// sent to the destination, and a new process handles the records after them.
func TestCrashAndTimeoutAreFunctionErrors(t *testing.T) {
	f := newFixture(t, 1)
	f.timeout = 500 * time.Millisecond
	f.putNumbered(t, 4, map[int]string{1: "crash", 2: "block"})
	f.start(t, map[string]any{"BatchSize": 1, "MaximumRetryAttempts": 1,
		"DestinationConfig": map[string]any{"OnFailure": map[string]any{"Destination": f.dest}}})
	waitFor(t, "r3", func() bool { return slices.Contains(succeeded(readLog(t, f.log), "crash", "block"), "r3") })
	f.stop(t)

	if got := succeeded(readLog(t, f.log), "crash", "block"); !slices.Equal(got, []string{"r0", "r3"}) {
		t.Errorf("succeeded %v, want [r0 r3]", got)
	}
	fails := readFailures(t, f.dest)
	if len(fails) != 2 {
		t.Fatalf("%d failure records, want 2", len(fails))
	}
	for _, fr := range fails {
		if fr.KinesisBatchInfo.BatchSize != 1 || fr.RequestContext.ApproximateInvokeCount != 2 || fr.ResponseContext.FunctionError != "Unhandled" {
			t.Errorf("failure record %+v", fr)
		}
	}
	if st := f.trig.Stats(); st.FunctionErrors != 4 || st.FailedBatches != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestRecordAgeEndsRetries has a record fail with unlimited retries until the trigger's
// clock is moved past MaximumRecordAgeInSeconds: the record goes to the destination with
// the condition RecordAgeExceeded and the invocations it had, and the record after it is
// delivered once the clock is back.
func TestRecordAgeEndsRetries(t *testing.T) {
	f := newFixture(t, 1)
	var ahead atomic.Int64 // how far the trigger's clock is ahead of time.Now
	f.now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	f.putNumbered(t, 1, map[int]string{0: "fail"})
	f.start(t, map[string]any{"BatchSize": 1, "MaximumRetryAttempts": -1, "MaximumRecordAgeInSeconds": 60,
		"DestinationConfig": map[string]any{"OnFailure": map[string]any{"Destination": f.dest}}})
	waitFor(t, "a retry", func() bool { return len(readLog(t, f.log)) >= 2 })
	if fails := readFailures(t, f.dest); len(fails) != 0 {
		t.Fatalf("a failure record before the record's age ran out: %+v", fails)
	}
	ahead.Store(int64(61 * time.Second))
	waitFor(t, "the failure record", func() bool { return len(readFailures(t, f.dest)) > 0 })
	ahead.Store(0)
	f.putNumbered(t, 1, map[int]string{0: "after"})
	waitFor(t, "the record after", func() bool { return slices.Contains(succeeded(readLog(t, f.log), "fail"), "after") })
	f.stop(t)

	invoked := len(readLog(t, f.log)) - 1 // the last invocation is the record after
	fails := readFailures(t, f.dest)
	if len(fails) != 1 {
		t.Fatalf("%d failure records, want 1: %+v", len(fails), fails)
	}
	fr := fails[0]
	if fr.RequestContext.Condition != condRecordAge || fr.KinesisBatchInfo.BatchSize != 1 ||
		fr.RequestContext.ApproximateInvokeCount != invoked || fr.ResponseContext.FunctionError != "Unhandled" {
		t.Errorf("failure record %+v after %d invocations of the failing record", fr, invoked)
	}
	if got := succeeded(readLog(t, f.log), "fail"); !slices.Equal(got, []string{"after"}) {
		t.Errorf("succeeded %v, want [after]", got)
	}
}
