package server

// The operations on AWS-only machinery: enhanced monitoring, account limits and settings,
// resource tags and policies, warm throughput. Package account stores and reports their
// settings; enhanced monitoring's switch is the engine's.

import (
	"time"

	"github.com/sluice-streams/sluice/account"
	"github.com/sluice-streams/sluice/internal/awsmsg"
)

type monitoringIn struct {
	streamRef
	ShardLevelMetrics []string `json:"ShardLevelMetrics"`
}

func opEnableMonitoring(s *Server, c *opCall, body []byte) (any, error) {
	return setMonitoring(s, c, body, true)
}

func opDisableMonitoring(s *Server, c *opCall, body []byte) (any, error) {
	return setMonitoring(s, c, body, false)
}

func setMonitoring(s *Server, c *opCall, body []byte, enable bool) (any, error) {
	var in monitoringIn
	name, err := decodeNamed(s, c, body, &in)
	if err != nil {
		return nil, err
	}
	current, desired, err := s.account.SetMonitoring(name, in.ShardLevelMetrics, enable)
	if err != nil {
		return nil, err
	}
	return struct {
		StreamName               string   `json:"StreamName"`
		StreamARN                string   `json:"StreamARN"`
		CurrentShardLevelMetrics []string `json:"CurrentShardLevelMetrics"`
		DesiredShardLevelMetrics []string `json:"DesiredShardLevelMetrics"`
	}{name, s.engine.ARN(name), current, desired}, nil
}

// enhancedMonitoring is the EnhancedMonitoring list DescribeStream and DescribeStreamSummary
// report: one entry with the enabled metrics.
func enhancedMonitoring(s *Server, name string) []struct {
	ShardLevelMetrics []string `json:"ShardLevelMetrics"`
} {
	metrics, err := s.engine.Monitoring(name)
	if err != nil || metrics == nil {
		metrics = []string{}
	}
	return []struct {
		ShardLevelMetrics []string `json:"ShardLevelMetrics"`
	}{{ShardLevelMetrics: metrics}}
}

func opDescribeLimits(s *Server, c *opCall, body []byte) (any, error) {
	var in struct{}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := s.authorize(c, "*"); err != nil {
		return nil, err
	}
	l := s.account.Limits()
	return struct {
		ShardLimit               int `json:"ShardLimit"`
		OpenShardCount           int `json:"OpenShardCount"`
		OnDemandStreamCount      int `json:"OnDemandStreamCount"`
		OnDemandStreamCountLimit int `json:"OnDemandStreamCountLimit"`
	}{l.ShardLimit, l.OpenShardCount, l.OnDemandStreamCount, l.OnDemandStreamCountLimit}, nil
}

// resourceIn is what the resource operations take. StreamId is reserved by the model ("Not
// Implemented") and ignored.
type resourceIn struct {
	ResourceARN *string `json:"ResourceARN"`
	StreamId    string  `json:"StreamId"`
}

// arn returns the ResourceARN, a ValidationException if it is missing.
func (r resourceIn) arn() (string, error) {
	if r.ResourceARN == nil {
		return "", invalid(awsmsg.Violation(awsmsg.Null, "resourceARN", awsmsg.NotNull))
	}
	return *r.ResourceARN, nil
}

// authorized returns the ResourceARN once the call is authorised on it, as the client wrote
// it: the resource policy is the one kept for exactly that ARN.
func (r resourceIn) authorized(s *Server, c *opCall) (string, error) {
	arn, err := r.arn()
	if err != nil {
		return "", err
	}
	return arn, s.authorize(c, arn)
}

const (
	maxTagMapLen     = 200
	maxTagKeyListLen = 50
)

func opTagResource(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		resourceIn
		Tags map[string]string `json:"Tags"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	arn, err := in.authorized(s, c)
	if err != nil {
		return nil, err
	}
	if in.Tags == nil {
		return nil, invalid(awsmsg.Violation(awsmsg.Null, "tags", awsmsg.NotNull))
	}
	if len(in.Tags) < 1 || len(in.Tags) > maxTagMapLen {
		return nil, invalid(awsmsg.Violation(awsmsg.Hidden, "tags", awsmsg.LengthRange(1, maxTagMapLen)))
	}
	return nil, s.account.TagResource(arn, in.Tags)
}

func opUntagResource(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		resourceIn
		TagKeys []string `json:"TagKeys"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	arn, err := in.authorized(s, c)
	if err != nil {
		return nil, err
	}
	if in.TagKeys == nil {
		return nil, invalid(awsmsg.Violation(awsmsg.Null, "tagKeys", awsmsg.NotNull))
	}
	if len(in.TagKeys) < 1 || len(in.TagKeys) > maxTagKeyListLen {
		return nil, invalid(awsmsg.Violation(awsmsg.Hidden, "tagKeys", awsmsg.LengthRange(1, maxTagKeyListLen)))
	}
	for _, k := range in.TagKeys {
		if len(k) < 1 || len(k) > 128 {
			return nil, invalid(awsmsg.Violation(awsmsg.Str(k), "tagKeys", awsmsg.Each(awsmsg.LengthAtMost(128), awsmsg.LengthAtLeast(1))))
		}
	}
	return nil, s.account.UntagResource(arn, in.TagKeys)
}

