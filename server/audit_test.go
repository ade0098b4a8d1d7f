package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/sluice-streams/sluice/audit"
	"github.com/sluice-streams/sluice/server/wire"
)

// auditServer starts a server verifying and authorising with authzUsers that audits to a
// new log of files of at most maxBytes; data says whether data-plane calls are logged.
func auditServer(t *testing.T, data bool, maxBytes int64) (*h2Server, *audit.Writer, string) {
	t.Helper()
	users, err := ParseIAM([]byte(authzUsers), testAccount)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	w, err := audit.Open(dir, audit.Options{MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	hs := startH2Server(t, Options{Authenticator: NewSigV4Verifier(testAccount, "us-east-1", users), Audit: w, AuditData: data})
	return hs, w, dir
}

// auditLine is what the tests read of a line.
type auditLine struct {
	EventName    string
	EventTime    string
	EventSource  string
	EventType    string
	UserIdentity struct {
		Type, AccountID, AccessKeyID, ARN, UserName string
	}
	RequestParameters  map[string]any
	ResponseElements   map[string]any
	ErrorCode          string
	ErrorMessage       string
	RequestID          string
	EventID            string
	ReadOnly           bool
	Resources          []struct{ ARN, Type string }
	RecipientAccountID string
	EventCategory      string
}

// readAudit stops the server, closes the log, checks it with audit.Verify and returns its
// lines, raw and decoded.
func readAudit(t *testing.T, hs *h2Server, w *audit.Writer, dir string) ([]byte, []auditLine) {
	t.Helper()
	hs.stop()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sum, err := audit.Verify(dir)
	if err != nil {
		t.Fatalf("Verify of the server's log: %v", err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
	var raw []byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b...)
	}
	var out []auditLine
	for l := range bytes.Lines(raw) {
		var a auditLine
		if err := json.Unmarshal(l, &a); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	if len(out) != sum.Lines || sum.Files != len(names) {
		t.Fatalf("Verify counted %+v; the files hold %d lines in %d files", sum, len(out), len(names))
	}
	return raw, out
}

func find(lines []auditLine, name string) []auditLine {
	var out []auditLine
	for _, l := range lines {
		if l.EventName == name {
			out = append(out, l)
		}
	}
	return out
}

// TestAuditControlAndData: through the real server, a created stream, a denied call, an
// authentication failure, PutRecord over the JSON API and a native put each leave one line
// with the caller, the outcome and the resource; no line holds record data or a secret key;
// the log verifies.
func TestAuditControlAndData(t *testing.T) {
	hs, w, dir := auditServer(t, true, 4<<10)
	admin := as(hs, "admin")
	createAB(t, admin)
	mustOK(t, "PutRecord", put(admin, ctx(t), "a", "payload-never-logged"))
	_, err := as(hs, "denier").DeleteStream(ctx(t), &kinesis.DeleteStreamInput{StreamName: aws.String("a")})
	wantDenied(t, "denier DeleteStream", err)
	bad := signingClient(hs.addr, "AKadmin", "wrong-secret", h2cClient().Transport)
	if _, err := bad.ListStreams(ctx(t), &kinesis.ListStreamsInput{}); errorCode(err) != "InvalidSignatureException" {
		t.Fatalf("ListStreams with a wrong secret: %v", err)
	}
	body := putBody("a", []wire.PutRecord{{Key: []byte("k"), Data: []byte("native-payload-never-logged")}})
	if resp := signedPost(t, hs.addr, "writer", wire.PathPut, "", body); resp.StatusCode != 200 {
		t.Fatalf("native put: %d", resp.StatusCode)
	}
	raw, lines := readAudit(t, hs, w, dir)

	for _, secret := range []string{"payload-never-logged", base64.StdEncoding.EncodeToString([]byte("payload-never-logged")), "s-admin", "wrong-secret", "Signature="} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatalf("the audit log holds %q", secret)
		}
	}
	for _, l := range lines {
		if l.EventSource != "kinesis.amazonaws.com" || l.EventType != "AwsApiCall" || l.RequestID == "" || len(l.EventID) != 36 ||
			l.RecipientAccountID != testAccount || l.EventTime == "" {
			t.Fatalf("line %+v lacks a member every line has", l)
		}
	}
	created := find(lines, "CreateStream")
	if len(created) != 2 {
		t.Fatalf("%d CreateStream lines, want 2", len(created))
	}
	c := created[0]
	if c.UserIdentity.Type != "IAMUser" || c.UserIdentity.UserName != "admin" || c.UserIdentity.AccessKeyID != "AKadmin" ||
		c.UserIdentity.AccountID != testAccount || c.ReadOnly || c.EventCategory != "Management" ||
		c.RequestParameters["streamName"] != "a" || c.ResponseElements["streamARN"] != streamARNA ||
		len(c.Resources) != 1 || c.Resources[0].ARN != streamARNA || c.Resources[0].Type != "AWS::Kinesis::Stream" {
		t.Fatalf("CreateStream line: %+v", c)
	}
	d := find(lines, "DeleteStream")
	if len(d) != 1 || d[0].ErrorCode != "AccessDeniedException" || !strings.Contains(d[0].ErrorMessage, "denier") ||
		d[0].UserIdentity.UserName != "denier" || d[0].ResponseElements != nil {
		t.Fatalf("denied DeleteStream: %+v", d)
	}
	l := find(lines, "ListStreams")
	if len(l) != 1 || l[0].ErrorCode != "InvalidSignatureException" || l[0].UserIdentity.Type != "Unknown" || l[0].UserIdentity.AccessKeyID != "AKadmin" {
		t.Fatalf("ListStreams with a wrong secret: %+v", l)
	}
	p := find(lines, "PutRecord")
	if len(p) != 1 || p[0].EventCategory != "Data" || p[0].RequestParameters["partitionKey"] != "k" ||
		p[0].RequestParameters["data"] != nil || p[0].ResponseElements["sequenceNumber"] == nil {
		t.Fatalf("PutRecord line: %+v", p)
	}
	n := find(lines, "NativePut")
	if len(n) != 1 || n[0].UserIdentity.UserName != "writer" || n[0].RequestParameters["recordCount"] != 1.0 || n[0].ErrorCode != "" {
		t.Fatalf("native put line: %+v", n)
	}
}

// TestAuditDataOff: without AuditData, control-plane calls are logged and data-plane calls
// are not.
func TestAuditDataOff(t *testing.T) {
	hs, w, dir := auditServer(t, false, 0)
	admin := as(hs, "admin")
	createAB(t, admin)
	mustOK(t, "PutRecord", put(admin, ctx(t), "a", "x"))
	if n := len(recordsIn(t, admin, "a")); n != 1 {
		t.Fatalf("%d records", n)
	}
	_, lines := readAudit(t, hs, w, dir)
	var names []string
	for _, l := range lines {
		names = append(names, l.EventName)
	}
	if strings.Join(names, ",") != "CreateStream,CreateStream" {
		t.Fatalf("lines of %v, want the two CreateStream only", names)
	}
}

// TestAuditTamperServerLog: a log the server wrote, edited or cut, fails Verify at the
// place of the change.
func TestAuditTamperServerLog(t *testing.T) {
	hs, w, dir := auditServer(t, true, 0)
	admin := as(hs, "admin")
	createAB(t, admin)
	for range 3 {
		mustOK(t, "PutRecord", put(admin, ctx(t), "a", "x"))
	}
	readAudit(t, hs, w, dir)
	names, _ := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
	if len(names) != 1 {
		t.Fatalf("%d files", len(names))
	}
	b, _ := os.ReadFile(names[0])
	edited := bytes.Replace(b, []byte(`"streamName":"b"`), []byte(`"streamName":"c"`), 1)
	if bytes.Equal(edited, b) {
		t.Fatal("no streamName b in the log")
	}
	os.WriteFile(names[0], edited, 0o600)
	_, err := audit.Verify(dir)
	var dmg *audit.Damage
	if !errors.As(err, &dmg) || dmg.Line != 2 || !strings.Contains(dmg.Reason, "edited") {
		t.Fatalf("Verify of an edited second line: %v", err)
	}
}

// TestAuditUnloggedCallFails: a call whose line cannot be logged (here the log is closed) is
// answered with an InternalFailure, not with its result.
func TestAuditUnloggedCallFails(t *testing.T) {
	hs, w, _ := auditServer(t, true, 0)
	w.Close()
	resp := signedPost(t, hs.addr, "admin", "/", "CreateStream", []byte(`{"StreamName":"a","ShardCount":1}`))
	if resp.StatusCode != 500 || resp.Header.Get("X-Amzn-ErrorType") != "InternalFailure" || resp.Header.Get("x-amzn-RequestId") == "" {
		t.Fatalf("CreateStream with the log closed: %d %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
	}
	body := putBody("a", []wire.PutRecord{{Key: []byte("k"), Data: []byte("x")}})
	if resp := signedPost(t, hs.addr, "admin", wire.PathPut, "", body); resp.StatusCode != 500 || resp.Header.Get(wire.HeaderError) != "InternalFailure" {
		t.Fatalf("native put with the log closed: %d %s", resp.StatusCode, resp.Header.Get(wire.HeaderError))
	}
}
