package vfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestReadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(OS, path, 5); err != nil || string(b) != "12345" {
		t.Fatalf("within the limit: %q %v", b, err)
	}
	if b, err := ReadFile(OS, path, 4); err == nil {
		t.Fatalf("over the limit: read %q", b)
	}
	if _, err := ReadFile(OS, path+"x", 5); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
