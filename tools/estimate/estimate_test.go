package estimate

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestEstimateSize(t *testing.T) {
	tests := []struct {
		name string
		w    Workload
		// The terms of the formula: ⌈in KiB/s ÷ 1024⌉, ⌈records/s ÷ 1000⌉, ⌈out KiB/s ÷ 2048⌉.
		bw, rec, rd int64
		shards      int64
		bound       []Bound
		calls       int
	}{
		{
			// in 1,000 KiB/s → ⌈0.98⌉ = 1; 1,000 rec/s → 1; out 1,000 KiB/s → ⌈0.49⌉ = 1.
			name: "1000 x 1 KiB, 1 consumer",
			w:    Workload{RecordsPerSec: 1000, RecordKiB: 1, Consumers: 1},
			bw:   1, rec: 1, rd: 1, shards: 1, bound: []Bound{WriteBandwidth, WriteRecords, ReadBandwidth}, calls: 1,
		},
		{
			// in 3,000 KiB/s → ⌈2.93⌉ = 3; 3,000 rec/s → 3; out 3 × 3,000 = 9,000 KiB/s →
			// ⌈4.39⌉ = 5: the reads set the count.
			name: "3000 x 1 KiB, 3 shared consumers",
			w:    Workload{RecordsPerSec: 3000, RecordKiB: 1, Consumers: 3, FanOut: Shared},
			bw:   3, rec: 3, rd: 5, shards: 5, bound: []Bound{ReadBandwidth}, calls: 3,
		},
		{
			// The same with enhanced fan-out: each consumer has its own 2 MiB/s per shard, so
			// the reads add nothing and the writes (3 and 3) set the count.
			name: "3000 x 1 KiB, 3 enhanced consumers",
			w:    Workload{RecordsPerSec: 3000, RecordKiB: 1, Consumers: 3, FanOut: Enhanced},
			bw:   3, rec: 3, rd: 0, shards: 3, bound: []Bound{WriteBandwidth, WriteRecords}, calls: 0,
		},
		{
			// Small records: in 2,500 KiB/s → ⌈2.44⌉ = 3; 5,000 rec/s → 5; out 2,500 → ⌈1.22⌉ = 2.
			name: "5000 x 0.5 KiB, 1 consumer",
			w:    Workload{RecordsPerSec: 5000, RecordKiB: 0.5, Consumers: 1},
			bw:   3, rec: 5, rd: 2, shards: 5, bound: []Bound{WriteRecords}, calls: 1,
		},
		{
			// Big records: in 1,000 × 30 = 30,000 KiB/s → ⌈29.3⌉ = 30; 1; out → ⌈14.65⌉ = 15.
			name: "1000 x 30 KiB, 1 consumer",
			w:    Workload{RecordsPerSec: 1000, RecordKiB: 30, Consumers: 1},
			bw:   30, rec: 1, rd: 15, shards: 30, bound: []Bound{WriteBandwidth}, calls: 1,
		},
		{
			// No consumers yet: out 0 → 0 shards; a trickle still needs one shard.
			name: "1 x 0.1 KiB, no consumers",
			w:    Workload{RecordsPerSec: 1, RecordKiB: 0.1, Consumers: 0},
			bw:   1, rec: 1, rd: 0, shards: 1, bound: []Bound{WriteBandwidth, WriteRecords}, calls: 0,
		},
		{
			// 3,000 × 281.6 = 844,800 KiB/s, exactly 825 shards of 1,024 KiB/s; float64
			// arithmetic makes it 825.0000000000001, which must not become 826.
			name: "exact multiple in decimal, not in binary",
			w:    Workload{RecordsPerSec: 3000, RecordKiB: 281.6, Consumers: 0},
			bw:   825, rec: 3, rd: 0, shards: 825, bound: []Bound{WriteBandwidth}, calls: 0,
		},
		{
			// Fractional rates: 1,000.5 rec/s → ⌈1.0005⌉ = 2.
			name: "fractional records per second",
			w:    Workload{RecordsPerSec: 1000.5, RecordKiB: 0.25, Consumers: 1},
			bw:   1, rec: 2, rd: 1, shards: 2, bound: []Bound{WriteRecords}, calls: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Size(tt.w)
			if err != nil {
				t.Fatal(err)
			}
			if s.ByWriteBandwidth != tt.bw || s.ByWriteRecords != tt.rec || s.ByReadBandwidth != tt.rd || s.Shards != tt.shards {
				t.Errorf("terms %d, %d, %d → %d shards; want %d, %d, %d → %d",
					s.ByWriteBandwidth, s.ByWriteRecords, s.ByReadBandwidth, s.Shards, tt.bw, tt.rec, tt.rd, tt.shards)
			}
			if !slices.Equal(s.BoundBy, tt.bound) {
				t.Errorf("bound by %q, want %q", s.BoundBy, tt.bound)
			}
			if s.ReadCallsPerShardPerSec != tt.calls {
				t.Errorf("%d read calls/s per shard, want %d", s.ReadCallsPerShardPerSec, tt.calls)
			}
		})
	}
}

