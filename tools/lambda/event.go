package lambda

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/shardmap"
)

// maxPayload is the largest event of a synchronous invocation: Lambda's 6 MB.
const maxPayload = 6 << 20

// The fixed pieces of an event record, in the order appendEvent writes them.
const (
	evKinesis = `{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":`
	evSeq     = `,"sequenceNumber":"`
	evData    = `","data":"`
	evArrival = `","approximateArrivalTimestamp":`
	evKMS     = `,"encryptionType":"KMS"`
	evSource  = `},"eventSource":"aws:kinesis","eventVersion":"1.0","eventID":"`
	evName    = `","eventName":"aws:kinesis:record","invokeIdentityArn":`
	evRegion  = `,"awsRegion":`
	evARN     = `,"eventSourceARN":`

	// evEmpty is an event without records or window: {"Records":[]}.
	evEmpty = len(`{"Records":[`) + len(`]}`)
	// seqLen is the length of a Kinesis sequence number; shardIDLen of a ShardId.
	seqLen, shardIDLen = 56, len("shardId-000000000000")
)

// recordFixed returns the bytes every record of t's events takes besides its key, its
// base64 data, its arrival time and its encryption type: the field names, the two
// sequence numbers, the shard id and the role, region and ARN strings as encoded.
func (t *Trigger) recordFixed() int {
	return len(evKinesis) + len(evSeq) + len(evData) + len(evArrival) + len(evSource) + len(evName) +
		len(evRegion) + len(evARN) + 2*seqLen + shardIDLen + len(":}") +
		jsonStringLen(t.role) + jsonStringLen(t.region) + jsonStringLen(t.streamARN)
}

// eventSize returns the bytes r takes in an event of t, as appendEvent writes it, given
// fixed = t.recordFixed(); a record after the first takes one more, its comma.
func eventSize(r *client.Record, fixed int) int {
	n := fixed + jsonStringLen(string(r.Key)) + base64.StdEncoding.EncodedLen(len(r.Data)) +
		decimalLen(r.Arrival.UnixMilli()/1000) + len(".000")
	if r.Flags&1 != 0 {
		n += len(evKMS)
	}
	return n
}

// decimalLen returns the length of v in decimal, as strconv.AppendInt writes it.
func decimalLen(v int64) int {
	n := 1
	if v < 0 {
		n++
	}
	for v >= 10 || v <= -10 {
		v /= 10
		n++
	}
	return n
}

// jsonStringLen returns the length of s encoded as a JSON string by encoding/json (what
// appendJSONString writes): quoted; the quote, the backslash, \b, \f, \n, \r and \t as
// two bytes; the other control bytes, <, > and & as \u00XX; U+2028, U+2029 and each byte
// of invalid UTF-8 as \uXXXX.
func jsonStringLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			switch {
			case b == '"' || b == '\\' || b == '\b' || b == '\f' || b == '\n' || b == '\r' || b == '\t':
				n += 2
			case b < 0x20 || b == '<' || b == '>' || b == '&':
				n += len(`\u00XX`)
			default:
				n++
			}
			i++
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if (c == utf8.RuneError && size == 1) || c == '\u2028' || c == '\u2029' {
			n += len(`\uXXXX`)
		} else {
			n += size
		}
		i += size
	}
	return n
}

// appendEvent appends the Kinesis event of recs as Lambda sends it, the JSON that
// github.com/aws/aws-lambda-go/events.KinesisEvent decodes:
//
//	{"Records":[{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":…,"sequenceNumber":…,
//	  "data":BASE64,"approximateArrivalTimestamp":SECONDS.MMM},"eventSource":"aws:kinesis",
//	  "eventVersion":"1.0","eventID":"shardId-…:SEQ","eventName":"aws:kinesis:record",
//	  "invokeIdentityArn":…,"awsRegion":…,"eventSourceARN":…}]}
//
// With win, it is a KinesisTimeWindowEvent: the records, then the window's properties.
func (t *Trigger) appendEvent(dst []byte, recs []client.Record, win *windowInvoke) []byte {
	dst = append(dst, `{"Records":[`...)
	for i := range recs {
		r := &recs[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, evKinesis...)
		dst = appendJSONString(dst, string(r.Key))
		dst = append(dst, evSeq...)
		dst = r.Seq().AppendKinesis(dst)
		dst = append(dst, evData...)
		dst = base64.StdEncoding.AppendEncode(dst, r.Data)
		dst = append(dst, evArrival...)
		dst = appendSeconds(dst, r.Arrival)
		if r.Flags&1 != 0 {
			dst = append(dst, evKMS...)
		}
		dst = append(dst, evSource...)
		dst = shardmap.ShardID(r.Shard).Append(dst)
		dst = append(dst, ':')
		dst = r.Seq().AppendKinesis(dst)
		dst = append(dst, evName...)
		dst = appendJSONString(dst, t.role)
		dst = append(dst, evRegion...)
		dst = appendJSONString(dst, t.region)
		dst = append(dst, evARN...)
		dst = appendJSONString(dst, t.streamARN)
		dst = append(dst, '}')
	}
	dst = append(dst, ']')
	if win != nil {
		dst = win.append(dst, t)
	}
	return append(dst, '}')
}

