package server

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/internal/jsonscan"
	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// An operation decodes its JSON input, calls the engine and returns the value to encode
// (nil for an empty object).
type operation func(s *Server, c *opCall, body []byte) (any, error)

var operations map[string]operation

func init() {
	operations = map[string]operation{
		"CreateStream":                  opCreateStream,
		"DeleteStream":                  opDeleteStream,
		"ListStreams":                   opListStreams,
		"DescribeStream":                opDescribeStream,
		"DescribeStreamSummary":         opDescribeStreamSummary,
		"ListShards":                    opListShards,
		"PutRecord":                     opPutRecord,
		"PutRecords":                    opPutRecords,
		"GetShardIterator":              opGetShardIterator,
		"GetRecords":                    opGetRecords,
		"IncreaseStreamRetentionPeriod": opIncreaseRetention,
		"DecreaseStreamRetentionPeriod": opDecreaseRetention,
		"SplitShard":                    opSplitShard,
		"MergeShards":                   opMergeShards,
		"UpdateShardCount":              opUpdateShardCount,
		"AddTagsToStream":               opAddTags,
		"RemoveTagsFromStream":          opRemoveTags,
		"ListTagsForStream":             opListTags,
		"RegisterStreamConsumer":        opRegisterConsumer,
		"DeregisterStreamConsumer":      opDeregisterConsumer,
		"DescribeStreamConsumer":        opDescribeConsumer,
		"ListStreamConsumers":           opListConsumers,
		"StartStreamEncryption":         opStartEncryption,
		"StopStreamEncryption":          opStopEncryption,
		"UpdateStreamMode":              opUpdateStreamMode,
		"UpdateMaxRecordSize":           opUpdateMaxRecordSize,
		"EnableEnhancedMonitoring":      opEnableMonitoring,
		"DisableEnhancedMonitoring":     opDisableMonitoring,
		"DescribeLimits":                opDescribeLimits,
		"TagResource":                   opTagResource,
		"UntagResource":                 opUntagResource,
		"ListTagsForResource":           opListTagsForResource,
		"GetResourcePolicy":             opGetResourcePolicy,
		"PutResourcePolicy":             opPutResourcePolicy,
		"DeleteResourcePolicy":          opDeleteResourcePolicy,
		"DescribeAccountSettings":       opDescribeAccountSettings,
		"UpdateAccountSettings":         opUpdateAccountSettings,
		"UpdateStreamWarmThroughput":    opUpdateStreamWarmThroughput,
	}
}

func decode(body []byte, v any) error {
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := jsonscan.CheckSurrogates(body); err != nil {
		return serializationError(err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		var ae apiError
		if errors.As(err, &ae) { // from an UnmarshalJSON method: already in the API's shape
			return ae
		}
		return apiError{code: wire.Serialization, msg: "Start of structure or map found where not expected, or a value of the wrong type: " + err.Error()}
	}
	return nil
}

// invalid is a ValidationException listing violations (built by package awsmsg).
func invalid(violations ...string) error {
	return apiError{code: wire.Validation, msg: awsmsg.Validation(violations...)}
}

// epoch is a timestamp as AWS JSON 1.1 writes it: seconds since the epoch, a number that may
// have a fraction (the Go SDK sends milliseconds as a fraction, boto3 whole seconds).
type epoch struct{ time.Time }

// UnmarshalJSON refuses what parseEpochSeconds refuses (edge.go), so every time the engine
// gets has its milliseconds in an int64.
func (e *epoch) UnmarshalJSON(b []byte) error {
	ms, err := parseEpochSeconds(strings.Trim(string(b), `"`))
	if err != nil {
		return err
	}
	e.Time = time.UnixMilli(ms)
	return nil
}

func (e epoch) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(float64(e.UnixMilli())/1e3, 'f', 3, 64)), nil
}

// streamRef is the StreamName or StreamARN every stream operation takes.
type streamRef struct {
	StreamName string `json:"StreamName"`
	StreamARN  string `json:"StreamARN"`
}

