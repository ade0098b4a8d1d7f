package stream

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/segment"
)

// TestDamagedSealedSegment flips a byte inside a record of a sealed segment of a cleanly
// closed engine, as docs/OPERATIONS.md ("A corrupted segment") describes it: the engine
// opens without reading that segment; a read that reaches the damage fails with an error
// that is segment.ErrCorrupt and says the log holds damaged data (the server logs it, with
// the file and offset); the records after the damaged segment stay readable from a later
// starting point; and the shard keeps taking writes, since the damage is not in the segment
// being written.
func TestDamagedSealedSegment(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	e := testEngine(t, dir, c, "off")
	if err := e.CreateStream(CreateStreamInput{Name: "d", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 24<<10) // two records to a 64 KiB segment
	var seqs []SeqNum
	for i := range 20 {
		res, err := e.PutRecords("d", []PutEntry{{PartitionKey: fmt.Sprint(i), Data: data}})
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res)
		}
		seqs = append(seqs, res[0].Seq)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, streamsDir, "d", "shard-*", "*.seg"))
	slices.Sort(segs)
	if len(segs) < 8 {
		t.Fatalf("%d segments, want at least 8", len(segs))
	}
	damaged := segs[2] // sealed, and not one of the two newest that start-up reads
	b, err := os.ReadFile(damaged)
	if err != nil {
		t.Fatal(err)
	}
	b[segment.MinSegmentSize/4] ^= 0x10 // inside the segment's first record
	if err := os.WriteFile(damaged, b, 0o600); err != nil {
		t.Fatal(err)
	}

	e = testEngine(t, dir, c, "off")
	defer e.Close()
	it, err := e.GetShardIterator(IteratorInput{Stream: "d", Shard: 0, Type: TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	for {
		r, err := e.GetRecords(it, 100)
		if err != nil {
			var se *Error
			if !errors.Is(err, segment.ErrCorrupt) || !errors.As(err, &se) || se.Kind != KindInternalFailure || !strings.Contains(se.Msg, "damaged") {
				t.Fatalf("reading into the damaged segment: %v, want an InternalFailure that is segment.ErrCorrupt and says the log holds damaged data", err)
			}
			if !strings.Contains(err.Error(), filepath.Base(damaged)) {
				t.Errorf("the error does not name the damaged file %s: %v", filepath.Base(damaged), err)
			}
			break
		}
		read += r.Records.Count
		n := r.Records.Count
		r.Release()
		if n == 0 {
			t.Fatalf("read %d records and reached the end without an error: the damage went unseen", read)
		}
		it = r.NextIterator
	}
	if read != 4 {
		t.Errorf("%d records read before the damage, want the 4 of the two segments before it", read)
	}
	// The records after the damaged segment, from a later starting point.
	it, err = e.GetShardIterator(IteratorInput{Stream: "d", Shard: 0, Type: AtSequenceNumber, Seq: seqs[6]})
	if err != nil {
		t.Fatal(err)
	}
	if recs, _ := drain(t, e, it, 0); len(recs) != len(seqs)-6 {
		t.Errorf("%d records read after the damaged segment, want %d", len(recs), len(seqs)-6)
	}
	// The shard takes writes.
	if res, err := e.PutRecords("d", []PutEntry{{PartitionKey: "after", Data: []byte("x")}}); err != nil || res[0].Err != nil {
		t.Fatalf("a write to the shard whose sealed segment is damaged: %v %v", err, res)
	}
}