func TestEstimatePutPayloadUnits(t *testing.T) {
	tests := []struct {
		kib  float64
		want int64
	}{
		{0.1, 1}, // anything up to 25 KiB is 1 unit
		{1, 1},
		{5, 1},
		{25, 1},
		{25.001, 2},
		{30, 2}, // 30 ÷ 25 = 1.2 → 2
		{45, 2},
		{50, 2},
		{50.5, 3},
		// 1 MiB ÷ 25 KiB = 40.96 → 41. (AWS's pricing page says a "1MB record" is 40 units,
		// counting in decimal MB and KB; with the KiB this tool takes, it is 41.)
		{1024, 41},
		{10240, 410}, // 10 MiB: 409.6 → 410
	}
	for _, tt := range tests {
		if got := PutPayloadUnits(tt.kib); got != tt.want {
			t.Errorf("PutPayloadUnits(%v) = %d, want %d", tt.kib, got, tt.want)
		}
	}
}

func TestEstimateOnDemandRecordKiB(t *testing.T) {
	for _, tt := range []struct {
		kib  float64
		want int64
	}{{0.1, 1}, {1, 1}, {1.01, 2}, {4.5, 5}, {30, 30}} {
		if got := OnDemandRecordKiB(tt.kib); got != tt.want {
			t.Errorf("OnDemandRecordKiB(%v) = %d, want %d", tt.kib, got, tt.want)
		}
	}
}

// line is an expected bill line: its quantity and cost.
type line struct {
	item      string
	qty, cost float64
}

