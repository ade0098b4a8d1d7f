package load

import (
	"fmt"
	"strings"
	"time"
)

// Report is the outcome of a run: what was put, what each consumer group read, the
// latencies, and the verification. Its JSON form is what `sluice load --json` prints.
type Report struct {
	Endpoint  string   `json:"endpoint"`
	Stream    string   `json:"stream"`
	Shards    int      `json:"shards"` // open shards when the run started
	Created   bool     `json:"created"`
	Protocol  Protocol `json:"protocol"`
	FanOut    FanOut   `json:"fanOut"`
	Producers int      `json:"producers"`
	Consumers int      `json:"consumers"`
	Size      Size     `json:"size"`
	Keys      int      `json:"keys"`
	Rate      float64  `json:"rate"` // asked for, records/s; 0: unlimited
	Seed      uint64   `json:"seed"`
	Run       string   `json:"run"` // the run's id, in hex, as record headers carry it

	Put    PutReport     `json:"put"`
	Groups []GroupReport `json:"groups"`

	// Problems lists what went wrong beyond counts: a producer or consumer group that
	// could not run, records lost or read twice. Empty when the run passed.
	Problems []string `json:"problems"`
}

// PutReport is what the producers did.
type PutReport struct {
	// Seconds is the time from the first put to the last outcome.
	Seconds float64 `json:"seconds"`
	// Attempted counts the records handed to the producers; each ends Acknowledged or
	// Failed.
	Attempted    uint64 `json:"attempted"`
	Acknowledged uint64 `json:"acknowledged"`
	Failed       uint64 `json:"failed"`
	// Bytes is the data of the acknowledged records (partition keys not included).
	Bytes uint64 `json:"bytes"`
	// RecordsPerSec and MBPerSec are the acknowledged records and bytes over Seconds; a MB
	// is 10^6 bytes.
	RecordsPerSec float64 `json:"recordsPerSec"`
	MBPerSec      float64 `json:"mbPerSec"`
	// Requests counts put requests (PutRecords or native puts) answered or failed.
	Requests uint64 `json:"requests"`
	// Throttled counts record attempts refused with ProvisionedThroughputExceeded and
	// retried; Retried counts every record attempt retried, throttled ones included.
	Throttled uint64 `json:"throttled"`
	Retried   uint64 `json:"retried"`
	// Errors counts the records that failed for good, by error name.
	Errors map[string]uint64 `json:"errors"`
	// RequestErrors counts whole put requests that failed and were retried, by error name.
	RequestErrors map[string]uint64 `json:"requestErrors"`
	// Latency is from handing a record to the producer to its acknowledgement: batching,
	// lingering, queueing behind earlier records, retries and the request itself.
	Latency Latency `json:"latency"`
}

// GroupReport is what one consumer group read and how it compares with what was
// acknowledged.
type GroupReport struct {
	Name string `json:"name"`
	// Consumed counts every record read, unexpected ones included; Bytes their data.
	Consumed uint64 `json:"consumed"`
	Bytes    uint64 `json:"bytes"`
	Verdict
	// MissingShards lists the shards with acknowledged records the group did not read.
	MissingShards []ShardMissing `json:"missingShards,omitempty"`
	// Complete is true once the group had read every acknowledged record;
	// DrainSeconds is how long after putting stopped that happened.
	Complete     bool    `json:"complete"`
	DrainSeconds float64 `json:"drainSeconds"`
	// ReadErrors counts failed reads that were retried, by error name. (The native consumer
	// retries throttled reads without telling: those are not counted.)
	ReadErrors map[string]uint64 `json:"readErrors"`
	// Error is the failure that stopped the group, if one did.
	Error string `json:"error,omitempty"`
	// Latency is end to end, from handing a record to the producer to a consumer reading it,
	// for the records of this run. Unmeasured counts the records under 16 bytes the group
	// read: they carry no header, so they are verified but not timed.
	Latency    Latency `json:"latency"`
	Unmeasured uint64  `json:"unmeasured"`
}

// Passed reports whether the run found nothing wrong: at least one record acknowledged,
// every group complete with nothing missing or duplicated, no part of the run failed.
func (r *Report) Passed() bool { return len(r.Problems) == 0 }

// judge fills r.Problems.
func (r *Report) judge() {
	if r.Put.Acknowledged == 0 {
		r.Problems = append(r.Problems, "no record was acknowledged")
	}
	for _, g := range r.Groups {
		if g.Error != "" {
			r.Problems = append(r.Problems, fmt.Sprintf("group %s failed: %s", g.Name, g.Error))
		}
		if g.Missing > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("group %s: %d of %d acknowledged records missing%s", g.Name, g.Missing, r.Put.Acknowledged,
				missingShards(g.MissingShards)))
		}
		if g.Duplicated > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("group %s: %d duplicate reads of acknowledged records", g.Name, g.Duplicated))
		}
	}
}

// missingShards describes where records are missing, for a problem: the first few shards.
func missingShards(ms []ShardMissing) string {
	const listed = 3
	var b strings.Builder
	for i, m := range ms {
		if i == listed {
			fmt.Fprintf(&b, "; and %d more shards", len(ms)-listed)
			break
		}
		fmt.Fprintf(&b, "; shard %d: %d of %d (positions %d to %d), %d read", m.Shard, m.Missing, m.Acknowledged, m.First, m.Last, m.Read)
	}
	return b.String()
}

// Progress is a run's figures so far, for a progress line.
type Progress struct {
	Elapsed  time.Duration // since the first put
	Draining bool          // putting has stopped; the producers or groups are finishing
	// Acknowledged, Failed and Bytes count the producers' outcomes; Throttled their
	// refused attempts (Kinesis protocol; the native producer tells only at the end).
	Acknowledged, Failed, Bytes, Throttled uint64
	// Consumed is the count of the group that has read the fewest records.
	Consumed uint64
	// PutP99 and EndToEndP99 are the 99th percentiles so far (across all groups for the
	// latter).
	PutP99, EndToEndP99 time.Duration
}
