package segment

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-streams/sluice/internal/faultfs"
)

// logRecords is a slog handler that keeps every record, for tests of what a log reports.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecords) WithGroup(string) slog.Handler            { return h }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}

// matching returns the records whose message contains s.
func (h *logRecords) matching(s string) []slog.Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []slog.Record
	for _, r := range h.recs {
		if strings.Contains(r.Message, s) {
			out = append(out, r)
		}
	}
	return out
}

func attrOf(r slog.Record, key string) slog.Value {
	var v slog.Value
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value
			return false
		}
		return true
	})
	return v
}

// segSizes returns the sizes of the segment files in dir.
func segSizes(t *testing.T, dir string) []int64 {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, n := range names {
		st, err := os.Stat(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, st.Size())
	}
	return out
}

// TestNearlyFullDiskShrinksSegments: when a segment of the configured size does not fit,
// the roll halves it down to what the batch needs and the records go into smaller segments;
// a batch that fits in nothing the disk has room for is refused with ErrNoSpace.
func TestNearlyFullDiskShrinksSegments(t *testing.T) {
	fs := faultfs.New()
	logs := &logRecords{}
	dir := t.TempDir()
	const limit = 300 << 10
	fs.LimitAllocate(limit)
	l := mustOpen(t, dir, Options{FS: fs, Now: newClock().Now, Logger: slog.New(logs), SegmentSize: 1 << 20})
	defer l.Close()
	want := appendN(t, l, 0, 400, 1000, 4) // about 420 KiB of frames: several segments
	sizes := segSizes(t, dir)
	if len(sizes) < 2 {
		t.Fatalf("segment sizes %v: want several segments", sizes)
	}
	for _, n := range sizes {
		if n > limit {
			t.Fatalf("segment sizes %v: one is larger than the %d bytes the disk had room for", sizes, limit)
		}
	}
	if n := len(logs.matching("smaller than configured")); n != 1 {
		t.Fatalf("the shrink was logged %d times, want once", n)
	}
	big := make([]Record, 40)
	for i := range big {
		big[i] = rec("big", payload(i, 10_000))
	}
	if err := l.Append(big); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("a 400 KB batch with room for 300 KB: %v, want ErrNoSpace", err)
	}
	got, err := readAll(t, l, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, want)
}

// TestDiskFullEpisodeLoggedOnce: the first refused append is logged at Error with its cause,
// the others are counted, and the first append after space returns is logged once with the
// count.
func TestDiskFullEpisodeLoggedOnce(t *testing.T) {
	fs := faultfs.New()
	logs := &logRecords{}
	c := newClock()
	o := faultOpts(fs, c, Durability{Mode: Sync})
	o.Logger = slog.New(logs)
	l := mustOpen(t, t.TempDir(), o)
	defer l.Close()
	appendN(t, l, 0, 10, 1000, 2)
	fs.SetNoSpace(true)
	const refused = 100
	for i := range refused {
		if err := l.Append([]Record{rec("k", payload(i, 10_000))}); !errors.Is(err, ErrNoSpace) {
			t.Fatalf("append %d on a full disk: %v", i, err)
		}
	}
	full := logs.matching("disk full")
	if len(full) != 1 || full[0].Level != slog.LevelError || !strings.Contains(attrOf(full[0], "err").String(), "no space") {
		t.Fatalf("full-disk reports %v: want one at Error with the cause", full)
	}
	c.Advance(3e9)
	fs.SetNoSpace(false)
	appendN(t, l, 100, 10, 1000, 2)
	back := logs.matching("appends resumed")
	if len(back) != 1 || attrOf(back[0], "refused").Uint64() != refused || attrOf(back[0], "for").Duration() != 3e9 {
		t.Fatalf("recovery reports %v: want one with refused=%d for=3s", back, refused)
	}
	if n := len(logs.matching("disk full")); n != 1 {
		t.Fatalf("%d full-disk reports after recovery, want 1", n)
	}
}

// TestOpenOnFullDisk: a log reopened on a full disk opens and serves its records; appends
// are refused with ErrNoSpace, not for good, and succeed once space returns; nothing is lost
// across another reopen.
func TestOpenOnFullDisk(t *testing.T) {
	for _, d := range []Durability{{Mode: Sync}, {Mode: None}} {
		t.Run(d.String(), func(t *testing.T) {
			fs := faultfs.New()
			c := newClock()
			dir := t.TempDir()
			o := faultOpts(fs, c, d)
			l := mustOpen(t, dir, o)
			want := appendN(t, l, 0, 100, 1000, 4)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			fs.SetNoSpace(true)
			l = mustOpen(t, dir, o)
			got, err := readAll(t, l, 0)
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, want)
			for i := range 3 {
				if err := l.Append([]Record{rec("k", payload(i, 100))}); !errors.Is(err, ErrNoSpace) {
					t.Fatalf("append %d on a full disk after open: %v, want ErrNoSpace", i, err)
				}
			}
			fs.SetNoSpace(false)
			want = append(want, appendN(t, l, 200, 100, 1000, 4)...)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, dir, o)
			defer l.Close()
			got, err = readAll(t, l, 0)
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, got, want)
		})
	}
}
