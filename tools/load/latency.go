package load

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to an hour, to three significant
// digits: each histogram takes about 184 KiB, whatever the number of records. A value
// above an hour is recorded as an hour; a negative one (a clock stepped back between a put
// and its consumption) as zero.
const (
	latencyUnit    = time.Microsecond
	latencyHighest = int64(time.Hour / latencyUnit)
	latencyDigits  = 3
)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, latencyHighest, latencyDigits)
}

// recordLatency records d in h. h's owner must hold h's lock, if it has one.
func recordLatency(h *hdrhistogram.Histogram, d time.Duration) {
	v := int64(d / latencyUnit)
	_ = h.RecordValue(max(0, min(v, latencyHighest))) // in range: cannot fail
}

// Latency summarises a latency histogram, in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50Ms"`
	P99   float64 `json:"p99Ms"`
	P999  float64 `json:"p999Ms"`
	Max   float64 `json:"maxMs"`
	Mean  float64 `json:"meanMs"`
}

// summarize reads the percentiles of h; the zero Latency when h is empty.
func summarize(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(v int64) float64 { return float64(v) * float64(latencyUnit) / float64(time.Millisecond) }
	return Latency{
		Count: h.TotalCount(),
		P50:   ms(h.ValueAtQuantile(50)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
		Mean:  h.Mean() * float64(latencyUnit) / float64(time.Millisecond),
	}
}

// p99 returns the 99th percentile of h as a duration, 0 when h is empty.
func p99(h *hdrhistogram.Histogram) time.Duration {
	if h.TotalCount() == 0 {
		return 0
	}
	return time.Duration(h.ValueAtQuantile(99)) * latencyUnit
}
