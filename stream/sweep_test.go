package stream

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// mkdirs makes each directory under root, with one file in it.
func mkdirs(t *testing.T, root string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, d, "data"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// listTwo lists root's entries and theirs, relative to root, sorted.
func listTwo(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	des, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		out = append(out, de.Name())
		if !de.IsDir() {
			continue
		}
		sub, err := os.ReadDir(filepath.Join(root, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sub {
			out = append(out, de.Name()+"/"+s.Name())
		}
	}
	slices.Sort(out)
	return out
}

// TestSweepEmptyCatalogKeepsAll: an engine whose shared catalog holds no stream (read empty:
// another cluster's name, an etcd wiped) removes no stream directory.
func TestSweepEmptyCatalogKeepsAll(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, streamsDir)
	mkdirs(t, root, "a@1/shard-0", "b@2")
	before := listTwo(t, root)
	e, err := Open(Options{Dir: dir, Catalog: newMemCatalog()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := listTwo(t, root); !slices.Equal(got, before) {
		t.Fatalf("after Open on an empty catalog: %v, want %v", got, before)
	}
}

// TestSweepOnReset: after the catalog is read again whole (a CatalogReset), the engine
// removes the directories of the shards its streams' maps no longer have and of the streams
// the catalog no longer holds; the shards the maps have, and entries it does not name
// (another owner's files beside the shard directories), stay.
func TestSweepOnReset(t *testing.T) {
	dir := t.TempDir()
	cat := newMemCatalog()
	e, err := Open(Options{Dir: dir, Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.CreateStream(CreateStreamInput{Name: "s", ShardCount: 2}); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, streamsDir)
	s, _ := e.stream("s")
	sdir := filepath.Base(s.dir)
	mkdirs(t, root, sdir+"/shard-7", sdir+"/shard-07", sdir+"/shard-x", "old@5/shard-0")
	if err := os.WriteFile(filepath.Join(root, sdir, ".vote-shard-7"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	entries, rev, err := cat.Load()
	if err != nil {
		t.Fatal(err)
	}
	e.applyEvents([]CatalogEvent{{Kind: CatalogReset, Entries: entries, Rev: rev}})
	want := []string{sdir, sdir + "/.vote-shard-7", sdir + "/shard-0", sdir + "/shard-07", sdir + "/shard-1", sdir + "/shard-x"}
	if got := listTwo(t, root); !slices.Equal(got, want) {
		t.Fatalf("after the reset: %v, want %v", got, want)
	}
	if got := listTwo(t, filepath.Join(dir, trashDir)); len(got) > 0 {
		t.Fatalf("left in the trash: %v", got)
	}
	if _, err := e.PutRecords("s", []PutEntry{{PartitionKey: "k", Data: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
}
