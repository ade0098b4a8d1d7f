package stream

import (
	"strconv"
	"time"

	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/shardmap"
)

// IteratorType is where a read starts: the ShardIteratorType of GetShardIterator, the
// StartingPosition of SubscribeToShard and the start of a native read. Its Kinesis name
// (String) exists only at the protocol edges, which parse it with ParseIteratorType.
type IteratorType uint8

// The iterator types.
const (
	AtSequenceNumber IteratorType = iota + 1
	AfterSequenceNumber
	TrimHorizon
	Latest
	AtTimestamp
)

var iteratorTypeNames = [...]string{
	AtSequenceNumber:    "AT_SEQUENCE_NUMBER",
	AfterSequenceNumber: "AFTER_SEQUENCE_NUMBER",
	TrimHorizon:         "TRIM_HORIZON",
	Latest:              "LATEST",
	AtTimestamp:         "AT_TIMESTAMP",
}

// String returns the Kinesis name of t ("" for a value that is not a type).
func (t IteratorType) String() string {
	if int(t) < len(iteratorTypeNames) {
		return iteratorTypeNames[t]
	}
	return ""
}

// ParseIteratorType returns the type a Kinesis name names; ok is false for any other string.
func ParseIteratorType(s string) (t IteratorType, ok bool) {
	for i, n := range iteratorTypeNames {
		if n != "" && n == s {
			return IteratorType(i), true
		}
	}
	return 0, false
}

// GetRecords bounds, as Kinesis defines them.
const (
	MaxGetRecordsLimit = 10_000
	MaxGetRecordsBytes = 10 << 20
)

// IteratorInput is what GetShardIterator takes.
type IteratorInput struct {
	Stream    string
	Shard     ShardID
	Type      IteratorType
	Seq       SeqNum    // AT_ and AFTER_SEQUENCE_NUMBER: must belong to Shard
	Timestamp time.Time // AT_TIMESTAMP
	// Account is the account of the caller, which the iterator carries (Iterator.Account,
	// and the iterators GetRecords returns after it); "" means the engine's.
	Account string
}

// GetShardIterator returns a shard iterator: an opaque token valid for IteratorTTL.
func (e *Engine) GetShardIterator(in IteratorInput) (string, error) {
	s, err := e.stream(in.Stream)
	if err != nil {
		return "", err
	}
	meta, set := s.meta.Load(), s.set.Load()
	sh, held := set.shards[in.Shard]
	if !held {
		return "", NoSuchShard(in.Shard.String(), in.Stream, e.opts.Account)
	}
	now := e.opts.Now()
	pos, err := e.startPosition(sh, in.Shard, in.Type, in.Seq, in.Timestamp)
	if err != nil {
		return "", err
	}
	account := in.Account
	if account == "" {
		account = e.opts.Account
	}
	return e.key.Encode(Iterator{Stream: meta.Name, StreamGen: meta.Gen, Shard: in.Shard, Pos: pos, Issued: now, Account: account}), nil
}

// startPosition returns the log position an iterator or subscription of type typ on shard
// id starts at: seq is the number AT_ and AFTER_SEQUENCE_NUMBER name, ts the time
// AT_TIMESTAMP names.
func (e *Engine) startPosition(sh *shard, id ShardID, typ IteratorType, seq SeqNum, ts time.Time) (uint64, error) {
	if (typ == AtSequenceNumber || typ == AfterSequenceNumber) && seq.Shard != id {
		return 0, BadStartingSequence(seq.Shard.String(), id)
	}
	return e.positionAt(sh, typ, seq.Pos, ts)
}

// BadStartingSequence is the InvalidArgument error of a starting sequence number that does
// not belong to the shard read: encodes names what it encodes (a shard id, or "an invalid
// sequence number" for one that does not decode).
func BadStartingSequence(encodes string, shard ShardID) error {
	return errorf(KindInvalidArgument, "Invalid StartingSequenceNumber. It encodes %s, while it was used in a call to a shard with %s", encodes, shard)
}

// InvalidSequenceText is what BadStartingSequence says of a number that does not decode.
const InvalidSequenceText = "an invalid sequence number"

// positionAt returns the log position a read of type typ starts at: at is the position
// AT_SEQUENCE_NUMBER and AFTER_SEQUENCE_NUMBER name, ts the time AT_TIMESTAMP names.
func (e *Engine) positionAt(sh *shard, typ IteratorType, at uint64, ts time.Time) (uint64, error) {
	now := e.opts.Now()
	var pos uint64
	switch typ {
	case TrimHorizon:
		pos = 0 // reads start at the retention horizon
	case Latest:
		pos = sh.log.Tip() + 1
	case AtSequenceNumber:
		pos = at
	case AfterSequenceNumber:
		pos = at
		if pos < ^uint64(0) { // after the last possible position is nothing, not the start
			pos++
		}
	case AtTimestamp:
		if ts.After(now) {
			return 0, errorf(KindInvalidArgument, "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. timestampInMillis: %d, currentTimestampInMillis: %d", ts.UnixMilli(), now.UnixMilli())
		}
		// The tip is read before the search: a record the search did not see was made
		// readable after it, so it lies past this tip, and the read starts at or before it.
		// Read after the search, the tip could include records that arrived at or after ts
		// and were appended meanwhile, and the read would skip them. A record that arrived
		// just before ts and was appended meanwhile is read too.
		tip := sh.log.Tip()
		seq, ok, err := sh.log.SeqAtTime(ts.UnixNano())
		if err != nil {
			return 0, internalError(err)
		}
		pos = tip + 1
		if ok {
			pos = seq
		}
	default:
		return 0, invalid(awsmsg.Violation(awsmsg.Str(strconv.Itoa(int(typ))), "shardIteratorType", awsmsg.Enum("AFTER_SEQUENCE_NUMBER", "AT_SEQUENCE_NUMBER", "AT_TIMESTAMP", "TRIM_HORIZON", "LATEST")))
	}
	return pos, nil
}

