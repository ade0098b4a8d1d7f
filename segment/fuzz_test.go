package segment

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/internal/vfs"
)

// recoverImage is the set of files of a log directory, as a crash (or a clean close) left it.
type recoverImage struct {
	files   map[string][]byte
	newest  string // the newest segment's file name
	dataEnd int64  // end of the frames in the newest segment
	sealed  int    // records in segments before the newest
	// cover[i] is how many records must survive (sealed ones included) when checkpoint slot
	// i (0 at slot0Off, 1 at slot1Off) of the newest segment is intact and Open reports no
	// corruption: the records before that checkpoint's durable offset.
	cover [2]int
	gens  [2]uint64
}

// recoverFixture is a small log built once: a full, sealed first segment and an active one
// holding several batches of different sizes, each synced.
type recoverFixture struct {
	want         []Record
	crash, clean recoverImage
}

func buildRecoverFixture(t testing.TB) *recoverFixture {
	dir := filepath.Join(t.TempDir(), "log")
	c := newClock()
	l := mustOpen(t, dir, testOpts(c, Sync))
	fx := &recoverFixture{}
	fx.want = appendN(t, l, 0, 90, 700, 10) // rolls into a second segment
	for _, b := range [][]Record{
		{rec("", nil)},
		{rec("k", []byte{1})},
		{rec("key-a", payload(1, 37)), rec("key-b", payload(2, 37)), rec("key-c", payload(3, 37))},
		{rec("key-d", payload(4, 300)), rec("", payload(5, 301))},
		{rec(strings.Repeat("x", 200), nil)},
		{rec("last", payload(6, 1000))},
	} {
		c.Advance(time.Millisecond)
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
		fx.want = append(fx.want, b...)
	}
	image := func() recoverImage {
		l.mu.Lock()
		defer l.mu.Unlock()
		segs := *l.segs.Load()
		if len(segs) < 2 || l.active == nil || l.active != segs[len(segs)-1] {
			t.Fatalf("fixture: %d segments, active %v; want a sealed segment and an active one", len(segs), l.active)
		}
		img := recoverImage{files: map[string][]byte{}, newest: filepath.Base(l.active.path), dataEnd: l.apos.end}
		for _, r := range fx.want {
			if r.Seq < l.active.base {
				img.sealed++
			}
		}
		return img
	}
	copyFiles := func(img *recoverImage) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), tmpSuffix) {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			img.files[e.Name()] = b
		}
		page := img.files[img.newest]
		for i, off := range [2]int{slot0Off, slot1Off} {
			ck, ok := decodeCheckpoint(page[off : off+slotSize])
			if !ok {
				t.Fatalf("fixture: checkpoint slot %d of %s is not valid", i, img.newest)
			}
			img.cover[i] = img.sealed + int(ck.count)
			img.gens[i] = ck.gen
		}
	}
	// Sync-mode appends are durable once Append returns: copying the files now is what a
	// crash (kill -9, or a power cut) would leave.
	fx.crash = image()
	copyFiles(&fx.crash)
	fx.clean = image()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	copyFiles(&fx.clean)
	if m, err := decodeMeta(fx.crash.files[metaName]); err != nil || m.clean {
		t.Fatalf("fixture: crash image meta %+v, %v; want a log not closed cleanly", m, err)
	}
	if m, err := decodeMeta(fx.clean.files[metaName]); err != nil || !m.clean {
		t.Fatalf("fixture: clean image meta %+v, %v; want a clean log", m, err)
	}
	return fx
}

// fuzzNoSyncFS is the operating system's file system without fsync and fdatasync: FuzzRecover
// does not simulate a crash after Open, and the syncs would cost most of its time.
type fuzzNoSyncFS struct{ vfs.FS }

func (x fuzzNoSyncFS) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	f, err := x.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return fuzzNoSyncFile{f}, nil
}

func (fuzzNoSyncFS) SyncDir(string) error { return nil }

type fuzzNoSyncFile struct{ vfs.File }

func (fuzzNoSyncFile) Sync() error { return nil }

