package kpl

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"testing"
)

// golden is an aggregated record written byte by byte from aggregation-format.md: partition
// key table ["pk"], explicit hash key table ["5"], and two records — {key 0, data "hi"} and
// {key 0, explicit hash key 0, data ""}.
var golden = []byte{
	0xF3, 0x89, 0x9A, 0xC2, // magic
	0x0A, 0x02, 'p', 'k', // field 1 (partition_key_table), length 2
	0x12, 0x01, '5', // field 2 (explicit_hash_key_table), length 1
	0x1A, 0x06, // field 3 (records), length 6
	0x08, 0x00, //   field 1 (partition_key_index) = 0
	0x1A, 0x02, 'h', 'i', //   field 3 (data), length 2
	0x1A, 0x06, // field 3 (records), length 6
	0x08, 0x00, //   partition_key_index = 0
	0x10, 0x00, //   field 2 (explicit_hash_key_index) = 0
	0x1A, 0x00, //   data, length 0
	// MD5 of the 28 protobuf bytes above
	0x20, 0xce, 0x18, 0x30, 0xe6, 0x1e, 0x81, 0x31, 0x92, 0x53, 0x06, 0x77, 0xd5, 0x4f, 0xa2, 0xf3,
}

func TestGoldenEncode(t *testing.T) {
	var b Builder
	if got := b.SizeWith("pk", "", 2); got != Overhead+4+8 {
		t.Fatalf("SizeWith before the first record = %d, want %d", got, Overhead+4+8)
	}
	b.Add("pk", "", []byte("hi"))
	if got, want := b.SizeWith("pk", "5", 0), len(golden); got != want {
		t.Fatalf("SizeWith = %d, want %d", got, want)
	}
	b.Add("pk", "5", nil)
	if b.Size() != len(golden) || b.Len() != 2 {
		t.Fatalf("Size %d Len %d, want %d 2", b.Size(), b.Len(), len(golden))
	}
	got := b.AppendTo([]byte("prefix"))
	if !bytes.Equal(got, append([]byte("prefix"), golden...)) {
		t.Fatalf("AppendTo:\n got %x\nwant prefix+%x", got, golden)
	}
	b.Reset()
	if b.Len() != 0 || b.Size() != Overhead {
		t.Fatalf("after Reset: Len %d Size %d", b.Len(), b.Size())
	}
	b.Add("pk", "", []byte("hi"))
	b.Add("pk", "5", nil)
	if got := b.AppendTo(nil); !bytes.Equal(got, golden) {
		t.Fatalf("after Reset: %x", got)
	}
}

func TestGoldenDecode(t *testing.T) {
	var d Decoder
	recs, err := d.Decode(golden)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ key, hash, data string }{{"pk", "", "hi"}, {"pk", "5", ""}}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i, w := range want {
		r := recs[i]
		if string(r.PartitionKey) != w.key || string(r.ExplicitHashKey) != w.hash || string(r.Data) != w.data {
			t.Errorf("record %d = %q %q %q, want %q %q %q", i, r.PartitionKey, r.ExplicitHashKey, r.Data, w.key, w.hash, w.data)
		}
	}
	if recs[0].ExplicitHashKey != nil {
		t.Errorf("record 0 has an explicit hash key %q", recs[0].ExplicitHashKey)
	}
}

// withDigest wraps a protobuf message as an aggregated record with a correct digest.
func withDigest(msg []byte) []byte {
	sum := md5.Sum(msg)
	return append(append([]byte(Magic), msg...), sum[:]...)
}

