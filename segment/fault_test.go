package segment

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluice-streams/sluice/internal/faultfs"
)

func faultOpts(fs *faultfs.FS, c *fakeClock, d Durability) Options {
	return Options{FS: fs, Now: c.Now, Durability: d, SegmentSize: MinSegmentSize}
}

// acked collects the records whose Append returned nil.
type acked struct {
	mu      sync.Mutex
	recs    map[uint64]Record
	max     uint64        // highest number handed out, acknowledged or not
	target  int           // reached is closed once this many records are acknowledged
	reached chan struct{} // closed when len(recs) >= target
}

func newAcked(target int) *acked {
	return &acked{recs: map[uint64]Record{}, target: target, reached: make(chan struct{})}
}

func (a *acked) add(b []Record, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range b {
		a.max = max(a.max, r.Seq)
		if err == nil {
			a.recs[r.Seq] = r
		}
	}
	if len(a.recs) >= a.target && a.target > 0 {
		close(a.reached)
		a.target = 0
	}
}

// wait returns once the target is reached, or when every writer has stopped.
func (a *acked) wait(t testing.TB, writers *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { writers.Wait(); close(done) }()
	select {
	case <-a.reached:
	case <-done:
		t.Fatalf("writers stopped before %d acknowledgements", a.target)
	}
}

// runWriters appends from several goroutines until stop is closed or an append fails.
func runWriters(l *Log, writers int, seed uint64, stop <-chan struct{}, a *acked) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := 0; i < 100_000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				n := 1 + r.IntN(6)
				b := make([]Record, n)
				for j := range b {
					b[j] = rec(fmt.Sprintf("w%d-%d-%d", w, i, j), payload(w*1_000_000+i*10+j, 1+r.IntN(3000)))
				}
				err := l.Append(b)
				a.add(b, err)
				if err != nil {
					return
				}
			}
		}()
	}
	return &wg
}

// TestPowerCut cuts the power under concurrent appenders and checks what a restart finds:
// in Sync mode every acknowledged record; in Interval and None modes a prefix of them (the
// loss is a suffix of the shard). Sequence numbers are never reused. It runs 6 rounds per
// durability mode, or SLUICE_SEGMENT_POWERCUT_ROUNDS (make nightly: 6,667, 20,001 cuts in all).
func TestPowerCut(t *testing.T) {
	rounds := envRounds(t, "SLUICE_SEGMENT_POWERCUT_ROUNDS", 6)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	modes := []Durability{{Mode: Sync}, {Mode: Interval, Interval: 2 * time.Millisecond}, {Mode: None}}
	for _, d := range modes {
		t.Run(d.String(), func(t *testing.T) {
			for round := range rounds {
				rng := rand.New(rand.NewPCG(seed, uint64(round)))
				fs := faultfs.New()
				dir := t.TempDir()
				c := newClock()
				l := mustOpen(t, dir, faultOpts(fs, c, d))
				a := newAcked(50 + rng.IntN(400))
				stop := make(chan struct{})
				wg := runWriters(l, 4, seed+uint64(round), stop, a)
				// Let some appends through, then cut the power while they run.
				a.wait(t, wg)
				var torn *rand.Rand
				if round%2 == 1 {
					torn = rng
				}
				if err := fs.PowerCut(torn); err != nil {
					t.Fatal(err)
				}
				close(stop)
				wg.Wait()
				abandon(l)
				fs.Revive()

				l = mustOpen(t, dir, faultOpts(fs, c, d))
				if err := l.Err(); err != nil {
					t.Fatalf("round %d: log refuses appends after a power cut: %v", round, err)
				}
				got, err := readAll(t, l, 0)
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				checkAfterCut(t, d, a, got)
				b := []Record{rec("next", []byte("x"))}
				if err := l.Append(b); err != nil {
					t.Fatal(err)
				}
				if b[0].Seq <= a.max {
					t.Fatalf("round %d: new number %d does not exceed %d handed out before the cut", round, b[0].Seq, a.max)
				}
				l.Close()
			}
		})
	}
}

