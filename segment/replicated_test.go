package segment

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/internal/faultfs"
)

func replOpts(c *fakeClock, mode Mode) Options {
	o := testOpts(c, mode)
	o.Replicated = true
	return o
}

// appendAtN appends records at the given positions, in batches of batch, with data of size
// bytes and the arrival time now; it returns them as written.
func appendAtN(t testing.TB, l *Log, pos []uint64, size, batch int, now int64) []Record {
	t.Helper()
	var out []Record
	for i := 0; i < len(pos); i += batch {
		var b []Record
		for _, p := range pos[i:min(len(pos), i+batch)] {
			b = append(b, Record{Seq: p, Time: now, Key: fmt.Appendf(nil, "k%d", p), Data: payload(int(p), size)})
		}
		if err := l.AppendAt(b); err != nil {
			t.Fatalf("AppendAt(%d…): %v", b[0].Seq, err)
		}
		out = append(out, b...)
	}
	return out
}

// gappy returns n increasing positions from first, every fifth one skipped (a gap).
func gappy(first uint64, n int) []uint64 {
	var pos []uint64
	for p := first; len(pos) < n; p++ {
		if p%5 != 0 {
			pos = append(pos, p)
		}
	}
	return pos
}

func upTo(recs []Record, last uint64) []Record {
	var out []Record
	for _, r := range recs {
		if r.Seq <= last {
			out = append(out, r)
		}
	}
	return out
}

func mustRead(t testing.TB, l *Log) []Record {
	t.Helper()
	got, err := readAll(t, l, 0)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestReplicatedPublish: records written with AppendAt (gaps included, across segment rolls)
// become readable only through Publish, up to the position given, never beyond what is
// written; a reopened log has nothing readable until its owner publishes again; arrival
// times never decrease along the log although the caller's do.
func TestReplicatedPublish(t *testing.T) {
	for _, mode := range []Mode{Sync, Interval, None} {
		t.Run(Durability{Mode: mode}.String(), func(t *testing.T) {
			c := newClock()
			dir := t.TempDir()
			l := mustOpen(t, dir, replOpts(c, mode))
			pos := gappy(3, 400)
			base := c.Now().UnixNano()
			recs := appendAtN(t, l, pos[:200], 700, 7, base)
			// A later batch whose proposer's clock is behind: times are raised.
			recs = append(recs, appendAtN(t, l, pos[200:], 700, 9, base-int64(time.Hour))...)
			for i := 1; i < len(recs); i++ {
				if recs[i].Time < recs[i-1].Time {
					t.Fatalf("record %d: time %d before %d", recs[i].Seq, recs[i].Time, recs[i-1].Time)
				}
			}
			if got := mustRead(t, l); len(got) != 0 || l.Tip() != 0 {
				t.Fatalf("before Publish: %d records readable, tip %d", len(got), l.Tip())
			}
			if segs := len(*l.segs.Load()); segs < 3 {
				t.Fatalf("%d segments: the test wants rolls", segs)
			}
			for _, p := range []uint64{pos[10], 100 /* a gap */, pos[150], pos[150] - 1, pos[399] + 50} {
				ch := l.Changed()
				before := l.Tip()
				if err := l.Publish(p); err != nil {
					t.Fatal(err)
				}
				want := upTo(recs, max(p, before))
				sameRecords(t, mustRead(t, l), want)
				if tip := l.Tip(); tip != max(before, want[len(want)-1].Seq) {
					t.Fatalf("Publish(%d): tip %d", p, tip)
				}
				moved := l.Tip() > before
				select {
				case <-ch:
					if !moved {
						t.Fatalf("Publish(%d) woke Changed without moving the tip", p)
					}
				default:
					if moved {
						t.Fatalf("Publish(%d) moved the tip without waking Changed", p)
					}
				}
			}
			if l.TipTime() != recs[len(recs)-1].Time {
				t.Fatalf("TipTime %d, want %d", l.TipTime(), recs[len(recs)-1].Time)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, dir, replOpts(c, mode))
			defer l.Close()
			if got := mustRead(t, l); len(got) != 0 || l.Tip() != 0 {
				t.Fatalf("after reopen: %d records readable, tip %d", len(got), l.Tip())
			}
			if seq, ok, err := l.SeqAtTime(0); ok || err != nil {
				t.Fatalf("SeqAtTime before Publish = %d, %v, %v", seq, ok, err)
			}
			if err := l.Publish(pos[300]); err != nil {
				t.Fatal(err)
			}
			sameRecords(t, mustRead(t, l), upTo(recs, pos[300]))
			if last := l.LastPos(); last != pos[399] {
				t.Fatalf("LastPos %d, want %d", last, pos[399])
			}
			more := appendAtN(t, l, []uint64{pos[399] + 2}, 10, 1, base)
			if err := l.Publish(pos[399] + 2); err != nil {
				t.Fatal(err)
			}
			sameRecords(t, mustRead(t, l), append(recs, more...))
		})
	}
}

// TestReplicatedRefusals: each mode refuses the other's calls, positions must increase, a
// cut below the published tip is refused and changes nothing.
func TestReplicatedRefusals(t *testing.T) {
	c := newClock()
	single := mustOpen(t, t.TempDir(), testOpts(c, Sync))
	defer single.Close()
	repl := mustOpen(t, t.TempDir(), replOpts(c, Sync))
	defer repl.Close()
	recs := appendAtN(t, repl, []uint64{5, 6, 9}, 10, 3, 1)
	if err := repl.Publish(6); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"Append on a replicated log", repl.Append([]Record{rec("a", nil)}), ErrReplicated},
		{"AppendAt on a single-node log", single.AppendAt([]Record{{Seq: 1}}), ErrReplicated},
		{"Publish on a single-node log", single.Publish(1), ErrReplicated},
		{"Truncate on a single-node log", single.Truncate(1), ErrReplicated},
		{"position not above the last", repl.AppendAt([]Record{{Seq: 9}}), ErrOrder},
		{"positions not increasing", repl.AppendAt([]Record{{Seq: 20}, {Seq: 20}}), ErrOrder},
		{"position 0", repl.AppendAt([]Record{{Seq: 0}}), ErrOrder},
		{"cut below the tip", repl.Truncate(5), ErrBelowTip},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if err := repl.Publish(9); err != nil {
		t.Fatal(err)
	}
	sameRecords(t, mustRead(t, repl), recs)
}

