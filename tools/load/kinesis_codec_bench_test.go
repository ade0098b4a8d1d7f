package load

import (
	"encoding/json"
	"github.com/sluice-streams/sluice/internal/jsonscan"
	"testing"
	"time"
)

// benchAnswer is a GetRecords answer of 500 records of 1 KiB, as the server writes it.
func benchAnswer(b *testing.B) (body []byte, data int) {
	b.Helper()
	pl := newPayload(1, 1, 1024, 10)
	recs := make([]pending, 500)
	for i := range recs {
		recs[i] = pending{sent: time.Now().UnixNano(), key: int32(i % 10), size: 1024}
	}
	in := pl.appendPutRecords(nil, "s", recs)
	// The same records, with the members GetRecords adds.
	var put struct{ Records []map[string]any }
	if err := json.Unmarshal(in, &put); err != nil {
		b.Fatal(err)
	}
	for i, r := range put.Records {
		r["SequenceNumber"] = "10000000000000000000000000000000000000000000000000" + string(rune('0'+i%10)) + "12345"
		r["ApproximateArrivalTimestamp"] = 1.764e9
	}
	body, err := json.Marshal(map[string]any{"Records": put.Records, "MillisBehindLatest": 0, "NextShardIterator": "AAAA"})
	if err != nil {
		b.Fatal(err)
	}
	return body, 500 * 1024
}

// BenchmarkDecodeRecords reads a GetRecords answer as the consumer does: the header of each
// record, not its data.
func BenchmarkDecodeRecords(b *testing.B) {
	body, data := benchAnswer(b)
	s := jsonscan.Scanner{AllowControl: true}
	b.SetBytes(int64(data))
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if _, err := decodeRecords(&s, body, 0, 1, func(*readRecord) { n++ }); err != nil || n != 500 {
			b.Fatal(n, err)
		}
	}
}

// BenchmarkDecodeRecordsJSON is the same answer through encoding/json, for comparison.
func BenchmarkDecodeRecordsJSON(b *testing.B) {
	body, data := benchAnswer(b)
	b.SetBytes(int64(data))
	b.ReportAllocs()
	for b.Loop() {
		var out struct {
			Records []struct {
				SequenceNumber string
				Data           []byte
				PartitionKey   string
			}
			NextShardIterator string
		}
		if err := json.Unmarshal(body, &out); err != nil || len(out.Records) != 500 {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendPutRecords writes a PutRecords input of 500 records of 1 KiB.
func BenchmarkAppendPutRecords(b *testing.B) {
	pl := newPayload(1, 1, 1024, 10)
	recs := make([]pending, 500)
	for i := range recs {
		recs[i] = pending{sent: int64(i), key: int32(i % 10), size: 1024}
	}
	var body []byte
	b.SetBytes(500 * 1024)
	b.ReportAllocs()
	for b.Loop() {
		body = pl.appendPutRecords(body[:0], "stream", recs)
	}
}
