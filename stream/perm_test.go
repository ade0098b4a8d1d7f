package stream

import (
	"bytes"
	"io/fs"
	"path/filepath"
	"testing"
	"time"
)

// TestFilesOwnerOnly checks that everything the engine writes under its data directory is
// readable by its owner only: files 0600, directories 0700.
func TestFilesOwnerOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, dir, c, "off")
	if err := e.CreateStream(CreateStreamInput{Name: "private", ShardCount: 2}); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 4<<10)
	for range 200 { // enough to seal segments of segment.MinSegmentSize
		if _, err := e.PutRecords("private", []PutEntry{{PartitionKey: "a", Data: data}, {PartitionKey: "b", Data: data}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.GetShardIterator(IteratorInput{Stream: "private", Shard: 0, Type: TrimHorizon}); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	var files, dirs int
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want, dirs = 0o700, dirs+1
		} else {
			files++
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", path, got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 4 || dirs < 3 {
		t.Fatalf("walked %d files and %d directories: the stream's files are not where the test looks", files, dirs)
	}
	t.Logf("%d files, %d directories", files, dirs)
}
