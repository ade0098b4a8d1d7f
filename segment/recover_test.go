package segment

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/internal/vfs"
)

// abandon drops a log the way a crash does: no sync, no checkpoint, no clean marker.
func abandon(l *Log) {
	l.mu.Lock()
	l.closed = true
	stop, done, sealDone := l.stop, l.syncDone, l.sealDone
	l.mu.Unlock()
	if stop != nil {
		close(stop)
		if done != nil {
			<-done
		}
		<-sealDone
	}
	l.cmu.Lock()
	l.dropPendingLocked() // seals the crash interrupted
	l.cmu.Unlock()
	for _, s := range *l.segs.Swap(&[]*segment{}) {
		s.release()
	}
}

type frameLoc struct {
	off, end int64
	seq      uint64
}

// framesOf lists the frames of a segment file.
func framesOf(t testing.TB, path string) []frameLoc {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []frameLoc
	for off := int64(DataOffset); off < int64(len(b)); {
		r, n, err := frame.Decode(b[off:])
		if err != nil || n == 0 {
			break
		}
		out = append(out, frameLoc{off: off, end: off + int64(n), seq: r.Seq})
		off += int64(n)
	}
	return out
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(m)
	return m
}

func checkpointOf(t testing.TB, path string) checkpoint {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, ok := bestCheckpoint(b[:DataOffset])
	if !ok {
		t.Fatalf("%s: no valid checkpoint", path)
	}
	return c
}

// fixture is a crashed log of three segments: 55, 55 and 40 records of 1,000 bytes, appended
// in batches of 5 in Sync mode.
type fixture struct {
	dir   string
	recs  []Record
	segs  []string     // segment files, oldest first
	per   [][]frameLoc // frames of each segment
	first []int        // index in recs of each segment's first record
}

const fixBatch = 5

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	c := newClock()
	l := mustOpen(t, dir, testOpts(c, Sync))
	recs := appendN(t, l, 0, 150, 1000, fixBatch)
	abandon(l)
	fx := &fixture{dir: dir, recs: recs, segs: segFiles(t, dir)}
	if len(fx.segs) != 3 {
		t.Fatalf("fixture has %d segments, want 3", len(fx.segs))
	}
	n := 0
	for _, p := range fx.segs {
		fr := framesOf(t, p)
		fx.per = append(fx.per, fr)
		fx.first = append(fx.first, n)
		n += len(fr)
	}
	if n != len(recs) {
		t.Fatalf("fixture files hold %d frames, want %d", n, len(recs))
	}
	return fx
}

func (fx *fixture) newest() string           { return fx.segs[len(fx.segs)-1] }
func (fx *fixture) newestFrames() []frameLoc { return fx.per[len(fx.per)-1] }

func writeAt(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func zeroFrom(t testing.TB, path string, off int64) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if off < st.Size() {
		writeAt(t, path, off, make([]byte, st.Size()-off))
	}
}

func garbage(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(255) + 1)
	}
	return b
}

func flipByte(t testing.TB, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeAt(t, path, off, []byte{b[off] ^ 0x40})
}

func TestCheckpointLagsOneSync(t *testing.T) {
	fx := newFixture(t)
	fr := fx.newestFrames()
	c := checkpointOf(t, fx.newest())
	lastBatchStart := fr[len(fr)-fixBatch].off
	if c.durable != lastBatchStart {
		t.Fatalf("checkpoint durable offset %d, want the start of the last batch %d", c.durable, lastBatchStart)
	}
	if c.last != fr[len(fr)-fixBatch-1].seq || c.count != uint64(len(fr)-fixBatch) {
		t.Fatalf("checkpoint last %d count %d, want %d and %d", c.last, c.count, fr[len(fr)-fixBatch-1].seq, len(fr)-fixBatch)
	}
}

