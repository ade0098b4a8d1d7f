package segment

import (
	"os"
	"strings"
	"testing"
)

func TestVerify(t *testing.T) {
	fx := newFixture(t)
	reps, err := Verify(fx.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 3 {
		t.Fatalf("%d reports", len(reps))
	}
	var total uint64
	for i, r := range reps {
		if r.Problem != "" {
			t.Fatalf("intact segment %d reported: %s", i, r.Problem)
		}
		if r.Sealed != (i < 2) || (r.Sealed && r.Index != "ok") {
			t.Fatalf("segment %d: sealed %v index %q", i, r.Sealed, r.Index)
		}
		total += r.Records
	}
	if total != 150 {
		t.Fatalf("%d records, want 150", total)
	}
	flipByte(t, fx.segs[0], fx.per[0][10].off+500)
	if err := os.Remove(idxPath(fx.segs[1])); err != nil {
		t.Fatal(err)
	}
	reps, err = Verify(fx.dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reps[0].Problem, "CRC") || reps[0].Records != 10 {
		t.Fatalf("bit flip not reported: %+v", reps[0])
	}
	if !strings.HasPrefix(reps[1].Index, "missing") {
		t.Fatalf("missing index not reported: %q", reps[1].Index)
	}
}
