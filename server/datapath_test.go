package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/shardmap"
	"github.com/sluice-streams/sluice/stream"
)

// refPutRecords is the PutRecords input as encoding/json decodes it: the reference the
// data-path decoder is checked against.
type refPutRecords struct {
	StreamName string
	StreamARN  string
	Records    []struct {
		Data            []byte
		PartitionKey    string
		ExplicitHashKey string
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestDecodePutRecords(t *testing.T) {
	valid := []struct {
		name, body string
		stream     string
		keys, data []string
		hashKeys   []string
	}{
		{"plain", `{"StreamName":"s","Records":[{"Data":"` + b64("hello") + `","PartitionKey":"k1"},{"Data":"","PartitionKey":"k2"}]}`,
			"s", []string{"k1", "k2"}, []string{"hello", ""}, nil},
		{"white space and member order", " {\n\t\"Records\" : [ { \"PartitionKey\" : \"k\" , \"Data\" : \"" + b64("x") + "\" } ] ,\r\n\"StreamName\" : \"s\" } \n",
			"s", []string{"k"}, []string{"x"}, nil},
		{"escapes in keys and data", `{"StreamName":"s","Records":[{"Data":"` + strings.ReplaceAll(b64("\xff\xfe\xfd???"), "/", `\/`) + `","PartitionKey":"a\"b\\c\u00e9\ud83d\ude00\n"}]}`,
			"s", []string{"a\"b\\cé😀\n"}, []string{"\xff\xfe\xfd???"}, nil},
		{"unknown members of every type are skipped", `{"X":{"a":[1,2.5e-3,-7,{"b":null}],"c":"\u0041"},"StreamName":"s","Y":true,"Z":false,"Records":[{"Data":"` + b64("d") + `","PartitionKey":"k","Q":[[],{}]}],"W":null}`,
			"s", []string{"k"}, []string{"d"}, nil},
		{"explicit hash keys", `{"StreamARN":"arn:aws:kinesis:us-east-1:000000000000:stream/s","Records":[{"Data":"` + b64("a") + `","PartitionKey":"k","ExplicitHashKey":"0"},{"Data":"` + b64("b") + `","PartitionKey":"k"},{"Data":"` + b64("c") + `","PartitionKey":"k","ExplicitHashKey":"340282366920938463463374607431768211455"}]}`,
			"", []string{"k", "k", "k"}, []string{"a", "b", "c"}, []string{"0", "", "340282366920938463463374607431768211455"}},
		{"null members", `{"StreamName":"s","StreamARN":null,"Records":[{"Data":"` + b64("a") + `","PartitionKey":"k","ExplicitHashKey":null}]}`,
			"s", []string{"k"}, []string{"a"}, nil},
	}
	for _, tc := range valid {
		t.Run(tc.name, func(t *testing.T) {
			p := getPutBatch()
			defer p.release()
			if err := p.decodePutRecords([]byte(tc.body)); err != nil {
				t.Fatal(err)
			}
			if tc.stream != "" && p.ref.StreamName != tc.stream {
				t.Fatalf("stream %q, want %q", p.ref.StreamName, tc.stream)
			}
			if len(p.entries) != len(tc.keys) {
				t.Fatalf("%d entries, want %d", len(p.entries), len(tc.keys))
			}
			for i, en := range p.entries {
				if en.PartitionKey != tc.keys[i] || string(en.Data) != tc.data[i] {
					t.Fatalf("entry %d: %q %q, want %q %q", i, en.PartitionKey, en.Data, tc.keys[i], tc.data[i])
				}
				want := ""
				if tc.hashKeys != nil {
					want = tc.hashKeys[i]
				}
				got := ""
				if en.ExplicitHashKey != nil {
					got = en.ExplicitHashKey.String()
				}
				if got != want {
					t.Fatalf("entry %d: hash key %q, want %q", i, got, want)
				}
			}
			// The reference decoder agrees.
			var ref refPutRecords
			if err := json.Unmarshal([]byte(tc.body), &ref); err != nil {
				t.Fatal(err)
			}
			for i, r := range ref.Records {
				if r.PartitionKey != p.entries[i].PartitionKey || !bytes.Equal(r.Data, p.entries[i].Data) {
					t.Fatalf("entry %d differs from encoding/json", i)
				}
			}
		})
	}

	invalid := []struct{ name, body, errType string }{
		{"empty", ``, "SerializationException"},
		{"not an object", `[]`, "SerializationException"},
		{"truncated", `{"StreamName":"s","Records":[{"Data":"` + b64("a"), "SerializationException"},
		{"records not an array", `{"StreamName":"s","Records":{}}`, "SerializationException"},
		{"key not a string", `{"StreamName":"s","Records":[{"Data":"","PartitionKey":5}]}`, "SerializationException"},
		{"bad base64", `{"StreamName":"s","Records":[{"Data":"!!!!","PartitionKey":"k"}]}`, "SerializationException"},
		{"unpadded base64", `{"StreamName":"s","Records":[{"Data":"YQ","PartitionKey":"k"}]}`, "SerializationException"},
		{"trailing data", `{"StreamName":"s","Records":[]} x`, "SerializationException"},
		{"two documents", `{}{}`, "SerializationException"},
		{"control character", "{\"StreamName\":\"s\x01\"}", "SerializationException"},
		{"bad escape", `{"StreamName":"s\q"}`, "SerializationException"},
		{"short unicode escape", `{"StreamName":"\u12"}`, "SerializationException"},
		{"invalid UTF-8 key", "{\"Records\":[{\"Data\":\"\",\"PartitionKey\":\"\xff\"}]}", "SerializationException"},
		{"missing comma", `{"StreamName":"s" "Records":[]}`, "SerializationException"},
		{"bad literal", `{"X":nul}`, "SerializationException"},
		{"bad number", `{"X":-}`, "SerializationException"},
		{"too deep", `{"X":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, "SerializationException"},
		{"missing data", `{"StreamName":"s","Records":[{"Data":"` + b64("a") + `","PartitionKey":"k"},{"PartitionKey":"k"}]}`, "ValidationException"},
		{"explicit hash key off the pattern", `{"StreamName":"s","Records":[{"Data":"","PartitionKey":"k","ExplicitHashKey":"-1"}]}`, "ValidationException"},
		{"empty explicit hash key", `{"StreamName":"s","Records":[{"Data":"","PartitionKey":"k","ExplicitHashKey":""}]}`, "ValidationException"},
		{"explicit hash key past 2^128-1", `{"StreamName":"s","Records":[{"Data":"","PartitionKey":"k","ExplicitHashKey":"340282366920938463463374607431768211456"}]}`, "InvalidArgumentException"},
		{"lone high surrogate in a key", `{"StreamName":"s","Records":[{"Data":"","PartitionKey":"a\ud800"}]}`, "SerializationException"},
		{"lone low surrogate in a key", `{"StreamName":"s","Records":[{"Data":"","PartitionKey":"\udc00b"}]}`, "SerializationException"},
		{"reversed surrogate pair", `{"StreamName":"s","Records":[{"Data":"","PartitionKey":"\ude00\ud83d"}]}`, "SerializationException"},
	}
	for _, tc := range invalid {
		t.Run(tc.name, func(t *testing.T) {
			p := getPutBatch()
			defer p.release()
			err := p.decodePutRecords([]byte(tc.body))
			var ae apiError
			if !errors.As(err, &ae) || ae.name() != tc.errType {
				t.Fatalf("error %v, want %s", err, tc.errType)
			}
		})
	}
}

func TestDecodePutRecord(t *testing.T) {
	p := getPutBatch()
	defer p.release()
	body := `{"StreamName":"s","Data":"` + b64("one") + `","PartitionKey":"pk","SequenceNumberForOrdering":"49","Extra":[1]}`
	if err := p.decodePutRecord([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if p.ref.StreamName != "s" || p.seqOrdering != "49" || len(p.entries) != 1 || string(p.entries[0].Data) != "one" || p.entries[0].PartitionKey != "pk" {
		t.Fatalf("decoded %+v", p)
	}
	q := getPutBatch()
	defer q.release()
	err := q.decodePutRecord([]byte(`{"StreamName":"s","PartitionKey":"pk"}`))
	var ae apiError
	if !errors.As(err, &ae) || ae.name() != "ValidationException" || !strings.Contains(ae.msg, "'data'") {
		t.Fatalf("missing Data: %v", err)
	}
}

// A batch reused from the pool carries nothing over from its last request.
func TestPutBatchReuse(t *testing.T) {
	for i := range 3 {
		p := getPutBatch()
		body := fmt.Sprintf(`{"StreamName":"s%d","Records":[{"Data":"%s","PartitionKey":"k\u00e9%d"}]}`, i, b64(strings.Repeat("z", i*100)), i)
		if err := p.decodePutRecords([]byte(body)); err != nil {
			t.Fatal(err)
		}
		if p.ref.StreamName != fmt.Sprintf("s%d", i) || len(p.entries) != 1 || len(p.entries[0].Data) != i*100 ||
			p.entries[0].PartitionKey != fmt.Sprintf("ké%d", i) || p.missingData != 0 {
			t.Fatalf("round %d: %+v", i, p.entries)
		}
		p.release()
	}
}

func TestAppendEpochMillis(t *testing.T) {
	for ms, want := range map[int64]string{0: "0.000", 5: "0.005", 1732573395123: "1732573395.123", 1000: "1.000", -1500: "-1.500"} {
		if got := string(appendEpochMillis(nil, ms)); got != want {
			t.Errorf("appendEpochMillis(%d) = %s, want %s", ms, got, want)
		}
	}
}

// openTestEngine opens an engine in a temporary directory (durability none, limits off) with
// one stream "s" of shards shards.
func openTestEngine(t testing.TB, shards int) *stream.Engine {
	t.Helper()
	eng, err := stream.Open(stream.Options{Dir: t.TempDir(), Durability: segment.Durability{Mode: segment.None},
		SegmentSize: 64 << 20, Limits: stream.Limits{Off: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	if err := eng.CreateStream(stream.CreateStreamInput{Name: "s", ShardCount: shards}); err != nil {
		t.Fatal(err)
	}
	return eng
}

func TestAppendGetRecordsResult(t *testing.T) {
	eng := openTestEngine(t, 1)
	keys := []string{"plain", `quote"and\back`, "ünïcödé", "<tag>&"}
	var entries []stream.PutEntry
	for i, k := range keys {
		entries = append(entries, stream.PutEntry{PartitionKey: k, Data: bytes.Repeat([]byte{byte(i), 0xff, '"'}, i*50)})
	}
	res, err := eng.PutRecords("s", entries)
	if err != nil {
		t.Fatal(err)
	}
	it, err := eng.GetShardIterator(stream.IteratorInput{Stream: "s", Shard: 0, Type: stream.TrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	r, err := eng.GetRecords(it, 100)
	if err != nil {
		t.Fatal(err)
	}
	out := appendGetRecordsResult(nil, &r)
	r.Release()
	var got struct {
		Records []struct {
			SequenceNumber              string
			ApproximateArrivalTimestamp float64
			Data                        []byte
			PartitionKey                string
		}
		NextShardIterator  string
		MillisBehindLatest *int64
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, out)
	}
	if len(got.Records) != len(entries) || got.NextShardIterator == "" || got.MillisBehindLatest == nil {
		t.Fatalf("answer %s", out)
	}
	now := float64(time.Now().UnixMilli()) / 1e3
	for i, rec := range got.Records {
		if rec.SequenceNumber != res[i].Seq.String() || rec.PartitionKey != keys[i] || !bytes.Equal(rec.Data, entries[i].Data) {
			t.Fatalf("record %d: %+v", i, rec)
		}
		if rec.ApproximateArrivalTimestamp < now-60 || rec.ApproximateArrivalTimestamp > now+1 {
			t.Fatalf("record %d arrived at %f, now is %f", i, rec.ApproximateArrivalTimestamp, now)
		}
	}
}

func TestAppendChildShards(t *testing.T) {
	cs := []stream.ChildShard{{ID: 2, Parents: []stream.ShardID{0, 1}, Range: shardmap.Range{End: shardmap.Key{Hi: ^uint64(0), Lo: ^uint64(0)}}}}
	out := append(appendChildShards([]byte(`{"A":1`), cs), '}')
	var got struct {
		ChildShards []struct {
			ShardId      string
			ParentShards []string
			HashKeyRange struct{ StartingHashKey, EndingHashKey string }
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(got.ChildShards) != 1 || got.ChildShards[0].ShardId != "shardId-000000000002" || len(got.ChildShards[0].ParentShards) != 2 ||
		got.ChildShards[0].HashKeyRange.EndingHashKey != "340282366920938463463374607431768211455" {
		t.Fatalf("%s", out)
	}
	if string(appendChildShards(nil, nil)) != "" {
		t.Fatal("no children must add nothing")
	}
}
