package server

import (
	"strings"
	"time"

	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/internal/jsonscan"
	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// listShardsIn is ListShards' input.
type listShardsIn struct {
	streamRef
	NextToken               string `json:"NextToken"`
	ExclusiveStartShardId   string `json:"ExclusiveStartShardId"`
	MaxResults              *int   `json:"MaxResults"`
	StreamCreationTimestamp *epoch `json:"StreamCreationTimestamp"`
	ShardFilter             *struct {
		Type      string `json:"Type"`
		ShardId   string `json:"ShardId"`
		Timestamp *epoch `json:"Timestamp"`
	} `json:"ShardFilter"`
}

// maxListShards is the most shards one ListShards answer holds, whatever MaxResults asks.
const maxListShards = 1000

func opListShards(s *Server, c *opCall, body []byte) (any, error) {
	var in listShardsIn
	if err := decode(body, &in); err != nil {
		return nil, err
	}
	max, err := maxResults(in.MaxResults, maxListShards)
	if err != nil {
		return nil, err
	}
	var name string
	var f stream.ShardFilter
	var after stream.ShardID
	hasAfter := false
	if in.NextToken != "" {
		// The token names the stream and carries the first call's filter.
		for _, given := range []struct {
			member string
			set    bool
		}{{"StreamName", in.StreamName != ""}, {"StreamARN", in.StreamARN != ""},
			{"ExclusiveStartShardId", in.ExclusiveStartShardId != ""},
			{"StreamCreationTimestamp", in.StreamCreationTimestamp != nil}, {"ShardFilter", in.ShardFilter != nil}} {
			if given.set {
				return nil, apiError{code: wire.InvalidArgument, msg: "NextToken and " + given.member + " cannot be provided together."}
			}
		}
		p, err := s.engine.ParseNextToken(stream.PageShards, in.NextToken)
		if err != nil {
			return nil, err
		}
		name, f, after, hasAfter = p.Stream, p.Filter, stream.ShardID(p.After), true
	} else {
		if name, err = in.name(s); err != nil {
			return nil, err
		}
		if in.ExclusiveStartShardId != "" {
			if after, err = shardmap.ParseShardID(in.ExclusiveStartShardId); err != nil {
				return nil, apiError{code: wire.InvalidArgument, msg: "Invalid ExclusiveStartShardId " + echo(in.ExclusiveStartShardId) + "."}
			}
			hasAfter = true
		}
		if f, err = in.filter(); err != nil {
			return nil, err
		}
	}
	if err := s.authorizeStream(c, name); err != nil {
		return nil, err
	}
	if err := s.rate.allowStream("ListShards", name); err != nil {
		return nil, err
	}
	if in.StreamCreationTimestamp != nil {
		d, err := s.engine.Describe(name)
		if err != nil {
			return nil, err
		}
		if !d.Created.Equal(in.StreamCreationTimestamp.Time) {
			return nil, apiError{code: wire.ResourceNotFound, msg: "Stream " + name + " under account " + s.engine.Account() + " with the given StreamCreationTimestamp not found."}
		}
	}
	list, err := s.engine.ListShards(name, f)
	if err != nil {
		return nil, err
	}
	if hasAfter {
		list = shardsAfterID(list, after)
	}
	out := struct {
		Shards    []shardOut `json:"Shards"`
		NextToken string     `json:"NextToken,omitempty"`
	}{}
	if len(list) > max {
		list = list[:max]
		if out.NextToken, err = s.engine.NextToken(stream.PageShards, name, uint32(list[max-1].ID), f); err != nil {
			return nil, err
		}
	}
	out.Shards = shardsOut(list)
	return out, nil
}

// filter parses the ShardFilter; none is FROM_TRIM_HORIZON. A ShardId belongs to
// AFTER_SHARD_ID only, a Timestamp to AT_TIMESTAMP and FROM_TIMESTAMP only; each is required
// there.
func (in *listShardsIn) filter() (stream.ShardFilter, error) {
	var f stream.ShardFilter
	sf := in.ShardFilter
	if sf == nil {
		return f, nil
	}
	typ, ok := stream.ParseShardFilterType(sf.Type)
	if !ok {
		return f, invalid(awsmsg.Violation(awsmsg.Str(sf.Type), "shardFilter.type", awsmsg.Enum("AFTER_SHARD_ID", "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON", "AT_LATEST", "AT_TIMESTAMP", "FROM_TIMESTAMP")))
	}
	f.Type = typ
	wantsID := typ == stream.AfterShardID
	wantsTime := typ == stream.AtTimestampFilter || typ == stream.FromTimestamp
	switch {
	case wantsID && sf.ShardId == "":
		return f, apiError{code: wire.InvalidArgument, msg: "ShardFilter ShardId must be provided for the AFTER_SHARD_ID type."}
	case !wantsID && sf.ShardId != "":
		return f, apiError{code: wire.InvalidArgument, msg: "ShardFilter ShardId can only be provided for the AFTER_SHARD_ID type."}
	case wantsTime && sf.Timestamp == nil:
		return f, apiError{code: wire.InvalidArgument, msg: "ShardFilter Timestamp must be provided for the " + sf.Type + " type."}
	case !wantsTime && sf.Timestamp != nil:
		return f, apiError{code: wire.InvalidArgument, msg: "ShardFilter Timestamp can only be provided for the AT_TIMESTAMP and FROM_TIMESTAMP types."}
	}
	if wantsID {
		id, err := shardmap.ParseShardID(sf.ShardId)
		if err != nil {
			return f, apiError{code: wire.InvalidArgument, msg: "Invalid ShardFilter ShardId " + sf.ShardId + "."}
		}
		f.After = id
	}
	if wantsTime {
		f.At = sf.Timestamp.Time
	}
	return f, nil
}

// maxResults checks a MaxResults member (1 … 10000, as the model bounds it) and returns the
// page size it asks for: def when absent, at most def, as Kinesis answers.
func maxResults(v *int, def int) (int, error) {
	if v == nil {
		return def, nil
	}
	if *v < 1 || *v > 10000 {
		return 0, invalid(awsmsg.Violation(awsmsg.Int(*v), "maxResults", awsmsg.ValueRange(1, 10000)))
	}
	return min(*v, def), nil
}

func opPutRecord(s *Server, c *opCall, body []byte) (any, error) {
	p := getPutBatch()
	defer p.release()
	if err := p.decodePutRecord(body); err != nil {
		return nil, err
	}
	name, err := p.ref.authorized(s, c)
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
	res, err := s.putRecord(name, p.entries[0])
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

func opPutRecords(s *Server, c *opCall, body []byte) (any, error) {
	p := getPutBatch()
	defer p.release()
	if err := p.decodePutRecords(body); err != nil {
		return nil, err
	}
	name, err := p.ref.authorized(s, c)
	if err != nil {
		return nil, err
	}
	res, err := s.putRecords(name, p.entries)
	if err != nil {
		return nil, err
	}
	out := getBodyBuf(64 + len(res)*100)
	return rawJSON(appendPutRecordsResult(out, res, s.engine.EncryptionType(name))), nil
}

func opGetShardIterator(s *Server, c *opCall, body []byte) (any, error) {
	var in struct {
		streamRef
		ShardId                string `json:"ShardId"`
		ShardIteratorType      string `json:"ShardIteratorType"`
		StartingSequenceNumber string `json:"StartingSequenceNumber"`
		Timestamp              *epoch `json:"Timestamp"`
	}
	name, err := decodeNamed(s, c, body, &in)
	if err != nil {
		return nil, err
	}
	start, err := s.parseStart(name, in.ShardId, in.ShardIteratorType, "shardIteratorType", in.StartingSequenceNumber, in.Timestamp)
	if err != nil {
		return nil, err
	}
	if err := s.rate.allowShardIterator(name, start.shard); err != nil {
		return nil, err
	}
	gi := stream.IteratorInput{Stream: name, Shard: start.shard, Type: start.typ, Seq: start.seq, Timestamp: start.ts, Account: c.account()}
	it, err := s.engine.GetShardIterator(gi)
	if err != nil {
		return nil, err
	}
	return struct {
		ShardIterator string `json:"ShardIterator"`
	}{it}, nil
}

func opGetRecords(s *Server, c *opCall, body []byte) (any, error) {
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
	// The iterator names the stream: it is decoded once, the call authorised on its stream,
	// and the read made from the decoded iterator.
	it, err := s.engine.Iterator(in.ShardIterator)
	if err != nil {
		return nil, err
	}
	if c.on && it.Account != c.p.Account {
		return nil, apiError{code: wire.AccessDenied, msg: "User: " + c.p.ARN + " is not authorized to use a shard iterator issued to account " + it.Account + "."}
	}
	if err := s.authorizeStream(c, it.Stream); err != nil {
		return nil, err
	}
	r, err := s.engine.ReadIterator(it, limit)
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
