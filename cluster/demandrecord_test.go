package cluster

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/stream"
)

// TestPeakRecord: the trailing peak keeps the highest demand of each bucket of window/32,
// forgets a bucket once it lies wholly before the window, and starts again when the window
// changes.
func TestPeakRecord(t *testing.T) {
	window := 32 * time.Hour // buckets of an hour
	t0 := time.Unix(1_700_000_000, 0).Truncate(time.Hour)
	var r peakRecord
	if !r.add(t0, stream.DemandRate{Bytes: 10, Records: 1}, window) {
		t.Fatal("the first sample changed nothing")
	}
	if r.add(t0.Add(time.Minute), stream.DemandRate{Bytes: 5, Records: 1}, window) {
		t.Fatal("a lower sample in the same bucket changed the record")
	}
	if !r.add(t0.Add(2*time.Minute), stream.DemandRate{Bytes: 5, Records: 7}, window) || len(r.Peaks) != 1 {
		t.Fatalf("a higher record rate in the same bucket: %+v", r.Peaks)
	}
	r.add(t0.Add(5*time.Hour), stream.DemandRate{Bytes: 3, Records: 3}, window)
	if p := r.peak(t0.Add(5*time.Hour), window); p != (stream.DemandRate{Bytes: 10, Records: 7}) || len(r.Peaks) != 2 {
		t.Fatalf("peak %+v of %+v, want 10 B/s and 7 records/s", p, r.Peaks)
	}
	// 33 hours on, the first bucket [t0, t0+1h) lies wholly before the window.
	late := t0.Add(33 * time.Hour)
	if p := r.peak(late, window); p != (stream.DemandRate{Bytes: 3, Records: 3}) {
		t.Fatalf("peak %+v after the first bucket left the window", p)
	}
	if !r.add(late, stream.DemandRate{}, window) || len(r.Peaks) != 1 {
		t.Fatalf("the expired bucket is kept: %+v", r.Peaks)
	}
	if !r.add(late, stream.DemandRate{Bytes: 1}, time.Hour) || len(r.Peaks) != 1 || r.Span != time.Hour.Milliseconds()/peakBuckets {
		t.Fatalf("another window: %+v", r)
	}
}

// TestDemandRecordBound: a node's record lists at most maxDemandShards shards, the hottest,
// and each stream's total still counts every shard; sumDemand reads it back as rates.
func TestDemandRecordBound(t *testing.T) {
	var d []stream.StreamDemand
	for _, name := range []string{"a", "b"} {
		sd := stream.StreamDemand{Stream: name, Gen: 9}
		for i := range maxDemandShards {
			sd.Shards = append(sd.Shards, stream.ShardDemand{Shard: stream.ShardID(i), Bytes: int64(i), Records: int64(i)})
		}
		d = append(d, sd)
	}
	b := encodeDemand(d, 2)
	var rec demandRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	listed := 0
	for _, s := range rec.Streams {
		listed += len(s.Shards)
		for _, sh := range s.Shards {
			if sh[2] < maxDemandShards/2 {
				t.Fatalf("stream %s lists shard %d (%d records) among the hottest", s.Name, sh[0], sh[2])
			}
		}
	}
	if listed != maxDemandShards {
		t.Fatalf("%d shards listed, want %d", listed, maxDemandShards)
	}
	sum := sumDemand([][]byte{b, b})
	total := float64(maxDemandShards * (maxDemandShards - 1) / 2) // per stream and record, over 2 s
	if a := sum["a"]; a == nil || a.gen != 9 || a.total.Records != total || a.shards[stream.ShardID(maxDemandShards-1)].Records != maxDemandShards-1 {
		t.Fatalf("summed: %+v", a)
	}
}
