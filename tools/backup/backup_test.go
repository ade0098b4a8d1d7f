package backup

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/stream"
)

// TestBackupFailsOnDamage backs up the data directory of an open engine (as of a running
// server) whose newest segment has a flipped byte inside an acknowledged record: the
// recovery of the copy reports the damage at ERROR, with the shard's attributes, and the
// backup fails and leaves no DEST, with the log discarded (no Logger) or kept. The copy's
// recovery logs through loggers derived with attributes, which a counter of ERROR records
// must see too.
func TestBackupFailsOnDamage(t *testing.T) {
	src := t.TempDir()
	eng, err := stream.Open(stream.Options{Dir: src, SegmentSize: segment.MinSegmentSize,
		Durability: segment.Durability{Mode: segment.Sync}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := eng.CreateStream(stream.CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		res, err := eng.PutRecords("s", []stream.PutEntry{{PartitionKey: fmt.Sprint(i), Data: bytes.Repeat([]byte{'r'}, 1<<10)}})
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res)
		}
	}
	segs, _ := filepath.Glob(filepath.Join(src, "streams", "s", "shard-*", "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments %v, want one", segs)
	}
	f, err := os.OpenFile(segs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	const at = 4096 + 200 // inside the first record, after the header page
	if _, err := f.ReadAt(b, at); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x10
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
	f.Close()

	for _, logged := range []bool{false, true} {
		t.Run(fmt.Sprintf("logged=%v", logged), func(t *testing.T) {
			var log bytes.Buffer
			opts := Options{}
			if logged {
				opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
			}
			dst := filepath.Join(t.TempDir(), "backup")
			sum, err := Backup(src, dst, opts)
			if err == nil {
				t.Fatalf("the backup of a damaged log succeeded: %+v\n%s", sum, log.String())
			}
			if !sum.Live {
				t.Errorf("the backup did not see the engine holding the directory")
			}
			if !strings.Contains(err.Error(), "sluice inspect") {
				t.Errorf("the error does not say how to check the source: %v", err)
			}
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Errorf("DEST exists after a failed backup: %v", err)
			}
			if logged && !strings.Contains(log.String(), "corruption found") {
				t.Errorf("the log does not report the damage:\n%s", log.String())
			}
			t.Logf("%v", err)
		})
	}
}
