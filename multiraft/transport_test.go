package multiraft

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestOutboxTake: a peer's queue takes the longest prefix of whole records that keeps its
// body (with the version byte) within the bound; the records that do not fit are returned
// to be reported lost, and the queue's offsets stay those of its own buffer.
func TestOutboxTake(t *testing.T) {
	var o outbox
	for g := range GroupID(4) {
		o.buf = appendQuiesce(o.buf, g, quiesce{from: 1, to: 2, term: 3, commit: uint64(g)})
		o.recs = append(o.recs, record{end: len(o.buf), group: g, snap: g == 3})
	}
	const recLen = recordHeaderLen + quiesceBodyLen
	var q outbox
	q.buf = appendQuiesce(q.buf, 9, quiesce{})
	q.recs = append(q.recs, record{end: len(q.buf), group: 9})

	// Room for the queued record, the version byte and two more.
	dropped := o.take(&q, 1+3*recLen)
	if len(dropped) != 2 || dropped[0].group != 2 || dropped[1].group != 3 || !dropped[1].snap {
		t.Fatalf("dropped %+v, want groups 2 and 3 (3 a snapshot)", dropped)
	}
	if len(q.recs) != 3 || q.recs[1].group != 0 || q.recs[2].group != 1 || q.recs[2].end != 3*recLen || len(q.buf) != 3*recLen {
		t.Fatalf("queue %+v, %d bytes", q.recs, len(q.buf))
	}
	if !bytes.Equal(q.buf[recLen:], o.buf[:2*recLen]) {
		t.Fatal("the queue's bytes are not the outbox's first two records")
	}
	recs, err := decodeBatch(nil, append([]byte{batchVersion}, q.buf...))
	if err != nil || len(recs) != 3 || recs[2].q.commit != 1 {
		t.Fatalf("decoding the queue: %v %+v", err, recs)
	}
	// Full: nothing more fits.
	if dropped := o.take(&q, 1+3*recLen); len(dropped) != 4 {
		t.Fatalf("a full queue took %d records", 4-len(dropped))
	}
}

// TestHandlerAnswers: the HTTP side of Receive: 204 for a batch, 400 for a malformed one,
// 413 past MaxBatchBytes, 405 for anything but POST, 503 once the Host is closed.
func TestHandlerAnswers(t *testing.T) {
	h, err := NewHost(Config{NodeID: 2, MaxBatchBytes: 1024})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()
	good, _ := encodeTestBatch(t)
	post := func(body []byte) int {
		t.Helper()
		resp, err := http.Post(srv.URL+RaftPath, ContentType, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(good); got != http.StatusNoContent {
		t.Errorf("a batch: status %d", got)
	}
	if got := post([]byte{7}); got != http.StatusBadRequest {
		t.Errorf("a malformed batch: status %d", got)
	}
	if got := post(make([]byte, 2048)); got != http.StatusRequestEntityTooLarge {
		t.Errorf("an oversized body: status %d", got)
	}
	resp, err := http.Get(srv.URL + RaftPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d", resp.StatusCode)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := post(good); got != http.StatusServiceUnavailable {
		t.Errorf("after Close: status %d", got)
	}
}
