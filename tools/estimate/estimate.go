package estimate

import (
	"fmt"
	"math"
)

// Kinesis figures the estimate is built on, as AWS documents them.
const (
	ShardWriteKiBPerSec     = 1024 // 1 MiB/s of writes per shard, data and partition keys
	ShardWriteRecordsPerSec = 1000 // records/s of writes per shard
	ShardReadKiBPerSec      = 2048 // 2 MiB/s of reads per shard, shared by polling consumers
	ShardReadCallsPerSec    = 5    // GetRecords calls/s per shard, shared by polling consumers
	MaxFanOutConsumers      = 20   // enhanced fan-out consumers a stream may register

	MinRetentionHours = 24   // the retention period included in the base price
	MaxRetentionHours = 8760 // a year
	// extendedRetentionEnd is where extended retention ends and long-term retention
	// begins: 7 days.
	extendedRetentionEnd = 168

	HoursPerMonth     = 730   // the month AWS prices with
	MaxRecordKiB      = 10240 // the largest record a stream can be set to accept (10 MiB)
	PutPayloadUnitKiB = 25    // provisioned mode counts each record in 25 KiB units

	// A new on-demand stream can take this much before it scales up.
	OnDemandStartKiBPerSec     = 4096
	OnDemandStartRecordsPerSec = 4000
)

// Bounds on inputs that keep every quantity finite and exact enough in a float64.
const (
	maxRecordsPerSec = 1e9
	maxConsumers     = 1_000_000
	maxHoursPerMonth = 744 // 31 days
)

// FanOut is how consumers read.
type FanOut string

const (
	// Shared consumers poll with GetRecords and share each shard's 2 MiB/s and 5 calls/s.
	Shared FanOut = "shared"
	// Enhanced consumers are registered for enhanced fan-out; each gets its own 2 MiB/s per
	// shard, pushed by SubscribeToShard.
	Enhanced FanOut = "enhanced"
)

// ParseFanOut parses "shared" or "enhanced".
func ParseFanOut(s string) (FanOut, error) {
	switch f := FanOut(s); f {
	case Shared, Enhanced:
		return f, nil
	}
	return "", fmt.Errorf("%w: fan-out %q: want shared or enhanced", ErrWorkload, s)
}

// Workload is what a stream is asked to carry, in averages. Zero values of FanOut,
// RetentionHours and HoursPerMonth mean shared, 24 and HoursPerMonth.
type Workload struct {
	RecordsPerSec float64 `json:"recordsPerSec"`
	// RecordKiB is the average record size in KiB (1,024 bytes), partition key included.
	RecordKiB float64 `json:"recordKiB"`
	// Consumers is the number of consumer applications, each reading the whole stream.
	Consumers      int     `json:"consumers"`
	FanOut         FanOut  `json:"fanOut"`
	RetentionHours int     `json:"retentionHours"`
	HoursPerMonth  float64 `json:"hoursPerMonth"`
}

// withDefaults returns w with its zero values replaced by their defaults.
func (w Workload) withDefaults() Workload {
	if w.FanOut == "" {
		w.FanOut = Shared
	}
	if w.RetentionHours == 0 {
		w.RetentionHours = MinRetentionHours
	}
	if w.HoursPerMonth == 0 {
		w.HoursPerMonth = HoursPerMonth
	}
	return w
}

