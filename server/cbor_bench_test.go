package server

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// BenchmarkCBORToJSON transcodes a PutRecords body of 500 records of 1 KiB, as the AWS SDK for
// Java sends it, into the JSON the operations decode. SetBytes counts the CBOR input. The
// base64 sub-benchmark encodes just the records' data, the floor of the work: the transcoder
// is within a small factor of it when its time goes into base64 rather than into parsing.
func BenchmarkCBORToJSON(b *testing.B) {
	in := cborPutRecordsInput(500, 1024)
	body, err := cbor.Marshal(in)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("PutRecords-500x1KiB", func(b *testing.B) {
		dst, err := cborToJSON(nil, body)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if dst, err = cborToJSON(dst[:0], body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("base64-floor", func(b *testing.B) {
		var data [][]byte
		for _, r := range in["Records"].([]any) {
			data = append(data, r.(map[string]any)["Data"].([]byte))
		}
		var dst []byte
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			dst = dst[:0]
			for _, d := range data {
				dst = base64.StdEncoding.AppendEncode(dst, d)
			}
		}
	})
}

// BenchmarkJSONToCBOR transcodes a GetRecords answer of 500 records of 1 KiB into CBOR.
// SetBytes counts the JSON input.
func BenchmarkJSONToCBOR(b *testing.B) {
	type rec struct {
		SequenceNumber              string `json:"SequenceNumber"`
		ApproximateArrivalTimestamp epoch  `json:"ApproximateArrivalTimestamp"`
		Data                        []byte `json:"Data"`
		PartitionKey                string `json:"PartitionKey"`
	}
	out := struct {
		Records            []rec `json:"Records"`
		NextShardIterator  string
		MillisBehindLatest int64
	}{NextShardIterator: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", MillisBehindLatest: 0}
	for _, r := range cborPutRecordsInput(500, 1024)["Records"].([]any) {
		m := r.(map[string]any)
		out.Records = append(out.Records, rec{"49654321098765432109876543210987654321098765432109876543",
			epoch{}, m["Data"].([]byte), m["PartitionKey"].(string)})
	}
	js, err := json.Marshal(out)
	if err != nil {
		b.Fatal(err)
	}
	dst, err := jsonToCBOR(nil, js)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(js)))
	b.ReportAllocs()
	for b.Loop() {
		if dst, err = jsonToCBOR(dst[:0], js); err != nil {
			b.Fatal(err)
		}
	}
}
