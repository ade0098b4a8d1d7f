package segment

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/frame"
)

func TestConcurrentAppendersAndTailingReaders(t *testing.T) {
	for _, mode := range []Mode{Sync, None} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			c := newClock()
			l := mustOpen(t, t.TempDir(), testOpts(c, mode))
			defer l.Close()
			const writers, batches, per = 4, 60, 3
			total := writers * batches * per
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range batches {
						b := make([]Record, per)
						for j := range b {
							b[j] = rec(fmt.Sprintf("w%d", w), payload(w*10000+i*per+j, 200+j*300))
						}
						if err := l.Append(b); err != nil {
							t.Error(err)
							return
						}
						for j := 1; j < per; j++ {
							if b[j].Seq != b[j-1].Seq+1 {
								t.Errorf("batch numbers not consecutive: %d then %d", b[j-1].Seq, b[j].Seq)
							}
						}
					}
				}()
			}
			errs := make(chan error, 2)
			for range 2 {
				go func() {
					seen := 0
					var from, prev uint64
					lastPerKey := map[string]uint64{}
					for seen < total {
						ch := l.Changed()
						v, err := l.Read(from, 50, 32<<10)
						if err != nil {
							errs <- err
							return
						}
						if v.Count == 0 {
							select {
							case <-ch:
							case <-time.After(10 * time.Second):
								errs <- fmt.Errorf("no wake-up after %d records", seen)
								return
							}
							continue
						}
						it := v.Records()
						for it.Next() {
							r := it.Record()
							if r.Seq <= prev {
								errs <- fmt.Errorf("numbers out of order: %d after %d", r.Seq, prev)
								return
							}
							prev = r.Seq
							lastPerKey[string(r.Key)] = r.Seq
							seen++
						}
						from = v.Next
						v.Release()
					}
					errs <- nil
				}()
			}
			wg.Wait()
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestReadBudgets(t *testing.T) {
	c := newClock()
	l := mustOpen(t, t.TempDir(), Options{Now: c.Now, Durability: Durability{Mode: None}})
	defer l.Close()
	recs := appendN(t, l, 0, 50, 1000, 50)
	v, err := l.Read(0, 7, 1<<20)
	if err != nil || v.Count != 7 || v.First != recs[0].Seq || v.Last != recs[6].Seq || v.Next != recs[6].Seq+1 {
		t.Fatalf("count-bounded read: %+v %v", v, err)
	}
	v.Release()
	fs := frame.Size(len(recs[0].Key), 1000)
	v, err = l.Read(recs[10].Seq, 100, 3*fs+fs/2)
	if err != nil || v.Count != 3 || v.First != recs[10].Seq || v.Len() != 3*fs {
		t.Fatalf("byte-bounded read: count %d len %d, %v", v.Count, v.Len(), err)
	}
	v.Release()
	v, err = l.Read(recs[10].Seq, 100, 1)
	if err != nil || v.Count != 1 {
		t.Fatalf("a record larger than the budget still comes alone: count %d, %v", v.Count, err)
	}
	v.Release()
	v, err = l.Read(recs[49].Seq+1, 100, 1<<20)
	if err != nil || v.Count != 0 || v.Next != recs[49].Seq+1 {
		t.Fatalf("read at the tip: %+v %v", v, err)
	}
}

func TestRecordLimits(t *testing.T) {
	c := newClock()
	l := mustOpen(t, t.TempDir(), testOpts(c, None))
	defer l.Close()
	big := []Record{rec("big", payload(1, frame.MaxDataLen))}
	if err := l.Append(big); err != nil {
		t.Fatalf("a 10 MiB record in 64 KiB segments: %v", err)
	}
	got, err := readAll(t, l, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, big)
	for _, r := range []Record{
		{Key: []byte("k"), Data: make([]byte, frame.MaxDataLen+1)},
		{Key: make([]byte, frame.MaxKeyLen+1), Data: []byte("x")},
	} {
		if err := l.Append([]Record{r}); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("oversized record: %v, want ErrTooLarge", err)
		}
	}
	if l.Tip() != big[0].Seq {
		t.Fatal("a refused record changed the log")
	}
}

func TestArrivalTimesMonotonic(t *testing.T) {
	c := newClock()
	l := mustOpen(t, t.TempDir(), testOpts(c, None))
	defer l.Close()
	a := appendN(t, l, 0, 1, 10, 1)
	c.Advance(-time.Hour)
	b := appendN(t, l, 1, 1, 10, 1)
	if b[0].Time < a[0].Time {
		t.Fatalf("arrival time went back: %d after %d", b[0].Time, a[0].Time)
	}
}

func TestSequenceReservationRenewed(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	o := testOpts(c, Sync)
	o.reserveSpan = 10
	l := mustOpen(t, dir, o)
	recs := appendN(t, l, 0, 50, 10, 3)
	m, ok, err := readMeta(l.fs, dir)
	if err != nil || !ok || m.reserved <= recs[49].Seq {
		t.Fatalf("reservation %d does not cover %d handed out (%v)", m.reserved, recs[49].Seq, err)
	}
	abandon(l)
	l = mustOpen(t, dir, o)
	defer l.Close()
	b := []Record{rec("x", nil)}
	if err := l.Append(b); err != nil {
		t.Fatal(err)
	}
	if b[0].Seq < m.reserved {
		t.Fatalf("after a crash numbering restarted at %d, below the reservation %d", b[0].Seq, m.reserved)
	}
}

