package segment

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// TestTailingReadSkipsNothing reads at the tip while one goroutine appends, so that most
// reads find nothing yet and race with the publication of the next batch: an empty view must
// never move past a record that is or becomes readable. Segments are small, so that the
// writer also rolls to new segments under the reader.
func TestTailingReadSkipsNothing(t *testing.T) {
	for _, mode := range []Mode{Sync, Interval, None} {
		t.Run(Durability{Mode: mode, Interval: time.Millisecond}.String(), func(t *testing.T) {
			l := mustOpen(t, t.TempDir(), testOpts(newClock(), mode))
			defer l.Close()
			const batches = 3000
			acked := make(chan []uint64, 1)
			go func() {
				var seqs []uint64
				defer func() { acked <- seqs }()
				for i := range batches {
					b := []Record{rec("k", payload(i, 100+i%500)), rec("k", payload(i+batches, 50))}
					if err := l.Append(b); err != nil {
						t.Error(err)
						return
					}
					seqs = append(seqs, b[0].Seq, b[1].Seq)
				}
			}()
			var got []uint64
			var want []uint64
			from := uint64(1)
			for want == nil || from <= want[len(want)-1] {
				if want == nil {
					select {
					case want = <-acked:
					default:
					}
				}
				v, err := l.Read(from, 1+len(got)%3, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				it := v.Records()
				for it.Next() {
					got = append(got, it.Record().Seq)
				}
				from = v.Next
				v.Release()
			}
			if len(got) != len(want) {
				t.Fatalf("read %d records, %d acknowledged", len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("record %d: read seq %d, acknowledged %d", i, got[i], want[i])
				}
			}
		})
	}
}

// readFollowing reads from from to the tip with small reads, following View.Next, and
// returns the sequence numbers it saw. It fails the test on an empty view before the tip, on
// a Next that does not follow the view, and on numbers out of order.
func readFollowing(t testing.TB, l *Log, from uint64, maxRecords int) []uint64 {
	t.Helper()
	var seqs []uint64
	tip := l.Tip()
	for range 1_000_000 {
		v, err := l.Read(from, maxRecords, 1<<20)
		if err != nil {
			t.Fatalf("Read(%d): %v", from, err)
		}
		if v.Count == 0 {
			if from <= tip {
				t.Fatalf("Read(%d): empty view (Next %d) below the tip %d, after %d records", from, v.Next, tip, len(seqs))
			}
			return seqs
		}
		if v.First < from || v.Next != v.Last+1 {
			t.Fatalf("Read(%d): view %d..%d, Next %d", from, v.First, v.Last, v.Next)
		}
		it := v.Records()
		for it.Next() {
			seq := it.Record().Seq
			if len(seqs) > 0 && seq <= seqs[len(seqs)-1] {
				t.Fatalf("Read(%d): seq %d after %d", from, seq, seqs[len(seqs)-1])
			}
			seqs = append(seqs, seq)
		}
		from = v.Next
		v.Release()
	}
	t.Fatal("readFollowing did not finish")
	return nil
}

// TestReadAcrossManyRestarts opens, appends to and closes (cleanly or not) the same log a
// hundred times, with segments small enough to roll, and checks that reading from the start
// with small reads returns every acknowledged record once, in order, and that a read from
// any number between the horizon and the tip starts at the first record at or above it.
func TestReadAcrossManyRestarts(t *testing.T) {
	for _, mode := range []Mode{Sync, Interval, None} {
		for _, clean := range []bool{true, false} {
			name := fmt.Sprintf("%s/clean=%v", Durability{Mode: mode, Interval: time.Millisecond}, clean)
			t.Run(name, func(t *testing.T) {
				const seed = 1
				t.Logf("seed %d", seed)
				r := rand.New(rand.NewPCG(seed, uint64(mode)))
				dir := t.TempDir()
				c := newClock()
				var want []uint64
				for round := range 100 {
					l := mustOpen(t, dir, testOpts(c, mode))
					for range r.IntN(4) {
						recs := appendN(t, l, len(want), 1+r.IntN(20), 100+r.IntN(3000), 1+r.IntN(7))
						for _, x := range recs {
							want = append(want, x.Seq)
						}
						c.Advance(time.Millisecond)
					}
					if clean || round%2 == 0 {
						if err := l.Close(); err != nil {
							t.Fatal(err)
						}
					} else {
						// Acknowledged records survive a crash of the process in
						// every mode: the page cache keeps them.
						abandon(l)
					}
				}
				l := mustOpen(t, dir, testOpts(c, mode))
				defer l.Close()
				if err := l.Err(); err != nil {
					t.Fatal(err)
				}
				if len(*l.segs.Load()) < 5 {
					t.Fatalf("%d segments, want several", len(*l.segs.Load()))
				}
				for _, maxRecords := range []int{1, 3, 100} {
					got := readFollowing(t, l, 1, maxRecords)
					if len(got) != len(want) {
						t.Fatalf("maxRecords %d: read %d records, appended %d", maxRecords, len(got), len(want))
					}
					for i := range want {
						if got[i] != want[i] {
							t.Fatalf("maxRecords %d: record %d is seq %d, want %d", maxRecords, i, got[i], want[i])
						}
					}
				}
				checkFirstAtOrAbove(t, l, want, r)
			})
		}
	}
}

// checkFirstAtOrAbove checks that Read(from) starts at the record with the smallest sequence
// number at or above from, for every appended number, its neighbours, and random numbers
// between the horizon and the tip.
func checkFirstAtOrAbove(t *testing.T, l *Log, want []uint64, r *rand.Rand) {
	t.Helper()
	lo, hi := want[0], want[len(want)-1]
	froms := []uint64{0, lo, hi, hi + 1}
	for _, s := range want {
		froms = append(froms, s-1, s, s+1)
	}
	for range 2000 {
		froms = append(froms, lo+r.Uint64N(hi-lo+1))
	}
	for _, from := range froms {
		i := 0
		for i < len(want) && want[i] < from {
			i++
		}
		v, err := l.Read(from, 1+r.IntN(5), 1<<20)
		if err != nil {
			t.Fatalf("Read(%d): %v", from, err)
		}
		if i == len(want) {
			if v.Count != 0 || v.Next != max(from, hi+1) {
				t.Fatalf("Read(%d) past the tip %d: %d records, Next %d", from, hi, v.Count, v.Next)
			}
		} else if v.Count == 0 || v.First != want[i] {
			t.Fatalf("Read(%d): first %d (%d records, Next %d), want %d", from, v.First, v.Count, v.Next, want[i])
		}
		v.Release()
	}
}
