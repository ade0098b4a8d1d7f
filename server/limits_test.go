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

// TestReadBodyBufferFitsBody reads a small body after a large one was released, many times
// over: the small body's buffer is of the small body's size class, never the large one's
// buffer, whose capacity the in-flight budget would not count.
func TestReadBodyBufferFitsBody(t *testing.T) {
	b := &byteBudget{max: 1 << 30}
	large := bytes.Repeat([]byte{'x'}, 1400<<10)
	small := bytes.Repeat([]byte{'y'}, 2<<10)
	for range 50 {
		got, err := b.readBody(bytes.NewReader(large), int64(len(large)), dataBodyLimit)
		if err != nil || !bytes.Equal(got, large) {
			t.Fatalf("large body: %d bytes, %v", len(got), err)
		}
		if cap(got) > 2*len(large) {
			t.Fatalf("a body of %d bytes is read into a buffer of %d", len(got), cap(got))
		}
		b.release(got, false)
		got, err = b.readBody(bytes.NewReader(small), int64(len(small)), dataBodyLimit)
		if err != nil || !bytes.Equal(got, small) {
			t.Fatalf("small body: %d bytes, %v", len(got), err)
		}
		if cap(got) > firstBodyBuf {
			t.Fatalf("a body of %d bytes holds a buffer of %d after a larger body was released", len(got), cap(got))
		}
		b.release(got, false)
	}
}

// TestBodyClasses: every length up to the largest pooled body has a class whose buffers hold
// it, and a released buffer goes to a class no larger than its capacity.
func TestBodyClasses(t *testing.T) {
	for _, n := range []int64{1, firstBodyBuf, firstBodyBuf + 1, 1400 << 10, dataBodyLimit, dataBodyLimit + 1, maxPooledBody} {
		k := bodyClass(n)
		if int64(bodyClassSize(k)) < n {
			t.Errorf("length %d: class %d holds %d bytes", n, k, bodyClassSize(k))
		}
		if k > 0 && int64(bodyClassSize(k-1)) >= n {
			t.Errorf("length %d: class %d, but class %d of %d bytes holds it", n, k, k-1, bodyClassSize(k-1))
		}
	}
}
