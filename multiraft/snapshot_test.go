package multiraft

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// fileSM is a memSM that serves one snapshot file.
type fileSM struct {
	*memSM
	name string
	data []byte
}

func (s *fileSM) OpenSnapshotFile(name string) (io.ReadCloser, int64, error) {
	if name != s.name {
		return nil, 0, ErrNoSnapshotFile
	}
	return io.NopCloser(bytes.NewReader(s.data)), int64(len(s.data)), nil
}

func (s *fileSM) FetchSnapshot(context.Context, *raftpb.Snapshot, func(string) (io.ReadCloser, error)) error {
	return nil
}

// TestSnapshotHandler: SnapshotPath serves a group's snapshot file whole; an unknown group,
// a group whose state machine serves no files, an unknown file and a malformed group are
// refused with a status and no detail of the node's files.
func TestSnapshotHandler(t *testing.T) {
	h, err := NewHost(Config{NodeID: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	want := bytes.Repeat([]byte("segment bytes "), 10_000)
	if err := h.AddGroup(7, []uint64{1}, &fileSM{memSM: newMemSM(), name: "a.seg", data: want}, GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := h.AddGroup(8, []uint64{1}, newMemSM(), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.SnapshotHandler())
	defer srv.Close()
	get := func(query string) (int, []byte) {
		t.Helper()
		resp, err := http.Get(srv.URL + SnapshotPath + "?" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, b
	}
	if code, b := get("group=7&file=a.seg"); code != http.StatusOK || !bytes.Equal(b, want) {
		t.Fatalf("group 7, a.seg: %d, %d bytes; want 200 and the file's %d", code, len(b), len(want))
	}
	for _, q := range []string{"group=7&file=b.seg", "group=7&file=../a.seg", "group=8&file=a.seg", "group=9&file=a.seg"} {
		code, b := get(q)
		if code != http.StatusNotFound || strings.Contains(string(b), "/") {
			t.Fatalf("%s: %d %q; want 404 without a path", q, code, b)
		}
	}
	if code, _ := get("group=x&file=a.seg"); code != http.StatusBadRequest {
		t.Fatalf("group=x: %d, want 400", code)
	}
	// The bytes served count as group 7's snapshot bytes sent, once per GET that read them.
	stats, err := h.GroupStats()
	if err != nil {
		t.Fatal(err)
	}
	for _, gs := range stats {
		if want := map[GroupID]uint64{7: uint64(len(want)), 8: 0}[gs.ID]; gs.SnapshotBytesSent != want {
			t.Fatalf("group %d: %d snapshot bytes sent, want %d", gs.ID, gs.SnapshotBytesSent, want)
		}
	}
}
