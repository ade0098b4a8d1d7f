package server

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/valyala/fasthttp"
)

// trickle returns at most n bytes per Read, as a network does.
type trickle struct {
	r io.Reader
	n int
}

func (t trickle) Read(p []byte) (int, error) { return t.r.Read(p[:min(len(p), t.n)]) }

func TestReadBody(t *testing.T) {
	tests := []struct {
		name     string
		n        int   // bytes sent
		declared int64 // Content-Length, -1 if none
		budget   int64
		err      error
	}{
		{"empty", 0, -1, 1 << 30, nil},
		{"small", 100, 100, 1 << 30, nil},
		{"at the limit", controlBodyLimit, controlBodyLimit, 1 << 30, nil},
		{"at the limit, undeclared", controlBodyLimit, -1, 1 << 30, nil},
		{"declared over the limit", 10, controlBodyLimit + 1, 1 << 30, fasthttp.ErrBodyTooLarge},
		{"over the limit, undeclared", controlBodyLimit + 1, -1, 1 << 30, fasthttp.ErrBodyTooLarge},
		{"shorter than declared", 10, 100, 1 << 30, errBodyUnreadable},
		{"over the budget", 200 << 10, 200 << 10, 100 << 10, errOverBudget},
		{"declared over the budget, sent within", 10, 500 << 10, 100 << 10, errBodyUnreadable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &byteBudget{max: tt.budget}
			src := bytes.Repeat([]byte{'x'}, tt.n)
			got, err := b.readBody(trickle{bytes.NewReader(src), 1000}, tt.declared, controlBodyLimit)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if err == nil && !bytes.Equal(got, src) {
				t.Fatalf("read %d bytes, want %d", len(got), len(src))
			}
			if held := b.used.Load(); held != int64(len(got)) {
				t.Fatalf("the budget holds %d bytes for a body of %d", held, len(got))
			}
			b.release(got, false)
			if held := b.used.Load(); held != 0 {
				t.Fatalf("the budget holds %d bytes after release", held)
			}
		})
	}
}
