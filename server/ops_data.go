package server

import (
	"encoding/base64"

	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/internal/jsonscan"
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
			Type    string `json:"Type"`
			ShardId string `json:"ShardId"`
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
			return nil, apiError{status: 400, name: "InvalidArgumentException", msg: "Invalid NextToken"}
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
	var after int64 = -1
	if in.ExclusiveStartShardId != "" {
		id, err := shardmap.ParseShardName(in.ExclusiveStartShardId)
		if err != nil {
			return nil, apiError{status: 400, name: "InvalidArgumentException", msg: "Invalid ExclusiveStartShardId " + in.ExclusiveStartShardId}
		}
		after = int64(id)
	}
	open := in.ShardFilter != nil && (in.ShardFilter.Type == "AT_LATEST")
	out := struct {
		Shards    []shardOut `json:"Shards"`
		NextToken string     `json:"NextToken,omitempty"`
	}{Shards: []shardOut{}}
	for _, sh := range shardsOut(d) {
		id, _ := shardmap.ParseShardName(sh.ShardId)
		if int64(id) <= after || (open && sh.SequenceNumberRange.EndingSequenceNumber != "") {
			continue
		}
		if len(out.Shards) == max {
			last := out.Shards[len(out.Shards)-1].ShardId
			out.NextToken = base64.RawURLEncoding.EncodeToString([]byte(name + "|" + last))
			break
		}
		out.Shards = append(out.Shards, sh)
	}
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
	res, err := s.engine.PutRecord(name, p.entries[0], p.seqOrdering)
	if err != nil {
		return nil, err
	}
	out := getBodyBuf(256)
	out = appendSeqShard(out, res.Seq, res.Shard)
	out = append(out, `,"EncryptionType":`...)
	out = jsonscan.AppendString(out, s.engine.EncryptionType(name))
	return rawJSON(append(out, '}')), nil
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
	gi := stream.IteratorInput{Stream: name, ShardID: in.ShardId, Type: in.ShardIteratorType, Seq: in.StartingSequenceNumber}
	switch in.ShardIteratorType {
	case stream.AtSequenceNumber, stream.AfterSequenceNumber:
		if in.StartingSequenceNumber == "" {
			return nil, apiError{status: 400, name: "InvalidArgumentException", msg: "Must specify a StartingSequenceNumber for the " + in.ShardIteratorType + " ShardIteratorType."}
		}
	case stream.AtTimestamp:
		if in.Timestamp == nil {
			return nil, apiError{status: 400, name: "InvalidArgumentException", msg: "Must specify a Timestamp for the AT_TIMESTAMP ShardIteratorType."}
		}
		gi.Timestamp = in.Timestamp.Time
	}
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
