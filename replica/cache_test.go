package replica

import (
	"bytes"
	"errors"
	"testing"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/sluice-streams/sluice/frame"
)

// sameEntry fails unless a and b are the same entry: index, term, type, and for a frame the
// same record (a frame's seq is the proposal's or the index, depending on where it was read
// from), for anything else the same data.
func sameEntry(t *testing.T, a, b *pb.Entry) {
	t.Helper()
	if a.GetIndex() != b.GetIndex() || a.GetTerm() != b.GetTerm() || a.GetType() != b.GetType() {
		t.Fatalf("entry %d/%d/%v, want %d/%d/%v", a.GetIndex(), a.GetTerm(), a.GetType(), b.GetIndex(), b.GetTerm(), b.GetType())
	}
	if a.GetType() != pb.EntryNormal || len(a.GetData()) == 0 || len(b.GetData()) == 0 {
		if !bytes.Equal(a.GetData(), b.GetData()) {
			t.Fatalf("entry %d: data %x, want %x", a.GetIndex(), a.GetData(), b.GetData())
		}
		return
	}
	ra, _, err := frame.Decode(a.GetData())
	if err != nil {
		t.Fatal(err)
	}
	rb, _, err := frame.Decode(b.GetData())
	if err != nil {
		t.Fatal(err)
	}
	if ra.Time != rb.Time || ra.Flags != rb.Flags || !bytes.Equal(ra.Key, rb.Key) || !bytes.Equal(ra.Data, rb.Data) {
		t.Fatalf("entry %d: record %+v, want %+v", a.GetIndex(), ra, rb)
	}
}

// TestEntriesFromCache: Storage.Entries answers the entries persisted and not yet applied
// from memory (the very entries raft gave), the same entries the segment log and side files
// give once they are applied or after a restart; a conflicting suffix written over them is
// what it answers next; maxSize is honoured either way.
func TestEntriesFromCache(t *testing.T) {
	dir := t.TempDir()
	l := mustOpenLog(t, dir, testOpts(nil))
	ents := frameEntries(1, 30, 1, 100, t0)
	ents[9] = &pb.Entry{Index: proto.Uint64(10), Term: proto.Uint64(1), Type: pb.EntryNormal.Enum()} // a gap
	ents[19] = confEntry(20, 1, pb.ConfChangeAddNode, 4)
	for _, e := range ents[:29] { // the proposal's frame: seq is a token, not the index
		if e.GetType() == pb.EntryNormal && len(e.GetData()) > 0 {
			r, _, _ := frame.Decode(e.GetData())
			e.Data = frame.Append(nil, &frame.Record{Seq: 1<<63 | r.Seq, Time: r.Time, Key: r.Key, Data: r.Data})
		}
	}
	persistApply(t, l, ents, hs(1, 1, 0), false)
	st := l.RaftStorage()

	got, err := st.Entries(1, 31, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 30 {
		t.Fatalf("%d entries, want 30", len(got))
	}
	for k, e := range got {
		if e != ents[k] {
			t.Fatalf("entry %d was not answered from the cache", e.GetIndex())
		}
	}
	// maxSize: the first entry always, then as many as fit.
	if got, err := st.Entries(3, 31, 1); err != nil || len(got) != 1 || got[0] != ents[2] {
		t.Fatalf("Entries(3, 31, 1): %d entries, %v", len(got), err)
	}
	size := uint64(len(ents[2].GetData()) + len(ents[3].GetData()))
	if got, err := st.Entries(3, 31, size); err != nil || len(got) != 2 {
		t.Fatalf("Entries(3, 31, %d): %d entries, %v; want 2", size, len(got), err)
	}

	// Applied entries leave the cache: read from the segment log and raft.conf, the same.
	if err := l.Apply(ents[:15]); err != nil {
		t.Fatal(err)
	}
	again, err := st.Entries(1, 31, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	for k, e := range again {
		if k < 15 && e == ents[k] {
			t.Fatalf("applied entry %d still answered from the cache", e.GetIndex())
		}
		if k >= 15 && e != ents[k] {
			t.Fatalf("unapplied entry %d not answered from the cache", e.GetIndex())
		}
		sameEntry(t, e, ents[k])
	}

	// A new leader's entries overwrite 26 and up: the cache answers them, not the old ones.
	over := frameEntries(26, 3, 2, 50, t0)
	persistApply(t, l, over, hs(2, 2, 15), false)
	got, err = st.Entries(21, 29, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	for k, e := range got {
		want := ents[20+k]
		if k >= 5 {
			want = over[k-5]
		}
		if e != want {
			t.Fatalf("entry %d (term %d) is not the one persisted last", e.GetIndex(), e.GetTerm())
		}
	}
	if _, err := st.Entries(21, 30, 1<<30); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Entries past the overwritten end: %v, want ErrUnavailable", err)
	}

	// After a restart (no cache) the log answers the same entries.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpenLog(t, dir, testOpts(nil))
	defer l.Close()
	reread, err := l.RaftStorage().Entries(16, 29, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	for k, e := range reread {
		i := 16 + k
		want := ents[i-1]
		if i >= 26 {
			want = over[i-26]
		}
		sameEntry(t, e, want)
	}
}

// TestEntryCacheBounds: the cache keeps consecutive entries, at most cacheMaxEntries of
// them and cacheMaxBytes of data (but always the last entry), and forgets what is cut or
// applied.
func TestEntryCacheBounds(t *testing.T) {
	var c entryCache
	c.add(frameEntries(1, cacheMaxEntries+10, 1, 0, t0))
	if c.first() != 11 || c.last() != cacheMaxEntries+10 || len(c.ents) != cacheMaxEntries {
		t.Fatalf("after %d entries the cache holds %d..%d (%d)", cacheMaxEntries+10, c.first(), c.last(), len(c.ents))
	}
	c.dropUpTo(100)
	c.cutFrom(200)
	if c.first() != 101 || c.last() != 199 {
		t.Fatalf("after dropUpTo(100) and cutFrom(200) the cache holds %d..%d", c.first(), c.last())
	}
	if _, ok := c.get(100, 120, 1<<30); ok {
		t.Fatal("get below the cache answered")
	}
	if got, ok := c.get(150, 200, 1<<30); !ok || len(got) != 50 || got[0].GetIndex() != 150 {
		t.Fatalf("get(150, 200): ok %v, %d entries", ok, len(got))
	}
	c.add(frameEntries(500, 1, 1, 0, t0)) // not after 199: the cache starts again
	if c.first() != 500 || c.last() != 500 {
		t.Fatalf("after a gap the cache holds %d..%d", c.first(), c.last())
	}
	c.add(frameEntries(501, 3, 1, cacheMaxBytes/2-1024, t0))
	if c.first() != 502 || c.last() != 503 || c.bytes > cacheMaxBytes {
		t.Fatalf("with 3 entries of half the byte bound the cache holds %d..%d (%d bytes)", c.first(), c.last(), c.bytes)
	}
	c.add(frameEntries(504, 1, 1, 2*cacheMaxBytes, t0))
	if c.first() != 504 || c.last() != 504 {
		t.Fatalf("one entry over the byte bound: the cache holds %d..%d, want it alone", c.first(), c.last())
	}
	c.dropUpTo(504)
	if len(c.ents) != 0 || c.bytes != 0 {
		t.Fatalf("after dropping everything: %d entries, %d bytes", len(c.ents), c.bytes)
	}
}