// ChildShard is a shard created from a closed one, reported at the end of the closed shard.
type ChildShard struct {
	ID      ShardID
	Parents []ShardID // one after a split, two after a merge
	Range   shardmap.Range
}

// Records is what GetRecords returns. Records is a zero-copy view of the shard's log: the
// caller must Release it once it has encoded or sent the records.
type Records struct {
	Shard        ShardID // the shard read: the records' sequence numbers are SeqNum{Shard, Seq}
	Records      segment.View
	NextIterator string // "" at the end of a closed shard
	MillisBehind int64
	ChildShards  []ChildShard // at the end of a closed shard
	ShardEnd     bool         // the shard is closed and everything in it has been read
}

// Release releases the records' view.
func (r *Records) Release() { r.Records.Release() }

// GetRecords reads up to limit records (1…10,000) from where the iterator points: it is
// ReadIterator of Iterator(token).
func (e *Engine) GetRecords(token string, limit int) (Records, error) {
	if err := checkGetRecordsLimit(limit); err != nil {
		return Records{}, err
	}
	it, err := e.Iterator(token)
	if err != nil {
		return Records{}, err
	}
	return e.ReadIterator(it, limit)
}

// Iterator checks a shard iterator and returns what it carries (IteratorKey.Decode): the
// stream and the account it was issued to, for a server to authorise the read before
// ReadIterator. A version 1 token's account is the engine's.
func (e *Engine) Iterator(token string) (Iterator, error) {
	it, err := e.key.Decode(token, e.opts.Now())
	if err == nil && it.Account == "" {
		it.Account = e.opts.Account
	}
	return it, err
}

// ReadIterator reads up to limit records (1…10,000) from where it, which Iterator returned,
// points. The next iterator carries the same account.
func (e *Engine) ReadIterator(it Iterator, limit int) (Records, error) {
	if err := checkGetRecordsLimit(limit); err != nil {
		return Records{}, err
	}
	now := e.opts.Now()
	s, err := e.stream(it.Stream)
	if err != nil {
		return Records{}, err
	}
	out, err := e.getRecords(s, it, limit, MaxGetRecordsBytes, now)
	if err == nil && !out.ShardEnd {
		out.NextIterator = e.key.Encode(Iterator{Stream: it.Stream, StreamGen: it.StreamGen, Shard: it.Shard, Pos: out.Records.Next, Issued: now, Account: it.Account})
	}
	s.metrics.getRecordsLatency.observe(e.opts.Now().Sub(now))
	return out, err
}

func checkGetRecordsLimit(limit int) error {
	if limit < 1 || limit > MaxGetRecordsLimit {
		return invalid(awsmsg.Violation(awsmsg.Int(limit), "limit", awsmsg.ValueRange(1, MaxGetRecordsLimit)))
	}
	return nil
}

// getRecords is GetRecords once the iterator's stream is found, with at most maxBytes of
// frames (beyond the first record). It encodes no next iterator: the caller does, from
// Records.Next, unless the shard ended.
func (e *Engine) getRecords(s *Stream, it Iterator, limit, maxBytes int, now time.Time) (Records, error) {
	meta, set := s.meta.Load(), s.set.Load()
	if meta.Gen != it.StreamGen {
		return Records{}, errorf(KindResourceNotFound, "Stream %s was deleted and created again; the iterator belongs to the deleted one", it.Stream)
	}
	sh, held := set.shards[it.Shard]
	if !held {
		return Records{}, NoSuchShard(it.Shard.String(), it.Stream, e.opts.Account)
	}
	if !sh.read.Admit(now) {
		s.metrics.throttledRead(&sh.metrics)
		return Records{}, errorf(KindProvisionedThroughputExceeded, "Rate exceeded for shard %s in stream %s under account %s.", it.Shard.String(), it.Stream, e.opts.Account)
	}
	v, err := sh.log.Read(it.Pos, limit, maxBytes)
	if err != nil {
		return Records{}, internalError(err)
	}
	sh.read.Charge(v.Len(), now)
	if err := s.openView(&v); err != nil {
		return Records{}, err
	}
	out := Records{Shard: it.Shard, Records: v}
	next := v.Next
	if v.Count > 0 && v.Last < sh.log.Tip() {
		out.MillisBehind = max(0, sh.log.TipTime()-v.LastTime) / int64(time.Millisecond)
	}
	s.metrics.read(&sh.metrics, &out.Records, out.MillisBehind)
	info, _ := set.m.Lookup(it.Shard)
	if !info.Open {
		if end := meta.Ending[it.Shard]; next > end {
			// Drained: no next iterator; the children take over.
			out.ShardEnd = true
			out.ChildShards = childShards(set.m, it.Shard)
		}
	}
	return out, nil
}