// Validate checks w (after defaults). Errors wrap ErrWorkload.
func (w Workload) Validate() error {
	w = w.withDefaults()
	switch {
	case !(w.RecordsPerSec > 0 && w.RecordsPerSec <= maxRecordsPerSec):
		return fmt.Errorf("%w: records per second %v: want more than 0 and at most %g", ErrWorkload, w.RecordsPerSec, float64(maxRecordsPerSec))
	case !(w.RecordKiB > 0 && w.RecordKiB <= MaxRecordKiB):
		return fmt.Errorf("%w: record size %v KiB: want more than 0 and at most %d (10 MiB)", ErrWorkload, w.RecordKiB, MaxRecordKiB)
	case w.Consumers < 0 || w.Consumers > maxConsumers:
		return fmt.Errorf("%w: %d consumers: want 0 to %d", ErrWorkload, w.Consumers, maxConsumers)
	case w.RetentionHours < MinRetentionHours || w.RetentionHours > MaxRetentionHours:
		return fmt.Errorf("%w: retention %d hours: want %d to %d", ErrWorkload, w.RetentionHours, MinRetentionHours, MaxRetentionHours)
	case !(w.HoursPerMonth > 0 && w.HoursPerMonth <= maxHoursPerMonth):
		return fmt.Errorf("%w: %v hours per month: want more than 0 and at most %d", ErrWorkload, w.HoursPerMonth, maxHoursPerMonth)
	}
	_, err := ParseFanOut(string(w.FanOut))
	return err
}

// Bound names a term of the shard formula.
type Bound string

const (
	WriteBandwidth Bound = "write bandwidth"
	WriteRecords   Bound = "write records"
	ReadBandwidth  Bound = "read bandwidth"
)

// Sizing is the provisioned shard count of a workload and how it was reached.
type Sizing struct {
	InKiBPerSec float64 `json:"inKiBPerSec"`
	// OutKiBPerSec is what all consumers read together.
	OutKiBPerSec float64 `json:"outKiBPerSec"`
	// The terms of the formula: ⌈in ÷ 1024⌉, ⌈records ÷ 1000⌉, ⌈out ÷ 2048⌉ (0 with enhanced
	// fan-out, whose reads need no shards).
	ByWriteBandwidth int64 `json:"byWriteBandwidth"`
	ByWriteRecords   int64 `json:"byWriteRecords"`
	ByReadBandwidth  int64 `json:"byReadBandwidth"`
	Shards           int64 `json:"shards"`
	// BoundBy lists the terms equal to Shards.
	BoundBy []Bound `json:"boundBy"`
	// ReadCallsPerShardPerSec is the GetRecords calls each shard gets when every shared
	// consumer polls it once a second (0 with enhanced fan-out); a shard allows 5.
	ReadCallsPerShardPerSec int `json:"readCallsPerShardPerSec"`
}

// Size computes the provisioned shard count of w. Errors wrap ErrWorkload.
func Size(w Workload) (Sizing, error) {
	if err := w.Validate(); err != nil {
		return Sizing{}, err
	}
	w = w.withDefaults()
	s := Sizing{InKiBPerSec: w.RecordsPerSec * w.RecordKiB}
	s.OutKiBPerSec = s.InKiBPerSec * float64(w.Consumers)
	s.ByWriteBandwidth = ceilCount(s.InKiBPerSec / ShardWriteKiBPerSec)
	s.ByWriteRecords = ceilCount(w.RecordsPerSec / ShardWriteRecordsPerSec)
	if w.FanOut == Shared {
		s.ByReadBandwidth = ceilCount(s.OutKiBPerSec / ShardReadKiBPerSec)
		s.ReadCallsPerShardPerSec = w.Consumers
	}
	s.Shards = max(1, s.ByWriteBandwidth, s.ByWriteRecords, s.ByReadBandwidth)
	for _, t := range []struct {
		b Bound
		n int64
	}{{WriteBandwidth, s.ByWriteBandwidth}, {WriteRecords, s.ByWriteRecords}, {ReadBandwidth, s.ByReadBandwidth}} {
		if t.n == s.Shards {
			s.BoundBy = append(s.BoundBy, t.b)
		}
	}
	return s, nil
}

// ceilCount is ⌈x⌉ for a count computed from decimal input. Such quotients can come out a
// few ULPs above the integer they stand for (3000 × 281.6 ÷ 1024 is 825.0000000000001 in
// float64 arithmetic); a relative slack of 1e-9 keeps them from counting one shard too many.
func ceilCount(x float64) int64 {
	return int64(math.Ceil(x - math.Abs(x)*1e-9))
}