// TestCorruptionMatrix damages a crashed log in one way per case and asserts exactly which
// records survive, whether the log refuses appends, and that it never reads a damaged byte.
func TestCorruptionMatrix(t *testing.T) {
	type outcome struct {
		survive    int  // records readable from the start, in order
		readErr    bool // reading on from there reports ErrCorrupt
		refuse     bool // Err and Append report ErrCorrupt
		tailIntact bool // the records after the damage are still there, read from past it
	}
	cases := []struct {
		name    string
		corrupt func(t *testing.T, fx *fixture)
		want    func(fx *fixture) outcome
	}{
		{"no damage", func(t *testing.T, fx *fixture) {},
			func(fx *fixture) outcome { return outcome{survive: 150} }},
		{"torn tail inside the last frame", func(t *testing.T, fx *fixture) {
			fr := fx.newestFrames()
			zeroFrom(t, fx.newest(), fr[len(fr)-1].off+100)
		}, func(fx *fixture) outcome { return outcome{survive: 149} }},
		{"torn tail at the last frame's length word", func(t *testing.T, fx *fixture) {
			fr := fx.newestFrames()
			zeroFrom(t, fx.newest(), fr[len(fr)-1].off+2)
		}, func(fx *fixture) outcome { return outcome{survive: 149} }},
		{"torn tail at the start of the last batch", func(t *testing.T, fx *fixture) {
			fr := fx.newestFrames()
			zeroFrom(t, fx.newest(), fr[len(fr)-fixBatch].off)
		}, func(fx *fixture) outcome { return outcome{survive: 145} }},
		{"torn tail in the middle of the last batch", func(t *testing.T, fx *fixture) {
			fr := fx.newestFrames()
			zeroFrom(t, fx.newest(), fr[len(fr)-3].off+500)
		}, func(fx *fixture) outcome { return outcome{survive: 147} }},
		{"zero-filled tail", func(t *testing.T, fx *fixture) {
			fr := fx.newestFrames()
			zeroFrom(t, fx.newest(), fr[len(fr)-1].end)
		}, func(fx *fixture) outcome { return outcome{survive: 150} }},
		{"garbage tail after the last frame", func(t *testing.T, fx *fixture) {
			fr := fx.newestFrames()
			writeAt(t, fx.newest(), fr[len(fr)-1].end, garbage(1, 3000))
		}, func(fx *fixture) outcome { return outcome{survive: 150} }},
		{"garbage over the last frame", func(t *testing.T, fx *fixture) {
			fr := fx.newestFrames()
			writeAt(t, fx.newest(), fr[len(fr)-1].off+40, garbage(2, 3000))
		}, func(fx *fixture) outcome { return outcome{survive: 149} }},
		{"torn batch: a hole with a later frame of the batch intact", func(t *testing.T, fx *fixture) {
			fr := fx.newestFrames()
			hole := fr[len(fr)-4]
			writeAt(t, fx.newest(), hole.off, make([]byte, hole.end-hole.off))
		}, func(fx *fixture) outcome { return outcome{survive: 146} }},
		{"bit flip before the durable checkpoint of the newest segment", func(t *testing.T, fx *fixture) {
			fr := fx.newestFrames()
			flipByte(t, fx.newest(), fr[3].off+200)
		}, func(fx *fixture) outcome {
			return outcome{survive: fx.first[2] + 3, readErr: true, refuse: true}
		}},
		{"bit flip in a sealed segment's payload", func(t *testing.T, fx *fixture) {
			flipByte(t, fx.segs[0], fx.per[0][10].off+500)
		}, func(fx *fixture) outcome { return outcome{survive: 10, readErr: true, tailIntact: true} }},
		{"bit flip in a sealed segment's frame header", func(t *testing.T, fx *fixture) {
			flipByte(t, fx.segs[1], fx.per[1][20].off+9) // inside the sequence number
		}, func(fx *fixture) outcome {
			return outcome{survive: fx.first[1] + 20, readErr: true, tailIntact: true}
		}},
		{"bit flip in a sealed segment's length word", func(t *testing.T, fx *fixture) {
			flipByte(t, fx.segs[0], fx.per[0][7].off+1)
		}, func(fx *fixture) outcome { return outcome{survive: 7, readErr: true, tailIntact: true} }},
		{"truncated sealed segment", func(t *testing.T, fx *fixture) {
			if err := os.Truncate(fx.segs[1], fx.per[1][30].off+100); err != nil {
				t.Fatal(err)
			}
		}, func(fx *fixture) outcome {
			return outcome{survive: fx.first[1] + 30, readErr: true, tailIntact: true}
		}},
		{"newest segment's header cut mid-field", func(t *testing.T, fx *fixture) {
			if err := os.Truncate(fx.newest(), 30); err != nil {
				t.Fatal(err)
			}
		}, func(fx *fixture) outcome {
			return outcome{survive: fx.first[2], readErr: true, refuse: true}
		}},
		{"newest segment's header zeroed", func(t *testing.T, fx *fixture) {
			writeAt(t, fx.newest(), 0, make([]byte, headerSize))
		}, func(fx *fixture) outcome {
			return outcome{survive: fx.first[2], readErr: true, refuse: true}
		}},
		{"missing index", func(t *testing.T, fx *fixture) {
			if err := os.Remove(idxPath(fx.segs[0])); err != nil {
				t.Fatal(err)
			}
		}, func(fx *fixture) outcome { return outcome{survive: 150} }},
		{"garbage index", func(t *testing.T, fx *fixture) {
			if err := os.WriteFile(idxPath(fx.segs[0]), garbage(3, 500), 0o644); err != nil {
				t.Fatal(err)
			}
		}, func(fx *fixture) outcome { return outcome{survive: 150} }},
		{"short index", func(t *testing.T, fx *fixture) {
			if err := os.Truncate(idxPath(fx.segs[1]), 70); err != nil {
				t.Fatal(err)
			}
		}, func(fx *fixture) outcome { return outcome{survive: 150} }},
		{"stale index (another segment's)", func(t *testing.T, fx *fixture) {
			b, err := os.ReadFile(idxPath(fx.segs[1]))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(idxPath(fx.segs[0]), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, func(fx *fixture) outcome { return outcome{survive: 150} }},
		{"missing middle segment", func(t *testing.T, fx *fixture) {
			if err := os.Remove(fx.segs[1]); err != nil {
				t.Fatal(err)
			}
		}, func(fx *fixture) outcome {
			return outcome{survive: fx.first[1], readErr: true, refuse: true, tailIntact: true}
		}},
		{"missing metadata", func(t *testing.T, fx *fixture) {
			if err := os.Remove(filepath.Join(fx.dir, metaName)); err != nil {
				t.Fatal(err)
			}
		}, func(fx *fixture) outcome { return outcome{survive: 150, refuse: true} }},
		{"leftover temporary files", func(t *testing.T, fx *fixture) {
			for _, n := range []string{"x.seg.tmp", metaName + tmpSuffix} {
				if err := os.WriteFile(filepath.Join(fx.dir, n), garbage(4, 100), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}, func(fx *fixture) outcome { return outcome{survive: 150} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			tc.corrupt(t, fx)
			want := tc.want(fx)
			l := mustOpen(t, fx.dir, testOpts(newClock(), Sync))
			defer l.Close()
			got, err := readAll(t, l, 0)
			sameRecords(t, got, fx.recs[:want.survive])
			if want.readErr != errors.Is(err, ErrCorrupt) {
				t.Fatalf("read error %v, want ErrCorrupt: %v", err, want.readErr)
			}
			if err != nil && !strings.Contains(err.Error(), fx.dir) {
				t.Fatalf("error %q does not name the file", err)
			}
			if want.tailIntact {
				// Past the damage, the remaining records are intact and readable.
				last := fx.recs[len(fx.recs)-1]
				tail, err := readAll(t, l, last.Seq)
				if err != nil {
					t.Fatalf("reading past the damage: %v", err)
				}
				sameRecords(t, tail, fx.recs[len(fx.recs)-1:])
			}
			err = l.Append([]Record{rec("after", []byte("x"))})
			if want.refuse != errors.Is(err, ErrCorrupt) || want.refuse != errors.Is(l.Err(), ErrCorrupt) {
				t.Fatalf("append after recovery: %v (Err %v), want refusal: %v", err, l.Err(), want.refuse)
			}
			if !want.refuse {
				if err != nil {
					t.Fatalf("append after recovery: %v", err)
				}
				got, err := readAll(t, l, fx.recs[len(fx.recs)-1].Seq+1)
				if err != nil || len(got) != 1 || string(got[0].Key) != "after" {
					t.Fatalf("record appended after recovery: %d records, %v", len(got), err)
				}
				if got[0].Seq <= fx.recs[len(fx.recs)-1].Seq {
					t.Fatalf("sequence number %d reused", got[0].Seq)
				}
			}
		})
	}
}

// TestIndexRebuiltAndStored checks that a damaged index is rebuilt and written back.
func TestIndexRebuiltAndStored(t *testing.T) {
	fx := newFixture(t)
	p := idxPath(fx.segs[0])
	if err := os.WriteFile(p, garbage(5, 300), 0o644); err != nil {
		t.Fatal(err)
	}
	l := mustOpen(t, fx.dir, testOpts(newClock(), Sync))
	defer l.Close()
	got, err := readAll(t, l, fx.recs[20].Seq)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, fx.recs[20:])
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(b[:8]) != "SLUICIDX" {
		t.Fatalf("index not rewritten: starts %q", b[:8])
	}
}

// TestTornRoll covers a crash between creating a segment and sealing the previous one.
func TestTornRoll(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(t *testing.T, l *Log, fx *fixture)
	}{
		{"empty new segment", func(t *testing.T, l *Log, fx *fixture) {
			s, err := l.createSegment(4, fx.recs[149].Seq+1, MinSegmentSize, fx.recs[149].Seq)
			if err != nil {
				t.Fatal(err)
			}
			s.release()
		}},
		{"zero-length new segment", func(t *testing.T, l *Log, fx *fixture) {
			p := l.segPath(fx.recs[149].Seq+1, 4)
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			tmp := &Log{dir: fx.dir, fs: testOpts(newClock(), Sync).withDefaults().FS, opts: testOpts(newClock(), Sync).withDefaults()}
			tc.make(t, tmp, fx)
			if n := len(segFiles(t, fx.dir)); n != 4 {
				t.Fatalf("%d segment files, want 4", n)
			}
			l := mustOpen(t, fx.dir, testOpts(newClock(), Sync))
			defer l.Close()
			if err := l.Err(); err != nil {
				t.Fatal(err)
			}
			if n := len(segFiles(t, fx.dir)); n != 3 {
				t.Fatalf("%d segment files after recovery, want the empty one removed", n)
			}
			got, err := readAll(t, l, 0)
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, fx.recs)
			more := appendN(t, l, 500, 70, 1000, 5) // fills and rolls again
			got, err = readAll(t, l, 0)
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, append(append([]Record(nil), fx.recs...), more...))
		})
	}
}

