package server

import (
	"strings"

	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

type retentionIn struct {
	streamRef
	RetentionPeriodHours int `json:"RetentionPeriodHours"`
}

func opIncreaseRetention(s *Server, c *opCall, body []byte) (any, error) {
	return changeRetention(s, c, body, true)
}

func opDecreaseRetention(s *Server, c *opCall, body []byte) (any, error) {
	return changeRetention(s, c, body, false)
}

func changeRetention(s *Server, c *opCall, body []byte, increase bool) (any, error) {
	var in retentionIn
	name, err := decodeNamed(s, c, body, &in)
	if err != nil {
		return nil, err
	}
	if increase {
		return nil, s.engine.IncreaseRetention(name, in.RetentionPeriodHours)
	}
	return nil, s.engine.DecreaseRetention(name, in.RetentionPeriodHours)
}

func opSplitShard(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		streamRef
		ShardToSplit       string `json:"ShardToSplit"`
		NewStartingHashKey string `json:"NewStartingHashKey"`
	}
	name, err := decodeNamed(s, c, body, &in)
	if err != nil {
		return nil, err
	}
	id, err := shardmap.ParseShardID(in.ShardToSplit)
	if err != nil {
		return nil, stream.ReshardError(name, err)
	}
	at, err := shardmap.ParseKey(in.NewStartingHashKey)
	if err != nil {
		return nil, invalid(awsmsg.Violation(awsmsg.Str(in.NewStartingHashKey), "newStartingHashKey", awsmsg.Pattern(`0|([1-9]\d{0,38})`)))
	}
	return nil, s.engine.SplitShard(name, id, at)
}

func opMergeShards(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		streamRef
		ShardToMerge         string `json:"ShardToMerge"`
		AdjacentShardToMerge string `json:"AdjacentShardToMerge"`
	}
	name, err := decodeNamed(s, c, body, &in)
	if err != nil {
		return nil, err
	}
	id, err := shardmap.ParseShardID(in.ShardToMerge)
	if err != nil {
		return nil, stream.ReshardError(name, err)
	}
	adj, err := shardmap.ParseShardID(in.AdjacentShardToMerge)
	if err != nil {
		return nil, stream.ReshardError(name, err)
	}
	return nil, s.engine.MergeShards(name, id, adj)
}

func opUpdateShardCount(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		streamRef
		TargetShardCount int    `json:"TargetShardCount"`
		ScalingType      string `json:"ScalingType"`
	}
	name, err := decodeNamed(s, c, body, &in)
	if err != nil {
		return nil, err
	}
	if in.ScalingType != "UNIFORM_SCALING" {
		return nil, invalid(awsmsg.Violation(awsmsg.Str(in.ScalingType), "scalingType", awsmsg.Enum("UNIFORM_SCALING")))
	}
	before, after, err := s.engine.UpdateShardCount(name, in.TargetShardCount)
	if err != nil {
		return nil, err
	}
	d, _ := s.engine.Describe(name)
	return struct {
		StreamName        string `json:"StreamName"`
		StreamARN         string `json:"StreamARN"`
		CurrentShardCount int    `json:"CurrentShardCount"`
		TargetShardCount  int    `json:"TargetShardCount"`
	}{name, d.ARN, before, after}, nil
}

func opAddTags(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		streamRef
		Tags map[string]string `json:"Tags"`
	}
	name, err := decodeNamed(s, c, body, &in)
	if err != nil {
		return nil, err
	}
	return nil, s.engine.AddTags(name, in.Tags)
}

func opRemoveTags(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		streamRef
		TagKeys []string `json:"TagKeys"`
	}
	name, err := decodeNamed(s, c, body, &in)
	if err != nil {
		return nil, err
	}
	return nil, s.engine.RemoveTags(name, in.TagKeys)
}

