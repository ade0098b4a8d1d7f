package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/audit"
)

// TestAuditVerify: `sluice audit verify` exits 0 with a summary on an intact log, and 1
// naming the file and line of a removed line.
func TestAuditVerify(t *testing.T) {
	dir := t.TempDir()
	w, err := audit.Open(dir, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"CreateStream", "DeleteStream", "CreateStream"} {
		if err := w.Log(&audit.Event{Name: name, Management: true}, true); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	var out, errb bytes.Buffer
	if st := run([]string{"audit", "verify", dir}, &out, &errb); st != exitOK || !strings.Contains(out.String(), "intact: 1 files, 3 lines") {
		t.Fatalf("intact log: status %d, %q %q", st, out.String(), errb.String())
	}
	names, _ := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
	b, _ := os.ReadFile(names[0])
	lines := bytes.SplitAfter(b, []byte("\n"))
	os.WriteFile(names[0], append(lines[0], lines[2]...), 0o600)
	out.Reset()
	errb.Reset()
	if st := run([]string{"audit", "verify", dir}, &out, &errb); st != exitError || !strings.Contains(errb.String(), filepath.Base(names[0])+":2: 1 line(s) are missing") {
		t.Fatalf("a line removed: status %d, %q", st, errb.String())
	}
	if st := run([]string{"audit", "check", dir}, &out, &errb); st != exitUsage {
		t.Fatalf("audit check: status %d", st)
	}
}
