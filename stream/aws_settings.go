package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-streams/sluice/internal/vfs"
)

// The settings of AWS-only machinery: sluice stores and reports them, validated as Kinesis
// validates them, but nothing in the engine acts on them (no IAM, no billing, no warm
// capacity), except the shard-level metrics of enhanced monitoring, which pick the shard
// figures an exporter of the engine's metrics shows (StreamMetrics.ShardLevel).

// ShardLevelMetrics are the shard-level metrics EnableEnhancedMonitoring takes, in the model's
// order; "ALL" stands for all of them.
var ShardLevelMetrics = []string{"IncomingBytes", "IncomingRecords", "OutgoingBytes", "OutgoingRecords",
	"WriteProvisionedThroughputExceeded", "ReadProvisionedThroughputExceeded", "IteratorAgeMilliseconds"}

const (
	metricsAll         = "ALL"
	maxMetricsListLen  = 7
	maxResourceARNLen  = 2048
	MaxWarmMiBps       = 10240 // 10 GiBps, the default ceiling for an on-demand stream
	OnDemandStreamsMax = 50    // OnDemandStreamCountLimit
	// MaxPolicyBytes bounds a resource policy. The model sets no length on Policy; this is
	// IAM's limit for a resource-based policy, so stream.json stays small.
	MaxPolicyBytes = 20 << 10
	// commitmentMinimum is how long a minimum throughput billing commitment lasts at least.
	commitmentMinimum = 24 * time.Hour
	accountFile       = "account.json"
	accountVersion    = 1
)

var resourceARNPattern = regexp.MustCompile(`^arn:aws.*:kinesis:.*:\d{12}:.*stream/\S+$`)

// validMetrics checks a ShardLevelMetrics list against the model (1 to 7 names of the enum)
// and returns the metrics it names, "ALL" expanded, as a set.
func validMetrics(list []string) (map[string]bool, error) {
	if len(list) < 1 || len(list) > maxMetricsListLen {
		return nil, errorf(KindValidation, "1 validation error detected: Value '[%s]' at 'shardLevelMetrics' failed to satisfy constraint: Member must have length less than or equal to %d and greater than or equal to 1", strings.Join(list, ", "), maxMetricsListLen)
	}
	set := map[string]bool{}
	for _, m := range list {
		if m == metricsAll {
			for _, n := range ShardLevelMetrics {
				set[n] = true
			}
			continue
		}
		found := false
		for _, n := range ShardLevelMetrics {
			found = found || n == m
		}
		if !found {
			return nil, errorf(KindValidation, "1 validation error detected: Value '[%s]' at 'shardLevelMetrics' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [%s, %s]]", strings.Join(list, ", "), strings.Join(ShardLevelMetrics, ", "), metricsAll)
		}
		set[m] = true
	}
	return set, nil
}

