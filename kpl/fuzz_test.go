package kpl

import (
	"bytes"
	"testing"
)

// FuzzDecode feeds Decode arbitrary bytes, and arbitrary protobuf messages behind a correct
// digest: it must not panic, every user record must lie within the input, and a record it
// accepts must survive a rebuild by the Builder.
func FuzzDecode(f *testing.F) {
	f.Add(golden, false)
	f.Add(golden[len(Magic):len(golden)-DigestLen], true)
	f.Add([]byte{0x0A, 0x01, 'k', 0x1A, 0x0B, 0x08, 0x00, 0x1A, 0x00, 0x22, 0x05, 0x0A, 0x01, 't', 0x12, 0x00}, true)
	f.Add([]byte("plain"), false)
	var d, d2 Decoder
	var b Builder
	f.Fuzz(func(t *testing.T, in []byte, wrap bool) {
		if wrap {
			in = withDigest(in)
		}
		recs, err := d.Decode(in)
		if err != nil || len(recs) == 0 {
			return // a message without records rebuilds to no more than the overhead
		}
		b.Reset()
		within := func(s []byte) bool {
			return len(s) == 0 || bytes.Contains(in, s)
		}
		for _, r := range recs {
			if !within(r.PartitionKey) || !within(r.ExplicitHashKey) || !within(r.Data) {
				t.Fatalf("a user record's bytes are not in the input")
			}
			b.Add(string(r.PartitionKey), string(r.ExplicitHashKey), r.Data)
		}
		again, err := d2.Decode(b.AppendTo(nil))
		if err != nil || len(again) != len(recs) {
			t.Fatalf("rebuilt: %d records, %v; want %d", len(again), err, len(recs))
		}
		for i := range recs {
			if !bytes.Equal(again[i].PartitionKey, recs[i].PartitionKey) || !bytes.Equal(again[i].Data, recs[i].Data) ||
				!bytes.Equal(again[i].ExplicitHashKey, recs[i].ExplicitHashKey) {
				t.Fatalf("rebuilt record %d differs", i)
			}
		}
	})
}
