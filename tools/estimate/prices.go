package estimate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// Prices is a price table in US dollars. Its JSON form (AppendPrices, ParsePrices) is the
// file a user edits for another region or a newer price list; every key must be present.
type Prices struct {
	// Source says where the prices come from; it is printed with every estimate.
	Source      string            `json:"source"`
	Provisioned ProvisionedPrices `json:"provisioned"`
	OnDemand    OnDemandPrices    `json:"onDemand"`
}

// ProvisionedPrices are the prices of provisioned mode.
type ProvisionedPrices struct {
	ShardHour                 float64 `json:"shardHour"`
	PutPayloadUnitsPerMillion float64 `json:"putPayloadUnitsPerMillion"`
	// ExtendedRetentionShardHour is billed for every shard-hour of a stream whose
	// retention is above 24 hours.
	ExtendedRetentionShardHour float64 `json:"extendedRetentionShardHour"`
	LongTermRetentionGBMonth   float64 `json:"longTermRetentionGBMonth"`
	FanOutConsumerShardHour    float64 `json:"fanOutConsumerShardHour"`
	FanOutRetrievalGB          float64 `json:"fanOutRetrievalGB"`
}

// OnDemandPrices are the prices of on-demand mode.
type OnDemandPrices struct {
	StreamHour               float64 `json:"streamHour"`
	DataInGB                 float64 `json:"dataInGB"`
	RetrievalGB              float64 `json:"retrievalGB"`
	FanOutRetrievalGB        float64 `json:"fanOutRetrievalGB"`
	ExtendedRetentionGBMonth float64 `json:"extendedRetentionGBMonth"`
	LongTermRetentionGBMonth float64 `json:"longTermRetentionGBMonth"`
}

// DefaultPrices returns the us-east-1 prices of Amazon Kinesis Data Streams as AWS publishes
// them on https://aws.amazon.com/kinesis/data-streams/pricing/.
func DefaultPrices() Prices {
	return Prices{
		Source: "us-east-1, as published by AWS (aws.amazon.com/kinesis/data-streams/pricing); edit for your region",
		Provisioned: ProvisionedPrices{
			ShardHour:                  0.015,
			PutPayloadUnitsPerMillion:  0.014,
			ExtendedRetentionShardHour: 0.02,
			LongTermRetentionGBMonth:   0.023,
			FanOutConsumerShardHour:    0.015,
			FanOutRetrievalGB:          0.013,
		},
		OnDemand: OnDemandPrices{
			StreamHour:               0.04,
			DataInGB:                 0.08,
			RetrievalGB:              0.04,
			FanOutRetrievalGB:        0.05,
			ExtendedRetentionGBMonth: 0.10,
			LongTermRetentionGBMonth: 0.023,
		},
	}
}

// AppendPrices appends the JSON form of p, indented, with a final newline, to dst.
func AppendPrices(dst []byte, p Prices) []byte {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		panic("BUG: a Prices value failed to marshal: " + err.Error())
	}
	dst = append(dst, b...)
	return append(dst, '\n')
}

// ParsePrices decodes and validates a price table in the form AppendPrices writes. Errors
// wrap ErrPrices.
func ParsePrices(data []byte) (Prices, error) {
	var p Prices
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Prices{}, fmt.Errorf("%w: %v", ErrPrices, err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return Prices{}, fmt.Errorf("%w: data after the table", ErrPrices)
	}
	// The struct decode rejected unknown keys and wrong types; what it cannot see is a key
	// left out or set to null, which would silently price an item at zero.
	var got, want map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		return Prices{}, fmt.Errorf("%w: %v", ErrPrices, err)
	}
	if err := json.Unmarshal(AppendPrices(nil, DefaultPrices()), &want); err != nil {
		panic("BUG: the default price table does not decode: " + err.Error())
	}
	if err := sameKeys("", want, got); err != nil {
		return Prices{}, err
	}
	if err := p.Validate(); err != nil {
		return Prices{}, err
	}
	return p, nil
}

// sameKeys reports the first key of want, in sorted order, that got lacks or holds as null.
func sameKeys(prefix string, want, got map[string]any) error {
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v, ok := got[k]
		switch {
		case !ok:
			return fmt.Errorf("%w: %q is missing", ErrPrices, prefix+k)
		case v == nil:
			return fmt.Errorf("%w: %q is null", ErrPrices, prefix+k)
		}
		if sub, ok := want[k].(map[string]any); ok {
			gotSub, _ := v.(map[string]any) // its type was checked by the struct decode
			if err := sameKeys(prefix+k+".", sub, gotSub); err != nil {
				return err
			}
		}
	}
	return nil
}

// Validate checks that every price is a finite number, zero or more. Errors wrap ErrPrices.
func (p Prices) Validate() error {
	for _, f := range p.fields() {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return fmt.Errorf("%w: %s is %v; want a price of 0 or more", ErrPrices, f.name, f.v)
		}
	}
	if strings.TrimSpace(p.Source) == "" {
		return fmt.Errorf("%w: source is empty; say where the prices come from", ErrPrices)
	}
	return nil
}

type priceField struct {
	name string
	v    float64
}

func (p Prices) fields() []priceField {
	pp, od := p.Provisioned, p.OnDemand
	return []priceField{
		{"provisioned.shardHour", pp.ShardHour},
		{"provisioned.putPayloadUnitsPerMillion", pp.PutPayloadUnitsPerMillion},
		{"provisioned.extendedRetentionShardHour", pp.ExtendedRetentionShardHour},
		{"provisioned.longTermRetentionGBMonth", pp.LongTermRetentionGBMonth},
		{"provisioned.fanOutConsumerShardHour", pp.FanOutConsumerShardHour},
		{"provisioned.fanOutRetrievalGB", pp.FanOutRetrievalGB},
		{"onDemand.streamHour", od.StreamHour},
		{"onDemand.dataInGB", od.DataInGB},
		{"onDemand.retrievalGB", od.RetrievalGB},
		{"onDemand.fanOutRetrievalGB", od.FanOutRetrievalGB},
		{"onDemand.extendedRetentionGBMonth", od.ExtendedRetentionGBMonth},
		{"onDemand.longTermRetentionGBMonth", od.LongTermRetentionGBMonth},
	}
}
