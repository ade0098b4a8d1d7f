package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/sys/unix"

	"github.com/sluice-streams/sluice/internal/faultfs"
	"github.com/sluice-streams/sluice/segment"
	"github.com/sluice-streams/sluice/stream"
)

// fullDisk is the disk of TestDiskFullThroughServer: a real 48 MiB tmpfs the test fills with
// records and a filler file, or, where mounting is refused, the fault-injecting file layer
// switched to ENOSPC.
type fullDisk struct {
	dir   string      // the mount point; the engine's data is in dir/data
	ffs   *faultfs.FS // nil on a real file system
	files []string    // filler files on the real one
}

const fullDiskSize = 48 << 20

func newFullDisk(t *testing.T) *fullDisk {
	d := &fullDisk{dir: t.TempDir()}
	if err := unix.Mount("tmpfs", d.dir, "tmpfs", 0, fmt.Sprintf("size=%d", fullDiskSize)); err != nil {
		t.Logf("mounting a tmpfs was refused (%v): the full disk is the fault-injecting file layer (internal/faultfs) instead", err)
		d.ffs = faultfs.New()
		return d
	}
	t.Cleanup(func() {
		if err := unix.Unmount(d.dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount the tmpfs: %v", err)
		}
	})
	t.Logf("a %d MiB tmpfs mounted on the data directory", fullDiskSize>>20)
	return d
}

// fill takes up room with a filler file: n bytes, or all there is when n is 0. With the
// fault layer, n == 0 turns ENOSPC on and anything else does nothing.
func (d *fullDisk) fill(t *testing.T, n int64) {
	if d.ffs != nil {
		if n == 0 {
			d.ffs.SetNoSpace(true)
		}
		return
	}
	name := filepath.Join(d.dir, fmt.Sprintf("filler-%d", len(d.files)))
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d.files = append(d.files, name)
	chunk := make([]byte, 1<<20)
	for written := int64(0); n == 0 || written < n; written += int64(len(chunk)) {
		if _, err := f.Write(chunk); err != nil {
			if n == 0 && errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatalf("filler: %v", err)
		}
	}
}

// full is called before each batch of a test that writes records until the disk is full:
// a real disk fills by itself; the fault layer is turned full after a few batches.
func (d *fullDisk) full(t *testing.T, batches int) {
	if d.ffs != nil && batches == 3 {
		d.fill(t, 0)
	}
}

