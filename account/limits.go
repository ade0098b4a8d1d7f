package account

import (
	"slices"

	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/stream"
)

const (
	// metricsAll stands for every shard-level metric in EnableEnhancedMonitoring and
	// DisableEnhancedMonitoring.
	metricsAll        = "ALL"
	maxMetricsListLen = 7
)

// Limits is what DescribeLimits reports.
type Limits struct {
	ShardLimit               int
	OpenShardCount           int
	OnDemandStreamCount      int
	OnDemandStreamCountLimit int
}

// Limits returns the account's shard limit and usage (DescribeLimits): the figures the
// engine counts and enforces.
func (a *Account) Limits() Limits {
	return Limits{ShardLimit: a.cfg.ShardLimit, OpenShardCount: a.e.OpenShardCount(),
		OnDemandStreamCount: a.e.OnDemandStreamCount(), OnDemandStreamCountLimit: stream.OnDemandStreamsMax}
}

// SetMonitoring enables (EnableEnhancedMonitoring) or disables (DisableEnhancedMonitoring)
// shard-level metrics, "ALL" standing for every one, through the engine's switch
// (stream.Engine.SetMonitoring), and returns the metrics enabled before and after, in the
// model's order.
func (a *Account) SetMonitoring(name string, metrics []string, enable bool) (current, desired []string, err error) {
	names, err := shardLevelMetrics(metrics)
	if err != nil {
		return nil, nil, err
	}
	return a.e.SetMonitoring(name, names, enable)
}

// shardLevelMetrics checks a ShardLevelMetrics list against the model (1 to 7 names of the
// enum) and returns the metrics it names, "ALL" expanded.
func shardLevelMetrics(list []string) ([]string, error) {
	if len(list) < 1 || len(list) > maxMetricsListLen {
		return nil, invalid(awsmsg.Violation(awsmsg.List(list), "shardLevelMetrics", awsmsg.LengthRange(1, maxMetricsListLen)))
	}
	all := false
	for _, m := range list {
		all = all || m == metricsAll
		if m != metricsAll && !slices.Contains(stream.ShardLevelMetrics, m) {
			return nil, invalid(awsmsg.Violation(awsmsg.List(list), "shardLevelMetrics",
				awsmsg.Each(awsmsg.Enum(append(slices.Clone(stream.ShardLevelMetrics), metricsAll)...))))
		}
	}
	if all {
		return stream.ShardLevelMetrics, nil
	}
	return list, nil
}
