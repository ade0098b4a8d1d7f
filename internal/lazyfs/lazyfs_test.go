//go:build linux

package lazyfs

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// mounted returns a Disk mounted for t, and its mount point.
func mounted(t *testing.T) (*Disk, string) {
	t.Helper()
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	return MountT(t, filepath.Join(dir, "disk"), mnt), mnt
}

func writeAt(t *testing.T, f *os.File, b []byte, off int64) {
	t.Helper()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func fill(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }

func syncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestCutDropsUnsynced writes through a mount: what was fdatasynced survives the cut, what
// was written after is given back its durable content, and the file shrinks back to its
// durable size; a name created after the last sync is gone, a rename made durable by a
// directory fsync stays, a rename over a file and a removal not made durable are undone (with
// the files' durable content: none for gone and repl, whose data was never synced).
func TestCutDropsUnsynced(t *testing.T) {
	d, mnt := mounted(t)
	f, err := os.OpenFile(filepath.Join(mnt, "seg"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, 8*pageSize); err != nil {
		t.Fatal(err)
	}
	writeAt(t, f, fill('a', 6000), 0)
	if err := unix.Fdatasync(int(f.Fd())); err != nil {
		t.Fatal(err)
	}
	writeAt(t, f, fill('b', 100), 5000)            // overwrites durable bytes of page 1
	writeAt(t, f, fill('c', pageSize), 3*pageSize) // unsynced page 3
	writeAt(t, f, fill('d', 10), 9*pageSize)       // grows the file past its durable size
	// The write is visible through a read-only shared mapping, as the segment reader sees it.
	m, err := unix.Mmap(int(f.Fd()), 0, 4*pageSize, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	if got := m[3*pageSize]; got != 'c' {
		t.Errorf("mapping sees %q at page 3, want 'c'", got)
	}
	unix.Munmap(m)
	f.Close()

	for _, name := range []string{"old", "gone"} {
		if err := os.WriteFile(filepath.Join(mnt, name), []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	syncDir(t, mnt)
	if err := os.WriteFile(filepath.Join(mnt, "tmp"), []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	tf, err := os.OpenFile(filepath.Join(mnt, "tmp"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := tf.Sync(); err != nil {
		t.Fatal(err)
	}
	tf.Close()
	if err := os.Rename(filepath.Join(mnt, "tmp"), filepath.Join(mnt, "old")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "repl"), []byte("repl"), 0o600); err != nil {
		t.Fatal(err)
	}
	syncDir(t, mnt)
	// Not made durable: undone by the cut, which brings the replaced "old" back.
	if err := os.Rename(filepath.Join(mnt, "repl"), filepath.Join(mnt, "old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(mnt, "gone")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "late"), []byte("late"), 0o600); err != nil {
		t.Fatal(err)
	}

	st, err := d.Cut(rand.New(rand.NewPCG(1, 2)), 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Undone != 4 || st.Kept != 0 {
		t.Errorf("cut: %+v, want 4 entries undone (late, gone, the rename over old and old's removal) and nothing kept", st)
	}
	root := d.Root()
	got, err := os.ReadFile(filepath.Join(root, "seg"))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 8*pageSize)
	copy(want, fill('a', 6000))
	if !bytes.Equal(got, want) {
		t.Errorf("seg after the cut: %d bytes, equal to its durable content: false", len(got))
	}
	// gone's name was durable, its data never synced.
	for name, content := range map[string]string{"old": "new", "gone": "", "repl": ""} {
		if b, err := os.ReadFile(filepath.Join(root, name)); err != nil || string(b) != content {
			t.Errorf("%s after the cut: %q, %v; want %q", name, b, err, content)
		}
	}
	for _, name := range []string{"late", "tmp"} {
		if _, err := os.Stat(filepath.Join(root, name)); !os.IsNotExist(err) {
			t.Errorf("%s after the cut: %v, want it gone", name, err)
		}
	}
}

// TestCutKeepsSome keeps every unsynced page with keep 1 and none with keep 0, and a
// fraction between keeps some: the page contents are either the new or the durable ones.
func TestCutKeepsSome(t *testing.T) {
	for _, keep := range []float64{0, 0.5, 1} {
		d, mnt := mounted(t)
		p := filepath.Join(mnt, "f")
		if err := os.WriteFile(p, make([]byte, 64*pageSize), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		writeAt(t, f, fill('x', 64*pageSize), 0)
		f.Close()
		st, err := d.Cut(rand.New(rand.NewPCG(3, uint64(keep*10))), keep)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(d.Root(), "f"))
		if err != nil || len(b) != 64*pageSize {
			t.Fatalf("keep %v: %d bytes, %v", keep, len(b), err)
		}
		kept := 0
		for pg := range 64 {
			page := b[pg*pageSize : (pg+1)*pageSize]
			switch {
			case bytes.Equal(page, fill('x', pageSize)):
				kept++
			case !bytes.Equal(page, make([]byte, pageSize)):
				t.Errorf("keep %v: page %d is neither old nor new", keep, pg)
			}
		}
		if kept != st.Kept || kept+st.Dropped != 64 {
			t.Errorf("keep %v: %d pages kept, stats %+v", keep, kept, st)
		}
		if keep == 0 && kept != 0 || keep == 1 && kept != 64 || keep == 0.5 && (kept == 0 || kept == 64) {
			t.Errorf("keep %v: %d of 64 pages kept", keep, kept)
		}
	}
}
