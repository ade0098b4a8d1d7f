package stream

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/internal/dirlock"
	"github.com/sluice-streams/sluice/internal/vfs"
	"github.com/sluice-streams/sluice/segment"
)

// openRecorder is a file layer that records the name of every file opened through it.
type openRecorder struct {
	vfs.FS
	mu     sync.Mutex
	opened []string
}

func (r *openRecorder) OpenFile(name string, flag int, perm fs.FileMode) (vfs.File, error) {
	r.mu.Lock()
	r.opened = append(r.opened, name)
	r.mu.Unlock()
	return r.FS.OpenFile(name, flag, perm)
}

// copyLive copies the data directory src, which an engine holds, to dst, without its lock
// file: with no write in progress, the bytes a kill -9 of the engine's process would leave
// (the page cache outlives the process).
func copyLive(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		if rel == dirlock.FileName {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOpenReadsOnlyActiveSegments opens a data directory whose shards hold dozens of sealed
// segments each, after a clean close and after a crash, and checks that start-up opens no
// segment file but the two newest of each shard: recovery reads a shard's newest segment
// and the one before it (whose checkpoint gives the highest sequence number when the newest
// holds no record yet). The retention horizon of the stored cutoff and the oldest record
// are found on first use, not at start. The records are all readable afterwards, and
// reading them is what opens the older segments.
func TestOpenReadsOnlyActiveSegments(t *testing.T) {
	for _, clean := range []bool{true, false} {
		t.Run(fmt.Sprintf("clean=%v", clean), func(t *testing.T) {
			dir := t.TempDir()
			c := &clock{t: time.Unix(1_700_000_000, 0)}
			e := testEngine(t, dir, c, "off")
			if err := e.CreateStream(CreateStreamInput{Name: "many", ShardCount: 2}); err != nil {
				t.Fatal(err)
			}
			data := make([]byte, 24<<10) // two records to a 64 KiB segment
			const records = 160
			for i := range records {
				if _, err := e.PutRecords("many", []PutEntry{{PartitionKey: fmt.Sprint(i), Data: data}}); err != nil {
					t.Fatal(err)
				}
			}
			if !clean {
				crashed := t.TempDir()
				copyLive(t, dir, crashed)
				dir = crashed
			}
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			// The two newest segment files of every shard directory, and its segment count.
			newest := map[string]bool{}
			count := map[string]int{}
			shardDirs, _ := filepath.Glob(filepath.Join(dir, streamsDir, "many", "shard-*"))
			sealed := 0
			for _, sd := range shardDirs {
				segs, _ := filepath.Glob(filepath.Join(sd, "*.seg"))
				slices.Sort(segs)
				if len(segs) < 20 {
					t.Fatalf("%s: %d segments, want at least 20", sd, len(segs))
				}
				sealed += len(segs) - 1
				count[sd] = len(segs)
				for _, s := range segs[len(segs)-2:] {
					newest[s] = true
				}
			}
			ll, err := ParseLimits("off")
			if err != nil {
				t.Fatal(err)
			}
			rec := &openRecorder{FS: vfs.OS}
			e2, err := Open(Options{Dir: dir, FS: rec, Now: c.Now, Limits: ll, SegmentSize: segment.MinSegmentSize,
				Durability: segment.Durability{Mode: segment.Sync}})
			if err != nil {
				t.Fatal(err)
			}
			defer e2.Close()
			rec.mu.Lock()
			opened := slices.Clone(rec.opened)
			rec.mu.Unlock()
			older := map[string]map[string]bool{} // shard directory → older segments opened
			for _, name := range opened {
				sd := filepath.Dir(name)
				if !strings.HasSuffix(name, ".seg") || newest[name] {
					continue
				}
				if older[sd] == nil {
					older[sd] = map[string]bool{}
				}
				older[sd][name] = true
			}
			for sd, n := range count {
				if len(older[sd]) > 0 {
					t.Errorf("%s: start-up opened %d of its %d older segments, want none: %v", filepath.Base(sd), len(older[sd]), n-2, slices.Sorted(maps.Keys(older[sd])))
				}
			}
			t.Logf("%d sealed segments; start-up opened only the two newest of each shard", sealed)
			d, err := e2.Describe("many")
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, sd := range d.Shards {
				it, err := e2.GetShardIterator(IteratorInput{Stream: "many", Shard: sd.ID, Type: TrimHorizon})
				if err != nil {
					t.Fatal(err)
				}
				recs, _ := drain(t, e2, it, sd.ID)
				n += len(recs)
			}
			if n != records {
				t.Fatalf("%d records readable after the restart, want %d", n, records)
			}
		})
	}
}