func opListTagsForResource(s *Server, c *opCall, body []byte) (any, error) {
	var in resourceIn
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	arn, err := in.authorized(s, c)
	if err != nil {
		return nil, err
	}
	tags, err := s.account.ResourceTags(arn)
	if err != nil {
		return nil, err
	}
	type tag struct {
		Key   string `json:"Key"`
		Value string `json:"Value"`
	}
	out := struct {
		Tags []tag `json:"Tags"`
	}{Tags: make([]tag, 0, len(tags))}
	for _, t := range tags {
		out.Tags = append(out.Tags, tag{t.Key, t.Value})
	}
	return out, nil
}

func opGetResourcePolicy(s *Server, c *opCall, body []byte) (any, error) {
	var in resourceIn
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	arn, err := in.authorized(s, c)
	if err != nil {
		return nil, err
	}
	p, err := s.account.Policy(arn)
	if err != nil {
		return nil, err
	}
	return struct {
		Policy string `json:"Policy"`
	}{p}, nil
}

func opPutResourcePolicy(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		resourceIn
		Policy *string `json:"Policy"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	arn, err := in.authorized(s, c)
	if err != nil {
		return nil, err
	}
	if in.Policy == nil {
		return nil, invalid(awsmsg.Violation(awsmsg.Null, "policy", awsmsg.NotNull))
	}
	return nil, s.account.PutPolicy(arn, *in.Policy)
}

func opDeleteResourcePolicy(s *Server, c *opCall, body []byte) (any, error) {
	var in resourceIn
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	arn, err := in.authorized(s, c)
	if err != nil {
		return nil, err
	}
	return nil, s.account.DeletePolicy(arn)
}

// commitmentOut is MinimumThroughputBillingCommitmentOutput.
type commitmentOut struct {
	Status               string `json:"Status"`
	StartedAt            *epoch `json:"StartedAt,omitempty"`
	EndedAt              *epoch `json:"EndedAt,omitempty"`
	EarliestAllowedEndAt *epoch `json:"EarliestAllowedEndAt,omitempty"`
}

func optEpoch(t time.Time) *epoch {
	if t.IsZero() {
		return nil
	}
	return &epoch{t}
}

func accountOut(c account.Commitment) any {
	return struct {
		MinimumThroughputBillingCommitment commitmentOut `json:"MinimumThroughputBillingCommitment"`
	}{commitmentOut{c.Status, optEpoch(c.StartedAt), optEpoch(c.EndedAt), optEpoch(c.EarliestAllowedEndAt)}}
}

func opDescribeAccountSettings(s *Server, c *opCall, body []byte) (any, error) {
	var in struct{}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := s.authorize(c, "*"); err != nil {
		return nil, err
	}
	cm, err := s.account.Commitment()
	if err != nil {
		return nil, err
	}
	return accountOut(cm), nil
}

func opUpdateAccountSettings(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		MinimumThroughputBillingCommitment *struct {
			Status *string `json:"Status"`
		} `json:"MinimumThroughputBillingCommitment"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := s.authorize(c, "*"); err != nil {
		return nil, err
	}
	if in.MinimumThroughputBillingCommitment == nil {
		return nil, invalid(awsmsg.Violation(awsmsg.Null, "minimumThroughputBillingCommitment", awsmsg.NotNull))
	}
	if in.MinimumThroughputBillingCommitment.Status == nil {
		return nil, invalid(awsmsg.Violation(awsmsg.Null, "minimumThroughputBillingCommitment.status", awsmsg.NotNull))
	}
	cm, err := s.account.SetCommitment(*in.MinimumThroughputBillingCommitment.Status)
	if err != nil {
		return nil, err
	}
	return accountOut(cm), nil
}

func opUpdateStreamWarmThroughput(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		streamRef
		StreamId            string `json:"StreamId"`
		WarmThroughputMiBps *int   `json:"WarmThroughputMiBps"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.WarmThroughputMiBps == nil {
		return nil, invalid(awsmsg.Violation(awsmsg.Null, "warmThroughputMiBps", awsmsg.NotNull))
	}
	name, err := in.authorized(s, c)
	if err != nil {
		return nil, err
	}
	current, target, err := s.account.SetWarmThroughput(name, *in.WarmThroughputMiBps)
	if err != nil {
		return nil, err
	}
	type warm struct {
		TargetMiBps  int `json:"TargetMiBps"`
		CurrentMiBps int `json:"CurrentMiBps"`
	}
	return struct {
		StreamARN      string `json:"StreamARN"`
		StreamName     string `json:"StreamName"`
		WarmThroughput warm   `json:"WarmThroughput"`
	}{s.engine.ARN(name), name, warm{target, current}}, nil
}
