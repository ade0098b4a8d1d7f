package stream

import (
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

func TestParseLimits(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Limits
		bad  bool
	}{
		{"kinesis", Limits{Factor: 1}, false},
		{"", Limits{Factor: 1}, false},
		{"off", Limits{Off: true, Factor: 1}, false},
		{"scaled:10", Limits{Factor: 10}, false},
		{"scaled:0.5", Limits{Factor: 0.5}, false},
		{"scaled:0", Limits{}, true},
		{"scaled:-1", Limits{}, true},
		{"scaled:x", Limits{}, true},
		{"scaled:NaN", Limits{}, true},
		{"fast", Limits{}, true},
	} {
		got, err := ParseLimits(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Fatalf("ParseLimits(%q) = %+v, %v", tc.in, got, err)
		}
		if !tc.bad {
			if again, err := ParseLimits(got.String()); err != nil || again != got {
				t.Fatalf("%+v does not round-trip through %q", got, got.String())
			}
		}
	}
}

func TestWriteLimiterRecords(t *testing.T) {
	l, _ := ParseLimits("kinesis")
	w := l.NewWriteLimiter(t0)
	for i := range WriteRecordsPerSec {
		if !w.Admit(10, t0) {
			t.Fatalf("record %d of the first second refused", i)
		}
	}
	if w.Admit(10, t0) {
		t.Fatal("record 1001 in one second admitted")
	}
	// Tokens come back at 1,000 per second: one per millisecond.
	if w.Admit(10, t0.Add(500*time.Microsecond)) {
		t.Fatal("admitted before a token was back")
	}
	if !w.Admit(10, t0.Add(time.Millisecond)) {
		t.Fatal("refused after a millisecond")
	}
}

func TestWriteLimiterBytes(t *testing.T) {
	l, _ := ParseLimits("kinesis")
	w := l.NewWriteLimiter(t0)
	if !w.Admit(WriteBytesPerSec, t0) {
		t.Fatal("a 1 MiB record refused on a full shard")
	}
	if w.Admit(1, t0) {
		t.Fatal("a byte admitted past 1 MiB in one second")
	}
	// A refused record takes nothing: the record tokens are untouched.
	if !w.Admit(0, t0) {
		t.Fatal("an empty record refused though only bytes ran out")
	}
	if !w.Admit(WriteBytesPerSec/2, t0.Add(500*time.Millisecond)) {
		t.Fatal("half a MiB refused after half a second")
	}
	// Idle for a long time: the bucket is full again, not more.
	late := t0.Add(1000 * time.Hour)
	if !w.Admit(WriteBytesPerSec, late) || w.Admit(1, late) {
		t.Fatal("the bucket did not refill to exactly its burst")
	}
}

func TestReadLimiterPenalty(t *testing.T) {
	l, _ := ParseLimits("kinesis")
	r := l.NewReadLimiter(t0)
	for i := range ReadCallsPerSec {
		if !r.Admit(t0) {
			t.Fatalf("call %d refused", i)
		}
	}
	if r.Admit(t0) {
		t.Fatal("a sixth call in one second admitted")
	}
	// A 10 MiB read: the shard owes 8 MiB, repaid at 2 MiB/s; calls are refused meanwhile.
	now := t0.Add(time.Second)
	if !r.Admit(now) {
		t.Fatal("refused after a second")
	}
	r.Charge(10<<20, now)
	if r.Admit(now.Add(3900 * time.Millisecond)) {
		t.Fatal("admitted within the penalty")
	}
	if !r.Admit(now.Add(4*time.Second + time.Millisecond)) {
		t.Fatal("still refused once the debt was repaid")
	}
}

func TestScaledAndOff(t *testing.T) {
	l, _ := ParseLimits("scaled:2")
	w := l.NewWriteLimiter(t0)
	for i := range 2 * WriteRecordsPerSec {
		if !w.Admit(1, t0) {
			t.Fatalf("scaled:2 refused record %d", i)
		}
	}
	if w.Admit(1, t0) {
		t.Fatal("scaled:2 admitted past twice the records")
	}
	off, _ := ParseLimits("off")
	w = off.NewWriteLimiter(t0)
	r := off.NewReadLimiter(t0)
	p := off.NewPacer(t0)
	for range 100_000 {
		if !w.Admit(1<<20, t0) || !r.Admit(t0) || p.Take(1<<20, t0) != 0 {
			t.Fatal("a limit applied with limits off")
		}
	}
}

func TestPacer(t *testing.T) {
	l, _ := ParseLimits("kinesis")
	p := l.NewPacer(t0)
	if d := p.Take(FanOutBytesPerSec, t0); d != 0 {
		t.Fatalf("first 2 MiB held back %v", d)
	}
	if d := p.Take(FanOutBytesPerSec/2, t0); d != 500*time.Millisecond {
		t.Fatalf("next MiB held back %v, want 500ms", d)
	}
	// A record larger than the burst still goes, after the bucket refills.
	if d := p.Take(10<<20, t0.Add(10*time.Second)); d != 0 {
		t.Fatalf("big record after a long pause held back %v", d)
	}
}

func BenchmarkWriteLimiterAdmit(b *testing.B) {
	l, _ := ParseLimits("scaled:1000000")
	w := l.NewWriteLimiter(t0)
	now := t0
	b.ReportAllocs()
	for b.Loop() {
		now = now.Add(time.Microsecond)
		w.Admit(100, now)
	}
}
