package server

import (
	"encoding/base64"
	"errors"
	"strconv"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/sluice-streams/sluice/frame"
	"github.com/sluice-streams/sluice/internal/awsmsg"
	"github.com/sluice-streams/sluice/internal/jsonscan"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// The JSON data path: PutRecords and PutRecord bodies are decoded by a jsonscan.Scanner straight
// into engine entries, and PutRecords and GetRecords answers are appended into a buffer that
// becomes the response body. encoding/json stays on the control plane only.
//
// Measured by BenchmarkDecodePutRecords, BenchmarkEncodeGetRecords and the API benchmarks in
// datapath_bench_test.go.

// putBatch is a decoded PutRecords or PutRecord input. It is pooled: entries' Data point into
// arena and their PartitionKey into the request body or arena, so a batch is valid only
// while the request's body is and until it is released. The engine copies what it keeps
// (records go into the log by pwrite), so nothing outlives the request.
type putBatch struct {
	ref         streamRef
	entries     []stream.PutEntry
	hashKeys    []shardmap.Key // storage for entries' ExplicitHashKey
	arena       []byte         // decoded data and unescaped keys
	scratch     []byte
	seqOrdering string // PutRecord's SequenceNumberForOrdering
	single      bool   // decoded from PutRecord
	missingData int    // 1-based index of the first record without Data, 0 if none
}

var putBatches = sync.Pool{New: func() any { return new(putBatch) }}

func getPutBatch() *putBatch { return putBatches.Get().(*putBatch) }

func (p *putBatch) release() {
	clear(p.entries) // drop references into the request body
	*p = putBatch{entries: p.entries[:0], hashKeys: p.hashKeys[:0], arena: p.arena[:0], scratch: p.scratch[:0]}
	putBatches.Put(p)
}

// bytesString views b as a string without copying. Safe here because the bytes are not
// modified while the string is in use: both live no longer than the request (see putBatch).
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func serializationError(err error) error {
	return apiError{code: wire.Serialization, msg: err.Error()}
}

// decodePutRecords decodes a PutRecords body into p.
func (p *putBatch) decodePutRecords(body []byte) error {
	p.reserve(body)
	s := jsonscan.Scanner{RejectLoneSurrogates: true} // a key is refused, not altered
	s.Reset(body)
	s.Object(func(key []byte) {
		switch string(key) {
		case "StreamName":
			p.ref.StreamName = p.str(&s)
		case "StreamARN":
			p.ref.StreamARN = p.str(&s)
		case "Records":
			p.entries, p.hashKeys, p.missingData = p.entries[:0], p.hashKeys[:0], 0
			if s.Null() {
				return
			}
			s.Array(func() {
				p.entries = append(p.entries, stream.PutEntry{})
				p.record(&s, nil)
			})
		default:
			s.Skip()
		}
	})
	return p.finish(&s)
}

// decodePutRecord decodes a PutRecord body into p: one entry.
func (p *putBatch) decodePutRecord(body []byte) error {
	p.reserve(body)
	p.single = true
	p.entries = append(p.entries[:0], stream.PutEntry{})
	s := jsonscan.Scanner{RejectLoneSurrogates: true} // a key is refused, not altered
	s.Reset(body)
	p.record(&s, func(key []byte) bool {
		switch string(key) {
		case "StreamName":
			p.ref.StreamName = p.str(&s)
		case "StreamARN":
			p.ref.StreamARN = p.str(&s)
		case "SequenceNumberForOrdering":
			p.seqOrdering = p.str(&s)
		default:
			return false
		}
		return true
	})
	return p.finish(&s)
}

// reserve sizes the arena so that it never grows while entries point into it: decoded data
// and unescaped keys together are never longer than the body.
func (p *putBatch) reserve(body []byte) {
	if cap(p.arena) < len(body) {
		p.arena = make([]byte, 0, len(body))
	}
}

func (p *putBatch) finish(s *jsonscan.Scanner) error {
	if s.Err() == nil {
		s.End()
	}
	var ae apiError
	if errors.As(s.Err(), &ae) {
		return ae
	}
	if s.Err() != nil {
		return serializationError(s.Err())
	}
	if len(p.hashKeys) > 0 {
		// hashKeys may have grown and moved while decoding: point the entries at them again.
		j := 0
		for i := range p.entries {
			if p.entries[i].ExplicitHashKey != nil {
				p.entries[i].ExplicitHashKey = &p.hashKeys[j]
				j++
			}
		}
	}
	if p.missingData > 0 {
		return invalid(awsmsg.Violation(awsmsg.Null, p.member(p.missingData, "data"), awsmsg.NotNull))
	}
	return nil
}

// member names a member of the i-th record (1-based) in a validation message, as AWS does:
// records.i.member.name in PutRecords, name alone in PutRecord.
func (p *putBatch) member(i int, name string) string {
	if p.single {
		return name
	}
	return "records." + strconv.Itoa(i) + ".member." + name
}

// str decodes a string member (null is ""), copying it out of the body: names and tokens
// outlive the pooled batch in error messages and engine state.
func (p *putBatch) str(s *jsonscan.Scanner) string {
	if s.Null() {
		return ""
	}
	v, escaped := s.Str(p.scratch)
	if escaped {
		p.scratch = v[:0]
	}
	return string(v)
}

// record decodes one record object into the last entry; extra, when set, handles the
// members that are not the record's own and reports whether it did.
func (p *putBatch) record(s *jsonscan.Scanner, extra func(key []byte) bool) {
	en := &p.entries[len(p.entries)-1]
	hasData := false
	s.Object(func(key []byte) {
		switch string(key) {
		case "Data":
			if s.Null() {
				return
			}
			// Decoded straight into the arena, which reserve sized for the whole body.
			start := len(p.arena)
			out, scratch, err := s.Base64(p.arena, p.scratch)
			p.scratch = scratch[:0]
			if s.Err() != nil {
				return
			}
			if err != nil {
				s.Fail("Data is not valid base64: " + err.Error())
				return
			}
			p.arena = out
			en.Data = out[start:len(out):len(out)]
			hasData = true
		case "PartitionKey":
			en.PartitionKey = p.keyStr(s)
		case "ExplicitHashKey":
			if s.Null() {
				return
			}
			raw, escaped := s.Str(p.scratch)
			if escaped {
				p.scratch = raw[:0]
			}
			if s.Err() != nil {
				return
			}
			if !isDecimal(bytesString(raw), 39) {
				s.FailWith(patternError(string(raw), p.member(len(p.entries), "explicitHashKey"), hashKeyPattern))
				return
			}
			k, err := shardmap.ParseKey(bytesString(raw))
			if err != nil {
				s.FailWith(apiError{code: wire.InvalidArgument, msg: "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was " + string(raw)})
				return
			}
			p.hashKeys = append(p.hashKeys, k)
			en.ExplicitHashKey = &p.hashKeys[len(p.hashKeys)-1]
		default:
			if extra == nil || !extra(key) {
				s.Skip()
			}
		}
	})
	if !hasData && p.missingData == 0 && s.Err() == nil {
		p.missingData = len(p.entries)
	}
}

// keyStr decodes a partition key without copying when it holds no escapes.
func (p *putBatch) keyStr(s *jsonscan.Scanner) string {
	if s.Null() {
		return ""
	}
	raw, escaped := s.Str(p.scratch)
	if len(raw) == 0 {
		return ""
	}
	if !utf8.Valid(raw) {
		s.Fail("PartitionKey is not valid UTF-8")
		return ""
	}
	if escaped { // unescaped into scratch: keep it in the arena
		p.scratch = raw[:0]
		start := len(p.arena)
		p.arena = append(p.arena, raw...)
		raw = p.arena[start:]
	}
	return bytesString(raw)
}

// Response buffers: an answer is appended into a pooled buffer that is swapped in as the
// response body, and the buffer fasthttp held before comes back to the pool. No copy of a
// GetRecords answer (up to about 13 MiB of base64) is made.
var bodyBufs = sync.Pool{New: func() any { return new([]byte) }}

func getBodyBuf(n int) []byte {
	b := *bodyBufs.Get().(*[]byte)
	if cap(b) < n {
		return make([]byte, 0, n)
	}
	return b[:0]
}

func putBodyBuf(b []byte) {
	if cap(b) == 0 || cap(b) > 32<<20 {
		return
	}
	b = b[:0]
	bodyBufs.Put(&b)
}

// appendPutRecordsResult appends the PutRecords answer.
func appendPutRecordsResult(dst []byte, res []stream.PutResult, encryption string) []byte {
	failed := 0
	for _, r := range res {
		if r.Err != nil {
			failed++
		}
	}
	dst = append(dst, `{"FailedRecordCount":`...)
	dst = strconv.AppendInt(dst, int64(failed), 10)
	dst = append(dst, `,"EncryptionType":`...)
	dst = jsonscan.AppendString(dst, encryption)
	dst = append(dst, `,"Records":[`...)
	for i, r := range res {
		if i > 0 {
			dst = append(dst, ',')
		}
		if r.Err != nil {
			ae := toAPIError(r.Err)
			dst = append(dst, `{"ErrorCode":`...)
			dst = jsonscan.AppendString(dst, ae.name())
			dst = append(dst, `,"ErrorMessage":`...)
			dst = jsonscan.AppendString(dst, ae.msg)
			dst = append(dst, '}')
			continue
		}
		dst = appendSeqShard(dst, r.Seq, r.Shard)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

// appendSeqShard appends `{"SequenceNumber":"…","ShardId":"…"` (an object left open).
func appendSeqShard(dst []byte, seq stream.SeqNum, shard stream.ShardID) []byte {
	dst = append(dst, `{"SequenceNumber":"`...)
	dst = seq.Append(dst)
	dst = append(dst, `","ShardId":"`...)
	dst = shard.Append(dst)
	return append(dst, '"')
}

// getRecordsSize estimates the answer's length for the records of v, so the buffer is sized
// once: base64 is 4/3 of the data, and each record's members take at most about 160 bytes
// besides its key.
func getRecordsSize(v *segment.View) int {
	return v.Len()/3*4 + v.Count*160 + 4096
}

// appendRecords appends the records of v (from shard) as the JSON array GetRecords and
// SubscribeToShardEvent carry, encoding the data straight from the mapping.
func appendRecords(dst []byte, v *segment.View, shard stream.ShardID) []byte {
	dst = append(dst, '[')
	it := v.Records()
	first := true
	for it.Next() {
		r := it.Record()
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, `{"SequenceNumber":"`...)
		dst = stream.SeqNum{Shard: shard, Pos: r.Seq}.Append(dst)
		dst = append(dst, `","ApproximateArrivalTimestamp":`...)
		dst = appendEpochMillis(dst, r.Time/1e6)
		dst = append(dst, `,"Data":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, r.Data)
		dst = append(dst, `","PartitionKey":`...)
		dst = jsonscan.AppendString(dst, bytesString(r.Key))
		if r.Flags&frame.FlagEncrypted != 0 {
			dst = append(dst, `,"EncryptionType":"KMS"`...)
		}
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendEpochMillis appends a time in milliseconds since the epoch as seconds with three
// decimals, as AWS JSON 1.1 writes timestamps.
func appendEpochMillis(dst []byte, ms int64) []byte {
	if ms < 0 {
		dst = append(dst, '-')
		ms = -ms
	}
	dst = strconv.AppendInt(dst, ms/1000, 10)
	frac := ms % 1000
	return append(dst, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}

// appendChildShards appends `,"ChildShards":[…]` when there are any.
func appendChildShards(dst []byte, cs []stream.ChildShard) []byte {
	if len(cs) == 0 {
		return dst
	}
	dst = append(dst, `,"ChildShards":[`...)
	for i, c := range cs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"ShardId":"`...)
		dst = c.ID.Append(dst)
		dst = append(dst, `","ParentShards":[`...)
		for j, p := range c.Parents {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = append(p.Append(dst), '"')
		}
		dst = append(dst, `],"HashKeyRange":{"StartingHashKey":"`...)
		dst = c.Range.Start.AppendDecimal(dst)
		dst = append(dst, `","EndingHashKey":"`...)
		dst = c.Range.End.AppendDecimal(dst)
		dst = append(dst, `"}}`...)
	}
	return append(dst, ']')
}

// appendGetRecordsResult appends the GetRecords answer for r.
func appendGetRecordsResult(dst []byte, r *stream.Records) []byte {
	dst = append(dst, `{"Records":`...)
	dst = appendRecords(dst, &r.Records, r.Shard)
	dst = append(dst, `,"MillisBehindLatest":`...)
	dst = strconv.AppendInt(dst, r.MillisBehind, 10)
	if r.NextIterator != "" {
		dst = append(dst, `,"NextShardIterator":`...)
		dst = jsonscan.AppendString(dst, r.NextIterator)
	}
	dst = appendChildShards(dst, r.ChildShards)
	return append(dst, '}')
}
