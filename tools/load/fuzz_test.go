package load

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/sluice-streams/sluice/client"
	"github.com/sluice-streams/sluice/internal/jsonscan"
)

// The decoders of server answers take untrusted bytes: none may panic, loop or read out of
// bounds, whatever the server sends.

func FuzzDecodeRecords(f *testing.F) {
	pl := newPayload(1, 1, 64, 1)
	seq := client.SeqNum{Shard: 1, Position: 5}.String()
	f.Add([]byte(`{"Records":[{"SequenceNumber":"` + seq + `","Data":"` + base64.StdEncoding.EncodeToString(pl.appendData(nil, 40, 7)) + `","PartitionKey":"k"}],"NextShardIterator":"x","MillisBehindLatest":0}`))
	f.Add([]byte(`{"Records":[],"ContinuationSequenceNumber":null,"ChildShards":[{"ShardId":"shardId-000000000002","ParentShards":["a"]}]}`))
	f.Add([]byte(`{"Records":[{"SequenceNumber":"1\u0030","Data":"QUJD","PartitionKey":"\ud83d\ude00"}],"x":[1,-2.5e3,true,false,null,{}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		s := jsonscan.Scanner{AllowControl: true}
		n := 0
		ans, err := decodeRecords(&s, body, 1, 1, func(r *readRecord) {
			n++
			if r.n < 0 {
				t.Fatalf("negative length %d", r.n)
			}
		})
		if err == nil && n > 0 && ans.last == "" {
			t.Fatal("records without a last sequence number")
		}
	})
}

func FuzzDecodePutRecords(f *testing.F) {
	seq := client.SeqNum{Shard: 3, Position: 1}.String()
	f.Add([]byte(`{"FailedRecordCount":1,"Records":[{"SequenceNumber":"` + seq + `","ShardId":"shardId-000000000003"},{"ErrorCode":"InternalFailure","ErrorMessage":"x"}]}`))
	f.Add([]byte(`{"Records":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		s := jsonscan.Scanner{AllowControl: true}
		out, err := decodePutRecords(&s, body, nil)
		if err == nil && len(out) > len(body) {
			t.Fatalf("%d results from %d bytes", len(out), len(body))
		}
	})
}

func FuzzReadEvent(f *testing.F) {
	var two []byte
	two = appendEvent(two, [][2]string{{":message-type", "event"}, {":event-type", "initial-response"}}, []byte("{}"))
	two = appendEvent(two, [][2]string{{":message-type", "exception"}, {":exception-type", "X"}}, []byte(`{"message":"m"}`))
	f.Add(two)
	f.Add(appendRaw([]byte{1, 'a', 6, 0, 1, 'z', 1, 'b', 9}, nil))
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := bufio.NewReader(bytes.NewReader(stream))
		var buf []byte
		for range 1000 {
			ev, b, err := readEvent(r, buf)
			buf = b
			if err != nil {
				return
			}
			if len(ev.payload) > len(stream) {
				t.Fatalf("payload of %d bytes from %d", len(ev.payload), len(stream))
			}
		}
	})
}
