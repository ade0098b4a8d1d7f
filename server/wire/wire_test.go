package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/sluice-streams/sluice/frame"
)

func TestPutRoundTrip(t *testing.T) {
	recs := []PutRecord{
		{Key: []byte("k1"), Data: []byte("hello")},
		{Key: []byte("ké"), Data: nil},
		{Key: []byte("k3"), Data: bytes.Repeat([]byte{7}, 3000), HasHash: true, HashKey: [16]byte{0: 0x80, 15: 1}},
	}
	req, off := BeginPut(nil, "orders")
	for i := range recs {
		before := len(req)
		req = AppendPutRecord(req, &recs[i])
		if got, want := len(req)-before, PutRecordSize(len(recs[i].Key), len(recs[i].Data), recs[i].HasHash); got != want {
			t.Fatalf("record %d: %d bytes, PutRecordSize says %d", i, got, want)
		}
	}
	FinishPut(req, off, len(recs))
	p, err := ReadPut(req)
	if err != nil || string(p.Stream) != "orders" || p.Count != 3 {
		t.Fatalf("ReadPut: %+v %v", p, err)
	}
	var r PutRecord
	for i := 0; ; i++ {
		ok, err := p.Next(&r)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			if i != len(recs) {
				t.Fatalf("%d records, want %d", i, len(recs))
			}
			break
		}
		w := recs[i]
		if !bytes.Equal(r.Key, w.Key) || !bytes.Equal(r.Data, w.Data) || r.HasHash != w.HasHash || r.HashKey != w.HashKey {
			t.Fatalf("record %d: %+v, want %+v", i, r, w)
		}
	}

	ans := AppendPutAnswerHead(nil, 2, 1)
	ans = AppendPutResult(ans, PutResult{Shard: 3, Position: 1 << 40})
	ans = AppendPutResult(ans, PutResult{Shard: 1, Code: ProvisionedThroughputExceeded})
	a, err := ReadPutAnswer(ans)
	if err != nil || a.Count != 2 || a.Failed != 1 {
		t.Fatalf("ReadPutAnswer: %+v %v", a, err)
	}
	if r := a.Result(0); r != (PutResult{Shard: 3, Position: 1 << 40}) {
		t.Fatalf("result 0: %+v", r)
	}
	if r := a.Result(1); r.Code != ProvisionedThroughputExceeded || r.Code.Name() != "ProvisionedThroughputExceededException" || r.Code.Status() != 400 {
		t.Fatalf("result 1: %+v", r)
	}
}

