package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/internal/faultfs"
	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/stream"
)

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestInternalFailureHidesCause: a storage failure reaches the client as InternalFailure
// with its request id and nothing of the cause (a file path, a system error), on the Kinesis
// API and the native protocol; the server's log has the cause under the same request id.
func TestInternalFailureHidesCause(t *testing.T) {
	ffs := faultfs.New()
	var logs syncBuffer
	env := startNativeWith(t, stream.Options{FS: ffs}, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}, 1)
	env.api(t, "PutRecord", `{"StreamName":"s","PartitionKey":"k","Data":"YQ=="}`) // opens the segment
	ffs.FailWrites(syscall.EIO)
	defer ffs.FailWrites(nil)
	dir := env.dir

	call := func(op, body string) (int, string, string) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + env.addr + "/")
		req.Header.SetMethod("POST")
		req.Header.Set("X-Amz-Target", targetPrefix+op)
		req.Header.SetContentType(jsonContentType)
		req.SetBodyString(body)
		if err := env.c.DoTimeout(req, resp, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode(), string(resp.Body()), string(resp.Header.Peek("x-amzn-RequestId"))
	}
	leaks := func(what, text string) {
		t.Helper()
		for _, bad := range []string{dir, "shard-", ".seg", "input/output", "segment:"} {
			if strings.Contains(text, bad) {
				t.Fatalf("%s tells the client %q: %s", what, bad, text)
			}
		}
	}

	status, body, id := call("PutRecord", `{"StreamName":"s","PartitionKey":"k","Data":"YQ=="}`)
	var e struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || status != 500 || e.Type != "InternalFailure" {
		t.Fatalf("PutRecord on a failed disk: %d %s", status, body)
	}
	leaks("PutRecord", body)
	if id == "" || !strings.Contains(e.Message, id) {
		t.Fatalf("the message %q does not carry the request id %q", e.Message, id)
	}
	if l := logs.String(); !strings.Contains(l, id) || !strings.Contains(l, "input/output") {
		t.Fatalf("the log does not hold the cause under request id %s:\n%s", id, l)
	}

	// PutRecords reports the failure per record, without the cause.
	status, body, _ = call("PutRecords", `{"StreamName":"s","Records":[{"PartitionKey":"k","Data":"YQ=="}]}`)
	if status != 200 || !strings.Contains(body, `"ErrorCode":"InternalFailure"`) {
		t.Fatalf("PutRecords on a failed disk: %d %s", status, body)
	}
	leaks("PutRecords", body)

	// The native put answers per record with the InternalFailure code.
	ans := env.put(t, "s", []wire.PutRecord{{Key: []byte("k"), Data: []byte("a")}})
	if ans.Failed != 1 || ans.Result(0).Code != wire.InternalFailure {
		t.Fatalf("native put on a failed disk: %d failed, code %v", ans.Failed, ans.Result(0).Code)
	}
}
