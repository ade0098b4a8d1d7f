package server

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
)

// TestSDKAWSSettings drives the operations on AWS-only machinery through the AWS SDK: their
// happy paths, their settings across a restart, and a validation error for each.
func TestSDKAWSSettings(t *testing.T) {
	dir := t.TempDir()
	kc, stop := startServer(t, dir)
	c := ctx(t)
	if _, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: aws.String("s"), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.CreateStream(c, &kinesis.CreateStreamInput{StreamName: aws.String("od"),
		StreamModeDetails: &types.StreamModeDetails{StreamMode: types.StreamModeOnDemand}}); err != nil {
		t.Fatal(err)
	}
	sum, err := kc.DescribeStreamSummary(c, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	if err != nil {
		t.Fatal(err)
	}
	arn := sum.StreamDescriptionSummary.StreamARN
	reg, err := kc.RegisterStreamConsumer(c, &kinesis.RegisterStreamConsumerInput{StreamARN: arn, ConsumerName: aws.String("app")})
	if err != nil {
		t.Fatal(err)
	}
	consumerARN := reg.Consumer.ConsumerARN
	var validationErr *types.ValidationException
	var invalid *types.InvalidArgumentException
	var notFound *types.ResourceNotFoundException

	// Enhanced monitoring.
	en, err := kc.EnableEnhancedMonitoring(c, &kinesis.EnableEnhancedMonitoringInput{StreamARN: arn,
		ShardLevelMetrics: []types.MetricsName{types.MetricsNameIncomingBytes, types.MetricsNameOutgoingRecords}})
	if err != nil || len(en.CurrentShardLevelMetrics) != 0 || !slices.Equal(en.DesiredShardLevelMetrics,
		[]types.MetricsName{types.MetricsNameIncomingBytes, types.MetricsNameOutgoingRecords}) || aws.ToString(en.StreamName) != "s" {
		t.Fatalf("EnableEnhancedMonitoring: %+v %v", en, err)
	}
	en, err = kc.EnableEnhancedMonitoring(c, &kinesis.EnableEnhancedMonitoringInput{StreamName: aws.String("s"),
		ShardLevelMetrics: []types.MetricsName{types.MetricsNameAll}})
	if err != nil || len(en.CurrentShardLevelMetrics) != 2 || len(en.DesiredShardLevelMetrics) != 7 {
		t.Fatalf("EnableEnhancedMonitoring ALL: %+v %v", en, err)
	}
	dis, err := kc.DisableEnhancedMonitoring(c, &kinesis.DisableEnhancedMonitoringInput{StreamName: aws.String("s"),
		ShardLevelMetrics: []types.MetricsName{types.MetricsNameIteratorAgeMilliseconds}})
	if err != nil || len(dis.CurrentShardLevelMetrics) != 7 || len(dis.DesiredShardLevelMetrics) != 6 ||
		slices.Contains(dis.DesiredShardLevelMetrics, types.MetricsNameIteratorAgeMilliseconds) {
		t.Fatalf("DisableEnhancedMonitoring: %+v %v", dis, err)
	}
	if _, err := kc.EnableEnhancedMonitoring(c, &kinesis.EnableEnhancedMonitoringInput{StreamName: aws.String("s"),
		ShardLevelMetrics: []types.MetricsName{"Bogus"}}); !errors.As(err, &validationErr) {
		t.Fatalf("EnableEnhancedMonitoring of an unknown metric: %v", err)
	}
	if _, err := kc.DisableEnhancedMonitoring(c, &kinesis.DisableEnhancedMonitoringInput{StreamName: aws.String("s"),
		ShardLevelMetrics: []types.MetricsName{}}); !errors.As(err, &validationErr) {
		t.Fatalf("DisableEnhancedMonitoring of no metrics: %v", err)
	}
	if _, err := kc.DisableEnhancedMonitoring(c, &kinesis.DisableEnhancedMonitoringInput{StreamName: aws.String("nope"),
		ShardLevelMetrics: []types.MetricsName{types.MetricsNameAll}}); !errors.As(err, &notFound) {
		t.Fatalf("DisableEnhancedMonitoring of a missing stream: %v", err)
	}

	// Limits.
	lim, err := kc.DescribeLimits(c, &kinesis.DescribeLimitsInput{})
	if err != nil || aws.ToInt32(lim.ShardLimit) != 1024 || aws.ToInt32(lim.OpenShardCount) != 6 ||
		aws.ToInt32(lim.OnDemandStreamCount) != 1 || aws.ToInt32(lim.OnDemandStreamCountLimit) != 50 {
		t.Fatalf("DescribeLimits: %+v %v", lim, err)
	}

	// Resource tags: a stream's are its AddTagsToStream tags; a consumer has its own.
	if _, err := kc.TagResource(c, &kinesis.TagResourceInput{ResourceARN: arn, Tags: map[string]string{"team": "data", "env": "ci"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.UntagResource(c, &kinesis.UntagResourceInput{ResourceARN: arn, TagKeys: []string{"env"}}); err != nil {
		t.Fatal(err)
	}
	if tags, err := kc.ListTagsForStream(c, &kinesis.ListTagsForStreamInput{StreamName: aws.String("s")}); err != nil ||
		len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Key) != "team" {
		t.Fatalf("ListTagsForStream after TagResource: %+v %v", tags, err)
	}
	if _, err := kc.TagResource(c, &kinesis.TagResourceInput{ResourceARN: consumerARN, Tags: map[string]string{"role": "reader"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.TagResource(c, &kinesis.TagResourceInput{ResourceARN: arn, Tags: map[string]string{}}); !errors.As(err, &validationErr) {
		t.Fatalf("TagResource with no tags: %v", err)
	}
	if _, err := kc.TagResource(c, &kinesis.TagResourceInput{ResourceARN: consumerARN, Tags: map[string]string{"bad#key": "v"}}); !errors.As(err, &invalid) {
		t.Fatalf("TagResource with a bad key: %v", err)
	}
	if _, err := kc.UntagResource(c, &kinesis.UntagResourceInput{ResourceARN: arn, TagKeys: []string{}}); !errors.As(err, &validationErr) {
		t.Fatalf("UntagResource with no keys: %v", err)
	}
	if _, err := kc.ListTagsForResource(c, &kinesis.ListTagsForResourceInput{ResourceARN: aws.String("arn:aws:kinesis:us-east-1:000000000000:stream/nope")}); !errors.As(err, &notFound) {
		t.Fatalf("ListTagsForResource of a missing stream: %v", err)
	}
	if _, err := kc.ListTagsForResource(c, &kinesis.ListTagsForResourceInput{ResourceARN: aws.String("arn:aws:s3:::bucket")}); !errors.As(err, &validationErr) {
		t.Fatalf("ListTagsForResource of an S3 ARN: %v", err)
	}

	// Resource policies.
	const policy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"kinesis:GetRecords","Resource":"*"}]}`
	if _, err := kc.PutResourcePolicy(c, &kinesis.PutResourcePolicyInput{ResourceARN: arn, Policy: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
	const consumerPolicy = `{"Statement":[{"Effect":"Deny","Principal":"*","Action":"kinesis:SubscribeToShard","Resource":"*"}]}`
	if _, err := kc.PutResourcePolicy(c, &kinesis.PutResourcePolicyInput{ResourceARN: consumerARN, Policy: aws.String(consumerPolicy)}); err != nil {
		t.Fatal(err)
	}
	// A document the policy evaluator cannot use is refused, with its problem, and not kept.
	var invalidArg *types.InvalidArgumentException
	if _, err := kc.PutResourcePolicy(c, &kinesis.PutResourcePolicyInput{ResourceARN: consumerARN, Policy: aws.String(`{"Statement":[{"Effect":"Maybe"}]}`)}); !errors.As(err, &invalidArg) ||
		!strings.Contains(aws.ToString(invalidArg.Message), "malformed policy document: Statement[0].Effect") {
		t.Fatalf("PutResourcePolicy of a malformed document: %v", err)
	}
	if p, err := kc.GetResourcePolicy(c, &kinesis.GetResourcePolicyInput{ResourceARN: consumerARN}); err != nil || aws.ToString(p.Policy) != consumerPolicy {
		t.Fatalf("GetResourcePolicy of the consumer: %+v %v", p, err)
	}
	if _, err := kc.DeleteResourcePolicy(c, &kinesis.DeleteResourcePolicyInput{ResourceARN: consumerARN}); err != nil {
		t.Fatal(err)
	}
	if p, err := kc.GetResourcePolicy(c, &kinesis.GetResourcePolicyInput{ResourceARN: consumerARN}); err != nil || aws.ToString(p.Policy) != "{}" {
		t.Fatalf("GetResourcePolicy after delete: %+v %v", p, err)
	}
	if _, err := kc.PutResourcePolicy(c, &kinesis.PutResourcePolicyInput{ResourceARN: arn, Policy: aws.String(`["not", "an", "object"]`)}); !errors.As(err, &invalid) {
		t.Fatalf("PutResourcePolicy of a JSON array: %v", err)
	}
	if _, err := kc.GetResourcePolicy(c, &kinesis.GetResourcePolicyInput{ResourceARN: aws.String("stream/s")}); !errors.As(err, &validationErr) {
		t.Fatalf("GetResourcePolicy of a malformed ARN: %v", err)
	}
	if _, err := kc.DeleteResourcePolicy(c, &kinesis.DeleteResourcePolicyInput{ResourceARN: consumerARN}); !errors.As(err, &notFound) {
		t.Fatalf("DeleteResourcePolicy with no policy: %v", err)
	}

	// Account settings and warm throughput.
	acct, err := kc.DescribeAccountSettings(c, &kinesis.DescribeAccountSettingsInput{})
	if err != nil || acct.MinimumThroughputBillingCommitment == nil ||
		acct.MinimumThroughputBillingCommitment.Status != types.MinimumThroughputBillingCommitmentOutputStatusDisabled {
		t.Fatalf("DescribeAccountSettings: %+v %v", acct, err)
	}
	if _, err := kc.UpdateStreamWarmThroughput(c, &kinesis.UpdateStreamWarmThroughputInput{StreamName: aws.String("od"),
		WarmThroughputMiBps: aws.Int32(100)}); !errors.As(err, &invalid) {
		t.Fatalf("UpdateStreamWarmThroughput without a commitment: %v", err)
	}
	up, err := kc.UpdateAccountSettings(c, &kinesis.UpdateAccountSettingsInput{MinimumThroughputBillingCommitment: &types.MinimumThroughputBillingCommitmentInput{
		Status: types.MinimumThroughputBillingCommitmentInputStatusEnabled}})
	if err != nil || up.MinimumThroughputBillingCommitment.Status != types.MinimumThroughputBillingCommitmentOutputStatusEnabled ||
		up.MinimumThroughputBillingCommitment.StartedAt == nil || up.MinimumThroughputBillingCommitment.EarliestAllowedEndAt == nil ||
		up.MinimumThroughputBillingCommitment.EndedAt != nil {
		t.Fatalf("UpdateAccountSettings: %+v %v", up, err)
	}
	if _, err := kc.UpdateAccountSettings(c, &kinesis.UpdateAccountSettingsInput{MinimumThroughputBillingCommitment: &types.MinimumThroughputBillingCommitmentInput{
		Status: "SOMETIMES"}}); !errors.As(err, &validationErr) {
		t.Fatalf("UpdateAccountSettings with a bad status: %v", err)
	}
	warm, err := kc.UpdateStreamWarmThroughput(c, &kinesis.UpdateStreamWarmThroughputInput{StreamName: aws.String("od"), WarmThroughputMiBps: aws.Int32(100)})
	if err != nil || aws.ToString(warm.StreamName) != "od" || warm.WarmThroughput == nil ||
		aws.ToInt32(warm.WarmThroughput.TargetMiBps) != 100 || aws.ToInt32(warm.WarmThroughput.CurrentMiBps) != 0 {
		t.Fatalf("UpdateStreamWarmThroughput: %+v %v", warm, err)
	}
	if _, err := kc.UpdateStreamWarmThroughput(c, &kinesis.UpdateStreamWarmThroughputInput{StreamName: aws.String("od"),
		WarmThroughputMiBps: aws.Int32(-1)}); !errors.As(err, &validationErr) {
		t.Fatalf("UpdateStreamWarmThroughput of -1: %v", err)
	}
	if _, err := kc.UpdateStreamWarmThroughput(c, &kinesis.UpdateStreamWarmThroughputInput{StreamName: aws.String("s"),
		WarmThroughputMiBps: aws.Int32(100)}); !errors.As(err, &invalid) {
		t.Fatalf("UpdateStreamWarmThroughput of a provisioned stream: %v", err)
	}
	var limit *types.LimitExceededException
	if _, err := kc.UpdateStreamWarmThroughput(c, &kinesis.UpdateStreamWarmThroughputInput{StreamName: aws.String("od"),
		WarmThroughputMiBps: aws.Int32(20000)}); !errors.As(err, &limit) {
		t.Fatalf("UpdateStreamWarmThroughput above 10 GiBps: %v", err)
	}

	// Everything stored survives a restart.
	stop()
	kc, stop = startServer(t, dir)
	defer stop()
	d, err := kc.DescribeStream(c, &kinesis.DescribeStreamInput{StreamName: aws.String("s")})
	if err != nil || len(d.StreamDescription.EnhancedMonitoring) != 1 || len(d.StreamDescription.EnhancedMonitoring[0].ShardLevelMetrics) != 6 {
		t.Fatalf("DescribeStream after restart: %+v %v", d, err)
	}
	sum, err = kc.DescribeStreamSummary(c, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String("s")})
	if err != nil || len(sum.StreamDescriptionSummary.EnhancedMonitoring) != 1 ||
		!slices.Equal(sum.StreamDescriptionSummary.EnhancedMonitoring[0].ShardLevelMetrics, dis.DesiredShardLevelMetrics) {
		t.Fatalf("DescribeStreamSummary after restart: %+v %v", sum, err)
	}
	if tags, err := kc.ListTagsForResource(c, &kinesis.ListTagsForResourceInput{ResourceARN: consumerARN}); err != nil ||
		len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Key) != "role" || aws.ToString(tags.Tags[0].Value) != "reader" {
		t.Fatalf("consumer tags after restart: %+v %v", tags, err)
	}
	if tags, err := kc.ListTagsForResource(c, &kinesis.ListTagsForResourceInput{ResourceARN: arn}); err != nil ||
		len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].Key) != "team" {
		t.Fatalf("stream tags after restart: %+v %v", tags, err)
	}
	if p, err := kc.GetResourcePolicy(c, &kinesis.GetResourcePolicyInput{ResourceARN: arn}); err != nil || aws.ToString(p.Policy) != policy {
		t.Fatalf("stream policy after restart: %+v %v", p, err)
	}
	acct, err = kc.DescribeAccountSettings(c, &kinesis.DescribeAccountSettingsInput{})
	if err != nil || acct.MinimumThroughputBillingCommitment.Status != types.MinimumThroughputBillingCommitmentOutputStatusEnabled ||
		!acct.MinimumThroughputBillingCommitment.StartedAt.Equal(*up.MinimumThroughputBillingCommitment.StartedAt) {
		t.Fatalf("account settings after restart: %+v %v", acct, err)
	}
	warm, err = kc.UpdateStreamWarmThroughput(c, &kinesis.UpdateStreamWarmThroughputInput{StreamName: aws.String("od"), WarmThroughputMiBps: aws.Int32(50)})
	if err != nil || aws.ToInt32(warm.WarmThroughput.CurrentMiBps) != 100 || aws.ToInt32(warm.WarmThroughput.TargetMiBps) != 50 {
		t.Fatalf("warm throughput after restart: %+v %v", warm, err)
	}
	up, err = kc.UpdateAccountSettings(c, &kinesis.UpdateAccountSettingsInput{MinimumThroughputBillingCommitment: &types.MinimumThroughputBillingCommitmentInput{
		Status: types.MinimumThroughputBillingCommitmentInputStatusDisabled}})
	if err != nil || up.MinimumThroughputBillingCommitment.Status != types.MinimumThroughputBillingCommitmentOutputStatusEnabledUntilEarliestAllowedEnd ||
		up.MinimumThroughputBillingCommitment.EndedAt == nil {
		t.Fatalf("disabling within the minimum commitment: %+v %v", up, err)
	}
}