// TestInterruptedBackgroundSeal crashes a None-mode log whose full segments were not sealed
// on disk yet, and checks that recovery seals them, and that a torn tail in one of them
// drops the later segments so that the loss stays a suffix.
func TestInterruptedBackgroundSeal(t *testing.T) {
	for _, tear := range []bool{false, true} {
		t.Run(fmt.Sprintf("torn=%v", tear), func(t *testing.T) {
			dir := t.TempDir()
			o := testOpts(newClock(), None)
			o.noSealer = true
			l := mustOpen(t, dir, o)
			recs := appendN(t, l, 0, 150, 1000, fixBatch)
			abandon(l)
			segs := segFiles(t, dir)
			if len(segs) != 3 || sealedOnDisk(vfs.OS, segs[0]) || sealedOnDisk(vfs.OS, segs[1]) {
				t.Fatalf("want 3 segments, the first two unsealed on disk")
			}
			survive := len(recs)
			if tear {
				// The end of the second segment never reached the disk: zeros.
				fr := framesOf(t, segs[1])
				zeroFrom(t, segs[1], fr[len(fr)-3].off)
				survive = len(framesOf(t, segs[0])) + len(fr) - 3
			}
			l = mustOpen(t, dir, testOpts(newClock(), None))
			defer l.Close()
			if err := l.Err(); err != nil {
				t.Fatal(err)
			}
			got, err := readAll(t, l, 0)
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, recs[:survive])
			want := 3
			if tear {
				want = 2
			}
			segs = segFiles(t, dir)
			if len(segs) != want || !sealedOnDisk(vfs.OS, segs[0]) || !sealedOnDisk(vfs.OS, segs[1]) {
				t.Fatalf("%d segments after recovery (want %d), the first two must be sealed", len(segs), want)
			}
			b := []Record{rec("next", []byte("x"))}
			if err := l.Append(b); err != nil {
				t.Fatal(err)
			}
			if b[0].Seq <= recs[len(recs)-1].Seq {
				t.Fatalf("number %d reused", b[0].Seq)
			}
		})
	}
}