func checkAfterCut(t *testing.T, d Durability, a *acked, got []Record) {
	t.Helper()
	present := map[uint64]bool{}
	for i, g := range got {
		if i > 0 && g.Seq <= got[i-1].Seq {
			t.Fatalf("numbers out of order after recovery: %d then %d", got[i-1].Seq, g.Seq)
		}
		present[g.Seq] = true
		if w, ok := a.recs[g.Seq]; ok && (string(w.Key) != string(g.Key) || string(w.Data) != string(g.Data)) {
			t.Fatalf("record %d came back with other bytes", g.Seq)
		}
	}
	var missing []uint64
	for seq := range a.recs {
		if !present[seq] {
			missing = append(missing, seq)
		}
	}
	if d.Mode == Sync && len(missing) > 0 {
		t.Fatalf("sync mode lost %d acknowledged records (%d acknowledged), e.g. seq %d", len(missing), len(a.recs), missing[0])
	}
	// Any mode: what is lost is a suffix. No acknowledged record may be missing below a
	// surviving record.
	var top uint64
	if len(got) > 0 {
		top = got[len(got)-1].Seq
	}
	for _, seq := range missing {
		if seq < top {
			t.Fatalf("%s: acknowledged record %d lost while the later %d survived: the loss is not a suffix", d, seq, top)
		}
	}
	t.Logf("%s: %d acknowledged, %d lost, %d read back", d, len(a.recs), len(missing), len(got))
}

func TestDiskFull(t *testing.T) {
	fs := faultfs.New()
	c := newClock()
	l := mustOpen(t, t.TempDir(), faultOpts(fs, c, Durability{Mode: Sync}))
	defer l.Close()
	want := appendN(t, l, 0, 40, 1000, 4)
	fs.SetNoSpace(true)
	// Both a write into the active segment and a roll into a new one fail cleanly.
	for i := range 80 {
		err := l.Append([]Record{rec("full", payload(i, 1000))})
		if !errors.Is(err, ErrNoSpace) {
			t.Fatalf("append %d on a full disk: %v, want ErrNoSpace", i, err)
		}
	}
	if err := l.Err(); err != nil {
		t.Fatalf("a full disk made the log refuse appends for good: %v", err)
	}
	got, err := readAll(t, l, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, want)
	fs.SetNoSpace(false)
	more := appendN(t, l, 100, 100, 1000, 4) // rolls into new segments
	got, err = readAll(t, l, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, append(want, more...))
}

func TestWriteAndSyncFailuresAreSticky(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   Durability
		inject func(*faultfs.FS, error)
	}{
		{"write EIO, sync mode", Durability{Mode: Sync}, (*faultfs.FS).FailWrites},
		{"write EIO, none mode", Durability{Mode: None}, (*faultfs.FS).FailWrites},
		{"fdatasync EIO, sync mode", Durability{Mode: Sync}, (*faultfs.FS).FailSyncs},
		{"fdatasync EIO, interval mode", Durability{Mode: Interval, Interval: time.Millisecond}, (*faultfs.FS).FailSyncs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := faultfs.New()
			dir := t.TempDir()
			c := newClock()
			l := mustOpen(t, dir, faultOpts(fs, c, tc.mode))
			want := appendN(t, l, 0, 20, 500, 2)
			tip := l.Tip()
			tc.inject(fs, unix.EIO)
			// In interval mode the failure shows once the background sync has run.
			var err error
			for i := 0; i < 5000 && err == nil; i++ {
				err = l.Append([]Record{rec("doomed", []byte("x"))})
				if err == nil && tc.mode.Mode == Interval {
					time.Sleep(time.Millisecond)
				}
			}
			if !errors.Is(err, ErrFailed) {
				t.Fatalf("append after the failure: %v, want ErrFailed", err)
			}
			tc.inject(fs, nil)
			if err := l.Append([]Record{rec("after", []byte("x"))}); !errors.Is(err, ErrFailed) {
				t.Fatalf("append once the disk works again: %v, want the failure to stick", err)
			}
			if !errors.Is(l.Err(), ErrFailed) {
				t.Fatalf("Err: %v", l.Err())
			}
			if tc.mode.Mode == Sync && l.Tip() != tip {
				t.Fatalf("a batch that failed to sync became readable: tip %d, was %d", l.Tip(), tip)
			}
			l.Close()
			l = mustOpen(t, dir, faultOpts(fs, c, tc.mode))
			defer l.Close()
			got, err := readAll(t, l, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) < len(want) {
				t.Fatalf("%d records after reopening, want at least the %d acknowledged", len(got), len(want))
			}
			sameRecords(t, got[:len(want)], want)
			b := []Record{rec("reopened", []byte("y"))}
			if err := l.Append(b); err != nil {
				t.Fatalf("append after reopening: %v", err)
			}
			if b[0].Seq <= got[len(got)-1].Seq {
				t.Fatalf("number %d reused", b[0].Seq)
			}
		})
	}
}
