package multiraft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func testMessages() []*raftpb.Message {
	return []*raftpb.Message{
		{Type: raftpb.MsgHeartbeat.Enum(), To: new(uint64(2)), From: new(uint64(1)), Term: new(uint64(7)), Commit: new(uint64(42))},
		{Type: raftpb.MsgApp.Enum(), To: new(uint64(2)), From: new(uint64(1)), Term: new(uint64(7)), LogTerm: new(uint64(6)), Index: new(uint64(41)),
			Entries: []*raftpb.Entry{{Term: new(uint64(7)), Index: new(uint64(42)), Data: []byte("record")}}, Commit: new(uint64(41))},
		{Type: raftpb.MsgVoteResp.Enum(), To: new(uint64(2)), From: new(uint64(3)), Term: new(uint64(8)), Reject: new(true)},
	}
}

// encodeTestBatch is a batch of testMessages for groups 10, 11, 12, a quiesce record of
// group 10 and a ping from node 1.
func encodeTestBatch(t testing.TB) ([]byte, quiesce) {
	body := []byte{batchVersion}
	var err error
	for i, m := range testMessages() {
		if body, err = appendMessage(body, GroupID(10+i), m); err != nil {
			t.Fatal(err)
		}
	}
	q := quiesce{from: 1, to: 2, term: 7, commit: 42}
	body = appendQuiesce(body, 10, q)
	return appendPing(body, 1), q
}

// TestBatchRoundTrip: what appendMessage, appendQuiesce and appendPing write, decodeBatch
// reads back equal, in order, with the documented byte layout.
func TestBatchRoundTrip(t *testing.T) {
	body, q := encodeTestBatch(t)
	got, err := decodeBatch(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	want := testMessages()
	if len(got) != len(want)+2 {
		t.Fatalf("decoded %d records, want %d", len(got), len(want)+2)
	}
	for i, m := range want {
		if got[i].group != GroupID(10+i) || !proto.Equal(got[i].msg, m) {
			t.Errorf("record %d: group %d %v, want group %d %v", i, got[i].group, got[i].msg, 10+i, m)
		}
	}
	if qr := got[len(want)]; qr.msg != nil || qr.ping || qr.group != 10 || qr.q != q {
		t.Errorf("quiesce record: %+v, want group 10 %+v", qr, q)
	}
	if p := got[len(want)+1]; !p.ping || p.msg != nil || p.group != 0 || p.from() != 1 {
		t.Errorf("ping record: %+v, want a ping from node 1", p)
	}
	// The first record's header, byte by byte.
	if body[0] != 2 || binary.LittleEndian.Uint64(body[1:]) != 10 || body[9] != kindMessage ||
		int(binary.LittleEndian.Uint32(body[10:])) != proto.Size(want[0]) {
		t.Errorf("first record header % x", body[:14])
	}
	// The quiesce record (13+32 bytes), then the ping (13+8 bytes) end the batch.
	tail := body[len(body)-2*recordHeaderLen-quiesceBodyLen-pingBodyLen:]
	wantTail := []byte{10, 0, 0, 0, 0, 0, 0, 0, kindQuiesce, 32, 0, 0, 0}
	for _, v := range []uint64{1, 2, 7, 42} {
		wantTail = binary.LittleEndian.AppendUint64(wantTail, v)
	}
	wantTail = append(wantTail, 0, 0, 0, 0, 0, 0, 0, 0, kindPing, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0)
	if !bytes.Equal(tail, wantTail) {
		t.Errorf("quiesce record\n got % x\nwant % x", tail, wantTail)
	}
}

// TestDecodeBatchRejects: every malformed batch is refused whole with ErrBadBatch, and
// Receive steps nothing of it.
func TestDecodeBatchRejects(t *testing.T) {
	good, _ := encodeTestBatch(t)
	bad := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		body []byte
	}{
		{"empty", nil},
		{"version 0", bad(func(b []byte) []byte { b[0] = 0; return b })},
		{"version 1 (before pings)", bad(func(b []byte) []byte { b[0] = 1; return b })},
		{"version 3", bad(func(b []byte) []byte { b[0] = 3; return b })},
		{"header cut", bad(func(b []byte) []byte { return b[:1+5] })},
		{"body cut", bad(func(b []byte) []byte { return b[:len(b)-1] })},
		{"length past end", bad(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[10:], 1<<31); return b })},
		{"unknown kind", bad(func(b []byte) []byte { b[9] = 9; return b })},
		{"quiesce of the wrong length", bad(func(b []byte) []byte {
			return appendRecordHeader(b, 1, kindQuiesce, 0)
		})},
		{"ping of the wrong length", bad(func(b []byte) []byte {
			return append(appendRecordHeader(b, 0, kindPing, 4), 1, 0, 0, 0)
		})},
		{"ping of a group", bad(func(b []byte) []byte {
			return binary.LittleEndian.AppendUint64(appendRecordHeader(b, 7, kindPing, 8), 1)
		})},
		{"garbage message", bad(func(b []byte) []byte {
			b = appendRecordHeader(b, 1, kindMessage, 3)
			return append(b, 0xff, 0xff, 0xff)
		})},
	}
	h, err := NewHost(Config{NodeID: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []inbound{{group: 99}}
			got, err := decodeBatch(prefix, tt.body)
			if !errors.Is(err, ErrBadBatch) {
				t.Fatalf("decodeBatch: %v, want ErrBadBatch", err)
			}
			if len(got) != 1 || got[0].group != 99 {
				t.Fatalf("decodeBatch appended %d records on error", len(got)-1)
			}
			if err := h.Receive(tt.body); !errors.Is(err, ErrBadBatch) {
				t.Fatalf("Receive: %v, want ErrBadBatch", err)
			}
			t.Log(err)
		})
	}
	if s := h.Stats(); s.MessagesReceived != 0 {
		t.Fatalf("malformed batches delivered %d records", s.MessagesReceived)
	}
}

// TestReceiveUnknownGroup: records for a group the Host does not drive are counted and
// dropped; a ping is counted and never reaches the loop.
func TestReceiveUnknownGroup(t *testing.T) {
	h, err := NewHost(Config{NodeID: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	body, _ := encodeTestBatch(t)
	if err := h.Receive(body); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the loop to drop the records", func() bool { return h.Stats().UnknownGroup == 4 })
	if s := h.Stats(); s.MessagesReceived != 5 || s.PingsReceived != 1 || s.StepErrors != 0 {
		t.Fatalf("stats %+v", s)
	}
}