func TestDecodeRejects(t *testing.T) {
	flipped := bytes.Clone(golden)
	flipped[len(flipped)-1] ^= 1
	badBody := bytes.Clone(golden)
	badBody[7] = 'K' // "pK": the digest no longer matches
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrNotAggregated},
		{"plain", []byte("hello world, an ordinary record"), ErrNotAggregated},
		{"magic only", []byte(Magic), ErrNotAggregated},
		{"magic and digest, no message", withDigest(nil), ErrNotAggregated},
		{"digest flipped", flipped, ErrDigest},
		{"body changed", badBody, ErrDigest},
		{"truncated tag", withDigest([]byte{0x80}), ErrMalformed},
		{"length past the end", withDigest([]byte{0x0A, 0x05, 'p'}), ErrMalformed},
		{"huge length", withDigest([]byte{0x1A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F}), ErrMalformed},
		{"key index out of the table", withDigest([]byte{0x0A, 0x01, 'k', 0x1A, 0x04, 0x08, 0x01, 0x1A, 0x00}), ErrMalformed},
		{"hash index, no table", withDigest([]byte{0x0A, 0x01, 'k', 0x1A, 0x06, 0x08, 0x00, 0x10, 0x00, 0x1A, 0x00}), ErrMalformed},
		{"record without data", withDigest([]byte{0x0A, 0x01, 'k', 0x1A, 0x02, 0x08, 0x00}), ErrMalformed},
		{"record without key index", withDigest([]byte{0x0A, 0x01, 'k', 0x1A, 0x02, 0x1A, 0x00}), ErrMalformed},
		{"record truncated inside", withDigest([]byte{0x0A, 0x01, 'k', 0x1A, 0x03, 0x08, 0x00, 0x1A}), ErrMalformed},
		{"tag without key", withDigest([]byte{0x0A, 0x01, 'k', 0x1A, 0x08, 0x08, 0x00, 0x1A, 0x00, 0x22, 0x02, 0x12, 0x00}), ErrMalformed},
		{"end group at top", withDigest([]byte{0x0C}), ErrMalformed},
	}
	var d Decoder
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs, err := d.Decode(c.data)
			if !errors.Is(err, c.want) || recs != nil {
				t.Fatalf("Decode = %d records, %v; want %v", len(recs), err, c.want)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	cases := []struct {
		name string
		msg  []byte
		want []string // data of each record
	}{
		{"no records", []byte{0x0A, 0x01, 'k'}, nil},
		{"records before the table", []byte{0x1A, 0x04, 0x08, 0x00, 0x1A, 0x00, 0x0A, 0x01, 'k'}, []string{""}},
		{"unknown fields skipped", []byte{0x28, 0x07, 0x0A, 0x01, 'k', 0x1A, 0x07, 0x08, 0x00, 0x1A, 0x01, 'x', 0x30, 0x01}, []string{"x"}},
		{"a tag", []byte{0x0A, 0x01, 'k', 0x1A, 0x0B, 0x08, 0x00, 0x1A, 0x00, 0x22, 0x05, 0x0A, 0x01, 't', 0x12, 0x00}, []string{""}},
		{"last data wins", []byte{0x0A, 0x01, 'k', 0x1A, 0x08, 0x08, 0x00, 0x1A, 0x01, 'a', 0x1A, 0x01, 'b'}, []string{"b"}},
	}
	var d Decoder
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs, err := d.Decode(withDigest(c.msg))
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != len(c.want) {
				t.Fatalf("%d records, want %d", len(recs), len(c.want))
			}
			for i, w := range c.want {
				if string(recs[i].Data) != w || string(recs[i].PartitionKey) != "k" {
					t.Errorf("record %d: key %q data %q, want k %q", i, recs[i].PartitionKey, recs[i].Data, w)
				}
			}
		})
	}
}

// TestRoundTrip checks Size against AppendTo and Decode against Add over sizes that cross
// the varint boundaries of lengths and indexes.
func TestRoundTrip(t *testing.T) {
	var b Builder
	var d Decoder
	for _, n := range []int{1, 2, 127, 128, 300} {
		b.Reset()
		for i := range n {
			key := fmt.Sprintf("key-%d", i%150)
			hash := ""
			if i%3 == 0 {
				hash = fmt.Sprint(i * 1000003)
			}
			data := bytes.Repeat([]byte{byte(i)}, i%200)
			if want := b.SizeWith(key, hash, len(data)); func() int { b.Add(key, hash, data); return b.Size() }() != want {
				t.Fatalf("n=%d i=%d: Size after Add %d, SizeWith said %d", n, i, b.Size(), want)
			}
		}
		out := b.AppendTo(nil)
		if len(out) != b.Size() {
			t.Fatalf("n=%d: AppendTo wrote %d bytes, Size %d", n, len(out), b.Size())
		}
		recs, err := d.Decode(out)
		if err != nil || len(recs) != n {
			t.Fatalf("n=%d: Decode = %d records, %v", n, len(recs), err)
		}
		for i, r := range recs {
			hash := ""
			if i%3 == 0 {
				hash = fmt.Sprint(i * 1000003)
			}
			if string(r.PartitionKey) != fmt.Sprintf("key-%d", i%150) || string(r.ExplicitHashKey) != hash ||
				!bytes.Equal(r.Data, bytes.Repeat([]byte{byte(i)}, i%200)) {
				t.Fatalf("n=%d: record %d = %q %q %d bytes", n, i, r.PartitionKey, r.ExplicitHashKey, len(r.Data))
			}
		}
	}
}
