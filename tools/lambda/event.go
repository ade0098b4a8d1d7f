package lambda

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/shardmap"
)

// maxPayload is the largest event of a synchronous invocation: Lambda's 6 MB.
const maxPayload = 6 << 20

// recordOverhead bounds the bytes an event record takes besides its key and base64 data:
// the field names, the ARNs, the ids and the punctuation (445 bytes with the longest
// sequence number and time, and the ARNs, region and role, each escaped at most to twice
// its length).
func (t *Trigger) recordOverhead() int {
	return 450 + 2*(len(t.streamARN)+len(t.region)+len(t.role))
}

// eventSize bounds the bytes that r takes in an event: a key byte takes up to 6 (\u00XX).
func (t *Trigger) eventSize(r *client.Record) int {
	return t.recordOverhead() + 6*len(r.Key) + base64.StdEncoding.EncodedLen(len(r.Data))
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
		dst = append(dst, `{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":`...)
		dst = appendJSONString(dst, string(r.Key))
		dst = append(dst, `,"sequenceNumber":"`...)
		dst = r.Seq().AppendKinesis(dst)
		dst = append(dst, `","data":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, r.Data)
		dst = append(dst, `","approximateArrivalTimestamp":`...)
		dst = appendSeconds(dst, r.Arrival)
		if r.Flags&1 != 0 {
			dst = append(dst, `,"encryptionType":"KMS"`...)
		}
		dst = append(dst, `},"eventSource":"aws:kinesis","eventVersion":"1.0","eventID":"`...)
		dst = shardmap.ShardID(r.Shard).Append(dst)
		dst = append(dst, ':')
		dst = r.Seq().AppendKinesis(dst)
		dst = append(dst, `","eventName":"aws:kinesis:record","invokeIdentityArn":`...)
		dst = appendJSONString(dst, t.role)
		dst = append(dst, `,"awsRegion":`...)
		dst = appendJSONString(dst, t.region)
		dst = append(dst, `,"eventSourceARN":`...)
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