func TestEstimateCompute(t *testing.T) {
	// A month is 730 h = 2,628,000 s. A GB is 2³⁰ bytes = 1,048,576 KiB. Quantities and costs
	// are rounded to millionths, costs from the rounded quantity.
	tests := []struct {
		name            string
		w               Workload
		prov, od        []line
		provTot, odTot  float64
		warningsContain []string
	}{
		{
			name: "1000 x 1 KiB, 1 shared consumer, 24 h",
			w:    Workload{RecordsPerSec: 1000, RecordKiB: 1, Consumers: 1},
			prov: []line{
				{"shard hours", 730, 10.95}, // 1 shard × 730 h × $0.015
				// 1,000 rec/s × 2,628,000 s = 2,628 million records × 1 unit × $0.014
				{"PUT payload units (1 per record)", 2628, 36.792},
			},
			provTot: 47.742,
			od: []line{
				{"stream hours", 730, 29.2}, // 730 × $0.04
				// 1,000 × 1 KiB × 2,628,000 s ÷ 1,048,576 = 2,506.256103515625 GB × $0.08
				{"data in (records rounded up to 1 KiB)", 2506.256104, 200.500488},
				{"data retrievals", 2506.256104, 100.250244}, // 1 consumer × the same GB × $0.04
			},
			odTot: 329.950732,
		},
		{
			// 30 shards (see TestSize); 30 ÷ 25 → 2 PUT units per record; 720 h of retention.
			// Writes: 1,000 × 30 KiB × 3,600 s ÷ 1,048,576 = 102.996826171875 GB an hour.
			name: "1000 x 30 KiB, 3 enhanced consumers, 30 days",
			w:    Workload{RecordsPerSec: 1000, RecordKiB: 30, Consumers: 3, FanOut: Enhanced, RetentionHours: 720},
			prov: []line{
				{"shard hours", 21900, 328.5},                       // 30 × 730 × $0.015
				{"PUT payload units (2 per record)", 5256, 73.584},  // 2,628 M records × 2 × $0.014
				{"extended retention (24 h to 7 days)", 21900, 438}, // every shard-hour × $0.02
				{"long-term retention (beyond 7 days)", 56854.248047, // 102.99… GB/h × (720 − 168) h
					1307.647705}, // × $0.023
				{"enhanced fan-out consumer-shard hours", 65700, 985.5}, // 3 × 21,900 × $0.015
				{"enhanced fan-out data retrievals", 225563.049316, // 3 × 102.99… × 730 GB
					2932.319641}, // × $0.013
			},
			provTot: 6065.551346,
			od: []line{
				{"stream hours", 730, 29.2},
				{"data in (records rounded up to 1 KiB)", 75187.683105, 6015.014648}, // 102.99… × 730 GB × $0.08
				{"enhanced fan-out data retrievals", 225563.049316, 11278.152466},    // 3 × that × $0.05
				{"extended retention (24 h to 7 days)", 14831.542969, 1483.154297},   // 102.99… × 144 h × $0.10
				{"long-term retention (beyond 7 days)", 56854.248047, 1307.647705},   // × 552 h × $0.023
			},
			odTot: 20113.169116,
			// 30,000 KiB/s is more than a new on-demand stream's 4 MiB/s.
			warningsContain: []string{"on-demand"},
		},
		{
			// On-demand rounds each 0.5 KiB record up to 1 KiB; provisioned bills it as 1 PUT
			// unit. 8 shared consumers are more than a shard's 5 calls/s. 48 h of retention: 24
			// hours of data in the extended tier.
			name: "2000 x 0.5 KiB, 8 shared consumers, 48 h",
			w:    Workload{RecordsPerSec: 2000, RecordKiB: 0.5, Consumers: 8, RetentionHours: 48},
			prov: []line{
				// in 1,000 KiB/s → 1; 2,000 rec/s → 2; out 8,000 KiB/s → ⌈3.9⌉ = 4 shards.
				{"shard hours", 2920, 43.8},                         // 4 × 730 × $0.015
				{"PUT payload units (1 per record)", 5256, 73.584},  // 2,000 × 2,628,000 = 5,256 M
				{"extended retention (24 h to 7 days)", 2920, 58.4}, // × $0.02
			},
			provTot: 175.784,
			od: []line{
				{"stream hours", 730, 29.2},
				// 2,000 × 1 KiB (rounded) × 2,628,000 s ÷ 1,048,576 = 5,012.51220703125 GB
				{"data in (records rounded up to 1 KiB)", 5012.512207, 401.000977},
				{"data retrievals", 40100.097656, 1604.003906}, // 8 × 5,012.51… GB × $0.04
				// 2,000 KiB/s × 3,600 ÷ 1,048,576 = 6.866455078125 GB/h × 24 h = 164.794921875
				{"extended retention (24 h to 7 days)", 164.794922, 16.479492},
			},
			odTot:           2050.684375,
			warningsContain: []string{"8 GetRecords calls/s per shard"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Compute(tt.w, DefaultPrices())
			if err != nil {
				t.Fatal(err)
			}
			checkBill(t, e.Provisioned, tt.prov, tt.provTot)
			checkBill(t, e.OnDemand, tt.od, tt.odTot)
			for _, want := range tt.warningsContain {
				if !slices.ContainsFunc(e.Warnings, func(w string) bool { return strings.Contains(w, want) }) {
					t.Errorf("no warning containing %q in %q", want, e.Warnings)
				}
			}
			if len(tt.warningsContain) == 0 && len(e.Warnings) > 0 {
				t.Errorf("unexpected warnings %q", e.Warnings)
			}
		})
	}
}

