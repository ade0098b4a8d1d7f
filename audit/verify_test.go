package audit

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// writeLog writes n events to a new log in a temporary directory, files of at most
// maxBytes, and returns the directory.
func writeLog(t *testing.T, n int, maxBytes int64) string {
	t.Helper()
	dir := t.TempDir()
	w, err := Open(dir, Options{MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		ev := Event{Name: "CreateStream", RequestID: "req-" + strconv.Itoa(i), Management: true,
			RequestParameters: []byte(`{"streamName":"s` + strconv.Itoa(i) + `"}`)}
		if err := w.Log(&ev, i%2 == 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// files returns the paths of the log's files in order.
func files(t *testing.T, dir string) []string {
	t.Helper()
	names, _, err := listFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range names {
		names[i] = filepath.Join(dir, names[i])
	}
	return names
}

func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.SplitAfter(b, []byte("\n"))[:bytes.Count(b, []byte("\n"))]
}

func writeLines(t *testing.T, path string, lines [][]byte) {
	t.Helper()
	if err := os.WriteFile(path, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyIntact(t *testing.T) {
	dir := writeLog(t, 50, 4<<10)
	sum, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Lines != 50 || sum.Files < 3 || sum.Files != len(files(t, dir)) || sum.FirstTime == "" || len(sum.Head) != 64 {
		t.Fatalf("summary %+v", sum)
	}
	// A reopened log continues the chain in a new file.
	w, err := Open(dir, Options{MaxBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Log(&Event{Name: "DeleteStream"}, true); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if sum2, err := Verify(dir); err != nil || sum2.Lines != 51 || sum2.Files != sum.Files+1 {
		t.Fatalf("after reopening: %+v, %v", sum2, err)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, fs []string)
		file   int // index of the file named
		line   int // line named; 0 for the file as a whole
		reason string
	}{
		{"edit a byte", func(t *testing.T, fs []string) {
			ls := readLines(t, fs[1])
			ls[2] = bytes.Replace(ls[2], []byte(`"streamName":"s`), []byte(`"streamName":"x`), 1)
			writeLines(t, fs[1], ls)
		}, 1, 3, "edited"},
		{"edit the chain member", func(t *testing.T, fs []string) {
			ls := readLines(t, fs[1])
			i := bytes.Index(ls[2], []byte(`Sha256":"`)) + 9
			ls[2][i] ^= 1
			writeLines(t, fs[1], ls)
		}, 1, 3, "edited"},
		{"edit the sequence", func(t *testing.T, fs []string) {
			ls := readLines(t, fs[1])
			ls[2] = bytes.Replace(ls[2], []byte(`"sequence":`), []byte(`"sequence":9`), 1)
			writeLines(t, fs[1], ls)
		}, 1, 3, "edited"},
		{"delete a line", func(t *testing.T, fs []string) {
			ls := readLines(t, fs[1])
			writeLines(t, fs[1], append(ls[:2:2], ls[3:]...))
		}, 1, 3, "missing"},
		{"swap two lines", func(t *testing.T, fs []string) {
			ls := readLines(t, fs[1])
			ls[2], ls[3] = ls[3], ls[2]
			writeLines(t, fs[1], ls)
		}, 1, 3, "out of order"},
		{"delete a middle file", func(t *testing.T, fs []string) {
			if err := os.Remove(fs[1]); err != nil {
				t.Fatal(err)
			}
		}, 2, 0, "missing before this file"},
		{"swap two files", func(t *testing.T, fs []string) {
			tmp := fs[1] + ".tmp"
			for _, mv := range [][2]string{{fs[1], tmp}, {fs[2], fs[1]}, {tmp, fs[2]}} {
				if err := os.Rename(mv[0], mv[1]); err != nil {
					t.Fatal(err)
				}
			}
		}, 1, 1, "renamed or reordered"},
		{"truncate the last line", func(t *testing.T, fs []string) {
			last := fs[len(fs)-1]
			st, _ := os.Stat(last)
			if err := os.Truncate(last, st.Size()-7); err != nil {
				t.Fatal(err)
			}
		}, -1, -1, "cut short"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeLog(t, 60, 4<<10)
			fs := files(t, dir)
			if len(fs) < 4 {
				t.Fatalf("%d files; the cases need 4", len(fs))
			}
			tc.tamper(t, fs)
			_, err := Verify(dir)
			var d *Damage
			if !errors.As(err, &d) {
				t.Fatalf("Verify = %v, want a *Damage", err)
			}
			file, line := tc.file, tc.line
			if file < 0 {
				file, line = len(fs)-1, len(readLines(t, fs[len(fs)-1]))+1
			}
			if d.File != filepath.Base(fs[file]) || d.Line != line || !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("Verify = %v, want %s:%d: …%s…", d, filepath.Base(fs[file]), line, tc.reason)
			}
		})
	}
}

func TestOpenCutsTornTail(t *testing.T) {
	dir := writeLog(t, 5, 0)
	fs := files(t, dir)
	f, err := os.OpenFile(fs[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"previousLineSha256":"00`) // a write cut by a crash
	f.Close()
	if _, err := Verify(dir); err == nil {
		t.Fatal("Verify accepted a torn last line")
	}
	w, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Log(&Event{Name: "DeleteStream"}, true); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if sum, err := Verify(dir); err != nil || sum.Lines != 6 {
		t.Fatalf("after Open: %+v, %v", sum, err)
	}
}

func TestLineFormat(t *testing.T) {
	dir := writeLog(t, 2, 0)
	ls := readLines(t, files(t, dir)[0])
	want := []string{`{"previousLineSha256":"` + strings.Repeat("0", 64) + `","sequence":1,"eventVersion":"1.11","userIdentity":{"type":""},"eventTime":"`,
		`","eventSource":"kinesis.amazonaws.com","eventName":"CreateStream","awsRegion":"","sourceIPAddress":"","userAgent":"","requestParameters":{"streamName":"s0"},"responseElements":null,"requestID":"req-0","eventID":"`,
		`","readOnly":false,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"","eventCategory":"Management"}` + "\n"}
	rest := string(ls[0])
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("line %s lacks %s", ls[0], w)
		}
		rest = rest[i+len(w):]
	}
}

func TestLogAfterClose(t *testing.T) {
	w, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := w.Log(&Event{}, true); !errors.Is(err, ErrClosed) {
		t.Fatalf("Log after Close = %v", err)
	}
}

// TestAnchorGuardsTheEnd edits, removes and cuts the end of a log, which the chain alone
// cannot see: Verify names the place, and a writer refuses to continue such a log.
func TestAnchorGuardsTheEnd(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string, fs []string)
		file   string // "" for the last file
		line   int    // -1 for the last line of the last file
		reason string
	}{
		{"edit the last line", func(t *testing.T, dir string, fs []string) {
			last := fs[len(fs)-1]
			ls := readLines(t, last)
			ls[len(ls)-1] = bytes.Replace(ls[len(ls)-1], []byte(`"streamName":"s`), []byte(`"streamName":"x`), 1)
			writeLines(t, last, ls)
		}, "", -1, "edited"},
		{"remove the last line", func(t *testing.T, dir string, fs []string) {
			last := fs[len(fs)-1]
			ls := readLines(t, last)
			writeLines(t, last, ls[:len(ls)-1])
		}, "", 0, "missing at the end"},
		{"remove the last file", func(t *testing.T, dir string, fs []string) {
			if err := os.Remove(fs[len(fs)-1]); err != nil {
				t.Fatal(err)
			}
		}, "-2", 0, "missing at the end"},
		{"remove the anchor", func(t *testing.T, dir string, fs []string) {
			if err := os.Remove(filepath.Join(dir, AnchorName)); err != nil {
				t.Fatal(err)
			}
		}, AnchorName, 0, "missing"},
		{"edit the anchor", func(t *testing.T, dir string, fs []string) {
			b, err := os.ReadFile(filepath.Join(dir, AnchorName))
			if err != nil {
				t.Fatal(err)
			}
			b[len(anchorMagic)+19]++ // the sequence's last digit, without fixing the CRC
			if err := os.WriteFile(filepath.Join(dir, AnchorName), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}, AnchorName, 0, "not an anchor"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeLog(t, 60, 4<<10)
			fs := files(t, dir)
			if sum, err := Verify(dir); err != nil || sum.AfterAnchor != 0 {
				t.Fatalf("before tampering: %+v, %v", sum, err)
			}
			tc.tamper(t, dir, fs)
			_, err := Verify(dir)
			var d *Damage
			if !errors.As(err, &d) {
				t.Fatalf("Verify = %v, want a *Damage", err)
			}
			file, line := tc.file, tc.line
			switch file {
			case "":
				file = filepath.Base(fs[len(fs)-1])
			case "-2":
				file = filepath.Base(fs[len(fs)-2])
			}
			if line < 0 {
				line = len(readLines(t, fs[len(fs)-1]))
			}
			if d.File != file || d.Line != line || !strings.Contains(d.Reason, tc.reason) {
				t.Fatalf("Verify = %v, want %s:%d: …%s…", d, file, line, tc.reason)
			}
			if tc.file == AnchorName && tc.reason == "missing" {
				return // a log without an anchor is one written before anchors: Open anchors it
			}
			if w, err := Open(dir, Options{}); err == nil {
				w.Close()
				t.Fatal("Open continued a log whose end was tampered with")
			}
		})
	}
}

// TestAnchorBehindAfterCrash: lines synced before a crash that came before the anchor's
// update are reported as following the anchor, not as damage, and the next Open anchors
// them; a log without an anchor gets one from Open.
func TestAnchorBehindAfterCrash(t *testing.T) {
	dir := writeLog(t, 10, 0)
	sum, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The anchor as it was two lines earlier.
	fs := files(t, dir)
	ls := readLines(t, fs[len(fs)-1])
	old := anchor{seq: 8, sum: sha256.Sum256(bytes.TrimSuffix(ls[len(ls)-3], []byte("\n")))}
	if err := os.WriteFile(filepath.Join(dir, AnchorName), appendAnchor(nil, old), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Verify(dir); err != nil || s.AfterAnchor != 2 || s.Head != sum.Head {
		t.Fatalf("anchor two lines behind: %+v, %v; want 2 lines after the anchor", s, err)
	}
	for range 2 { // the second round starts without an anchor
		w, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		if s, err := Verify(dir); err != nil || s.AfterAnchor != 0 {
			t.Fatalf("after Open: %+v, %v", s, err)
		}
		os.Remove(filepath.Join(dir, AnchorName))
	}
}