// free frees the room the filler files took (with the fault layer, turns ENOSPC off).
func (d *fullDisk) free(t *testing.T) {
	if d.ffs != nil {
		d.ffs.SetNoSpace(false)
		return
	}
	for _, name := range d.files {
		if err := os.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	d.files = nil
}

// fullServer is an engine and a server on the full disk's data directory.
type fullServer struct {
	eng    *stream.Engine
	srv    *Server
	c      *fasthttp.HostClient
	served chan struct{}
}

func startFullServer(t *testing.T, d *fullDisk, logs *syncBuffer) *fullServer {
	t.Helper()
	log := slog.New(slog.NewTextHandler(logs, nil))
	opts := stream.Options{Dir: filepath.Join(d.dir, "data"), Logger: log,
		Durability: segment.Durability{Mode: segment.Sync}, Limits: stream.Limits{Off: true}}
	if d.ffs != nil {
		opts.FS = d.ffs
	}
	eng, err := stream.Open(opts)
	if err != nil {
		t.Fatalf("open the engine: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fullServer{eng: eng, srv: New(eng, Options{Logger: log}), served: make(chan struct{}),
		c: &fasthttp.HostClient{Addr: ln.Addr().String(), MaxResponseBodySize: 64 << 20}}
	go func() {
		s.srv.Serve(ln)
		close(s.served)
	}()
	return s
}

// stop shuts the server down and closes the engine; on a full disk Close may fail to store
// the clean-shutdown mark, which costs the next open a scan and nothing else.
func (s *fullServer) stop(t *testing.T) {
	s.srv.Shutdown()
	<-s.served
	if err := s.eng.Close(); err != nil {
		t.Logf("engine closed on a full disk: %v", err)
	}
}

// call sends one Kinesis JSON request, waiting at most bound for the answer.
func (s *fullServer) call(t *testing.T, op string, in any, bound time.Duration) (int, []byte) {
	t.Helper()
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI("http://" + s.c.Addr + "/")
	req.Header.SetMethod("POST")
	req.Header.Set("X-Amz-Target", targetPrefix+op)
	req.Header.SetContentType(jsonContentType)
	req.SetBody(body)
	if err := s.c.DoTimeout(req, resp, bound); err != nil {
		t.Fatalf("%s: no answer within %v: %v", op, bound, err)
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...)
}

type fullRecord struct {
	PartitionKey string
	Data         []byte
}

// acked is every record the server acknowledged, by sequence number.
type ackedRecords map[string][]byte

// putRecords sends a PutRecords call and records what it acknowledged; it returns the
// per-record errors (code: message).
func (s *fullServer) putRecords(t *testing.T, acked ackedRecords, recs []fullRecord) []string {
	t.Helper()
	return s.putRecordsWithin(t, acked, recs, 30*time.Second)
}

// putRecordsWithin is putRecords with the answer due within bound.
func (s *fullServer) putRecordsWithin(t *testing.T, acked ackedRecords, recs []fullRecord, bound time.Duration) []string {
	t.Helper()
	status, body := s.call(t, "PutRecords", map[string]any{"StreamName": "s", "Records": recs}, bound)
	if status != 200 {
		t.Fatalf("PutRecords: %d %s", status, body)
	}
	var out struct {
		FailedRecordCount int
		Records           []struct{ SequenceNumber, ErrorCode, ErrorMessage string }
	}
	if err := json.Unmarshal(body, &out); err != nil || len(out.Records) != len(recs) {
		t.Fatalf("PutRecords answer %s: %v", body, err)
	}
	var errs []string
	for i, r := range out.Records {
		if r.ErrorCode != "" {
			errs = append(errs, r.ErrorCode+": "+r.ErrorMessage)
			continue
		}
		acked[r.SequenceNumber] = recs[i].Data
	}
	return errs
}

// readAll reads the shard from its start and checks that every acknowledged record is there
// with its bytes.
func (s *fullServer) readAll(t *testing.T, acked ackedRecords) {
	t.Helper()
	status, body := s.call(t, "GetShardIterator", map[string]string{"StreamName": "s", "ShardId": "shardId-000000000000",
		"ShardIteratorType": "TRIM_HORIZON"}, 30*time.Second)
	if status != 200 {
		t.Fatalf("GetShardIterator: %d %s", status, body)
	}
	var it struct{ ShardIterator string }
	json.Unmarshal(body, &it)
	got := map[string][]byte{}
	for next := it.ShardIterator; next != ""; {
		status, body := s.call(t, "GetRecords", map[string]string{"ShardIterator": next}, 30*time.Second)
		if status != 200 {
			t.Fatalf("GetRecords: %d %s", status, body)
		}
		var out struct {
			Records []struct {
				SequenceNumber string
				Data           []byte
			}
			NextShardIterator  string
			MillisBehindLatest int64
		}
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		for _, r := range out.Records {
			got[r.SequenceNumber] = r.Data
		}
		if len(out.Records) == 0 && out.MillisBehindLatest == 0 {
			break
		}
		next = out.NextShardIterator
	}
	for seq, data := range acked {
		g, ok := got[seq]
		if !ok {
			t.Fatalf("acknowledged record %s was not read back (%d acknowledged, %d read)", seq, len(acked), len(got))
		}
		if !bytes.Equal(g, data) {
			t.Fatalf("acknowledged record %s came back with other bytes", seq)
		}
	}
}

// TestDiskFullThroughServer fills the disk under a running server: writes get
// InternalFailure saying the storage is full (PutRecord and PutRecords alike), with no
// file path, within a second; reads keep working; the episode is logged once; writes
// resume once space is freed, without a restart; a restart on a full disk comes up and
// serves reads; and every acknowledged record is read back at the end.
func TestDiskFullThroughServer(t *testing.T) {
	d := newFullDisk(t)
	var logs syncBuffer
	s := startFullServer(t, d, &logs)
	if err := s.eng.CreateStream(stream.CreateStreamInput{Name: "s", ShardCount: 1}); err != nil {
		t.Fatal(err)
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	record := func(n int) fullRecord {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		return fullRecord{PartitionKey: fmt.Sprintf("k%d", rng.Uint32()), Data: data}
	}
	acked := ackedRecords{}
	leaks := func(what, text string) {
		t.Helper()
		for _, bad := range []string{d.dir, ".seg", "log.meta", "no space left", "segment:"} {
			if strings.Contains(text, bad) {
				t.Fatalf("%s tells the client %q: %s", what, bad, text)
			}
		}
	}

	// putUntilFull puts batches until the disk refuses records, and checks what PutRecords
	// says of them.
	putUntilFull := func() {
		t.Helper()
		var errs []string
		for batches := 0; len(errs) == 0; batches++ {
			if batches == 100 {
				t.Fatalf("%d batches of records fit on a %d MiB disk", batches, fullDiskSize>>20)
			}
			d.full(t, batches)
			batch := make([]fullRecord, 200)
			for i := range batch {
				batch[i] = record(8 << 10)
			}
			errs = s.putRecords(t, acked, batch)
		}
		// The active segment may still have room for smaller batches: fill it with
		// 512 KiB records, the size checkFull writes.
		for len(s.putRecords(t, acked, []fullRecord{record(512 << 10)})) == 0 {
		}
		t.Logf("disk full with %d acknowledged records", len(acked))
		for _, e := range errs {
			if !strings.HasPrefix(e, "InternalFailure: ") || !strings.Contains(e, "storage is full") {
				t.Fatalf("PutRecords on a full disk: per-record error %q, want InternalFailure saying the storage is full", e)
			}
			leaks("PutRecords", e)
		}
	}
	// Leave 16 MiB for records, then put batches until the disk is full.
	d.fill(t, fullDiskSize-16<<20)
	putUntilFull()

	// A PutRecord too large for any room left answers 500 InternalFailure, the error every
	// SDK retries, within the bound (a hang fails the call).
	checkFull := func() {
		t.Helper()
		for range 3 {
			r := record(512 << 10)
			status, body := s.call(t, "PutRecord", map[string]any{"StreamName": "s", "PartitionKey": r.PartitionKey, "Data": r.Data}, time.Second)
			var e struct {
				Type    string `json:"__type"`
				Message string `json:"message"`
			}
			json.Unmarshal(body, &e)
			if status != 500 || e.Type != "InternalFailure" || !strings.Contains(e.Message, "storage is full") || !strings.Contains(e.Message, "Request id") {
				t.Fatalf("PutRecord on a full disk: %d %s", status, body)
			}
			leaks("PutRecord", string(body))
		}
		if errs := s.putRecordsWithin(t, acked, []fullRecord{record(512 << 10)}, time.Second); len(errs) != 1 {
			t.Fatalf("PutRecords of a 512 KiB record on a full disk was acknowledged")
		}
	}
	checkFull()
	s.readAll(t, acked)

	// Free the room and measure how soon a write goes through again.
	d.free(t)
	freed := time.Now()
	for {
		if errs := s.putRecords(t, acked, []fullRecord{record(512 << 10)}); len(errs) == 0 {
			break
		}
		if time.Since(freed) > 5*time.Second {
			t.Fatal("writes did not resume within 5 s of freeing space")
		}
	}
	t.Logf("writes resumed %v after space was freed", time.Since(freed))
	for range 5 {
		if errs := s.putRecords(t, acked, []fullRecord{record(8 << 10), record(8 << 10)}); len(errs) != 0 {
			t.Fatalf("PutRecords after space was freed: %v", errs)
		}
	}
	l := logs.String()
	if n := strings.Count(l, `msg="disk full`); n != 1 {
		t.Fatalf("the full disk was logged %d times, want once:\n%s", n, l)
	}
	if n := strings.Count(l, "appends resumed"); n != 1 || !strings.Contains(l, "shard=shardId-000000000000") {
		t.Fatalf("the recovery was logged %d times, want once, with the shard:\n%s", n, l)
	}
	if strings.Contains(l, "request failed") {
		t.Fatalf("each refusal was logged:\n%s", l)
	}

	// Fill the disk up again and restart on it: the server comes up and serves every record.
	d.fill(t, 0)
	putUntilFull()
	checkFull()
	s.stop(t)
	s = startFullServer(t, d, &logs)
	s.readAll(t, acked)
	checkFull()
	d.free(t)
	freed = time.Now()
	for {
		if errs := s.putRecords(t, acked, []fullRecord{record(512 << 10)}); len(errs) == 0 {
			break
		}
		if time.Since(freed) > 5*time.Second {
			t.Fatal("writes did not resume within 5 s of freeing space after a restart")
		}
	}
	s.stop(t)
	s = startFullServer(t, d, &logs)
	defer s.stop(t)
	s.readAll(t, acked)
	t.Logf("%d acknowledged records read back", len(acked))
}