func TestPutRejects(t *testing.T) {
	good, off := BeginPut(nil, "s")
	good = AppendPutRecord(good, &PutRecord{Key: []byte("k"), Data: []byte("d")})
	FinishPut(good, off, 1)
	cases := map[string]struct {
		b    []byte
		want error
	}{
		"empty":         {nil, ErrShort},
		"empty name":    {[]byte{0, 0, 1, 0, 0, 0}, ErrNameLen},
		"no count":      {good[:3], ErrShort},
		"zero count":    {append(good[:3:3], 0, 0, 0, 0), ErrCount},
		"501 records":   {append(good[:3:3], 0xf5, 1, 0, 0), ErrCount},
		"cut record":    {good[:len(good)-1], ErrShort},
		"trailing":      {append(bytes.Clone(good), 0), ErrTrailing},
		"empty key":     {append(good[:7:7], 0, 0, 0, 0, 1, 0, 0, 0, 'd'), ErrKeyLen},
		"unknown flag":  {append(good[:7:7], 1, 0, 2, 0, 1, 0, 0, 0, 'k', 'd'), ErrFlags},
		"huge data len": {append(good[:7:7], 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 'k'), ErrShort},
	}
	for name, tc := range cases {
		p, err := ReadPut(tc.b)
		if err == nil {
			var r PutRecord
			for {
				var ok bool
				if ok, err = p.Next(&r); !ok || err != nil {
					break
				}
			}
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

func TestGetRequestRoundTrip(t *testing.T) {
	in := GetRequest{Stream: []byte("s"), Shard: 7, Start: AtTimestamp, Value: 1732573395123, MaxRecords: 100, MaxBytes: 1 << 20}
	got, err := ReadGetRequest(AppendGetRequest(nil, &in))
	if err != nil || string(got.Stream) != "s" || got.Shard != 7 || got.Start != AtTimestamp || got.Value != in.Value || got.MaxRecords != 100 || got.MaxBytes != 1<<20 {
		t.Fatalf("%+v %v", got, err)
	}
	in.MaxRecords, in.MaxBytes = 0, 0
	if got, _ := ReadGetRequest(AppendGetRequest(nil, &in)); got.MaxRecords != MaxGetRecords || got.MaxBytes != MaxGetBytes {
		t.Fatalf("defaults: %+v", got)
	}
	in.Start = 9
	if _, err := ReadGetRequest(AppendGetRequest(nil, &in)); !errors.Is(err, ErrStart) {
		t.Fatalf("bad start: %v", err)
	}
	in.Start, in.MaxRecords = Latest, MaxGetRecords+1
	if _, err := ReadGetRequest(AppendGetRequest(nil, &in)); !errors.Is(err, ErrCount) {
		t.Fatalf("too many records: %v", err)
	}
}

func TestFrames(t *testing.T) {
	var b []byte
	for i := range 3 {
		b = frame.Append(b, &frame.Record{Seq: uint64(i + 1), Time: int64(i), Key: []byte("k"), Data: bytes.Repeat([]byte{byte(i)}, i*10)})
	}
	f := NewFrames(b)
	n := 0
	for f.Next() {
		if r := f.Record(); r.Seq != uint64(n+1) || len(r.Data) != n*10 {
			t.Fatalf("frame %d: %+v", n, r)
		}
		n++
	}
	if n != 3 || f.Err() != nil {
		t.Fatalf("%d frames, err %v", n, f.Err())
	}
	b[32] ^= 1 // a bit of the first frame's key
	f = NewFrames(b)
	if f.Next() || f.Err() == nil {
		t.Fatal("a damaged frame was accepted")
	}
}

func TestMessages(t *testing.T) {
	frames := frame.Append(nil, &frame.Record{Seq: 5, Key: []byte("k"), Data: []byte("data")})
	var stream []byte
	stream = AppendRecordsHead(stream, 6, 42, 1, len(frames))
	stream = append(stream, frames...)
	stream = append(stream, 20, 0, 0, 0, 99, 0, 0, 0) // an unknown type, skipped
	stream = append(stream, make([]byte, 12)...)
	stream = AppendEnd(stream, []uint32{2, 3})
	stream = AppendError(stream, ResourceInUse, "another subscription")
	r := bufio.NewReader(bytes.NewReader(stream))
	m, buf, err := ReadMessage(r, nil)
	if err != nil || m.Type != MsgRecords || m.Continuation != 6 || m.MillisBehind != 42 || m.Count != 1 || !bytes.Equal(m.Frames, frames) {
		t.Fatalf("records: %+v %v", m, err)
	}
	m, buf, err = ReadMessage(r, buf)
	if err != nil || m.Type != MsgEnd || len(m.Children) != 2 || m.Children[1] != 3 {
		t.Fatalf("end: %+v %v", m, err)
	}
	m, buf, err = ReadMessage(r, buf)
	if err != nil || m.Type != MsgError || m.Code != ResourceInUse || m.Message != "another subscription" {
		t.Fatalf("error: %+v %v", m, err)
	}
	if _, _, err = ReadMessage(r, buf); err != io.EOF {
		t.Fatalf("end of stream: %v", err)
	}
	if _, _, err := ReadMessage(bufio.NewReader(bytes.NewReader(stream[:10])), nil); !errors.Is(err, ErrShort) {
		t.Fatalf("cut stream: %v", err)
	}
	huge := le.AppendUint32(nil, MaxMessageSize+1)
	if _, _, err := ReadMessage(bufio.NewReader(bytes.NewReader(append(huge, 1, 0, 0, 0))), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("huge message: %v", err)
	}
}

func TestSubscribeRequestRoundTrip(t *testing.T) {
	in := SubscribeRequest{ConsumerARN: []byte("arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/c:1"), Shard: 2, Start: AfterSequenceNumber, Value: 99}
	got, err := ReadSubscribeRequest(AppendSubscribeRequest(nil, &in))
	if err != nil || !bytes.Equal(got.ConsumerARN, in.ConsumerARN) || got.Shard != 2 || got.Start != AfterSequenceNumber || got.Value != 99 {
		t.Fatalf("%+v %v", got, err)
	}
}

func TestCodes(t *testing.T) {
	for c := OK + 1; c < numCodes; c++ {
		if CodeOf(c.Name()) != c {
			t.Errorf("code %d (%s) does not round-trip", c, c.Name())
		}
	}
	if CodeOf("NoSuchThing") != InternalFailure || Code(999).Name() != "InternalFailure" || Code(999).Status() != 500 || InternalFailure.Status() != 500 {
		t.Fatal("unknown codes must read as InternalFailure")
	}
}

func TestLeadersRoundTrip(t *testing.T) {
	req := AppendLeadersRequest(nil, "orders")
	name, err := ReadLeadersRequest(req)
	if err != nil || string(name) != "orders" {
		t.Fatalf("ReadLeadersRequest = %q, %v", name, err)
	}
	if _, err := ReadLeadersRequest(append(req, 0)); !errors.Is(err, ErrTrailing) {
		t.Fatalf("a request with a trailing byte: %v", err)
	}
	want := []struct {
		shard uint32
		addr  string
	}{{0, "127.0.0.1:4567"}, {7, "[::1]:80"}}
	ans := AppendLeadersHead(nil, len(want))
	for _, w := range want {
		ans = AppendShardLeader(ans, w.shard, w.addr)
	}
	var got []string
	if err := ReadLeaders(ans, func(l ShardLeader) { got = append(got, fmt.Sprint(l.Shard, " ", string(l.Addr))) }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[0 127.0.0.1:4567 7 [::1]:80]" {
		t.Fatalf("entries %v", got)
	}
	for cut := range len(ans) {
		if err := ReadLeaders(ans[:cut], func(ShardLeader) {}); err == nil {
			t.Fatalf("an answer cut to %d of %d bytes decoded", cut, len(ans))
		}
	}
	if err := ReadLeaders(append(ans, 1), func(ShardLeader) {}); !errors.Is(err, ErrTrailing) {
		t.Fatalf("an answer with a trailing byte: %v", err)
	}
	huge := le.AppendUint32(nil, 1<<31)
	if err := ReadLeaders(huge, func(ShardLeader) { t.Fatal("an entry from nothing") }); err == nil {
		t.Fatal("a count larger than the answer decoded")
	}
}
