package iam

// ResourceKind is the resource an action is checked on, as the Service Authorization
// Reference ("Actions, resources, and condition keys for Amazon Kinesis Data Streams")
// lists it in the action's "Resource types" column.
type ResourceKind uint8

const (
	// ResourceNone: the action has no resource type; it is checked on "*", and a statement
	// must have Resource "*" (or a pattern matching "*") to allow it.
	ResourceNone ResourceKind = iota
	// ResourceStream: the stream's ARN, arn:aws:kinesis:<region>:<account>:stream/<name>.
	ResourceStream
	// ResourceConsumer: the consumer's ARN,
	// arn:aws:kinesis:<region>:<account>:stream/<name>/consumer/<consumer>:<creation epoch>.
	ResourceConsumer
	// ResourceStreamOrConsumer: the ARN the request names, a stream's or a consumer's.
	ResourceStreamOrConsumer
)

func (k ResourceKind) String() string {
	switch k {
	case ResourceStream:
		return "stream"
	case ResourceConsumer:
		return "consumer"
	case ResourceStreamOrConsumer:
		return "stream or consumer"
	}
	return "*"
}

// ActionInfo is the IAM action of an operation and the resource it is checked on.
type ActionInfo struct {
	Action   string // "kinesis:PutRecord"
	Resource ResourceKind
}

// Actions maps every operation of the Kinesis API (2013-12-02) to its IAM action and
// resource. Each operation is authorised by the action of the same name. Where AWS lists a
// KMS key beside the stream (StartStreamEncryption, StopStreamEncryption), sluice checks
// the stream only: it has no KMS. Where AWS lists both a consumer and its stream
// (DeregisterStreamConsumer), the consumer is checked. Read it, never write it.
var Actions = map[string]ActionInfo{
	"AddTagsToStream":               {"kinesis:AddTagsToStream", ResourceStream},
	"CreateStream":                  {"kinesis:CreateStream", ResourceStream},
	"DecreaseStreamRetentionPeriod": {"kinesis:DecreaseStreamRetentionPeriod", ResourceStream},
	"DeleteResourcePolicy":          {"kinesis:DeleteResourcePolicy", ResourceStreamOrConsumer},
	"DeleteStream":                  {"kinesis:DeleteStream", ResourceStream},
	"DeregisterStreamConsumer":      {"kinesis:DeregisterStreamConsumer", ResourceConsumer},
	"DescribeAccountSettings":       {"kinesis:DescribeAccountSettings", ResourceNone},
	"DescribeLimits":                {"kinesis:DescribeLimits", ResourceNone},
	"DescribeStream":                {"kinesis:DescribeStream", ResourceStream},
	"DescribeStreamConsumer":        {"kinesis:DescribeStreamConsumer", ResourceConsumer},
	"DescribeStreamSummary":         {"kinesis:DescribeStreamSummary", ResourceStream},
	"DisableEnhancedMonitoring":     {"kinesis:DisableEnhancedMonitoring", ResourceStream},
	"EnableEnhancedMonitoring":      {"kinesis:EnableEnhancedMonitoring", ResourceStream},
	"GetRecords":                    {"kinesis:GetRecords", ResourceStream},
	"GetResourcePolicy":             {"kinesis:GetResourcePolicy", ResourceStreamOrConsumer},
	"GetShardIterator":              {"kinesis:GetShardIterator", ResourceStream},
	"IncreaseStreamRetentionPeriod": {"kinesis:IncreaseStreamRetentionPeriod", ResourceStream},
	"ListShards":                    {"kinesis:ListShards", ResourceStream},
	"ListStreamConsumers":           {"kinesis:ListStreamConsumers", ResourceStream},
	"ListStreams":                   {"kinesis:ListStreams", ResourceNone},
	"ListTagsForResource":           {"kinesis:ListTagsForResource", ResourceStreamOrConsumer},
	"ListTagsForStream":             {"kinesis:ListTagsForStream", ResourceStream},
	"MergeShards":                   {"kinesis:MergeShards", ResourceStream},
	"PutRecord":                     {"kinesis:PutRecord", ResourceStream},
	"PutRecords":                    {"kinesis:PutRecords", ResourceStream},
	"PutResourcePolicy":             {"kinesis:PutResourcePolicy", ResourceStreamOrConsumer},
	"RegisterStreamConsumer":        {"kinesis:RegisterStreamConsumer", ResourceStream},
	"RemoveTagsFromStream":          {"kinesis:RemoveTagsFromStream", ResourceStream},
	"SplitShard":                    {"kinesis:SplitShard", ResourceStream},
	"StartStreamEncryption":         {"kinesis:StartStreamEncryption", ResourceStream},
	"StopStreamEncryption":          {"kinesis:StopStreamEncryption", ResourceStream},
	"SubscribeToShard":              {"kinesis:SubscribeToShard", ResourceConsumer},
	"TagResource":                   {"kinesis:TagResource", ResourceStreamOrConsumer},
	"UntagResource":                 {"kinesis:UntagResource", ResourceStreamOrConsumer},
	"UpdateAccountSettings":         {"kinesis:UpdateAccountSettings", ResourceNone},
	"UpdateMaxRecordSize":           {"kinesis:UpdateMaxRecordSize", ResourceStream},
	"UpdateShardCount":              {"kinesis:UpdateShardCount", ResourceStream},
	"UpdateStreamMode":              {"kinesis:UpdateStreamMode", ResourceStream},
	"UpdateStreamWarmThroughput":    {"kinesis:UpdateStreamWarmThroughput", ResourceStream},
}

// NativeActions maps the native protocol's requests to the actions of their Kinesis
// counterparts: a put is a PutRecords, a get a GetRecords, both on the stream, a subscribe a
// SubscribeToShard on the consumer, and a leaders request (which node leads each shard) a
// ListShards on the stream.
var NativeActions = map[string]ActionInfo{
	"put":       {"kinesis:PutRecords", ResourceStream},
	"get":       {"kinesis:GetRecords", ResourceStream},
	"subscribe": {"kinesis:SubscribeToShard", ResourceConsumer},
	"leaders":   {"kinesis:ListShards", ResourceStream},
}

// GetMetrics is the action of GET /metrics on a server verifying signatures (sluice serve
// --iam): sluice's own, outside the kinesis service, so that kinesis:* does not grant it.
// Its resource is "*".
var GetMetrics = ActionInfo{"sluice:GetMetrics", ResourceNone}
