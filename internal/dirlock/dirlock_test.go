package dirlock

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestExclusiveAndShared(t *testing.T) {
	dir := t.TempDir()
	w, err := Acquire(dir, true, "sluice serve")
	if err != nil {
		t.Fatal(err)
	}
	for _, exclusive := range []bool{true, false} {
		_, err := Acquire(dir, exclusive, "second")
		if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid "+strconv.Itoa(os.Getpid())+" (sluice serve)") {
			t.Fatalf("exclusive=%v beside a server: %v, want ErrLocked naming the server's pid", exclusive, err)
		}
	}
	if err := w.Release(); err != nil {
		t.Fatal(err)
	}
	if err := w.Release(); err != nil {
		t.Fatal("a second Release:", err)
	}
	// Readers share; a server is refused beside them.
	r1, err := Acquire(dir, false, "inspect")
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Acquire(dir, false, "inspect")
	if err != nil {
		t.Fatal("two readers:", err)
	}
	if _, err := Acquire(dir, true, "sluice serve"); !errors.Is(err, ErrLocked) {
		t.Fatalf("a server beside readers: %v, want ErrLocked", err)
	}
	r1.Release()
	r2.Release()
	w, err = Acquire(dir, true, "sluice serve")
	if err != nil {
		t.Fatal("after the readers left:", err)
	}
	w.Release()
}

func TestMissingDirectory(t *testing.T) {
	if _, err := Acquire(t.TempDir()+"/nope", true, "x"); err == nil || errors.Is(err, ErrLocked) {
		t.Fatalf("a missing directory: %v", err)
	}
}
