package segment

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSealedUpToAndAdopt: SealedUpTo lists the sealed segments up to a position, oldest
// first, stopping at the first holding a frame above it; a replicated log's Trim keeps what
// is not published; files copied to another directory with CreateMeta open as a log with
// the same frames.
func TestSealedUpToAndAdopt(t *testing.T) {
	c := newClock()
	o := Options{Now: c.Now, SegmentSize: MinSegmentSize, Durability: Durability{Mode: Sync}, Replicated: true}
	l := mustOpen(t, t.TempDir(), o)
	defer l.Close()
	pos := gappy(1, 600)
	appendAtN(t, l, pos, 900, 10, c.Now().UnixNano())
	all, err := l.SealedUpTo(pos[599])
	if err != nil || len(all) < 4 {
		t.Fatalf("SealedUpTo(last): %d files, %v; want several", len(all), err)
	}
	for i, f := range all {
		if f.First == 0 || f.Last < f.First || (i > 0 && f.First <= all[i-1].Last) || !IsSegmentName(f.Name) {
			t.Fatalf("file %d: %+v", i, f)
		}
	}
	if l.FirstPos() != all[0].First {
		t.Fatalf("FirstPos %d, first frame %d", l.FirstPos(), all[0].First)
	}
	some, err := l.SealedUpTo(all[2].Last - 1)
	if err != nil || len(some) != 2 {
		t.Fatalf("SealedUpTo inside the third file: %d files, %v; want 2", len(some), err)
	}

	// Trim in replicated mode keeps the segments holding records above the published tip.
	if err := l.Publish(all[1].Last); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Hour)
	if n, err := l.Trim(c.Now().UnixNano()); err != nil || n != 2 {
		t.Fatalf("Trim with the tip at the end of the second file: %d removed, %v; want 2", n, err)
	}
	if l.FirstPos() != all[2].First {
		t.Fatalf("FirstPos %d after Trim, want %d", l.FirstPos(), all[2].First)
	}

	// The remaining sealed files, copied elsewhere with a new log.meta, open as a log.
	dir2 := t.TempDir()
	for _, f := range all[2:] {
		b, err := os.ReadFile(filepath.Join(l.Dir(), f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir2, f.Name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := CreateMeta(nil, dir2, 0); err != nil {
		t.Fatal(err)
	}
	l2 := mustOpen(t, dir2, o)
	defer l2.Close()
	last := all[len(all)-1].Last
	if l2.LastPos() != last {
		t.Fatalf("adopted log's LastPos %d, want %d", l2.LastPos(), last)
	}
	if err := l2.Publish(last); err != nil {
		t.Fatal(err)
	}
	if err := l.Publish(pos[599]); err != nil {
		t.Fatal(err)
	}
	got := mustRead(t, l2)
	want := mustRead(t, l)
	want = want[:len(got)]
	if got[0].Seq != all[2].First {
		t.Fatalf("adopted log starts at %d, want %d", got[0].Seq, all[2].First)
	}
	sameRecords(t, got, want)
}