func opListTags(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		streamRef
		ExclusiveStartTagKey string `json:"ExclusiveStartTagKey"`
		Limit                *int   `json:"Limit"`
	}
	name, err := decodeNamed(s, c, body, &in)
	if err != nil {
		return nil, err
	}
	tags, err := s.engine.Tags(name)
	if err != nil {
		return nil, err
	}
	limit := 10
	if in.Limit != nil {
		if *in.Limit < 1 || *in.Limit > 50 {
			return nil, invalid(awsmsg.Violation(awsmsg.Int(*in.Limit), "limit", awsmsg.ValueRange(1, 50)))
		}
		limit = *in.Limit
	}
	type tag struct {
		Key   string `json:"Key"`
		Value string `json:"Value,omitempty"`
	}
	out := struct {
		Tags        []tag `json:"Tags"`
		HasMoreTags bool  `json:"HasMoreTags"`
	}{Tags: []tag{}}
	for _, t := range tags {
		if in.ExclusiveStartTagKey != "" && t.Key <= in.ExclusiveStartTagKey {
			continue
		}
		if len(out.Tags) == limit {
			out.HasMoreTags = true
			break
		}
		out.Tags = append(out.Tags, tag{t.Key, t.Value})
	}
	return out, nil
}

type consumerOut struct {
	ConsumerName              string `json:"ConsumerName"`
	ConsumerARN               string `json:"ConsumerARN"`
	ConsumerStatus            string `json:"ConsumerStatus"`
	ConsumerCreationTimestamp epoch  `json:"ConsumerCreationTimestamp"`
	StreamARN                 string `json:"StreamARN,omitempty"`
}

func toConsumerOut(c stream.Consumer, withStream bool) consumerOut {
	o := consumerOut{c.Name, c.ARN, c.Status, epoch{c.Created}, ""}
	if withStream {
		o.StreamARN = c.StreamARN
	}
	return o
}

// consumerRef is what the consumer operations take: a stream ARN and a consumer name, or a
// consumer ARN.
type consumerRef struct {
	StreamARN    string `json:"StreamARN"`
	ConsumerName string `json:"ConsumerName"`
	ConsumerARN  string `json:"ConsumerARN"`
}

func (c consumerRef) streamName(s *Server) (string, error) {
	if c.ConsumerARN != "" {
		return "", nil
	}
	if c.StreamARN == "" || c.ConsumerName == "" {
		return "", apiError{code: wire.InvalidArgument, msg: "Either ConsumerARN or both StreamARN and ConsumerName must be given"}
	}
	return streamRef{StreamARN: c.StreamARN}.name(s)
}

// authorize authorises the call on the consumer: on ConsumerARN as given, or on the ARN of
// the consumer of stream name called ConsumerName. If there is no such consumer, the call is
// authorised on the stream, so that its absence is told only to who may act on the stream.
func (c consumerRef) authorize(s *Server, cl *opCall, name string) error {
	if c.ConsumerARN != "" || !cl.on {
		return s.authorize(cl, c.ConsumerARN)
	}
	cons, err := s.engine.DescribeConsumer(name, c.ConsumerName, "")
	if err != nil {
		return s.authorizeStream(cl, name)
	}
	return s.authorize(cl, cons.ARN)
}

