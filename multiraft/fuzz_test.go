package multiraft

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

// FuzzDecodeBatch: decodeBatch never panics, and a batch it accepts re-encodes to bytes
// it decodes to the same records.
func FuzzDecodeBatch(f *testing.F) {
	good, _ := encodeTestBatch(f)
	f.Add(good)
	f.Add([]byte{batchVersion})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		recs, err := decodeBatch(nil, body)
		if err != nil {
			if len(recs) != 0 {
				t.Fatalf("%d records returned with %v", len(recs), err)
			}
			return
		}
		again := []byte{batchVersion}
		for _, r := range recs {
			if r.ping {
				again = appendPing(again, r.q.from)
				continue
			}
			if r.msg == nil {
				again = appendQuiesce(again, r.group, r.q)
				continue
			}
			if again, err = appendMessage(again, r.group, r.msg); err != nil {
				t.Fatal(err)
			}
		}
		recs2, err := decodeBatch(nil, again)
		if err != nil {
			t.Fatalf("re-encoded batch refused: %v", err)
		}
		if len(recs2) != len(recs) {
			t.Fatalf("re-decoded %d records, want %d", len(recs2), len(recs))
		}
		for i := range recs {
			if recs[i].group != recs2[i].group || recs[i].q != recs2[i].q || recs[i].ping != recs2[i].ping || !proto.Equal(recs[i].msg, recs2[i].msg) {
				t.Fatalf("record %d differs after a round trip", i)
			}
		}
	})
}
