package stream

import (
	"unicode/utf8"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/shardmap"
)

// Request bounds of PutRecords, as Kinesis defines them.
const (
	MaxPutRecords      = 500
	MaxPartitionKeyLen = 256 // Unicode characters
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
	Shard uint32
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
	if len(entries) < 1 || len(entries) > MaxPutRecords {
		return nil, errorf(KindValidation, "1 validation error detected: Value '%d' at 'records' failed to satisfy constraint: Member must have length less than or equal to 500 and greater than or equal to 1", len(entries))
	}
	meta := s.meta.Load()
	maxData := meta.MaxRecordKiB << 10
	for i, en := range entries {
		if n := utf8.RuneCountInString(en.PartitionKey); n < 1 || n > MaxPartitionKeyLen {
			return nil, errorf(KindValidation, "1 validation error detected: Value at 'records.%d.member.partitionKey' failed to satisfy constraint: Member must have length less than or equal to 256 and greater than or equal to 1", i+1)
		}
		if len(en.Data) > maxData {
			return nil, errorf(KindValidation, "1 validation error detected: Value at 'records.%d.member.data' failed to satisfy constraint: Member must have length less than or equal to %d", i+1, maxData)
		}
	}
	var flags uint16
	if meta.Encryption == "KMS" {
		flags = segment.FlagEncrypted
	}
	set := s.set.Load()
	results := make([]PutResult, len(entries))
	// Group by shard, keeping call order within each shard.
	groups := map[uint32][]int{}
	var order []uint32
	now := e.opts.Now()
	for i, en := range entries {
		k := shardmap.KeyOfString(en.PartitionKey)
		if en.ExplicitHashKey != nil {
			k = *en.ExplicitHashKey
		}
		id := set.m.Route(k).ID
		results[i].Shard = id
		if !set.shards[id].write.Admit(len(en.PartitionKey)+len(en.Data), now) {
			results[i].Err = errorf(KindProvisionedThroughputExceeded, "Rate exceeded for shard %s in stream %s under account %s.",
				shardmap.ShardName(id), stream, e.opts.Account)
			continue
		}
		if _, ok := groups[id]; !ok {
			order = append(order, id)
		}
		groups[id] = append(groups[id], i)
	}
	for _, id := range order {
		idx := groups[id]
		batch := make([]segment.Record, len(idx))
		for j, i := range idx {
			batch[j] = segment.Record{Key: []byte(entries[i].PartitionKey), Data: entries[i].Data, Flags: flags}
		}
		err := set.shards[id].log.Append(batch)
		for j, i := range idx {
			if err != nil {
				results[i].Err = errorf(KindInternalFailure, "%v", err)
				continue
			}
			results[i].Seq = SeqNum{Shard: id, Pos: batch[j].Seq}
		}
	}
	return results, nil
}
