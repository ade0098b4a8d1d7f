package segment

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/internal/vfs"
)

// threeHours appends 100 records in each of three hours and returns them per hour.
func threeHours(t *testing.T, l *Log, c *fakeClock) [3][]Record {
	var out [3][]Record
	for h := range 3 {
		out[h] = appendN(t, l, h*100, 100, 900, 4)
		c.Advance(time.Hour)
	}
	return out
}

func TestRetentionHidesAndDeletes(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	t0 := c.Now()
	l := mustOpen(t, dir, testOpts(c, Sync))
	hours := threeHours(t, l, c)
	before := len(segFiles(t, dir))

	// Hold a view of the oldest records across their deletion.
	v, err := l.Read(0, 10, 1<<20)
	if err != nil || v.Count != 10 {
		t.Fatalf("read: %d records, %v", v.Count, err)
	}
	oldest := segFiles(t, dir)[0]

	cutoff := t0.Add(30 * time.Minute).UnixNano()
	removed, err := l.Trim(cutoff)
	if err != nil {
		t.Fatal(err)
	}
	// The oldest file stays while the view holds it.
	if removed == 0 || len(*l.segs.Load()) != before-removed || len(segFiles(t, dir)) != before-removed+1 {
		t.Fatalf("removed %d segments, %d files left of %d", removed, len(segFiles(t, dir)), before)
	}
	got, err := readAll(t, l, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, append(append([]Record(nil), hours[1]...), hours[2]...))
	if seq, ok, err := l.Oldest(); err != nil || !ok || seq != hours[1][0].Seq {
		t.Fatalf("oldest %d %v %v, want %d", seq, ok, err, hours[1][0].Seq)
	}
	// Reading from an old number starts at the horizon.
	got, err = readAll(t, l, hours[0][5].Seq)
	if err != nil || len(got) != 200 {
		t.Fatalf("read from a hidden number: %d records, %v", len(got), err)
	}

	// The view still reads its bytes; the file goes when it is released.
	if _, err := os.Stat(oldest); err != nil {
		t.Fatalf("segment file deleted under a live view: %v", err)
	}
	it := v.Records()
	n := 0
	for it.Next() {
		if it.Record().Seq != hours[0][n].Seq {
			t.Fatalf("view record %d changed", n)
		}
		n++
	}
	v.Release()
	if _, err := os.Stat(oldest); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("segment file still there after the last view was released: %v", err)
	}

	// The hidden cutoff survives a clean restart.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, dir, testOpts(c, Sync))
	defer l.Close()
	got, err = readAll(t, l, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, append(append([]Record(nil), hours[1]...), hours[2]...))

	// A cutoff past everything seals the active segment and deletes it all.
	if _, err := l.Trim(c.Now().UnixNano()); err != nil {
		t.Fatal(err)
	}
	if n := len(segFiles(t, dir)); n != 0 {
		t.Fatalf("%d segment files left after expiring everything", n)
	}
	if _, ok, _ := l.Oldest(); ok {
		t.Fatal("records readable after expiring everything")
	}
	b := []Record{rec("fresh", []byte("x"))}
	if err := l.Append(b); err != nil {
		t.Fatal(err)
	}
	if b[0].Seq <= hours[2][99].Seq {
		t.Fatalf("number %d reused", b[0].Seq)
	}
	got, err = readAll(t, l, 0)
	if err != nil || len(got) != 1 || got[0].Seq != b[0].Seq {
		t.Fatalf("after expiry: %d records, %v", len(got), err)
	}
}