func checkBill(t *testing.T, b Bill, want []line, total float64) {
	t.Helper()
	const tol = 1e-6
	if len(b.Lines) != len(want) {
		t.Errorf("%s: %d lines, want %d: %+v", b.Mode, len(b.Lines), len(want), b.Lines)
	}
	for i := range min(len(b.Lines), len(want)) {
		got, w := b.Lines[i], want[i]
		if got.Item != w.item || math.Abs(got.Quantity-w.qty) > tol || math.Abs(got.Cost-w.cost) > tol {
			t.Errorf("%s line %d: %q %v → $%v; want %q %v → $%v", b.Mode, i, got.Item, got.Quantity, got.Cost, w.item, w.qty, w.cost)
		}
		if math.Abs(got.Quantity*got.UnitPrice-got.Cost) > tol {
			t.Errorf("%s line %q: %v × %v ≠ %v", b.Mode, got.Item, got.Quantity, got.UnitPrice, got.Cost)
		}
	}
	if math.Abs(b.Total-total) > tol {
		t.Errorf("%s total $%v, want $%v", b.Mode, b.Total, total)
	}
}

func TestEstimateHoursPerMonth(t *testing.T) {
	// A 28-day month (672 h): 1 shard × 672 h × $0.015 = $10.08; long-term storage is
	// 672/730 of a GB-month.
	w := Workload{RecordsPerSec: 1000, RecordKiB: 1.024, RetentionHours: 168 + 730, HoursPerMonth: 672}
	e, err := Compute(w, DefaultPrices())
	if err != nil {
		t.Fatal(err)
	}
	if l := e.Provisioned.Lines[0]; l.Quantity != 672 || math.Abs(l.Cost-10.08) > 1e-9 {
		t.Errorf("shard hours %v → $%v, want 672 → $10.08", l.Quantity, l.Cost)
	}
	// 1,024 KiB/s × 3,600 s ÷ 1,048,576 = 3.515625 GB/h × 730 h held = 2,566.40625 GB,
	// × 672/730 of a month = 2,362.5 GB-month.
	l := e.Provisioned.Lines[3]
	if l.Item != "long-term retention (beyond 7 days)" || math.Abs(l.Quantity-2362.5) > 1e-6 {
		t.Errorf("line %q %v, want long-term retention 2362.5", l.Item, l.Quantity)
	}
}

func TestEstimateWarnings(t *testing.T) {
	tests := []struct {
		w    Workload
		want string // "" for none
	}{
		{Workload{RecordsPerSec: 100, RecordKiB: 1, Consumers: 5}, ""},
		{Workload{RecordsPerSec: 100, RecordKiB: 1, Consumers: 6}, "6 GetRecords calls/s per shard"},
		{Workload{RecordsPerSec: 100, RecordKiB: 1, Consumers: 6, FanOut: Enhanced}, ""},
		{Workload{RecordsPerSec: 100, RecordKiB: 1, Consumers: 20, FanOut: Enhanced}, ""},
		{Workload{RecordsPerSec: 100, RecordKiB: 1, Consumers: 21, FanOut: Enhanced}, "at most 20"},
		{Workload{RecordsPerSec: 1, RecordKiB: 1024, Consumers: 1}, ""},
		{Workload{RecordsPerSec: 1, RecordKiB: 2048, Consumers: 1}, "maximum record size"},
		{Workload{RecordsPerSec: 4000, RecordKiB: 1, Consumers: 1}, ""},
		{Workload{RecordsPerSec: 4001, RecordKiB: 1, Consumers: 1}, "on-demand"},
		{Workload{RecordsPerSec: 100, RecordKiB: 41, Consumers: 1}, "on-demand"}, // 4,100 KiB/s
	}
	for _, tt := range tests {
		e, err := Compute(tt.w, DefaultPrices())
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case tt.want == "" && len(e.Warnings) > 0:
			t.Errorf("%+v: unexpected warnings %q", tt.w, e.Warnings)
		case tt.want != "" && (len(e.Warnings) != 1 || !strings.Contains(e.Warnings[0], tt.want)):
			t.Errorf("%+v: warnings %q, want one containing %q", tt.w, e.Warnings, tt.want)
		}
	}
}