// SetMonitoring enables (EnableEnhancedMonitoring) or disables (DisableEnhancedMonitoring)
// shard-level metrics and returns the metrics enabled before and after, in the model's order.
func (e *Engine) SetMonitoring(name string, metrics []string, enable bool) (current, desired []string, err error) {
	set, err := validMetrics(metrics)
	if err != nil {
		return nil, nil, err
	}
	err = e.updateMeta(name, func(m *streamMeta) error {
		if m.Status != StatusActive {
			return errorf(KindResourceInUse, "Stream %s under account %s is %s, not ACTIVE.", name, e.opts.Account, m.Status)
		}
		current = append([]string{}, m.Metrics...)
		desired = []string{}
		for _, n := range ShardLevelMetrics {
			on := false
			for _, c := range m.Metrics {
				on = on || c == n
			}
			if enable {
				on = on || set[n]
			} else {
				on = on && !set[n]
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

// AccountLimits is what DescribeLimits reports.
type AccountLimits struct {
	ShardLimit               int
	OpenShardCount           int
	OnDemandStreamCount      int
	OnDemandStreamCountLimit int
}

// Limits returns the account's shard limit and usage (DescribeLimits).
func (e *Engine) Limits() AccountLimits {
	return AccountLimits{ShardLimit: e.opts.ShardLimit, OpenShardCount: e.OpenShardCount(),
		OnDemandStreamCount: e.OnDemandStreamCount(), OnDemandStreamCountLimit: OnDemandStreamsMax}
}

// resource is a stream or one of its consumers, named by a ResourceARN.
type resource struct {
	stream   *Stream
	name     string        // the stream's name
	consumer *consumerMeta // nil for the stream itself
	arn      string
}

// consumerKey names a consumer incarnation in streamMeta's maps.
func consumerKey(c consumerMeta) string { return c.Name + ":" + strconv.FormatInt(c.Created, 10) }

// policyKey names a resource in streamMeta.Policies.
func (r resource) policyKey() string {
	if r.consumer == nil {
		return "stream"
	}
	return "consumer/" + consumerKey(*r.consumer)
}

// resolve finds the stream or consumer a ResourceARN names. An ARN that breaks the model's
// constraint is a ValidationException; one that names neither a stream nor a consumer is an
// InvalidArgumentException; one that names a stream or consumer that does not exist (in this
// region and account) is a ResourceNotFoundException.
func (e *Engine) resolve(arn string) (resource, error) {
	if len(arn) < 1 || len(arn) > maxResourceARNLen || !resourceARNPattern.MatchString(arn) {
		return resource{}, errorf(KindValidation, "1 validation error detected: Value '%s' at 'resourceARN' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{12}:.*stream/\\S+ and length between 1 and 2048", arn)
	}
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 {
		return resource{}, errorf(KindInvalidArgument, "%s is not the ARN of a stream or a consumer.", arn)
	}
	res := parts[5]
	rest, ok := strings.CutPrefix(res, "stream/")
	if !ok {
		return resource{}, errorf(KindInvalidArgument, "%s is not the ARN of a stream or a consumer.", arn)
	}
	streamName, consumerPart, isConsumer := strings.Cut(rest, "/consumer/")
	if validStreamName(streamName) != nil {
		return resource{}, errorf(KindInvalidArgument, "%s is not the ARN of a stream or a consumer.", arn)
	}
	if isConsumer {
		cname, created, ok := strings.Cut(consumerPart, ":")
		if !ok || !consumerNamePattern.MatchString(cname) || created == "" || strings.Trim(created, "0123456789") != "" {
			return resource{}, errorf(KindInvalidArgument, "%s is not the ARN of a stream or a consumer.", arn)
		}
	} else if strings.Contains(rest, "/") {
		return resource{}, errorf(KindInvalidArgument, "%s is not the ARN of a stream or a consumer.", arn)
	}
	if parts[0] != "arn" || parts[1] != "aws" || parts[3] != e.opts.Region || parts[4] != e.opts.Account {
		return resource{}, errorf(KindResourceNotFound, "Resource %s not found.", arn)
	}
	if !isConsumer {
		s, err := e.stream(streamName)
		if err != nil {
			return resource{}, errorf(KindResourceNotFound, "Stream %s under account %s not found.", streamName, e.opts.Account)
		}
		return resource{stream: s, name: streamName, arn: arn}, nil
	}
	s, c, err := e.findConsumer("", "", arn)
	if err != nil {
		return resource{}, err
	}
	return resource{stream: s, name: streamName, consumer: &c, arn: arn}, nil
}

// updateResource applies change to the metadata of r's stream, as updateMeta does, after
// checking that r's consumer is still registered. It drops the settings of consumers no
// longer registered.
func (e *Engine) updateResource(r resource, change func(*streamMeta) error) error {
	return e.updateMeta(r.name, func(m *streamMeta) error {
		live := map[string]bool{}
		for _, c := range m.Consumers {
			live[consumerKey(c)] = true
		}
		if r.consumer != nil && !live[consumerKey(*r.consumer)] {
			return errorf(KindResourceNotFound, "Consumer %s not found.", r.arn)
		}
		for k := range m.ConsumerTags {
			if !live[k] {
				delete(m.ConsumerTags, k)
			}
		}
		for k := range m.Policies {
			if ck, ok := strings.CutPrefix(k, "consumer/"); ok && !live[ck] {
				delete(m.Policies, k)
			}
		}
		return change(m)
	})
}

func validTags(tags map[string]string) error {
	for k, v := range tags {
		if len(k) < 1 || len(k) > maxTagKeyLen || len(v) > maxTagValueLen || !tagPattern.MatchString(k) || !tagPattern.MatchString(v) {
			return errorf(KindInvalidArgument, "Invalid tag: key %q value %q. Keys are 1 to 128 characters, values up to 256, letters, digits, spaces and _ . : / = + - @", k, v)
		}
	}
	return nil
}

// TagResource adds or replaces the tags of a stream (as AddTags) or of a consumer.
func (e *Engine) TagResource(arn string, tags map[string]string) error {
	r, err := e.resolve(arn)
	if err != nil {
		return err
	}
	if r.consumer == nil {
		return e.AddTags(r.name, tags)
	}
	if err := validTags(tags); err != nil {
		return err
	}
	key := consumerKey(*r.consumer)
	return e.updateResource(r, func(m *streamMeta) error {
		ct := m.ConsumerTags[key]
		if ct == nil {
			ct = map[string]string{}
			m.ConsumerTags[key] = ct
		}
		for k, v := range tags {
			ct[k] = v
		}
		if len(ct) > MaxTagsPerStream {
			return errorf(KindLimitExceeded, "A resource can have at most %d tags; this would make %d.", MaxTagsPerStream, len(ct))
		}
		return nil
	})
}

// UntagResource removes tags by key from a stream or a consumer; absent keys are ignored.
func (e *Engine) UntagResource(arn string, keys []string) error {
	r, err := e.resolve(arn)
	if err != nil {
		return err
	}
	if r.consumer == nil {
		return e.RemoveTags(r.name, keys)
	}
	key := consumerKey(*r.consumer)
	return e.updateResource(r, func(m *streamMeta) error {
		for _, k := range keys {
			delete(m.ConsumerTags[key], k)
		}
		if len(m.ConsumerTags[key]) == 0 {
			delete(m.ConsumerTags, key)
		}
		return nil
	})
}

// ResourceTags returns the tags of a stream or a consumer, sorted by key.
func (e *Engine) ResourceTags(arn string) ([]Tag, error) {
	r, err := e.resolve(arn)
	if err != nil {
		return nil, err
	}
	if r.consumer == nil {
		return e.Tags(r.name)
	}
	m := r.stream.meta.Load()
	ct := m.ConsumerTags[consumerKey(*r.consumer)]
	out := make([]Tag, 0, len(ct))
	for k, v := range ct {
		out = append(out, Tag{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// PutPolicy attaches a resource policy, a JSON object, to a stream or a consumer, replacing
// any policy it had.
func (e *Engine) PutPolicy(arn, policy string) error {
	r, err := e.resolve(arn)
	if err != nil {
		return err
	}
	if len(policy) > MaxPolicyBytes {
		return errorf(KindInvalidArgument, "The policy is %d bytes; a resource policy can have at most %d.", len(policy), MaxPolicyBytes)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(policy), &obj); err != nil || obj == nil {
		return errorf(KindInvalidArgument, "The policy is not a valid JSON policy document.")
	}
	return e.updateResource(r, func(m *streamMeta) error {
		m.Policies[r.policyKey()] = policy
		return nil
	})
}

// Policy returns the resource policy of a stream or a consumer, "{}" if it has none.
func (e *Engine) Policy(arn string) (string, error) {
	r, err := e.resolve(arn)
	if err != nil {
		return "", err
	}
	if p, ok := r.stream.meta.Load().Policies[r.policyKey()]; ok {
		return p, nil
	}
	return "{}", nil
}

// DeletePolicy removes the resource policy of a stream or a consumer; it is a
// ResourceNotFoundException if there is none.
func (e *Engine) DeletePolicy(arn string) error {
	r, err := e.resolve(arn)
	if err != nil {
		return err
	}
	return e.updateResource(r, func(m *streamMeta) error {
		if _, ok := m.Policies[r.policyKey()]; !ok {
			return errorf(KindResourceNotFound, "No resource policy found for resource %s.", arn)
		}
		delete(m.Policies, r.policyKey())
		return nil
	})
}

// Minimum throughput billing commitment statuses.
const (
	CommitmentEnabled              = "ENABLED"
	CommitmentDisabled             = "DISABLED"
	CommitmentEnabledUntilEarliest = "ENABLED_UNTIL_EARLIEST_ALLOWED_END"
)

// Commitment is the account's minimum throughput billing commitment. Zero times are absent.
type Commitment struct {
	Status               string
	StartedAt            time.Time
	EndedAt              time.Time
	EarliestAllowedEndAt time.Time
}

// accountSettings is account.json.
type accountSettings struct {
	Version    int `json:"version"`
	Commitment struct {
		Status               string `json:"status"`
		StartedAt            int64  `json:"startedAt,omitempty"` // Unix ms
		EndedAt              int64  `json:"endedAt,omitempty"`
		EarliestAllowedEndAt int64  `json:"earliestAllowedEndAt,omitempty"`
	} `json:"minimumThroughputBillingCommitment"`
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func (a *accountSettings) commitment(now time.Time) Commitment {
	c := Commitment{Status: a.Commitment.Status, StartedAt: msTime(a.Commitment.StartedAt),
		EndedAt: msTime(a.Commitment.EndedAt), EarliestAllowedEndAt: msTime(a.Commitment.EarliestAllowedEndAt)}
	if c.Status == "" {
		c.Status = CommitmentDisabled
	}
	if c.Status == CommitmentEnabledUntilEarliest && !now.Before(c.EarliestAllowedEndAt) {
		c.Status = CommitmentDisabled // the commitment ran out
	}
	return c
}

func (e *Engine) loadAccount() (*accountSettings, error) {
	path := filepath.Join(e.opts.Dir, accountFile)
	f, err := e.opts.FS.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return &accountSettings{Version: accountVersion}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	if size > 1<<20 {
		return nil, fmt.Errorf("stream: %s: %d bytes is too large for account settings", path, size)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, err
	}
	var a accountSettings
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("stream: %s: %w", path, err)
	}
	if a.Version != accountVersion {
		return nil, fmt.Errorf("stream: %s: version %d, want %d", path, a.Version, accountVersion)
	}
	return &a, nil
}

// AccountCommitment returns the account's minimum throughput billing commitment
// (DescribeAccountSettings).
func (e *Engine) AccountCommitment() (Commitment, error) {
	e.accountMu.Lock()
	defer e.accountMu.Unlock()
	a, err := e.loadAccount()
	if err != nil {
		return Commitment{}, err
	}
	return a.commitment(e.opts.Now()), nil
}

// SetAccountCommitment enables or disables the minimum throughput billing commitment
// (UpdateAccountSettings). Enabling starts a commitment of at least 24 hours; disabling it
// before its earliest allowed end leaves it ENABLED_UNTIL_EARLIEST_ALLOWED_END until then.
func (e *Engine) SetAccountCommitment(status string) (Commitment, error) {
	if status != CommitmentEnabled && status != CommitmentDisabled {
		return Commitment{}, errorf(KindValidation, "1 validation error detected: Value '%s' at 'minimumThroughputBillingCommitment.status' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED]", status)
	}
	e.accountMu.Lock()
	defer e.accountMu.Unlock()
	a, err := e.loadAccount()
	if err != nil {
		return Commitment{}, err
	}
	now := e.opts.Now()
	cur := a.commitment(now)
	c := &a.Commitment
	switch {
	case status == CommitmentEnabled && cur.Status == CommitmentEnabled:
		return cur, nil
	case status == CommitmentEnabled && cur.Status == CommitmentEnabledUntilEarliest:
		c.Status, c.EndedAt = CommitmentEnabled, 0 // the pending end is called off
	case status == CommitmentEnabled:
		c.Status, c.StartedAt, c.EndedAt = CommitmentEnabled, now.UnixMilli(), 0
		c.EarliestAllowedEndAt = now.Add(commitmentMinimum).UnixMilli()
	case cur.Status == CommitmentDisabled:
		if c.Status != CommitmentDisabled && c.Status != "" {
			c.Status = CommitmentDisabled // an ENABLED_UNTIL_… that ran out: record it
		} else {
			return cur, nil
		}
	case now.Before(cur.EarliestAllowedEndAt):
		c.Status, c.EndedAt = CommitmentEnabledUntilEarliest, c.EarliestAllowedEndAt
	default:
		c.Status, c.EndedAt = CommitmentDisabled, now.UnixMilli()
	}
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return Commitment{}, err
	}
	if err := vfs.WriteFileAtomic(e.opts.FS, filepath.Join(e.opts.Dir, accountFile), append(b, '\n'), 0o644); err != nil {
		return Commitment{}, err
	}
	return a.commitment(now), nil
}

// SetWarmThroughput records the warm throughput requested for an on-demand stream
// (UpdateStreamWarmThroughput) and returns the value it had (0 if none) and the new one.
// Kinesis allows it only for on-demand streams in accounts with the minimum throughput
// billing commitment enabled, up to 10 GiBps.
func (e *Engine) SetWarmThroughput(name string, mibps int) (current, target int, err error) {
	if mibps < 0 {
		return 0, 0, errorf(KindValidation, "1 validation error detected: Value '%d' at 'warmThroughputMiBps' failed to satisfy constraint: Member must have value greater than or equal to 0", mibps)
	}
	if _, err := e.stream(name); err != nil {
		return 0, 0, err
	}
	c, err := e.AccountCommitment()
	if err != nil {
		return 0, 0, err
	}
	if c.Status == CommitmentDisabled {
		return 0, 0, errorf(KindInvalidArgument, "Warm throughput needs the account's MinimumThroughputBillingCommitment to be enabled.")
	}
	if mibps > MaxWarmMiBps {
		return 0, 0, errorf(KindLimitExceeded, "Warm throughput of %d MiBps exceeds the limit of %d MiBps for stream %s.", mibps, MaxWarmMiBps, name)
	}
	err = e.updateMeta(name, func(m *streamMeta) error {
		if m.Mode != ModeOnDemand {
			return errorf(KindInvalidArgument, "Stream %s is in PROVISIONED mode; warm throughput applies to ON_DEMAND streams only.", name)
		}
		if m.Status != StatusActive {
			return errorf(KindResourceInUse, "Stream %s under account %s is %s, not ACTIVE.", name, e.opts.Account, m.Status)
		}
		if m.WarmMiBps != nil {
			current = *m.WarmMiBps
		}
		w := mibps
		m.WarmMiBps = &w
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return current, mibps, nil
}

// WarmThroughput returns the stream's requested warm throughput; ok is false if none was set.
func (e *Engine) WarmThroughput(name string) (mibps int, ok bool, err error) {
	s, err := e.stream(name)
	if err != nil {
		return 0, false, err
	}
	if w := s.meta.Load().WarmMiBps; w != nil {
		return *w, true, nil
	}
	return 0, false, nil
}