// TestTruncate cuts at points in the active segment, in a sealed one, in a gap and between
// segments, in every durability mode; the exact prefix survives, in memory and after a
// reopen, and positions above the cut can be written again.
func TestTruncate(t *testing.T) {
	pos := gappy(1, 300)
	cases := []struct {
		name      string
		published uint64
		after     uint64
	}{
		{"in the active segment", pos[250], pos[280]},
		{"in a sealed segment", pos[20], pos[60]},
		{"at a gap", pos[0], 45},
		{"everything unpublished", 0, 0},
		{"at the published tip", pos[100], pos[100]},
		{"above the last: nothing", pos[10], pos[299] + 9},
	}
	for _, mode := range []Mode{Sync, Interval, None} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/%s", Durability{Mode: mode}, tc.name), func(t *testing.T) {
				c := newClock()
				dir := t.TempDir()
				l := mustOpen(t, dir, replOpts(c, mode))
				recs := appendAtN(t, l, pos, 900, 11, c.Now().UnixNano())
				if err := l.Publish(tc.published); err != nil {
					t.Fatal(err)
				}
				if err := l.Truncate(tc.after); err != nil {
					t.Fatalf("Truncate(%d): %v", tc.after, err)
				}
				want := upTo(recs, tc.after)
				if err := l.Publish(tc.after + 1000); err != nil {
					t.Fatal(err)
				}
				sameRecords(t, mustRead(t, l), want)
				// Positions above the cut are written again, with other bytes.
				next := tc.after + 1
				if len(want) > 0 {
					next = max(next, want[len(want)-1].Seq+1)
				}
				again := appendAtN(t, l, []uint64{next, next + 3}, 33, 2, c.Now().UnixNano())
				want = append(want, again...)
				if err := l.Publish(next + 3); err != nil {
					t.Fatal(err)
				}
				sameRecords(t, mustRead(t, l), want)
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				l = mustOpen(t, dir, replOpts(c, mode))
				defer l.Close()
				if err := l.Err(); err != nil {
					t.Fatalf("reopened after a cut: %v", err)
				}
				if err := l.Publish(next + 3); err != nil {
					t.Fatal(err)
				}
				sameRecords(t, mustRead(t, l), want)
			})
		}
	}
}