func (r streamRef) ref() streamRef { return r }

// decodeNamed decodes the input of an operation on one stream (a struct embedding streamRef),
// resolves the stream's name and authorises the call on the stream.
func decodeNamed(s *Server, c *opCall, body []byte, in interface{ ref() streamRef }) (string, error) {
	if err := decode(body, in); err != nil {
		return "", err
	}
	return in.ref().authorized(s, c)
}

// authorized resolves the reference to a stream name and authorises the call on the stream.
func (r streamRef) authorized(s *Server, c *opCall) (string, error) {
	name, err := r.name(s)
	if err != nil {
		return "", err
	}
	return name, s.authorizeStream(c, name)
}

// name resolves the reference to a stream name.
func (r streamRef) name(s *Server) (string, error) {
	if r.StreamName != "" {
		if err := checkStreamName(r.StreamName); err != nil {
			return "", err
		}
	}
	if r.StreamARN != "" {
		if len(r.StreamARN) > maxARN {
			return "", invalid(awsmsg.Violation(awsmsg.Str(r.StreamARN), "streamARN", awsmsg.LengthAtMost(maxARN)))
		}
		i := strings.LastIndex(r.StreamARN, ":stream/")
		if !strings.HasPrefix(r.StreamARN, "arn:") || i < 0 || strings.Contains(r.StreamARN[i+8:], "/") {
			return "", invalid(awsmsg.Violation(awsmsg.Str(r.StreamARN), "streamARN", awsmsg.Pattern(`arn:aws.*:kinesis:.*:\d{12}:stream/\S+`)))
		}
		name := r.StreamARN[i+8:]
		if r.StreamName != "" && r.StreamName != name {
			return "", apiError{code: wire.InvalidArgument, msg: "StreamARN and StreamName name different streams"}
		}
		return name, nil
	}
	if r.StreamName == "" {
		return "", apiError{code: wire.InvalidArgument, msg: "Neither StreamName nor StreamARN was given"}
	}
	return r.StreamName, nil
}

type streamModeDetails struct {
	StreamMode string `json:"StreamMode"`
}

func opCreateStream(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		StreamName        string             `json:"StreamName"`
		ShardCount        *int               `json:"ShardCount"`
		StreamModeDetails *streamModeDetails `json:"StreamModeDetails"`
		Tags              map[string]string  `json:"Tags"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := checkStreamName(in.StreamName); err != nil {
		return nil, err
	}
	if err := s.authorizeStream(c, in.StreamName); err != nil {
		return nil, err
	}
	ci := stream.CreateStreamInput{Name: in.StreamName, Tags: in.Tags}
	if in.StreamModeDetails != nil {
		ci.Mode = in.StreamModeDetails.StreamMode
	}
	if in.ShardCount != nil {
		ci.ShardCount = *in.ShardCount
	} else if ci.Mode == "" {
		ci.Mode = stream.ModeOnDemand // no shard count: Kinesis makes an on-demand stream
	}
	if ci.Tags == nil {
		ci.Tags = map[string]string{}
	}
	return nil, s.engine.CreateStream(ci)
}

func opDeleteStream(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		streamRef
		EnforceConsumerDeletion bool `json:"EnforceConsumerDeletion"`
	}
	name, err := decodeNamed(s, c, body, &in)
	if err != nil {
		return nil, err
	}
	return nil, s.engine.DeleteStream(name, in.EnforceConsumerDeletion)
}

func opListStreams(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		Limit                    *int   `json:"Limit"`
		ExclusiveStartStreamName string `json:"ExclusiveStartStreamName"`
		NextToken                string `json:"NextToken"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if err := s.authorize(c, "*"); err != nil {
		return nil, err
	}
	limit := 100
	if in.Limit != nil {
		if *in.Limit < 1 || *in.Limit > 10000 {
			return nil, invalid(awsmsg.Violation(awsmsg.Int(*in.Limit), "limit", awsmsg.ValueRange(1, 10000)))
		}
		limit = *in.Limit
	}
	after := in.ExclusiveStartStreamName
	if in.NextToken != "" {
		after = in.NextToken
	}
	type summary struct {
		StreamName              string            `json:"StreamName"`
		StreamARN               string            `json:"StreamARN"`
		StreamStatus            string            `json:"StreamStatus"`
		StreamModeDetails       streamModeDetails `json:"StreamModeDetails"`
		StreamCreationTimestamp epoch             `json:"StreamCreationTimestamp"`
	}
	out := struct {
		StreamNames     []string  `json:"StreamNames"`
		HasMoreStreams  bool      `json:"HasMoreStreams"`
		StreamSummaries []summary `json:"StreamSummaries"`
		NextToken       string    `json:"NextToken,omitempty"`
	}{StreamNames: []string{}, StreamSummaries: []summary{}}
	for _, n := range s.engine.ListStreams() {
		if after != "" && n <= after {
			continue
		}
		if len(out.StreamNames) == limit {
			out.HasMoreStreams = true
			out.NextToken = out.StreamNames[len(out.StreamNames)-1]
			break
		}
		d, err := s.engine.Describe(n)
		if err != nil {
			continue // deleted meanwhile
		}
		out.StreamNames = append(out.StreamNames, n)
		out.StreamSummaries = append(out.StreamSummaries, summary{n, d.ARN, d.Status, streamModeDetails{d.Mode}, epoch{d.Created}})
	}
	return out, nil
}

