package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/stream"
)

// TestDamageLoggedOnce reads a shard whose segment has a flipped byte inside its first
// record, after a clean stop (start-up reads no frame): each read that reaches the damage
// answers 500 InternalFailure with no file named, and the server logs the damage once, with
// the file, not at every retry of the reader.
func TestDamageLoggedOnce(t *testing.T) {
	d := &fullDisk{dir: t.TempDir()}
	var logs syncBuffer
	s := startFullServer(t, d, &logs)
	if err := s.eng.CreateStream(stream.CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	if errs := s.putRecords(t, ackedRecords{}, []fullRecord{{"a", make([]byte, 1000)}, {"b", make([]byte, 1000)}}); len(errs) > 0 {
		t.Fatal(errs)
	}
	s.stop(t)
	segs, _ := filepath.Glob(filepath.Join(d.dir, "data", "streams", "s", "shard-0", "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments %v, want one", segs)
	}
	f, err := os.OpenFile(segs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff}, 4096+200); err != nil { // inside the first record
		t.Fatal(err)
	}
	f.Close()

	s = startFullServer(t, d, &logs)
	defer s.stop(t)
	for range 3 {
		status, body := s.call(t, "GetShardIterator", map[string]string{"StreamName": "s", "ShardId": "shardId-000000000000",
			"ShardIteratorType": "TRIM_HORIZON"}, 30*time.Second)
		if status != 200 {
			t.Fatalf("GetShardIterator: %d %s", status, body)
		}
		it := strings.TrimSuffix(strings.TrimPrefix(string(body), `{"ShardIterator":"`), `"}`)
		status, body = s.call(t, "GetRecords", map[string]string{"ShardIterator": it}, 30*time.Second)
		if status != 500 || !strings.Contains(string(body), "InternalFailure") || strings.Contains(string(body), d.dir) {
			t.Fatalf("GetRecords into the damage: %d %s", status, body)
		}
	}
	l := logs.String()
	if n := strings.Count(l, "holds damaged data"); n != 1 || !strings.Contains(l, filepath.Base(segs[0])) {
		t.Fatalf("the damage was logged %d times, want once, naming %s:\n%s", n, filepath.Base(segs[0]), l)
	}
}
