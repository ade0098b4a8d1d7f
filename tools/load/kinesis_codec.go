package load

import (
	"encoding/base64"
	"encoding/json"
	"github.com/sluice-streams/sluice/internal/jsonscan"
	"strings"
)

// The Kinesis API's data path as AWS JSON 1.1: the PutRecords input is appended by hand,
// and the answers of PutRecords, GetRecords and SubscribeToShard events are read with
// scanner. Control-plane calls (CreateStream, ListShards, GetShardIterator, consumers) go
// through the client package's CallKinesis.

// pending is a record of the Kinesis producer: enough to write its data again for a retry.
type pending struct {
	sent int64 // Unix nanoseconds when it was generated
	key  int32 // index into payload.keys
	size int32 // data bytes
}

// appendPutRecords appends the PutRecords input for recs.
func (p *payload) appendPutRecords(dst []byte, stream string, recs []pending) []byte {
	dst = append(dst, `{"StreamName":`...)
	dst = jsonscan.AppendString(dst, stream)
	dst = append(dst, `,"Records":[`...)
	for i := range recs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"Data":"`...)
		dst = p.appendData64(dst, int(recs[i].size), recs[i].sent)
		dst = append(dst, `","PartitionKey":`...)
		dst = jsonscan.AppendString(dst, p.keys[recs[i].key])
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}

// headerChunk is the header and the first two filler bytes: 18 bytes, a multiple of 3, so
// that its base64 ends on a group boundary and the rest of the filler is encoded straight
// from the shared buffer, without copying the record together first.
const headerChunk = headerLen + 2

// appendData64 appends the base64 of the data of a record of n bytes sent at sent: the same
// bytes as appendData.
func (p *payload) appendData64(dst []byte, n int, sent int64) []byte {
	var h [headerChunk]byte
	if n < headerChunk {
		return base64.StdEncoding.AppendEncode(dst, p.appendData(h[:0], n, sent))
	}
	putHeader(h[:], sent, p.run)
	copy(h[headerLen:], p.filler[headerLen:headerChunk])
	dst = base64.StdEncoding.AppendEncode(dst, h[:])
	return base64.StdEncoding.AppendEncode(dst, p.filler[headerChunk:n])
}

// putResult is one record's result in a PutRecords answer.
type putResult struct {
	id  recID
	err string // the ErrorCode; "" when the record was appended
}

// decodePutRecords reads a PutRecords answer into out (reset first).
func decodePutRecords(s *jsonscan.Scanner, body []byte, out []putResult) ([]putResult, error) {
	out = out[:0]
	s.AllowControl = true // an answer is read, not judged: base64 data is never walked byte by byte
	s.Reset(body)
	var seq []byte
	s.Object(func(key []byte) {
		if string(key) != "Records" {
			s.Skip()
			return
		}
		s.Array(func() {
			var r putResult
			var shard uint32
			seq = seq[:0]
			s.Object(func(key []byte) {
				switch string(key) {
				case "SequenceNumber":
					seq = append(seq, strOrNull(s)...)
				case "ShardId":
					shard = shardOf(strOrNull(s))
				case "ErrorCode":
					if c := strOrNull(s); len(c) > 0 {
						r.err = string(c)
					}
				default:
					s.Skip()
				}
			})
			if r.err == "" {
				if len(seq) == 0 {
					s.Fail("a record with neither SequenceNumber nor ErrorCode")
				}
				r.id = recID{shard, positionOf(shard, seq)}
			}
			out = append(out, r)
		})
	})
	s.End()
	return out, s.Err()
}

// recordsAnswer is what a GetRecords answer or a SubscribeToShard event says besides its
// records.
type recordsAnswer struct {
	next         string   // NextShardIterator, or ContinuationSequenceNumber; "" at the shard's end
	last         string   // the last record's SequenceNumber; "" without records
	millisBehind int64    // MillisBehindLatest
	children     []string // ChildShards' ids, at the shard's end
}

// readRecord is one record as the consumer needs it: its position, its data length and its
// header.
type readRecord struct {
	pos   uint64
	n     int   // data bytes
	sent  int64 // from the header; valid when timed
	timed bool  // the record carries this run's header
}

// decodeRecords reads a GetRecords answer or a SubscribeToShard event's payload from shard
// shard of run, calling fn for each record in order. Only the first 24 base64 characters of
// each record's data are decoded: its length follows from the base64's.
func decodeRecords(s *jsonscan.Scanner, body []byte, shard uint32, run uint64, fn func(r *readRecord)) (recordsAnswer, error) {
	var ans recordsAnswer
	s.AllowControl = true // an answer is read, not judged: base64 data is never walked byte by byte
	s.Reset(body)
	var seq, last []byte
	var r readRecord
	s.Object(func(key []byte) {
		switch string(key) {
		case "Records":
			s.Array(func() {
				r, seq = readRecord{}, seq[:0]
				s.Object(func(key []byte) {
					switch string(key) {
					case "SequenceNumber":
						seq = append(seq, str(s)...)
					case "Data":
						d := str(s)
						if s.Err() == nil && !r.data(d, run) {
							s.Fail("Data is not base64")
						}
					default:
						s.Skip()
					}
				})
				if s.Err() != nil {
					return
				}
				if len(seq) == 0 {
					s.Fail("a record without SequenceNumber")
					return
				}
				r.pos = positionOf(shard, seq)
				last = seq
				fn(&r)
			})
		case "NextShardIterator", "ContinuationSequenceNumber":
			ans.next = string(strOrNull(s))
		case "MillisBehindLatest":
			ans.millisBehind = s.Int()
		case "ChildShards":
			s.Array(func() {
				s.Object(func(key []byte) {
					if string(key) == "ShardId" {
						ans.children = append(ans.children, string(str(s)))
						return
					}
					s.Skip()
				})
			})
		default:
			s.Skip()
		}
	})
	ans.last = string(last)
	s.End()
	return ans, s.Err()
}

// data reads a record's length and header from its base64 data d.
func (r *readRecord) data(d []byte, run uint64) bool {
	if len(d)%4 != 0 {
		return false
	}
	pad := 0
	if len(d) > 0 && d[len(d)-1] == '=' {
		pad++
		if len(d) > 1 && d[len(d)-2] == '=' {
			pad++
		}
	}
	r.n = len(d)/4*3 - pad
	var h [headerChunk]byte
	k, err := base64.StdEncoding.Decode(h[:], d[:min(len(d), headerChunk/3*4)])
	if err != nil {
		return false
	}
	r.sent, r.timed = readHeader(h[:k], run)
	return true
}

// apiErrorAnswer reads the name and message of a Kinesis API error answer: the body's
// __type (after any '#'), or the X-Amzn-ErrorType header's value when the body has none.
func apiErrorAnswer(body []byte, headerType string) (name, msg string) {
	var ae struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
		Msg2    string `json:"Message"`
	}
	_ = json.Unmarshal(body, &ae)
	name = ae.Type
	if i := strings.LastIndexByte(name, '#'); i >= 0 {
		name = name[i+1:]
	}
	if name == "" {
		name, _, _ = strings.Cut(headerType, ":")
	}
	msg = ae.Message
	if msg == "" {
		msg = ae.Msg2
	}
	return name, msg
}

// str reads a string: the bytes alias the answer when it holds no escapes, and are a new
// slice otherwise.
func str(s *jsonscan.Scanner) []byte {
	v, _ := s.Str(nil)
	return v
}

// strOrNull reads a string, or a null as nil.
func strOrNull(s *jsonscan.Scanner) []byte {
	if s.Null() {
		return nil
	}
	return str(s)
}
