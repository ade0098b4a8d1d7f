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

// encodeTestBatch is a batch of testMessages for groups 10, 11, 12 and a quiesce record
// of group 10.
func encodeTestBatch(t testing.TB) ([]byte, quiesce) {
	body := []byte{batchVersion}
	var err error
	for i, m := range testMessages() {
		if body, err = appendMessage(body, GroupID(10+i), m); err != nil {
			t.Fatal(err)
		}
	}
	q := quiesce{from: 1, to: 2, term: 7, commit: 42}
	return appendQuiesce(body, 10, q), q
}

// TestBatchRoundTrip: what appendMessage and appendQuiesce write, decodeBatch reads back
// equal, in order, with the documented byte layout.
func TestBatchRoundTrip(t *testing.T) {
	body, q := encodeTestBatch(t)
	got, err := decodeBatch(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	want := testMessages()
	if len(got) != len(want)+1 {
		t.Fatalf("decoded %d records, want %d", len(got), len(want)+1)
	}
	for i, m := range want {
		if got[i].group != GroupID(10+i) || !proto.Equal(got[i].msg, m) {
			t.Errorf("record %d: group %d %v, want group %d %v", i, got[i].group, got[i].msg, 10+i, m)
		}
	}
	last := got[len(want)]
	if last.msg != nil || last.group != 10 || last.q != q {
		t.Errorf("quiesce record: %+v, want group 10 %+v", last, q)
	}
	// The first record's header, byte by byte.
	if body[0] != 1 || binary.LittleEndian.Uint64(body[1:]) != 10 || body[9] != kindMessage ||
		int(binary.LittleEndian.Uint32(body[10:])) != proto.Size(want[0]) {
		t.Errorf("first record header % x", body[:14])
	}
	// The quiesce record is the last 13+32 bytes.
	tail := body[len(body)-recordHeaderLen-quiesceBodyLen:]
	wantTail := []byte{10, 0, 0, 0, 0, 0, 0, 0, kindQuiesce, 32, 0, 0, 0}
	for _, v := range []uint64{1, 2, 7, 42} {
		wantTail = binary.LittleEndian.AppendUint64(wantTail, v)
	}
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
		{"version 2", bad(func(b []byte) []byte { b[0] = 2; return b })},
		{"header cut", bad(func(b []byte) []byte { return b[:1+5] })},
		{"body cut", bad(func(b []byte) []byte { return b[:len(b)-1] })},
		{"length past end", bad(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[10:], 1<<31); return b })},
		{"unknown kind", bad(func(b []byte) []byte { b[9] = 9; return b })},
		{"quiesce of the wrong length", bad(func(b []byte) []byte {
			return appendRecordHeader(b, 1, kindQuiesce, 0)
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
// dropped.
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
	if s := h.Stats(); s.MessagesReceived != 4 || s.StepErrors != 0 {
		t.Fatalf("stats %+v", s)
	}
}
