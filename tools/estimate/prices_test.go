package estimate

import (
	"errors"
	"strings"
	"testing"
)

func TestEstimatePricesRoundTrip(t *testing.T) {
	def := DefaultPrices()
	text := AppendPrices(nil, def)
	got, err := ParsePrices(text)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if got != def {
		t.Errorf("round trip changed the table:\n got %+v\nwant %+v", got, def)
	}
	// An edited table: another shard-hour price and source.
	edited := strings.Replace(string(text), `"shardHour": 0.015`, `"shardHour": 0.0175`, 1)
	edited = strings.Replace(edited, def.Source, "eu-west-1, from my bill", 1)
	p, err := ParsePrices([]byte(edited))
	if err != nil {
		t.Fatal(err)
	}
	if p.Provisioned.ShardHour != 0.0175 || p.Source != "eu-west-1, from my bill" || p.OnDemand != def.OnDemand {
		t.Errorf("edited table parsed as %+v", p)
	}
	// The edited prices reach the bill: 1 shard × 730 h × $0.0175 = $12.775.
	e, err := Compute(Workload{RecordsPerSec: 1, RecordKiB: 1}, p)
	if err != nil {
		t.Fatal(err)
	}
	if l := e.Provisioned.Lines[0]; l.UnitPrice != 0.0175 || l.Cost != 12.775 {
		t.Errorf("shard hours line %+v, want $0.0175 → $12.775", l)
	}
	if e.PriceSource != "eu-west-1, from my bill" {
		t.Errorf("price source %q", e.PriceSource)
	}
}

func TestEstimateBadPrices(t *testing.T) {
	good := string(AppendPrices(nil, DefaultPrices()))
	tests := []struct {
		name, text, want string
	}{
		{"not JSON", "shardHour = 0.015", "invalid character"},
		{"empty", "", "EOF"},
		{"wrong type", strings.Replace(good, `"shardHour": 0.015`, `"shardHour": "0.015"`, 1), "string"},
		{"unknown key", strings.Replace(good, `"shardHour": 0.015`, `"shardHour": 0.015, "shardHours": 1`, 1), "shardHours"},
		{"missing key", strings.Replace(good, `"streamHour": 0.04,`, ``, 1), `"onDemand.streamHour" is missing`},
		{"missing section", `{"source": "x", "provisioned": {}}`, `"onDemand" is missing`},
		{"null", strings.Replace(good, `"dataInGB": 0.08`, `"dataInGB": null`, 1), `"onDemand.dataInGB" is null`},
		{"negative", strings.Replace(good, `"retrievalGB": 0.04`, `"retrievalGB": -0.04`, 1), "onDemand.retrievalGB is -0.04"},
		{"out of range", strings.Replace(good, `"retrievalGB": 0.04`, `"retrievalGB": 1e400`, 1), "1e400"},
		{"empty source", strings.Replace(good, DefaultPrices().Source, " ", 1), "source is empty"},
		{"trailing data", good + "{}", "data after the table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePrices([]byte(tt.text))
			if !errors.Is(err, ErrPrices) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want ErrPrices mentioning %q", err, tt.want)
			}
		})
	}
	p := DefaultPrices()
	p.OnDemand.StreamHour = -1
	if _, err := Compute(Workload{RecordsPerSec: 1, RecordKiB: 1}, p); !errors.Is(err, ErrPrices) {
		t.Errorf("Compute with a negative price: %v, want ErrPrices", err)
	}
}
