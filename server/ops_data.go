package server

import (
	"encoding/base64"
	"strings"
	"time"

	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/internal/jsonscan"
	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

func opListShards(s *Server, body []byte) (any, error) {
	var in struct {
		streamRef
		NextToken             string `json:"NextToken"`
		ExclusiveStartShardId string `json:"ExclusiveStartShardId"`
		MaxResults            *int   `json:"MaxResults"`
		ShardFilter           *struct {
			Type      string `json:"Type"`
			ShardId   string `json:"ShardId"`
			Timestamp *epoch `json:"Timestamp"` // decoded to refuse what cannot be a timestamp
		} `json:"ShardFilter"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	if in.NextToken != "" {
		// The token carries the stream and the last shard listed.
		raw, err := base64.RawURLEncoding.DecodeString(in.NextToken)
		name, last, ok := cutLast(string(raw))
		if err != nil || !ok {
			return nil, apiError{code: wire.InvalidArgument, msg: "Invalid NextToken"}
		}
		in.StreamName, in.StreamARN, in.ExclusiveStartShardId = name, "", last
	}
	name, err := in.name(s)
	if err != nil {
		return nil, err
	}
	max := 1000
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 10000 {
			return nil, invalid(awsmsg.Violation(awsmsg.Int(*in.MaxResults), "maxResults", awsmsg.ValueRange(1, 10000)))
		}
		max = *in.MaxResults
	}
	d, err := s.engine.Describe(name)
	if err != nil {
		return nil, err
	}
	if in.ExclusiveStartShardId != "" {
		if _, err := shardmap.ParseShardID(in.ExclusiveStartShardId); err != nil {
			return nil, apiError{code: wire.InvalidArgument, msg: "Invalid ExclusiveStartShardId " + echo(in.ExclusiveStartShardId)}
		}
	}
	open := in.ShardFilter != nil && (in.ShardFilter.Type == "AT_LATEST")
	var list []stream.ShardDescription
	for _, sd := range shardsAfter(d.Shards, in.ExclusiveStartShardId) {
		if open && !sd.Open {
			continue
		}
		list = append(list, sd)
	}
	out := struct {
		Shards    []shardOut `json:"Shards"`
		NextToken string     `json:"NextToken,omitempty"`
	}{}
	if len(list) > max {
		list = list[:max]
		out.NextToken = base64.RawURLEncoding.EncodeToString([]byte(name + "|" + list[max-1].ID.String()))
	}
	out.Shards = shardsOut(list)
	return out, nil
}

func cutLast(s string) (a, b string, ok bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '|' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

func opPutRecord(s *Server, body []byte) (any, error) {
	p := getPutBatch()
	defer p.release()
	if err := p.decodePutRecord(body); err != nil {
		return nil, err
	}
	name, err := p.ref.name(s)
	if err != nil {
		return nil, err
	}
	if p.seqOrdering != "" && !isDecimal(p.seqOrdering, 129) {
		return nil, patternError(p.seqOrdering, "sequenceNumberForOrdering", seqNumPattern)
	}
	if p.seqOrdering != "" {
		// Every shard's numbers already follow the order of its appends: the number is only
		// checked to be one this server issued.
		if _, err := stream.ParseSeqNum(p.seqOrdering); err != nil {
			return nil, apiError{code: wire.InvalidArgument, msg: "ExclusiveMinimumSequenceNumber " + p.seqOrdering +
				" used in PutRecord on stream " + name + " under account " + s.engine.Account() + " is invalid."}
		}
	}
	res, err := s.engine.PutRecord(name, p.entries[0])
	if err != nil {
		return nil, singleRecordError(err)
	}
	out := getBodyBuf(256)
	out = appendSeqShard(out, res.Seq, res.Shard)
	out = append(out, `,"EncryptionType":`...)
	out = jsonscan.AppendString(out, s.engine.EncryptionType(name))
	return rawJSON(append(out, '}')), nil
}

// singleRecordError names the members of PutRecord's one record as PutRecord's input does
// (partitionKey, data), where the engine, which puts it as a batch of one, names them as
// PutRecords' (records.1.member.partitionKey).
func singleRecordError(err error) error {
	ae := toAPIError(err)
	if ae.code == wire.Validation {
		ae.msg = strings.Replace(ae.msg, "'records.1.member.", "'", 1)
	}
	return ae
}

func opPutRecords(s *Server, body []byte) (any, error) {
	p := getPutBatch()
	defer p.release()
	if err := p.decodePutRecords(body); err != nil {
		return nil, err
	}
	name, err := p.ref.name(s)
	if err != nil {
		return nil, err
	}
	res, err := s.engine.PutRecords(name, p.entries)
	if err != nil {
		return nil, err
	}
	out := getBodyBuf(64 + len(res)*100)
	return rawJSON(appendPutRecordsResult(out, res, s.engine.EncryptionType(name))), nil
}

func opGetShardIterator(s *Server, body []byte) (any, error) {
	var in struct {
		streamRef
		ShardId                string `json:"ShardId"`
		ShardIteratorType      string `json:"ShardIteratorType"`
		StartingSequenceNumber string `json:"StartingSequenceNumber"`
		Timestamp              *epoch `json:"Timestamp"`
	}
	name, err := decodeNamed(s, body, &in)
	if err != nil {
		return nil, err
	}
	if err := s.rate.allowShardIterator(name, in.ShardId); err != nil {
		return nil, err
	}
	start, err := s.parseStart(name, in.ShardId, in.ShardIteratorType, "shardIteratorType", in.StartingSequenceNumber, in.Timestamp)
	if err != nil {
		return nil, err
	}
	gi := stream.IteratorInput{Stream: name, Shard: start.shard, Type: start.typ, Seq: start.seq, Timestamp: start.ts}
	it, err := s.engine.GetShardIterator(gi)
	if err != nil {
		return nil, err
	}
	return struct {
		ShardIterator string `json:"ShardIterator"`
	}{it}, nil
}

func opGetRecords(s *Server, body []byte) (any, error) {
	var in struct {
		ShardIterator string `json:"ShardIterator"`
		Limit         *int   `json:"Limit"`
		StreamARN     string `json:"StreamARN"`
	}
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	limit := stream.MaxGetRecordsLimit
	if in.Limit != nil {
		limit = *in.Limit
	}
	r, err := s.engine.GetRecords(in.ShardIterator, limit)
	if err != nil {
		return nil, err
	}
	defer r.Release()
	out := getBodyBuf(getRecordsSize(&r.Records))
	return rawJSON(appendGetRecordsResult(out, &r)), nil
}

// start is where a read starts, parsed from the API's strings: GetShardIterator's ShardId,
// ShardIteratorType, StartingSequenceNumber and Timestamp, or SubscribeToShard's ShardId and
// StartingPosition.
type start struct {
	shard stream.ShardID
	typ   stream.IteratorType
	seq   stream.SeqNum
	ts    time.Time
}

// parseStart parses a starting position of a read of streamName; typeMember names the type's
// member in a validation message. The errors are Kinesis's: an id that names no shard is a
// ResourceNotFoundException, an unknown type a ValidationException, a missing or foreign
// sequence number or a missing timestamp an InvalidArgumentException.
func (s *Server) parseStart(streamName, shardText, typeText, typeMember, seqText string, ts *epoch) (start, error) {
	var st start
	id, err := shardmap.ParseShardID(shardText)
	if err != nil {
		return st, stream.NoSuchShard(shardText, streamName, s.engine.Account())
	}
	st.shard = id
	typ, ok := stream.ParseIteratorType(typeText)
	if !ok {
		return st, invalid(awsmsg.Violation(awsmsg.Str(typeText), typeMember, awsmsg.Enum("AFTER_SEQUENCE_NUMBER", "AT_SEQUENCE_NUMBER", "AT_TIMESTAMP", "TRIM_HORIZON", "LATEST")))
	}
	st.typ = typ
	switch typ {
	case stream.AtSequenceNumber, stream.AfterSequenceNumber:
		if seqText == "" {
			return st, apiError{code: wire.InvalidArgument, msg: "Must specify a StartingSequenceNumber for the " + typeText + " ShardIteratorType."}
		}
		seq, err := stream.ParseSeqNum(seqText)
		if err != nil {
			return st, stream.BadStartingSequence(stream.InvalidSequenceText, id)
		}
		st.seq = seq
	case stream.AtTimestamp:
		if ts == nil {
			return st, apiError{code: wire.InvalidArgument, msg: "Must specify a Timestamp for the AT_TIMESTAMP ShardIteratorType."}
		}
		st.ts = ts.Time
	}
	return st, nil
}
