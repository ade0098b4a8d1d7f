package estimate_test

import (
	"fmt"

	"github.com/sluice-streams/sluice/tools/estimate"
)

func ExampleCompute() {
	// 3,000 records/s of 1 KiB read by 3 applications polling with GetRecords.
	w := estimate.Workload{RecordsPerSec: 3000, RecordKiB: 1, Consumers: 3, FanOut: estimate.Shared}
	e, err := estimate.Compute(w, estimate.DefaultPrices())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("shards:", e.Sizing.Shards, "set by", e.Sizing.BoundBy)
	for _, b := range []estimate.Bill{e.Provisioned, e.OnDemand} {
		for _, l := range b.Lines {
			fmt.Printf("%s: %s: %.3f %s × $%v = $%.2f\n", b.Mode, l.Item, l.Quantity, l.Unit, l.UnitPrice, l.Cost)
		}
		fmt.Printf("%s: total $%.2f\n", b.Mode, b.Total)
	}
	// Output:
	// shards: 5 set by [read bandwidth]
	// provisioned: shard hours: 3650.000 shard-hour × $0.015 = $54.75
	// provisioned: PUT payload units (1 per record): 7884.000 million units × $0.014 = $110.38
	// provisioned: total $165.13
	// on-demand: stream hours: 730.000 stream-hour × $0.04 = $29.20
	// on-demand: data in (records rounded up to 1 KiB): 7518.768 GB × $0.08 = $601.50
	// on-demand: data retrievals: 22556.305 GB × $0.04 = $902.25
	// on-demand: total $1532.95
}
