package inspect

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-streams/sluice/segment"
)

func TestInspect(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shard-0")
	l, err := segment.Open(dir, segment.Options{Durability: segment.Durability{Mode: segment.None}, SegmentSize: segment.MinSegmentSize})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := l.Append([]segment.Record{{Key: []byte("k"), Data: bytes.Repeat([]byte{byte(i)}, 2000)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := Run([]string{filepath.Dir(dir)}, &out, &errOut); code != 0 {
		t.Fatalf("intact log: status %d\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "sealed") || strings.Count(out.String(), "\n") < 4 {
		t.Fatalf("unexpected report:\n%s", out.String())
	}

	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	f, err := os.OpenFile(segs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff}, segment.DataOffset+100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out.Reset()
	if code := Run([]string{"-q", dir}, &out, &errOut); code != 1 {
		t.Fatalf("damaged log: status %d\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "CRC") || strings.Contains(out.String(), "  2 ") {
		t.Fatalf("damage not reported, or intact segments printed with -q:\n%s", out.String())
	}
	if code := Run(nil, &out, &errOut); code != 2 {
		t.Fatalf("no arguments: status %d", code)
	}
}

func TestInspectRecords(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shard-0")
	l, err := segment.Open(dir, segment.Options{Durability: segment.Durability{Mode: segment.None}, SegmentSize: segment.MinSegmentSize})
	if err != nil {
		t.Fatal(err)
	}
	recs := []segment.Record{{Key: []byte("user1"), Data: []byte("hello")}, {Key: []byte("user2"), Data: []byte{0, 1, 2, 0xff}}}
	if err := l.Append(recs); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := Run([]string{"-records", dir}, &out, &errOut); code != 0 {
		t.Fatalf("status %d\n%s%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{`"user1"`, `"hello"`, `"user2"`, "hex:000102ff", "  1  ", "  2  "} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("dump lacks %q:\n%s", want, out.String())
		}
	}
}