func TestSegmentAgeRoll(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	o := testOpts(c, None)
	o.SegmentAge = time.Hour
	l := mustOpen(t, dir, o)
	defer l.Close()
	appendN(t, l, 0, 3, 10, 1)
	if _, err := l.Trim(0); err != nil {
		t.Fatal(err)
	}
	if n := len(segFiles(t, dir)); n != 1 {
		t.Fatalf("%d segments before the age, want 1", n)
	}
	c.Advance(2 * time.Hour)
	if _, err := l.Trim(0); err != nil {
		t.Fatal(err)
	}
	appendN(t, l, 3, 1, 10, 1)
	if n := len(segFiles(t, dir)); n != 2 {
		t.Fatalf("%d segments after the age, want 2 (the old one sealed)", n)
	}
}

func TestSeqAtTime(t *testing.T) {
	c := newClock()
	l := mustOpen(t, t.TempDir(), testOpts(c, None))
	defer l.Close()
	var firsts []Record
	for i := range 20 {
		b := appendN(t, l, i*10, 10, 3000, 10) // 30 KiB a second: several segments
		firsts = append(firsts, b[0])
		c.Advance(time.Second)
	}
	for i, f := range firsts {
		seq, ok, err := l.SeqAtTime(f.Time)
		if err != nil || !ok || seq != f.Seq {
			t.Fatalf("at second %d: %d %v %v, want %d", i, seq, ok, err, f.Seq)
		}
		if i+1 < len(firsts) {
			seq, ok, err = l.SeqAtTime(f.Time + int64(time.Second/2))
			if err != nil || !ok || seq != firsts[i+1].Seq {
				t.Fatalf("within second %d: %d %v %v, want %d", i, seq, ok, err, firsts[i+1].Seq)
			}
		}
	}
	if seq, ok, _ := l.SeqAtTime(firsts[0].Time - 1); !ok || seq != firsts[0].Seq {
		t.Fatalf("before everything: %d %v", seq, ok)
	}
	if _, ok, _ := l.SeqAtTime(c.Now().UnixNano()); ok {
		t.Fatal("a record found in the future")
	}
}

func TestUnmapIdle(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	l := mustOpen(t, dir, testOpts(c, Sync))
	defer l.Close()
	recs := appendN(t, l, 0, 150, 1000, 5) // three segments, two sealed
	held, err := l.Read(recs[0].Seq, 1, 0) // a view of the first segment stays held
	if err != nil || held.Count != 1 {
		t.Fatal(err)
	}
	// Every sealed segment was just used (written, read): the first pass only clears marks.
	if n := l.UnmapIdle(); n != 0 {
		t.Fatalf("first pass unmapped %d segments in use", n)
	}
	if n := l.UnmapIdle(); n != 1 {
		t.Fatalf("second pass unmapped %d segments, want 1 (the other sealed one is held by a view)", n)
	}
	got, err := readAll(t, l, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, recs)
	if string(held.Records().b[frame.HeaderSize:frame.HeaderSize+len(recs[0].Key)]) != string(recs[0].Key) {
		t.Fatal("the held view's bytes changed")
	}
	held.Release()
	l.UnmapIdle() // clears the marks the reads set
	if n := l.UnmapIdle(); n != 2 {
		t.Fatalf("unmapped %d segments once idle and released, want 2", n)
	}
	// A remapped segment checks CRCs again: damage on disk is caught, not served.
	second := segFiles(t, dir)[1]
	flipByte(t, second, framesOf(t, second)[3].off+100)
	got, err = readAll(t, l, 0)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read over a damaged remapped segment: %v, want ErrCorrupt", err)
	}
	sameRecords(t, got, recs[:len(framesOf(t, segFiles(t, dir)[0]))+3])
}