func TestEstimateBadWorkload(t *testing.T) {
	ok := Workload{RecordsPerSec: 1000, RecordKiB: 1, Consumers: 1}
	tests := []struct {
		name   string
		change func(*Workload)
		want   string
	}{
		{"zero records", func(w *Workload) { w.RecordsPerSec = 0 }, "records per second"},
		{"negative records", func(w *Workload) { w.RecordsPerSec = -1 }, "records per second"},
		{"NaN records", func(w *Workload) { w.RecordsPerSec = math.NaN() }, "records per second"},
		{"infinite records", func(w *Workload) { w.RecordsPerSec = math.Inf(1) }, "records per second"},
		{"too many records", func(w *Workload) { w.RecordsPerSec = 2e9 }, "records per second"},
		{"zero size", func(w *Workload) { w.RecordKiB = 0 }, "record size"},
		{"negative size", func(w *Workload) { w.RecordKiB = -0.5 }, "record size"},
		{"size above 10 MiB", func(w *Workload) { w.RecordKiB = 10241 }, "record size"},
		{"negative consumers", func(w *Workload) { w.Consumers = -1 }, "consumers"},
		{"unknown fan-out", func(w *Workload) { w.FanOut = "broadcast" }, `fan-out "broadcast"`},
		{"retention below a day", func(w *Workload) { w.RetentionHours = 23 }, "retention"},
		{"retention above a year", func(w *Workload) { w.RetentionHours = 8761 }, "retention"},
		{"negative month", func(w *Workload) { w.HoursPerMonth = -730 }, "hours per month"},
		{"month above 31 days", func(w *Workload) { w.HoursPerMonth = 745 }, "hours per month"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := ok
			tt.change(&w)
			_, err := Compute(w, DefaultPrices())
			if !errors.Is(err, ErrWorkload) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want ErrWorkload mentioning %q", err, tt.want)
			}
			if _, err := Size(w); !errors.Is(err, ErrWorkload) {
				t.Errorf("Size: error %v, want ErrWorkload", err)
			}
		})
	}
	if _, err := ParseFanOut("Shared"); !errors.Is(err, ErrWorkload) {
		t.Errorf("ParseFanOut is case-sensitive like the flag's documented values; got %v", err)
	}
	for _, s := range []string{"shared", "enhanced"} {
		if f, err := ParseFanOut(s); err != nil || string(f) != s {
			t.Errorf("ParseFanOut(%q) = %q, %v", s, f, err)
		}
	}
}

func TestEstimateDefaults(t *testing.T) {
	e, err := Compute(Workload{RecordsPerSec: 1, RecordKiB: 1}, DefaultPrices())
	if err != nil {
		t.Fatal(err)
	}
	w := e.Workload
	if w.FanOut != Shared || w.RetentionHours != 24 || w.HoursPerMonth != 730 {
		t.Errorf("defaults not filled in: %+v", w)
	}
	if e.Warnings == nil {
		t.Error("Warnings is nil; want an empty list, so that JSON shows []")
	}
}