// windowInvoke is the tumbling window of an invocation.
type windowInvoke struct {
	shard uint32
	lw    laneWindow
	final bool
}

// append appends the window's properties to an event, after its records:
//
//	,"window":{"start":RFC3339,"end":RFC3339},"state":{…},"shardId":…,"eventSourceARN":…,
//	"isFinalInvokeForWindow":BOOL,"isWindowTerminatedEarly":false
func (w *windowInvoke) append(dst []byte, t *Trigger) []byte {
	start := time.UnixMilli(w.lw.Start).UTC()
	dst = append(dst, `,"window":{"start":"`...)
	dst = start.AppendFormat(dst, time.RFC3339)
	dst = append(dst, `","end":"`...)
	dst = start.Add(t.m.TumblingWindow).AppendFormat(dst, time.RFC3339)
	dst = append(dst, `"},"state":`...)
	state, _ := json.Marshal(w.lw.State) // a map of strings always encodes
	if w.lw.State == nil {
		state = []byte("{}")
	}
	dst = append(dst, state...)
	dst = append(dst, `,"shardId":"`...)
	dst = shardmap.ShardID(w.shard).Append(dst)
	dst = append(dst, `","eventSourceARN":`...)
	dst = appendJSONString(dst, t.streamARN)
	dst = append(dst, `,"isFinalInvokeForWindow":`...)
	dst = strconv.AppendBool(dst, w.final)
	return append(dst, `,"isWindowTerminatedEarly":false`...)
}

// appendSeconds appends t as Unix seconds with milliseconds, as Kinesis gives an arrival time.
func appendSeconds(dst []byte, t time.Time) []byte {
	ms := t.UnixMilli()
	dst = strconv.AppendInt(dst, ms/1000, 10)
	dst = append(dst, '.')
	frac := ms % 1000
	dst = append(dst, byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	return dst
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always encodes
	return append(dst, b...)
}

// failureRecord is what Lambda sends an on-failure destination about a batch of a Kinesis
// source that failed for good: the batch's metadata, not its records.
type failureRecord struct {
	RequestContext struct {
		RequestID              string `json:"requestId"`
		FunctionArn            string `json:"functionArn"`
		Condition              string `json:"condition"`
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	} `json:"requestContext"`
	ResponseContext struct {
		StatusCode      int    `json:"statusCode"`
		ExecutedVersion string `json:"executedVersion"`
		FunctionError   string `json:"functionError"`
	} `json:"responseContext"`
	Version          string `json:"version"`
	Timestamp        string `json:"timestamp"`
	KinesisBatchInfo struct {
		ShardID                         string `json:"shardId"`
		StartSequenceNumber             string `json:"startSequenceNumber"`
		EndSequenceNumber               string `json:"endSequenceNumber"`
		ApproximateArrivalOfFirstRecord string `json:"approximateArrivalOfFirstRecord"`
		ApproximateArrivalOfLastRecord  string `json:"approximateArrivalOfLastRecord"`
		BatchSize                       int    `json:"batchSize"`
		StreamArn                       string `json:"streamArn"`
	} `json:"KinesisBatchInfo"`
}

// The conditions of a failure record.
const (
	condRetriesExhausted = "RetryAttemptsExhausted"
	condRecordAge        = "RecordAgeExceeded"
)

// isoMillis is the time format of a failure record.
const isoMillis = "2006-01-02T15:04:05.000Z"

// newFailureRecord describes recs, which failed for good after invokes invocations.
func (t *Trigger) newFailureRecord(recs []client.Record, cond, requestID, funcErr string, invokes int) *failureRecord {
	f := &failureRecord{Version: "1.0", Timestamp: time.Now().UTC().Format(isoMillis)}
	f.RequestContext.RequestID = requestID
	f.RequestContext.FunctionArn = t.functionARN
	f.RequestContext.Condition = cond
	f.RequestContext.ApproximateInvokeCount = invokes
	f.ResponseContext.StatusCode = 200
	f.ResponseContext.ExecutedVersion = "$LATEST"
	f.ResponseContext.FunctionError = funcErr
	b := &f.KinesisBatchInfo
	first, last := &recs[0], &recs[len(recs)-1]
	b.ShardID = shardmap.ShardID(first.Shard).String()
	b.StartSequenceNumber = first.SequenceNumber()
	b.EndSequenceNumber = last.SequenceNumber()
	b.ApproximateArrivalOfFirstRecord = first.Arrival.UTC().Format(isoMillis)
	b.ApproximateArrivalOfLastRecord = last.Arrival.UTC().Format(isoMillis)
	b.BatchSize = len(recs)
	b.StreamArn = t.streamARN
	return f
}