// PutPayloadUnits is the number of PUT payload units provisioned mode bills for one record
// of kib KiB: 25 KiB units, rounded up.
func PutPayloadUnits(kib float64) int64 {
	return ceilCount(kib / PutPayloadUnitKiB)
}

// OnDemandRecordKiB is the size on-demand mode bills for a record of kib KiB: rounded up
// to a whole KiB.
func OnDemandRecordKiB(kib float64) int64 {
	return ceilCount(kib)
}

// Line is one item of a bill. Cost is Quantity × UnitPrice; both are rounded to millionths.
type Line struct {
	Item      string  `json:"item"`
	Quantity  float64 `json:"quantity"`
	Unit      string  `json:"unit"`
	UnitPrice float64 `json:"unitPrice"`
	Cost      float64 `json:"cost"`
}

func newLine(item string, qty float64, unit string, price float64) Line {
	qty = round6(qty)
	return Line{Item: item, Quantity: qty, Unit: unit, UnitPrice: price, Cost: round6(qty * price)}
}

func round6(x float64) float64 { return math.Round(x*1e6) / 1e6 }

// Bill is the monthly cost of a workload in one capacity mode.
type Bill struct {
	Mode  string  `json:"mode"`
	Lines []Line  `json:"lines"`
	Total float64 `json:"total"`
}

func newBill(mode string, lines []Line) Bill {
	b := Bill{Mode: mode, Lines: lines}
	for _, l := range lines {
		b.Total += l.Cost
	}
	b.Total = round6(b.Total)
	return b
}

// Estimate is the shard count and the monthly cost of a workload.
type Estimate struct {
	Workload    Workload `json:"workload"` // with defaults filled in
	Sizing      Sizing   `json:"sizing"`
	Provisioned Bill     `json:"provisioned"`
	OnDemand    Bill     `json:"onDemand"`
	PriceSource string   `json:"priceSource"`
	// Warnings are limits the workload runs into, in sentences.
	Warnings []string `json:"warnings"`
}

// kibInGB is the KiB in a billed GB, which is 2³⁰ bytes.
const kibInGB = 1 << 20

// Compute sizes w and prices it with p. Errors wrap ErrWorkload or ErrPrices.
func Compute(w Workload, p Prices) (Estimate, error) {
	s, err := Size(w)
	if err != nil {
		return Estimate{}, err
	}
	if err := p.Validate(); err != nil {
		return Estimate{}, err
	}
	w = w.withDefaults()
	return Estimate{
		Workload:    w,
		Sizing:      s,
		Provisioned: provisioned(w, s, p.Provisioned),
		OnDemand:    onDemand(w, p.OnDemand),
		PriceSource: p.Source,
		Warnings:    warnings(w, s),
	}, nil
}

func provisioned(w Workload, s Sizing, p ProvisionedPrices) Bill {
	hours := w.HoursPerMonth
	month := hours / HoursPerMonth // in GB-months: what a tier holds all month
	shardHours := float64(s.Shards) * hours
	records := w.RecordsPerSec * hours * 3600
	// Payload GB per hour of writes, as given (not rounded).
	gbPerHour := w.RecordsPerSec * w.RecordKiB * 3600 / kibInGB
	lines := []Line{
		newLine("shard hours", shardHours, "shard-hour", p.ShardHour),
		newLine(fmt.Sprintf("PUT payload units (%d per record)", PutPayloadUnits(w.RecordKiB)),
			records*float64(PutPayloadUnits(w.RecordKiB))/1e6, "million units", p.PutPayloadUnitsPerMillion),
	}
	if w.RetentionHours > MinRetentionHours {
		lines = append(lines, newLine("extended retention (24 h to 7 days)", shardHours, "shard-hour", p.ExtendedRetentionShardHour))
	}
	if w.RetentionHours > extendedRetentionEnd {
		stored := gbPerHour * float64(w.RetentionHours-extendedRetentionEnd)
		lines = append(lines, newLine("long-term retention (beyond 7 days)", stored*month, "GB-month", p.LongTermRetentionGBMonth))
	}
	if w.FanOut == Enhanced && w.Consumers > 0 {
		n := float64(w.Consumers)
		lines = append(lines,
			newLine("enhanced fan-out consumer-shard hours", n*shardHours, "consumer-shard-hour", p.FanOutConsumerShardHour),
			newLine("enhanced fan-out data retrievals", n*gbPerHour*hours, "GB", p.FanOutRetrievalGB))
	}
	return newBill("provisioned", lines)
}