// TestTruncateCrash stops a Truncate after each of its syncs in turn (every later sync fails)
// and cuts the power: after a restart the log holds exactly the records before the cut, or
// (only when Truncate did not succeed) all of them, never a part of the suffix, and it
// accepts appends.
func TestTruncateCrash(t *testing.T) {
	pos := gappy(1, 200)
	for _, tc := range []struct {
		name  string
		after uint64
	}{{"in the active segment", pos[190]}, {"in a sealed segment", pos[30]}} {
		for n := 0; ; n++ {
			fs := faultfs.New()
			c := newClock()
			dir := t.TempDir()
			o := faultOpts(fs, c, Durability{Mode: Sync})
			o.Replicated = true
			l := mustOpen(t, dir, o)
			recs := appendAtN(t, l, pos, 900, 10, c.Now().UnixNano())
			fs.FailSyncsAfter(n, errors.New("injected sync failure"))
			terr := l.Truncate(tc.after)
			if err := fs.Crash(); err != nil {
				t.Fatal(err)
			}
			abandon(l)
			fs.Revive()
			l = mustOpen(t, dir, o)
			if err := l.Err(); err != nil {
				t.Fatalf("%s, syncs allowed %d: reopened log refuses appends: %v", tc.name, n, err)
			}
			if err := l.Publish(pos[199]); err != nil {
				t.Fatal(err)
			}
			got := mustRead(t, l)
			cut := upTo(recs, tc.after)
			switch {
			case len(got) == len(cut):
				sameRecords(t, got, cut)
			case terr != nil && len(got) == len(recs):
				sameRecords(t, got, recs)
			default:
				t.Fatalf("%s, syncs allowed %d (Truncate: %v): %d records survive, want %d or %d",
					tc.name, n, terr, len(got), len(cut), len(recs))
			}
			appendAtN(t, l, []uint64{l.LastPos() + 1}, 8, 1, 0)
			l.Close()
			if terr == nil {
				break
			}
			if n > 50 {
				t.Fatalf("Truncate still failing after %d syncs: %v", n, terr)
			}
		}
	}
}

// TestTruncateRandom interleaves appends with gaps, publishes and cuts at random points
// above the tip against a model, with reopens in between.
func TestTruncateRandom(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	c := newClock()
	dir := t.TempDir()
	l := mustOpen(t, dir, replOpts(c, Sync))
	defer func() { l.Close() }()
	var model []Record
	last, tip := uint64(0), uint64(0)
	for step := range 150 {
		switch k := r.IntN(10); {
		case k < 6:
			var ps []uint64
			for range 1 + r.IntN(20) {
				last += 1 + uint64(r.IntN(2))
				ps = append(ps, last)
			}
			model = append(model, appendAtN(t, l, ps, r.IntN(3000), 1+r.IntN(8), c.Now().UnixNano())...)
		case k < 8:
			if last > tip {
				tip += uint64(r.IntN(int(last-tip))) + 1
				if err := l.Publish(tip); err != nil {
					t.Fatal(err)
				}
			}
		case k < 9:
			if last > tip {
				after := tip + uint64(r.IntN(int(last-tip)))
				if err := l.Truncate(after); err != nil {
					t.Fatalf("step %d: Truncate(%d): %v", step, after, err)
				}
				model = upTo(model, after)
				last = after
			}
		default:
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, dir, replOpts(c, Sync))
			if err := l.Publish(tip); err != nil {
				t.Fatal(err)
			}
		}
		sameRecords(t, mustRead(t, l), upTo(model, tip))
		want := uint64(0)
		if len(model) > 0 {
			want = model[len(model)-1].Seq
		}
		if got := l.LastPos(); got != want {
			t.Fatalf("step %d: LastPos %d, model's last %d", step, got, want)
		}
	}
}

// TestAppendAtNoWait: in Sync mode a batch written by AppendAtNoWait is not published before
// its wait returned (Publish stops at what is durable), and is after; in the other modes
// there is nothing to wait for. A log written this way reads back like one AppendAt wrote.
func TestAppendAtNoWait(t *testing.T) {
	for _, mode := range []Mode{Sync, None} {
		t.Run(Durability{Mode: mode}.String(), func(t *testing.T) {
			c := newClock()
			l := mustOpen(t, t.TempDir(), replOpts(c, mode))
			defer l.Close()
			now := c.Now().UnixNano()
			recs := appendAtN(t, l, []uint64{1, 2, 3}, 100, 3, now)
			b := []Record{{Seq: 5, Time: now, Data: payload(5, 100)}, {Seq: 6, Time: now, Data: payload(6, 100)}}
			wait, err := l.AppendAtNoWait(b)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, b...)
			if mode != Sync {
				if wait != nil {
					t.Fatalf("%v: a wait was returned", mode)
				}
			} else {
				if wait == nil {
					t.Fatal("Sync: no wait returned")
				}
				if err := l.Publish(6); err != nil {
					t.Fatal(err)
				}
				if tip := l.Tip(); tip != 3 {
					t.Fatalf("tip %d before the wait, want 3 (the durable end)", tip)
				}
				if err := wait(); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Publish(6); err != nil {
				t.Fatal(err)
			}
			if tip := l.Tip(); tip != 6 {
				t.Fatalf("tip %d, want 6", tip)
			}
			sameRecords(t, mustRead(t, l), recs)
			if _, err := l.AppendAtNoWait([]Record{{Seq: 6}}); !errors.Is(err, ErrOrder) {
				t.Fatalf("a position not above the last: %v", err)
			}
		})
	}
}

