package stream

import (
	"cmp"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/shardmap"
)

// Request bounds of PutRecords, as Kinesis defines them.
const (
	MaxPutRecords      = 500
	MaxPartitionKeyLen = 256      // Unicode characters
	MaxPutRecordsBytes = 10 << 20 // data and partition keys of one PutRecords call
)

// PutEntry is one record to put.
type PutEntry struct {
	PartitionKey    string
	ExplicitHashKey *shardmap.Key // overrides the MD5 of the partition key when set
	Data            []byte
}

// PutResult is the outcome of one record: its shard and sequence number, or an error of
// kind ProvisionedThroughputExceeded (the shard's capacity; retry later) or an internal
// failure. The records of one PutRecords call succeed or fail independently.
type PutResult struct {
	Shard ShardID
	Seq   SeqNum
	Err   error
}

// PutRecords appends records to a stream, each to the shard its hash key falls in. Records of
// one call that go to the same shard are appended as one batch, in call order, so records
// with the same partition key keep their order. A call-level error (unknown stream, invalid
// input) means no record was written.
func (e *Engine) PutRecords(stream string, entries []PutEntry) ([]PutResult, error) {
	s, err := e.stream(stream)
	if err != nil {
		return nil, err
	}
	now := e.opts.Now()
	var t putTally
	results, err := e.putRecords(s, stream, entries, now, &t)
	s.metrics.putDone(false, &t, e.opts.Now().Sub(now))
	return results, err
}

// putRecords is PutRecords once the stream is found; it tallies the records' outcomes in t.
func (e *Engine) putRecords(s *Stream, stream string, entries []PutEntry, now time.Time, t *putTally) ([]PutResult, error) {
	if len(entries) < 1 || len(entries) > MaxPutRecords {
		return nil, invalid(awsmsg.Violation(awsmsg.Int(len(entries)), "records", awsmsg.LengthRange(1, MaxPutRecords)))
	}
	meta := s.meta.Load()
	maxData := meta.MaxRecordKiB << 10
	total := 0
	for i, en := range entries {
		total += len(en.PartitionKey) + len(en.Data)
		if n := utf8.RuneCountInString(en.PartitionKey); n < 1 || n > MaxPartitionKeyLen {
			return nil, invalid(awsmsg.Violation(awsmsg.Hidden, recordMember(i, "partitionKey"), awsmsg.LengthRange(1, MaxPartitionKeyLen)))
		}
		if len(en.Data) > maxData {
			return nil, invalid(awsmsg.Violation(awsmsg.Hidden, recordMember(i, "data"), awsmsg.LengthAtMost(maxData)))
		}
	}
	if total > MaxPutRecordsBytes {
		return nil, errorf(KindInvalidArgument, "Records size exceeds %d MB limit", MaxPutRecordsBytes>>20)
	}
	var flags uint16
	if meta.Encryption == "KMS" {
		flags = frame.FlagEncrypted
	}
	results := make([]PutResult, len(entries))
	pending := make([]int, len(entries))
	for i := range pending {
		pending[i] = i
	}
	// A resharding may close a shard between routing and appending: the records routed to
	// it are routed again on the new map, which is published before the shard's gate opens.
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt == 100 {
			for _, i := range pending {
				results[i].Err = errorf(KindInternalFailure, "the stream kept resharding while the record was put")
			}
			t.failed += len(pending)
			break
		}
		pending = e.putOnce(s, stream, entries, pending, results, flags, now, t)
	}
	return results, nil
}

// putOnce routes the pending records on the current shard map and appends them, one batch
// per shard, each in call order. It returns the records whose shard was closed meanwhile.
//
// The admitted records are grouped by a stable sort on their shard instead of a map of
// per-shard slices: two allocations per call whatever the number of shards, where the map
// and its growing slices cost about 30 for 500 records (BenchmarkPutRecords).
func (e *Engine) putOnce(s *Stream, stream string, entries []PutEntry, pending []int, results []PutResult, flags uint16, now time.Time, t *putTally) (retry []int) {
	set := s.set.Load()
	admitted := make([]int, 0, len(pending))
	for _, i := range pending {
		en := entries[i]
		k := shardmap.KeyOfString(en.PartitionKey)
		if en.ExplicitHashKey != nil {
			k = *en.ExplicitHashKey
		}
		id := set.m.Route(k).ID
		results[i].Shard = id
		set.shards[id].demandBytes.Add(int64(len(en.PartitionKey) + len(en.Data)))
		set.shards[id].demandRecs.Add(1)
		if !set.shards[id].write.Admit(len(en.PartitionKey)+len(en.Data), now) {
			t.throttled++
			set.shards[id].metrics.throttledWrite()
			results[i].Err = errorf(KindProvisionedThroughputExceeded, "Rate exceeded for shard %s in stream %s under account %s.",
				id.String(), stream, e.opts.Account)
			continue
		}
		admitted = append(admitted, i)
	}
	slices.SortStableFunc(admitted, func(a, b int) int { return cmp.Compare(results[a].Shard, results[b].Shard) })
	batch := make([]segment.Record, len(admitted))
	for start := 0; start < len(admitted); {
		id := results[admitted[start]].Shard
		end := start + 1
		for end < len(admitted) && results[admitted[end]].Shard == id {
			end++
		}
		idx, recs := admitted[start:end], batch[start:end]
		start = end
		sh := set.shards[id]
		sh.gate.RLock()
		if sh.closed {
			sh.gate.RUnlock()
			retry = append(retry, idx...)
			continue
		}
		n := 0
		for j, i := range idx {
			recs[j] = segment.Record{Key: bytesOf(entries[i].PartitionKey), Data: entries[i].Data, Flags: flags}
			n += len(entries[i].PartitionKey) + len(entries[i].Data)
		}
		err := sh.log.Append(recs)
		sh.gate.RUnlock()
		if err != nil {
			t.failed += len(idx)
		} else {
			t.records += len(idx)
			t.bytes += n
			sh.metrics.appended(len(idx), n)
		}
		for j, i := range idx {
			if err != nil {
				results[i].Err = internalError(err)
				continue
			}
			results[i].Seq = SeqNum{Shard: id, Pos: recs[j].Seq}
		}
	}
	return retry
}

// bytesOf returns the bytes of s without copying them. segment.Log.Append only reads a
// record's key (it copies it into the frame), so the string's immutable bytes are never
// written through the slice. It saves one allocation per record (BenchmarkPutRecords).
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// PutRecord puts one record (the PutRecord call). A throttled record is a call-level
// ProvisionedThroughputExceeded error, as in Kinesis. (Kinesis's SequenceNumberForOrdering
// needs nothing of the engine: every shard's numbers already follow the order of the
// appends, so the protocol edge only checks that it is a number this server issued.)
func (e *Engine) PutRecord(stream string, en PutEntry) (PutResult, error) {
	s, err := e.stream(stream)
	if err != nil {
		return PutResult{}, err
	}
	now := e.opts.Now()
	var t putTally
	res, err := e.putRecords(s, stream, []PutEntry{en}, now, &t)
	s.metrics.putDone(true, &t, e.opts.Now().Sub(now))
	if err != nil {
		return PutResult{}, err
	}
	return res[0], res[0].Err
}

// recordMember names a member of PutRecords' i-th record (from 0) as a validation message
// does: "records.<i+1>.member.<field>".
func recordMember(i int, field string) string {
	return "records." + strconv.Itoa(i+1) + ".member." + field
}