type hashKeyRange struct {
	StartingHashKey string `json:"StartingHashKey"`
	EndingHashKey   string `json:"EndingHashKey"`
}

type seqRange struct {
	StartingSequenceNumber string `json:"StartingSequenceNumber"`
	EndingSequenceNumber   string `json:"EndingSequenceNumber,omitempty"`
}

type shardOut struct {
	ShardId               string       `json:"ShardId"`
	ParentShardId         string       `json:"ParentShardId,omitempty"`
	AdjacentParentShardId string       `json:"AdjacentParentShardId,omitempty"`
	HashKeyRange          hashKeyRange `json:"HashKeyRange"`
	SequenceNumberRange   seqRange     `json:"SequenceNumberRange"`
}

// shardsOut writes shard descriptions as the API shows them.
func shardsOut(shards []stream.ShardDescription) []shardOut {
	out := make([]shardOut, 0, len(shards))
	for _, sd := range shards {
		o := shardOut{ShardId: sd.ID.String(),
			HashKeyRange:        hashKeyRange{sd.Range.Start.String(), sd.Range.End.String()},
			SequenceNumberRange: seqRange{StartingSequenceNumber: sd.StartingSeq.String()}}
		if sd.HasParent() {
			o.ParentShardId = sd.Parent.String()
		}
		if sd.HasAdjacentParent() {
			o.AdjacentParentShardId = sd.AdjacentParent.String()
		}
		if !sd.Open {
			o.SequenceNumberRange.EndingSequenceNumber = sd.EndingSeq.String()
		}
		out = append(out, o)
	}
	return out
}

// shardsAfter returns the shards whose id is above the one exclusiveStart names (all of
// them when it is empty or names no shard id).
func shardsAfter(shards []stream.ShardDescription, exclusiveStart string) []stream.ShardDescription {
	if exclusiveStart == "" {
		return shards
	}
	after, err := shardmap.ParseShardID(exclusiveStart)
	if err != nil {
		return shards
	}
	return shardsAfterID(shards, after)
}

// shardsAfterID returns the shards (in id order) whose id is above after.
func shardsAfterID(shards []stream.ShardDescription, after stream.ShardID) []stream.ShardDescription {
	i := 0
	for i < len(shards) && shards[i].ID <= after {
		i++
	}
	return shards[i:]
}