// reopenHidden closes l, opens its directory again (replicated, synced) and sets the
// retention cutoff as the engine does when it opens a shard (Hide); then it reads, before
// anything is published, and finds nothing readable.
func reopenHidden(t *testing.T, l *Log, dir string, c *fakeClock, cutoff int64) *Log {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, replOpts(c, Sync))
	l.Hide(cutoff)
	if got := mustRead(t, l); len(got) != 0 {
		l.Close()
		t.Fatalf("reopened, before Publish: %d records readable", len(got))
	}
	return l
}

// TestReplicatedHideBeforePublish: a reopened replicated log whose owner sets the retention
// cutoff (Hide, as the engine does when it opens a shard) and is read before it publishes
// anything (a restarted replica whose stored commit index is behind its log, read while Raft
// relearns the commit) still serves every record once they are published: the horizon of a
// cutoff older than every record hides none of them, whatever was published when it was
// placed. The same holds for a cutoff stored in log.meta by an earlier Trim.
func TestReplicatedHideBeforePublish(t *testing.T) {
	for _, stored := range []bool{false, true} {
		t.Run(fmt.Sprintf("stored=%v", stored), func(t *testing.T) {
			c := newClock()
			dir := t.TempDir()
			l := mustOpen(t, dir, replOpts(c, Sync))
			base := c.Now().UnixNano()
			cutoff := base - int64(time.Hour)
			if stored {
				// A record older than the cutoff, published, then hidden by Trim: the
				// cutoff hides a record that was readable, so log.meta stores it.
				appendAtN(t, l, []uint64{1}, 10, 1, cutoff-1)
			}
			pos := gappy(2, 300)
			recs := appendAtN(t, l, pos, 100, 10, base)
			if err := l.Publish(pos[9]); err != nil {
				t.Fatal(err)
			}
			if stored {
				if _, err := l.Trim(cutoff); err != nil {
					t.Fatal(err)
				}
				sameRecords(t, mustRead(t, l), recs[:10])
			}
			l = reopenHidden(t, l, dir, c, cutoff)
			defer l.Close()
			if _, ok, err := l.Oldest(); ok || err != nil {
				t.Fatalf("Oldest before Publish: %v, %v", ok, err)
			}
			last := pos[len(pos)-1]
			if err := l.Publish(last); err != nil {
				t.Fatal(err)
			}
			sameRecords(t, mustRead(t, l), recs)
			v, err := l.Read(pos[150], 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Release()
			if v.Count != 1 || v.First != pos[150] {
				t.Fatalf("Read(%d) after Publish: %d records from %d", pos[150], v.Count, v.First)
			}
		})
	}
}

// TestReplicatedHorizonAboveCut: a replicated log whose retention horizon was placed among
// frames not published yet (its first frame at or after the cutoff is unpublished) has those
// frames cut by Truncate and new ones written at their positions: the new records, once
// published, are readable from their positions. A horizon is never left above a cut, so
// that positions that were never readable are not hidden by frames that no longer exist.
func TestReplicatedHorizonAboveCut(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	l := mustOpen(t, dir, replOpts(c, Sync))
	base := c.Now().UnixNano()
	cutoff := base - int64(time.Hour)
	appendAtN(t, l, []uint64{1, 2, 3, 4, 5}, 50, 5, cutoff-int64(time.Minute)) // older than the cutoff
	appendAtN(t, l, []uint64{6, 7, 8}, 50, 3, base)
	l = reopenHidden(t, l, dir, c, cutoff)
	defer l.Close()
	if err := l.Truncate(3); err != nil {
		t.Fatal(err)
	}
	fresh := appendAtN(t, l, []uint64{4, 5, 6, 7}, 50, 4, base)
	if err := l.Publish(7); err != nil {
		t.Fatal(err)
	}
	// 1 to 3 arrived before the cutoff: hidden now or by the next Trim; 4 to 7 are readable.
	if _, err := l.Trim(cutoff); err != nil {
		t.Fatal(err)
	}
	sameRecords(t, mustRead(t, l), fresh)
}
