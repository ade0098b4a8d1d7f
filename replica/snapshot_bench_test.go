package replica

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"go.etcd.io/raft/v3"

	"github.com/sluice-streams/sluice/multiraft"
)

// BenchmarkSnapshotTransfer measures a snapshot's transfer and install: a leader replica
// holding 16 MiB of 1 KiB records in 4 MiB segments serves its files through a
// multiraft.Host's SnapshotHandler over loopback HTTP; each iteration fetches them into a new
// replica (FetchSnapshot, every file synced) and installs them (Persist). Bytes per op are
// the snapshot's files and tail.
func BenchmarkSnapshotTransfer(b *testing.B) {
	const records, size = 16 << 10, 1 << 10
	lo := testOpts(nil)
	lo.Segment.SegmentSize = 4 << 20
	leader := mustOpenLog(b, b.TempDir(), lo)
	defer leader.Close()
	persistApply(b, leader, frameEntries(1, records, 1, size, t0), hs(1, 1, records), true)
	h, err := multiraft.NewHost(multiraft.Config{NodeID: 1, TickInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	if err := h.AddGroup(1, nil, leader, multiraft.GroupOptions{Applied: leader.Applied()}); err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h.SnapshotHandler())
	defer srv.Close()
	snap, rec := snapshotOf(b, leader)
	total := int64(rec.tail.size)
	for _, f := range rec.files {
		total += f.Size
	}
	open := func(name string) (io.ReadCloser, error) {
		resp, err := http.Get(srv.URL + "?" + url.Values{"group": {"1"}, "file": {name}}.Encode())
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("%s: %s", name, resp.Status)
		}
		return resp.Body, nil
	}
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		l := mustOpenLog(b, b.TempDir(), testOpts(nil))
		if err := l.FetchSnapshot(context.Background(), snap, open); err != nil {
			b.Fatal(err)
		}
		if err := l.Persist(&raft.Ready{Snapshot: snap}); err != nil {
			b.Fatal(err)
		}
		if got := l.Tip(); got != records {
			b.Fatalf("tip %d after the install, want %d", got, records)
		}
		l.Close()
	}
	b.ReportMetric(float64(len(rec.files)), "files")
}
