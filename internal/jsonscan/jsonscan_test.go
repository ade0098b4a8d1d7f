package jsonscan

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\s`, "<a&b>", "\x00\x01\x1f\x7f", "é😀", "\u2028\u2029", "bad\xffutf8\xc3", "\t\n\r"} {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestScanner(t *testing.T) {
	var s Scanner
	s.Reset([]byte(` {"a": "x\u00e9", "n": -12, "z": null, "skip": [1, {"b": [true, false]}, 2.5e3], "o": {}} `))
	var a string
	var n, z int64
	s.Object(func(key []byte) {
		switch string(key) {
		case "a":
			v, escaped := s.Str(nil)
			if !escaped {
				t.Error("an escaped string was not reported as such")
			}
			a = string(v)
		case "n":
			n = s.Int()
		case "z":
			z = s.Int()
		default:
			s.Skip()
		}
	})
	s.End()
	if s.Err() != nil || a != "xé" || n != -12 || z != 0 {
		t.Fatalf("a %q n %d z %d err %v", a, n, z, s.Err())
	}
	for _, bad := range []string{`{"a":1.5}`, `{"a":"\x"}`, `{"a":01}`, `{} x`, `{"a":` + "\"\x01\"}", `[`} {
		s.Reset([]byte(bad))
		s.Object(func([]byte) { s.Int() })
		s.End()
		var se *SyntaxError
		if !errors.As(s.Err(), &se) {
			t.Errorf("%q: %v, want a syntax error", bad, s.Err())
		}
	}
	// A reader of answers may let control characters through.
	s = Scanner{AllowControl: true}
	s.Reset([]byte("\"a\x01b\""))
	if v, _ := s.Str(nil); string(v) != "a\x01b" || s.Err() != nil {
		t.Fatalf("AllowControl: %q %v", v, s.Err())
	}
	failed := errors.New("not acceptable")
	s.Reset([]byte(`"x"`))
	s.FailWith(failed)
	s.Fail("later")
	if s.Err() != failed {
		t.Fatalf("the first error must stay: %v", s.Err())
	}
}
