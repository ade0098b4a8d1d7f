package segment

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sluice-streams/sluice/internal/faultfs"
)

// TestKillThenPowerCut is a kill -9 followed, after the restart, by a power cut. The kill
// leaves the dead process's writes in the page cache, where the restarted log reads them; the
// power cut then loses whatever of that was never synced. Each case stops the writer at a
// later sync (None mode: the syncs of segment creation and of background seals), so that
// some case kills it between the two fdatasyncs of a seal, with the sealed checkpoint written
// but not synced. Recovery must make what it trusts durable: after the power cut the log
// opens without corruption and holds every record the restarted log could read.
func TestKillThenPowerCut(t *testing.T) {
	for budget := range 24 {
		fs := faultfs.New()
		dir := t.TempDir()
		c := newClock()
		o := faultOpts(fs, c, Durability{Mode: None})
		l := mustOpen(t, dir, o)
		fs.FailSyncsAfter(budget, unix.EIO)
		for i := range 3000 {
			b := []Record{rec("k", payload(i, 500)), rec("k", payload(i+1, 700))}
			if err := l.Append(b); err != nil {
				if !errors.Is(err, ErrFailed) && !errors.Is(err, unix.EIO) {
					t.Fatalf("budget %d: append %d: %v", budget, i, err)
				}
				break
			}
		}
		abandon(l) // kill -9: what was written stays in the page cache
		fs.Revive()

		l = mustOpen(t, dir, o)
		seen, err := readAll(t, l, 0)
		if err != nil {
			t.Fatalf("budget %d: reading after the kill: %v", budget, err)
		}
		if err := fs.Crash(); err != nil { // the power cut, with the restarted log running
			t.Fatal(err)
		}
		abandon(l)

		l = mustOpen(t, dir, o)
		if err := l.Err(); err != nil {
			t.Fatalf("budget %d: after a kill -9 and a power cut: %v", budget, err)
		}
		got, err := readAll(t, l, 0)
		if err != nil {
			t.Fatalf("budget %d: reading after the power cut: %v", budget, err)
		}
		sameRecords(t, got, seen)
		l.Close()
	}
}