// TestTrimStoresTheCutoffOnlyWhenItHides checks that the periodic retention pass does not
// rewrite log.meta when the cutoff hides nothing new, and does when it does.
func TestTrimStoresTheCutoffOnlyWhenItHides(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	l := mustOpen(t, dir, testOpts(c, None))
	defer l.Close()
	recs := appendN(t, l, 0, 2, 10, 1)
	c.Advance(time.Hour)
	appendN(t, l, 2, 1, 10, 1)
	m0, _, _ := readMeta(l.fs, dir)
	for i := range 5 { // cutoffs before every record: nothing hidden, nothing written
		if _, err := l.Trim(recs[0].Time - int64(10-i)); err != nil {
			t.Fatal(err)
		}
	}
	if m, _, _ := readMeta(l.fs, dir); m.hidden != m0.hidden {
		t.Fatalf("a cutoff that hid nothing was stored: %d", m.hidden)
	}
	if _, err := l.Trim(recs[1].Time + 1); err != nil { // hides the first two records
		t.Fatal(err)
	}
	if m, _, _ := readMeta(l.fs, dir); m.hidden != recs[1].Time+1 {
		t.Fatalf("a cutoff that hid records was not stored: %d", m.hidden)
	}
}

// TestHideAtOpen reopens a log whose stored cutoff hides its first hour and hides the second
// hour with Hide, as the engine does when it opens a shard: no file changes until a Trim,
// yet every read, Oldest and SeqAtTime already start at the third hour; the next Trim
// deletes the expired segments and stores the cutoff.
func TestHideAtOpen(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	t0 := c.Now()
	l := mustOpen(t, dir, testOpts(c, Sync))
	hours := threeHours(t, l, c)
	if _, err := l.Trim(t0.Add(30 * time.Minute).UnixNano()); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	stored, _, err := readMeta(vfs.OS, dir)
	if err != nil {
		t.Fatal(err)
	}
	files := len(segFiles(t, dir))

	l = mustOpen(t, dir, testOpts(c, Sync))
	defer l.Close()
	cutoff := t0.Add(90 * time.Minute).UnixNano()
	l.Hide(cutoff)
	if m, _, _ := readMeta(l.fs, dir); m.hidden != stored.hidden || len(segFiles(t, dir)) != files {
		t.Fatalf("Hide wrote: stored cutoff %d (was %d), %d segment files (were %d)", m.hidden, stored.hidden, len(segFiles(t, dir)), files)
	}
	if seq, ok, err := l.SeqAtTime(t0.UnixNano()); err != nil || !ok || seq != hours[2][0].Seq {
		t.Fatalf("SeqAtTime of the first hour: %d %v %v, want %d", seq, ok, err, hours[2][0].Seq)
	}
	if seq, ok, err := l.Oldest(); err != nil || !ok || seq != hours[2][0].Seq {
		t.Fatalf("oldest %d %v %v, want %d", seq, ok, err, hours[2][0].Seq)
	}
	got, err := readAll(t, l, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, hours[2])

	removed, err := l.Trim(cutoff)
	if err != nil || removed == 0 {
		t.Fatalf("Trim after Hide removed %d segments, %v", removed, err)
	}
	if m, _, _ := readMeta(l.fs, dir); m.hidden != cutoff {
		t.Fatalf("Trim after Hide stored cutoff %d, want %d", m.hidden, cutoff)
	}
}

// TestHideRacesFirstRead calls Hide while other goroutines make the first reads of a
// reopened log (the ones that place the horizon): whichever runs first, once both are done
// every read starts at the first record Hide's cutoff keeps.
func TestHideRacesFirstRead(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	t0 := c.Now()
	l := mustOpen(t, dir, testOpts(c, Sync))
	hours := threeHours(t, l, c)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		copied := t.TempDir() // each round starts from the closed log, its cutoff not stored
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(copied, e.Name()), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		l := mustOpen(t, copied, testOpts(c, Sync))
		done := make(chan error, 4)
		for range 4 {
			go func() {
				v, err := l.Read(0, 1, 0)
				v.Release()
				done <- err
			}()
		}
		l.Hide(t0.Add(90 * time.Minute).UnixNano())
		for range 4 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if seq, ok, err := l.Oldest(); err != nil || !ok || seq != hours[2][0].Seq {
			t.Fatalf("oldest %d %v %v, want %d", seq, ok, err, hours[2][0].Seq)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