// quotaStream names the stream whose quota a call counts against: name, or for a call by
// ConsumerARN alone the stream the ARN names (a malformed ARN counts as its own text; the
// engine refuses it after).
func (c consumerRef) quotaStream(name string) string {
	if name != "" {
		return name
	}
	rest := c.ConsumerARN
	if i := strings.Index(rest, ":stream/"); i >= 0 {
		rest = rest[i+len(":stream/"):]
	}
	if i := strings.Index(rest, "/consumer/"); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

func opRegisterConsumer(s *Server, c *opCall, body []byte) (any, error) {
	var in consumerRef
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	name, err := streamRef{StreamARN: in.StreamARN}.authorized(s, c)
	if err != nil {
		return nil, err
	}
	cons, err := s.engine.RegisterConsumer(name, in.ConsumerName)
	if err != nil {
		return nil, err
	}
	return struct {
		Consumer consumerOut `json:"Consumer"`
	}{toConsumerOut(cons, false)}, nil
}

func opDeregisterConsumer(s *Server, c *opCall, body []byte) (any, error) {
	var in consumerRef
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	name, err := in.streamName(s)
	if err != nil {
		return nil, err
	}
	if err := s.rate.allowStream("DeregisterStreamConsumer", in.quotaStream(name)); err != nil {
		return nil, err
	}
	if err := in.authorize(s, c, name); err != nil {
		return nil, err
	}
	return nil, s.engine.DeregisterConsumer(name, in.ConsumerName, in.ConsumerARN)
}

func opDescribeConsumer(s *Server, c *opCall, body []byte) (any, error) {
	var in consumerRef
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	name, err := in.streamName(s)
	if err != nil {
		return nil, err
	}
	if err := s.rate.allowStream("DescribeStreamConsumer", in.quotaStream(name)); err != nil {
		return nil, err
	}
	if err := in.authorize(s, c, name); err != nil {
		return nil, err
	}
	cons, err := s.engine.DescribeConsumer(name, in.ConsumerName, in.ConsumerARN)
	if err != nil {
		return nil, err
	}
	return struct {
		ConsumerDescription consumerOut `json:"ConsumerDescription"`
	}{toConsumerOut(cons, true)}, nil
}

// maxListConsumers is the most consumers one ListStreamConsumers answer holds, whatever
// MaxResults asks.
const maxListConsumers = 100

func opListConsumers(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		StreamARN               string `json:"StreamARN"`
		MaxResults              *int   `json:"MaxResults"`
		NextToken               string `json:"NextToken"`
		StreamCreationTimestamp *epoch `json:"StreamCreationTimestamp"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	max, err := maxResults(in.MaxResults, maxListConsumers)
	if err != nil {
		return nil, err
	}
	name, err := streamRef{StreamARN: in.StreamARN}.authorized(s, c)
	if err != nil {
		return nil, err
	}
	if err := s.rate.allowStream("ListStreamConsumers", name); err != nil {
		return nil, err
	}
	from := 0
	if in.NextToken != "" {
		if in.StreamCreationTimestamp != nil {
			return nil, apiError{code: wire.InvalidArgument, msg: "NextToken and StreamCreationTimestamp cannot be provided together."}
		}
		p, err := s.engine.ParseNextToken(stream.PageConsumers, in.NextToken)
		if err != nil {
			return nil, err
		}
		if p.Stream != name {
			return nil, apiError{code: wire.InvalidArgument, msg: "The NextToken was issued for another stream than " + name + "."}
		}
		from = int(p.After)
	}
	cs, err := s.engine.ListConsumers(name)
	if err != nil {
		return nil, err
	}
	out := struct {
		Consumers []consumerOut `json:"Consumers"`
		NextToken string        `json:"NextToken,omitempty"`
	}{Consumers: []consumerOut{}}
	// The token counts the consumers listed before it: a consumer deregistered between two
	// pages moves the later ones up by one, so one of them may be missed.
	cs = cs[min(from, len(cs)):]
	if len(cs) > max {
		cs = cs[:max]
		if out.NextToken, err = s.engine.NextToken(stream.PageConsumers, name, uint32(from+max), stream.ShardFilter{}); err != nil {
			return nil, err
		}
	}
	for _, cons := range cs {
		out.Consumers = append(out.Consumers, toConsumerOut(cons, false))
	}
	return out, nil
}

func opStartEncryption(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		streamRef
		EncryptionType string `json:"EncryptionType"`
		KeyId          string `json:"KeyId"`
	}
	name, err := decodeNamed(s, c, body, &in)
	if err != nil {
		return nil, err
	}
	if in.EncryptionType != "KMS" {
		return nil, invalid(awsmsg.Violation(awsmsg.Str(in.EncryptionType), "encryptionType", awsmsg.Enum("KMS")))
	}
	return nil, s.engine.SetEncryption(name, "KMS", in.KeyId)
}

func opStopEncryption(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		streamRef
		EncryptionType string `json:"EncryptionType"`
		KeyId          string `json:"KeyId"`
	}
	name, err := decodeNamed(s, c, body, &in)
	if err != nil {
		return nil, err
	}
	return nil, s.engine.SetEncryption(name, "NONE", in.KeyId)
}

func opUpdateStreamMode(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		StreamARN         string            `json:"StreamARN"`
		StreamModeDetails streamModeDetails `json:"StreamModeDetails"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	name, err := streamRef{StreamARN: in.StreamARN}.authorized(s, c)
	if err != nil {
		return nil, err
	}
	return nil, s.engine.SetMode(name, in.StreamModeDetails.StreamMode)
}

func opUpdateMaxRecordSize(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		StreamARN          string `json:"StreamARN"`
		MaxRecordSizeInKiB int    `json:"MaxRecordSizeInKiB"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	name, err := streamRef{StreamARN: in.StreamARN}.authorized(s, c)
	if err != nil {
		return nil, err
	}
	return nil, s.engine.SetMaxRecordSize(name, in.MaxRecordSizeInKiB)
}