func opDescribeStream(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		streamRef
		Limit                 *int   `json:"Limit"`
		ExclusiveStartShardId string `json:"ExclusiveStartShardId"`
	}
	name, err := decodeNamed(s, c, body, &in)
	if err != nil {
		return nil, err
	}
	d, err := s.engine.Describe(name)
	if err != nil {
		return nil, err
	}
	limit := 100
	if in.Limit != nil {
		if *in.Limit < 1 || *in.Limit > 10000 {
			return nil, invalid(awsmsg.Violation(awsmsg.Int(*in.Limit), "limit", awsmsg.ValueRange(1, 10000)))
		}
		limit = *in.Limit
	}
	shards := shardsOut(shardsAfter(d.Shards, in.ExclusiveStartShardId))
	more := len(shards) > limit
	if more {
		shards = shards[:limit]
	}
	type description struct {
		StreamName              string            `json:"StreamName"`
		StreamARN               string            `json:"StreamARN"`
		StreamStatus            string            `json:"StreamStatus"`
		StreamModeDetails       streamModeDetails `json:"StreamModeDetails"`
		Shards                  []shardOut        `json:"Shards"`
		HasMoreShards           bool              `json:"HasMoreShards"`
		RetentionPeriodHours    int               `json:"RetentionPeriodHours"`
		StreamCreationTimestamp epoch             `json:"StreamCreationTimestamp"`
		EnhancedMonitoring      []struct {
			ShardLevelMetrics []string `json:"ShardLevelMetrics"`
		} `json:"EnhancedMonitoring"`
		EncryptionType string `json:"EncryptionType"`
		KeyId          string `json:"KeyId,omitempty"`
	}
	out := description{StreamName: d.Name, StreamARN: d.ARN, StreamStatus: d.Status, StreamModeDetails: streamModeDetails{d.Mode},
		Shards: shards, HasMoreShards: more, RetentionPeriodHours: d.RetentionHours, StreamCreationTimestamp: epoch{d.Created},
		EncryptionType: d.Encryption, KeyId: d.KeyID}
	out.EnhancedMonitoring = enhancedMonitoring(s, name)
	return struct {
		StreamDescription description `json:"StreamDescription"`
	}{out}, nil
}

func opDescribeStreamSummary(s *Server, c *opCall, body []byte) (any, error) {
	var in streamRef
	name, err := decodeNamed(s, c, body, &in)
	if err != nil {
		return nil, err
	}
	d, err := s.engine.Describe(name)
	if err != nil {
		return nil, err
	}
	consumers, _ := s.engine.ListConsumers(name)
	type summary struct {
		StreamName              string            `json:"StreamName"`
		StreamARN               string            `json:"StreamARN"`
		StreamStatus            string            `json:"StreamStatus"`
		StreamModeDetails       streamModeDetails `json:"StreamModeDetails"`
		RetentionPeriodHours    int               `json:"RetentionPeriodHours"`
		StreamCreationTimestamp epoch             `json:"StreamCreationTimestamp"`
		EnhancedMonitoring      []struct {
			ShardLevelMetrics []string `json:"ShardLevelMetrics"`
		} `json:"EnhancedMonitoring"`
		EncryptionType     string `json:"EncryptionType"`
		KeyId              string `json:"KeyId,omitempty"`
		OpenShardCount     int    `json:"OpenShardCount"`
		ConsumerCount      int    `json:"ConsumerCount"`
		MaxRecordSizeInKiB int    `json:"MaxRecordSizeInKiB"`
	}
	out := summary{StreamName: d.Name, StreamARN: d.ARN, StreamStatus: d.Status, StreamModeDetails: streamModeDetails{d.Mode},
		RetentionPeriodHours: d.RetentionHours, StreamCreationTimestamp: epoch{d.Created}, EncryptionType: d.Encryption,
		KeyId: d.KeyID, OpenShardCount: d.OpenShards, ConsumerCount: len(consumers), MaxRecordSizeInKiB: d.MaxRecordKiB}
	out.EnhancedMonitoring = enhancedMonitoring(s, name)
	return struct {
		StreamDescriptionSummary summary `json:"StreamDescriptionSummary"`
	}{out}, nil
}