// FuzzRecover damages a region of the newest segment of a log left by a crash (or by a clean
// close) and opens it. Open must not panic. The records it can read must be a prefix of the
// records appended, byte for byte. Damage confined to bytes recovery never interprets (past
// the frames, or unused parts of the header page) must lose nothing. When Open and the reads
// report no corruption, no record before an intact checkpoint's durable offset may be
// missing: losing one silently would break Sync mode's promise. And a log that Open accepted
// must take appends and reopen without reporting damage.
//
// The damage is the region [off, off+n) (n 0 means len(fill)) filled with fill repeated, or
// with zeros when fill is empty; off is taken modulo the file size plus 8 KiB.
func FuzzRecover(f *testing.F) {
	fx := buildRecoverFixture(f)
	size := uint32(len(fx.crash.files[fx.crash.newest]))
	for _, clean := range []bool{false, true} {
		img := fx.crash
		if clean {
			img = fx.clean
		}
		end := uint32(img.dataEnd)
		newer, older := 0, 1
		if img.gens[1] > img.gens[0] {
			newer, older = 1, 0
		}
		slot := [2]uint32{slot0Off, slot1Off}
		f.Add(clean, uint32(0), uint32(0), []byte(nil))                          // no damage
		f.Add(clean, end, uint32(0), []byte("garbage past the end of the data")) // beyond the data
		f.Add(clean, end+4, uint32(0), []byte("garbage a little further"))       // beyond, not at, the end word
		f.Add(clean, size+100, uint32(0), []byte("past the file's end"))         // grows the file
		f.Add(clean, uint32(100), uint32(0), []byte("unused header page bytes"))
		f.Add(clean, end-20, uint32(20), []byte(nil))                                   // torn tail: the last frame's end zeroed
		f.Add(clean, end-100, uint32(0), []byte{0xff})                                  // a flipped byte in the last batch
		f.Add(clean, end-8, uint32(4096), []byte{0xff, 0x00, 0x37})                     // garbage across the end
		f.Add(clean, uint32(DataOffset+50), uint32(0), []byte("X"))                     // damage in the first frame
		f.Add(clean, uint32(DataOffset), uint32(4), []byte(nil))                        // a zero length word at the start
		f.Add(clean, end/2&^7, uint32(8), []byte(nil))                                  // a zero length word in the middle
		f.Add(clean, uint32(20), uint32(0), []byte{0xaa})                               // the header
		f.Add(clean, uint32(0), uint32(headerSize), []byte(nil))                        // the header zeroed
		f.Add(clean, slot[newer]+30, uint32(0), []byte{0x55})                           // the newer checkpoint torn
		f.Add(clean, slot[older]+30, uint32(0), []byte{0x55})                           // the older checkpoint torn
		f.Add(clean, slot[newer], uint32(slotSize), []byte(nil))                        // the newer checkpoint zeroed
		f.Add(clean, uint32(slot0Off), uint32(slot1Off+slotSize-slot0Off), []byte(nil)) // both checkpoints zeroed
		f.Add(clean, slot[newer], uint32(DataOffset-slot[newer]+16), []byte{0x5a})      // the newer checkpoint and the first frame
		f.Add(clean, uint32(slot0Off), uint32(DataOffset-slot0Off+16), []byte{0x5a})    // both checkpoints and the first frame
		f.Add(clean, uint32(0), size, []byte(nil))                                      // the whole file zeroed
		f.Add(clean, uint32(headerSize), size, []byte(nil))                             // all but the header zeroed
	}

	opts := testOpts(newClock(), Sync)
	opts.FS = fuzzNoSyncFS{vfs.OS}
	f.Fuzz(func(t *testing.T, clean bool, off, n uint32, fill []byte) {
		img := &fx.crash
		if clean {
			img = &fx.clean
		}
		dir := t.TempDir()
		for name, b := range img.files {
			if name == img.newest {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		orig := img.files[img.newest]
		limit := int64(len(orig)) + 8192
		start := int64(off) % limit
		length := int64(n)
		if length == 0 {
			length = int64(len(fill))
		}
		length = min(length, limit-start)
		damaged := bytes.Clone(orig)
		if need := start + length; need > int64(len(damaged)) {
			damaged = append(damaged, make([]byte, need-int64(len(damaged)))...)
		}
		for i := range length {
			var c byte
			if len(fill) > 0 {
				c = fill[i%int64(len(fill))]
			}
			damaged[start+i] = c
		}
		if err := os.WriteFile(filepath.Join(dir, img.newest), damaged, 0o644); err != nil {
			t.Fatal(err)
		}
		changed := func(lo, hi int64) bool {
			for i := lo; i < hi && i < int64(len(damaged)); i++ {
				var o byte
				if i < int64(len(orig)) {
					o = orig[i]
				}
				if damaged[i] != o {
					return true
				}
			}
			return false
		}
		mode := "crashed"
		if clean {
			mode = "cleanly closed"
		}
		t.Logf("%s log; newest segment %s, frames end at %d; damage [%d, %d)", mode, img.newest, img.dataEnd, start, start+length)
		slotChanged := [2]bool{changed(slot0Off, slot0Off+slotSize), changed(slot1Off, slot1Off+slotSize)}
		harmless := !changed(0, headerSize) && !slotChanged[0] && !slotChanged[1] && !changed(DataOffset, img.dataEnd)

		l, err := Open(dir, opts)
		if err != nil {
			if harmless {
				t.Fatalf("Open failed after damage only past the frames or in unused header bytes: %v", err)
			}
			return
		}
		got, rerr := readAll(t, l, 0)
		lerr := l.Err()
		if len(got) > len(fx.want) {
			l.Close()
			t.Fatalf("read %d records, only %d were appended", len(got), len(fx.want))
		}
		sameRecords(t, got, fx.want[:len(got)])
		if harmless && (len(got) != len(fx.want) || rerr != nil || lerr != nil) {
			l.Close()
			t.Fatalf("damage only past the frames or in unused header bytes: %d of %d records survive, read error %v, Err %v",
				len(got), len(fx.want), rerr, lerr)
		}
		if len(got) < img.sealed {
			t.Errorf("damage to the newest segment lost records of sealed segments: %d of %d readable (read error %v)", len(got), img.sealed, rerr)
		}
		if lerr == nil && rerr == nil {
			// Nothing reported: every record an intact checkpoint covered must be there.
			// With both checkpoints damaged nothing says what was durable, which is itself
			// corruption (a segment is created with a checkpoint, and each write touches one
			// slot), so the records the older one covered must still be there.
			must, why := min(img.cover[0], img.cover[1]), "the older checkpoint (both checkpoint slots damaged)"
			for i := range 2 {
				if !slotChanged[i] && img.cover[i] > must {
					must, why = img.cover[i], "an intact checkpoint"
				}
			}
			if !slotChanged[0] && !slotChanged[1] {
				why = "the intact checkpoints"
			}
			if len(got) < must {
				t.Errorf("silent loss: %d of %d records readable and no corruption reported, but %s covered %d",
					len(got), len(fx.want), why, must)
			}
		}
		if lerr != nil {
			l.Close()
			return
		}
		// The log accepted by Open takes appends and reopens cleanly.
		extra := []Record{rec("after-recovery", []byte("new")), rec("", nil)}
		if err := l.Append(extra); err != nil {
			l.Close()
			t.Fatalf("Append after a recovery that reported nothing: %v", err)
		}
		got2, rerr2 := readAll(t, l, 0)
		if rerr == nil {
			if rerr2 != nil {
				t.Errorf("read after appending: %v", rerr2)
			}
			sameRecords(t, got2, append(append([]Record(nil), got...), extra...))
		}
		if err := l.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		l, err = Open(dir, opts)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer l.Close()
		if err := l.Err(); err != nil {
			t.Errorf("reopen after a recovery that reported nothing, and an append: %v", err)
		}
		got3, rerr3 := readAll(t, l, 0)
		if rerr == nil {
			if rerr3 != nil {
				t.Errorf("read after reopening: %v", rerr3)
			}
			sameRecords(t, got3, got2)
		}
	})
}
