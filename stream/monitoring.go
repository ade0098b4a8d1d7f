package stream

import (
	"slices"

	"github.com/sluice-streams/sluice/internal/awsmsg"
)

// Enhanced monitoring is the engine's switch for shard-level metrics: the shards count their
// metrics whether or not it is on, and it picks the shard figures an exporter of the
// engine's metrics shows (StreamMetrics.ShardLevel). The Kinesis operations that turn it
// (EnableEnhancedMonitoring, DisableEnhancedMonitoring, with their "ALL" and their
// validation) are package account's.

// ShardLevelMetrics are the shard-level metrics enhanced monitoring can enable, in the
// model's order.
var ShardLevelMetrics = []string{"IncomingBytes", "IncomingRecords", "OutgoingBytes", "OutgoingRecords",
	"WriteProvisionedThroughputExceeded", "ReadProvisionedThroughputExceeded", "IteratorAgeMilliseconds"}

// SetMonitoring switches the named shard-level metrics (names from ShardLevelMetrics) on
// (enable) or off for an ACTIVE stream, and returns the metrics enabled before and after, in
// the model's order.
func (e *Engine) SetMonitoring(name string, metrics []string, enable bool) (current, desired []string, err error) {
	for _, m := range metrics {
		if !slices.Contains(ShardLevelMetrics, m) {
			return nil, nil, errorf(KindInvalidArgument, "%s is not a shard-level metric.", awsmsg.Bound(m, awsmsg.MaxEcho))
		}
	}
	err = e.updateMeta(name, func(m *streamMeta) error {
		if m.Status != StatusActive {
			return errorf(KindResourceInUse, "%s", awsmsg.StreamNotActive(name, e.opts.Account, m.Status))
		}
		current = append([]string{}, m.Metrics...)
		desired = []string{}
		for _, n := range ShardLevelMetrics {
			on := slices.Contains(m.Metrics, n)
			if slices.Contains(metrics, n) {
				on = enable
			}
			if on {
				desired = append(desired, n)
			}
		}
		m.Metrics = append([]string(nil), desired...)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return current, desired, nil
}

// Monitoring returns the stream's enabled shard-level metrics, in the model's order.
func (e *Engine) Monitoring(name string) ([]string, error) {
	s, err := e.stream(name)
	if err != nil {
		return nil, err
	}
	return append([]string{}, s.meta.Load().Metrics...), nil
}
