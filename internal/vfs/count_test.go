package vfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestCountingFS(t *testing.T) {
	dir := t.TempDir()
	c := NewCountingFS(OS)
	if s := c.Stats(); s != (SyncStats{}) {
		t.Fatalf("Stats of a new CountingFS = %+v, want zeros", s)
	}

	f, err := c.OpenFile(filepath.Join(dir, "a"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const syncs = 3
	for i := range syncs {
		if _, err := f.WriteAt([]byte("some bytes"), int64(i*4096)); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	s := c.Stats()
	if s.Syncs != syncs || s.DirSyncs != 1 {
		t.Errorf("Stats = %+v, want %d syncs and 1 dir sync", s, syncs)
	}
	if s.Longest <= 0 || s.Time < s.Longest {
		t.Errorf("Stats = %+v, want 0 < Longest <= Time", s)
	}

	// Calls other than the syncs pass through, and count nothing.
	if size, err := f.Size(); err != nil || size != 2*4096+10 {
		t.Errorf("Size = %d, %v; want %d", size, err, 2*4096+10)
	}
	if err := c.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.OpenFile(filepath.Join(dir, "a"), os.O_RDONLY, 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenFile of a missing file: %v, want ErrNotExist", err)
	}
	if got := c.Stats(); got != s {
		t.Errorf("Stats after non-sync calls = %+v, want %+v", got, s)
	}

	// A failed sync counts too, and its error comes back unchanged.
	if err := c.SyncDir(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SyncDir of a missing directory: %v, want ErrNotExist", err)
	}
	if got := c.Stats().DirSyncs; got != 2 {
		t.Errorf("DirSyncs after a failed SyncDir = %d, want 2", got)
	}

	c.Reset()
	if s := c.Stats(); s != (SyncStats{}) {
		t.Errorf("Stats after Reset = %+v, want zeros", s)
	}
}

// TestCountingFSConcurrent syncs from several goroutines at once (run it with -race).
func TestCountingFSConcurrent(t *testing.T) {
	dir := t.TempDir()
	c := NewCountingFS(OS)
	const writers, each = 4, 5
	var wg sync.WaitGroup
	for w := range writers {
		f, err := c.OpenFile(filepath.Join(dir, string(rune('a'+w))), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		wg.Go(func() {
			for i := range each {
				if _, err := f.WriteAt([]byte{byte(i)}, int64(i)); err != nil {
					t.Error(err)
					return
				}
				if err := f.Sync(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		if err := c.SyncDir(dir); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	if s := c.Stats(); s.Syncs != writers*each || s.DirSyncs != 1 || s.Longest <= 0 || s.Time < s.Longest {
		t.Errorf("Stats = %+v, want %d syncs, 1 dir sync, 0 < Longest <= Time", s, writers*each)
	}
}
