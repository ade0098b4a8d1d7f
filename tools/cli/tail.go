package cli

import (
	"context"
	"strings"
	"sync"

	"github.com/sluice-streams/sluice/client"
)

// TailInput says what Tail follows and from where.
type TailInput struct {
	Stream string
	// From is where shards start: "trim-horizon" (or ""), "latest", or a time (ParseTime).
	From string
	// FanOut is "shared" (or "": native gets, sharing each shard's reads) or "enhanced"
	// (native subscriptions of the consumer ConsumerName, registered if new).
	FanOut       string
	ConsumerName string
	// MaxRecords stops Tail after printing this many records; 0 means no limit.
	MaxRecords int
	// Raw prints records as stored; by default KPL aggregated records print as their user
	// records (client.ConsumerConfig.Raw).
	Raw bool
}

// consumerConfig turns in into the Consumer's configuration.
func (in *TailInput) consumerConfig() (client.ConsumerConfig, error) {
	cfg := client.ConsumerConfig{Raw: in.Raw}
	switch f := strings.ToUpper(strings.ReplaceAll(in.From, "-", "_")); f {
	case "", "TRIM_HORIZON":
		cfg.Start = client.TrimHorizon
	case "LATEST":
		cfg.Start = client.Latest
	default:
		t, err := ParseTime(in.From)
		if err != nil {
			return cfg, inputf("from %q: want trim-horizon, latest or a time (RFC 3339 or Unix seconds)", in.From)
		}
		if t.UnixMilli() < 0 {
			return cfg, inputf("from %q: before 1970", in.From)
		}
		cfg.Start, cfg.StartTime = client.AtTimestamp, t
	}
	switch in.FanOut {
	case "", "shared":
		if in.ConsumerName != "" {
			return cfg, inputf("a consumer name goes with enhanced fan-out")
		}
	case "enhanced":
		if in.ConsumerName == "" {
			return cfg, inputf("enhanced fan-out needs a consumer name")
		}
		cfg.ConsumerName = in.ConsumerName
	default:
		return cfg, inputf("fan-out %q: want shared or enhanced", in.FanOut)
	}
	if in.MaxRecords < 0 {
		return cfg, inputf("max records %d: want 0 (no limit) or more", in.MaxRecords)
	}
	return cfg, nil
}

// Tail follows every shard of a stream with a Consumer and prints each record as it
// arrives: shards are read in parallel, a child only after its parents were read to their
// end, so that the records of a partition key print in order across resharding; across
// keys there is no order. It returns nil when ctx ends or MaxRecords records were printed,
// and the error that stopped the consumer otherwise. It returns the number of records
// printed.
func Tail(ctx context.Context, c *client.Client, in TailInput, out Output) (int, error) {
	cfg, err := in.consumerConfig()
	if err != nil {
		return 0, err
	}
	co, err := c.NewConsumer(in.Stream, cfg)
	if err != nil {
		return 0, inputf("%v", err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		mu      sync.Mutex // serialises the handlers of different shards
		printed int
		buf     []byte
		werr    error
	)
	err = co.Run(runCtx, func(_ context.Context, b *client.Batch) error {
		mu.Lock()
		defer mu.Unlock()
		recs := b.Records
		if in.MaxRecords > 0 {
			if printed >= in.MaxRecords {
				return nil // another shard's batch, before the stop reached its reader
			}
			recs = recs[:min(len(recs), in.MaxRecords-printed)]
		}
		buf = buf[:0]
		for i := range recs {
			if out.JSON {
				buf = appendJSONLine(buf, NewRecordJSON(&recs[i]))
			} else {
				buf = AppendRecordLine(buf, &recs[i])
			}
		}
		printed += len(recs)
		if len(buf) > 0 {
			if _, err := out.W.Write(buf); err != nil {
				werr = err // a closed pipe: nobody reads any more
				return err
			}
		}
		if in.MaxRecords > 0 && printed >= in.MaxRecords {
			stop()
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	switch {
	case werr != nil:
		return printed, werr
	case ctx.Err() != nil, in.MaxRecords > 0 && printed >= in.MaxRecords:
		return printed, nil
	}
	return printed, err
}