// TestCleanOpenSkipsScan shows that a clean close lets the next open skip reading frames: a
// frame damaged after the close is not noticed by Open, only by the Read that checks it.
func TestCleanOpenSkipsScan(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	l := mustOpen(t, dir, testOpts(c, Sync))
	recs := appendN(t, l, 0, 10, 100, 10)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	p := segFiles(t, dir)[0]
	fr := framesOf(t, p)
	flipByte(t, p, fr[5].off+40)
	l = mustOpen(t, dir, testOpts(c, Sync))
	defer l.Close()
	if err := l.Err(); err != nil {
		t.Fatalf("clean open scanned the segment: %v", err)
	}
	got, err := readAll(t, l, 0)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read over a damaged frame: %v, want ErrCorrupt", err)
	}
	sameRecords(t, got, recs[:5])
}

func TestFirstSeqAndClosedLog(t *testing.T) {
	dir := t.TempDir()
	o := testOpts(newClock(), None)
	o.FirstSeq = 1 << 40
	l := mustOpen(t, dir, o)
	b := []Record{rec("a", nil)}
	if err := l.Append(b); err != nil {
		t.Fatal(err)
	}
	if b[0].Seq < 1<<40 {
		t.Fatalf("first number %d below FirstSeq", b[0].Seq)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(b); !errors.Is(err, ErrClosed) {
		t.Fatalf("append to a closed log: %v", err)
	}
	if err := l.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
	if _, err := os.Stat(dir + "/" + metaName); err != nil {
		t.Fatal(err)
	}
}

func TestParseDurability(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Durability
		bad  bool
	}{
		{"sync", Durability{Mode: Sync}, false},
		{"", Durability{Mode: Sync}, false},
		{"none", Durability{Mode: None}, false},
		{"interval=200ms", Durability{Mode: Interval, Interval: 200 * time.Millisecond}, false},
		{"interval=0s", Durability{}, true},
		{"interval=x", Durability{}, true},
		{"always", Durability{}, true},
	} {
		got, err := ParseDurability(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Fatalf("ParseDurability(%q) = %v, %v", tc.in, got, err)
		}
		if !tc.bad {
			if again, _ := ParseDurability(got.String()); again != got {
				t.Fatalf("%v does not round-trip through String", got)
			}
		}
	}
}

// TestCloseWhileAppending closes the log under concurrent appenders: every append either
// succeeds, and its record is there after reopening, or fails with ErrClosed.
func TestCloseWhileAppending(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	l := mustOpen(t, dir, testOpts(c, Sync))
	a := newAcked(100)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				b := []Record{rec(fmt.Sprintf("w%d-%d", w, i), payload(i, 100))}
				err := l.Append(b)
				if err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("append during close: %v", err)
					}
					return
				}
				a.add(b, nil)
			}
		}()
	}
	a.wait(t, &wg)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	l = mustOpen(t, dir, testOpts(c, Sync))
	defer l.Close()
	got, err := readAll(t, l, 0)
	if err != nil {
		t.Fatal(err)
	}
	present := map[uint64]bool{}
	for _, r := range got {
		present[r.Seq] = true
	}
	for seq := range a.recs {
		if !present[seq] {
			t.Fatalf("acknowledged record %d lost across Close", seq)
		}
	}
}

func TestTipTimeSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	o := testOpts(c, Sync)
	o.SegmentAge = time.Minute
	l := mustOpen(t, dir, o)
	if l.TipTime() != 0 {
		t.Fatal("empty log has a tip time")
	}
	recs := appendN(t, l, 0, 3, 10, 3)
	if l.TipTime() != recs[2].Time {
		t.Fatalf("tip time %d, want %d", l.TipTime(), recs[2].Time)
	}
	// Seal the segment by age, so the tip comes from a sealed segment after the restart.
	c.Advance(2 * time.Minute)
	if _, err := l.Trim(0); err != nil {
		t.Fatal(err)
	}
	if l.active != nil {
		t.Fatal("the aged segment was not sealed")
	}
	c.Advance(-time.Hour) // the clock steps back across the restart
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, crash := range []bool{false, true} {
		l = mustOpen(t, dir, o)
		if l.TipTime() != recs[2].Time || l.Tip() != recs[2].Seq {
			t.Fatalf("after reopening: tip %d at %d, want %d at %d", l.Tip(), l.TipTime(), recs[2].Seq, recs[2].Time)
		}
		b := appendN(t, l, 10, 1, 10, 1)
		if b[0].Time < recs[2].Time {
			t.Fatalf("arrival time went back across a restart: %d < %d", b[0].Time, recs[2].Time)
		}
		recs[2] = b[0]
		if crash {
			abandon(l)
		} else if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestViewLastTime(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	l := mustOpen(t, dir, testOpts(c, None))
	a := appendN(t, l, 0, 3, 10, 3)
	c.Advance(time.Second)
	b := appendN(t, l, 3, 2, 10, 2)
	check := func(l *Log) {
		v, err := l.Read(0, 4, 1<<20)
		if err != nil || v.Count != 4 || v.LastTime != b[0].Time {
			t.Fatalf("LastTime %d (count %d, %v), want %d", v.LastTime, v.Count, err, b[0].Time)
		}
		v.Release()
		v, err = l.Read(0, 2, 1<<20)
		if err != nil || v.LastTime != a[1].Time {
			t.Fatalf("LastTime %d, want %d", v.LastTime, a[1].Time)
		}
		v.Release()
	}
	check(l) // frames written by this process
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, testOpts(c, None))
	defer l.Close()
	check(l) // after a clean reopen: frames checked as read
}
