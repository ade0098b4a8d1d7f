package wire

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzReadPut decodes arbitrary put requests: no panic, and whatever decodes re-encodes to
// the same bytes.
func FuzzReadPut(f *testing.F) {
	req, off := BeginPut(nil, "s")
	req = AppendPutRecord(req, &PutRecord{Key: []byte("k"), Data: []byte("data")})
	req = AppendPutRecord(req, &PutRecord{Key: []byte("k2"), HasHash: true, HashKey: [16]byte{1}})
	FinishPut(req, off, 2)
	f.Add(req)
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ReadPut(b)
		if err != nil {
			return
		}
		out, off := BeginPut(nil, string(p.Stream))
		var r PutRecord
		n := 0
		for {
			ok, err := p.Next(&r)
			if err != nil {
				return
			}
			if !ok {
				break
			}
			out = AppendPutRecord(out, &r)
			n++
		}
		FinishPut(out, off, n)
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoded %x, want %x", out, b)
		}
	})
}

// FuzzReadGetRequest decodes arbitrary get and subscribe requests without panicking.
func FuzzReadGetRequest(f *testing.F) {
	f.Add(AppendGetRequest(nil, &GetRequest{Stream: []byte("s"), Shard: 1, Start: TrimHorizon, MaxRecords: 10}))
	f.Add(AppendSubscribeRequest(nil, &SubscribeRequest{ConsumerARN: []byte("arn"), Start: Latest}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := ReadGetRequest(b); err == nil {
			if r.MaxRecords < 1 || r.MaxRecords > MaxGetRecords || r.MaxBytes < 1 || r.MaxBytes > MaxGetBytes || r.Start >= numStarts {
				t.Fatalf("out of range: %+v", r)
			}
		}
		if r, err := ReadSubscribeRequest(b); err == nil {
			if again := AppendSubscribeRequest(nil, &r); !bytes.Equal(again, b) {
				t.Fatalf("re-encoded %x, want %x", again, b)
			}
		}
	})
}

// FuzzReadMessage reads arbitrary subscription streams without panicking or allocating
// beyond MaxMessageSize.
func FuzzReadMessage(f *testing.F) {
	f.Add(AppendEnd(AppendError(nil, LimitExceeded, "x"), []uint32{1, 2}))
	f.Add(AppendRecordsHead(nil, 1, 2, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		var buf []byte
		for range 100 {
			var err error
			var m Message
			if m, buf, err = ReadMessage(r, buf); err != nil {
				return
			}
			if m.Type == MsgRecords {
				fr := NewFrames(m.Frames)
				for fr.Next() {
				}
			}
		}
	})
}