func onDemand(w Workload, p OnDemandPrices) Bill {
	hours := w.HoursPerMonth
	month := hours / HoursPerMonth // in GB-months: what a tier holds all month
	// GB per hour of writes as billed: each record rounded up to a whole KiB.
	gbPerHour := w.RecordsPerSec * float64(OnDemandRecordKiB(w.RecordKiB)) * 3600 / kibInGB
	written := gbPerHour * hours
	lines := []Line{
		newLine("stream hours", hours, "stream-hour", p.StreamHour),
		newLine("data in (records rounded up to 1 KiB)", written, "GB", p.DataInGB),
	}
	if w.Consumers > 0 {
		n := float64(w.Consumers)
		if w.FanOut == Enhanced {
			lines = append(lines, newLine("enhanced fan-out data retrievals", n*written, "GB", p.FanOutRetrievalGB))
		} else {
			lines = append(lines, newLine("data retrievals", n*written, "GB", p.RetrievalGB))
		}
	}
	if w.RetentionHours > MinRetentionHours {
		stored := gbPerHour * float64(min(w.RetentionHours, extendedRetentionEnd)-MinRetentionHours)
		lines = append(lines, newLine("extended retention (24 h to 7 days)", stored*month, "GB-month", p.ExtendedRetentionGBMonth))
	}
	if w.RetentionHours > extendedRetentionEnd {
		stored := gbPerHour * float64(w.RetentionHours-extendedRetentionEnd)
		lines = append(lines, newLine("long-term retention (beyond 7 days)", stored*month, "GB-month", p.LongTermRetentionGBMonth))
	}
	return newBill("on-demand", lines)
}

func warnings(w Workload, s Sizing) []string {
	out := []string{}
	if w.FanOut == Shared && w.Consumers > ShardReadCallsPerSec {
		out = append(out, fmt.Sprintf("%d shared consumers polling each shard once a second make %d GetRecords calls/s per shard, "+
			"and a shard allows %d however many shards there are: poll each shard at most every %.1f s per consumer, or use enhanced fan-out",
			w.Consumers, w.Consumers, ShardReadCallsPerSec, float64(w.Consumers)/ShardReadCallsPerSec))
	}
	if w.FanOut == Enhanced && w.Consumers > MaxFanOutConsumers {
		out = append(out, fmt.Sprintf("%d enhanced fan-out consumers: a stream can register at most %d by default", w.Consumers, MaxFanOutConsumers))
	}
	if w.RecordKiB > 1024 {
		out = append(out, fmt.Sprintf("records of %v KiB are above the default 1 MiB limit: raise the stream's maximum record size (UpdateMaxRecordSize, up to 10 MiB)", w.RecordKiB))
	}
	if s.InKiBPerSec > OnDemandStartKiBPerSec || w.RecordsPerSec > OnDemandStartRecordsPerSec {
		// The figures of OnDemandStartKiBPerSec and OnDemandStartRecordsPerSec.
		out = append(out, "on-demand: a new stream starts with capacity for 4 MiB/s and 4,000 records/s of writes and may throttle while it scales up to this workload: "+
			"ramp the writes up, or create the stream in provisioned mode with enough shards and switch it to on-demand")
	}
	return out
}
