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

// TestLoneSurrogates checks CheckSurrogates and RejectLoneSurrogates against the same cases:
// pairs pass, a surrogate alone or out of order is refused at its escape, and an escaped
// backslash before "u" is no escape.
func TestLoneSurrogates(t *testing.T) {
	for _, tc := range []struct {
		str string // the inside of a JSON string
		at  int    // offset in the document of the refused escape, -1 if none
	}{
		{`plain`, -1},
		{`\ud83d\ude00`, -1},
		{`\uD83D\uDE00 and \u00e9`, -1},
		{`\\ud800`, -1},
		{`a\ud800`, 2},
		{`\udc00`, 1},
		{`\ude00\ud83d`, 1},
		{`\ud83d\u0041`, 1},
		{`\ud83d`, 1},
		{`\ud83d\`, 1},
		{`\ud83d\ude00\\\ud800`, 15},
	} {
		doc := []byte(`"` + tc.str + `"`)
		err := CheckSurrogates(doc)
		var se *SyntaxError
		switch {
		case tc.at < 0 && err != nil:
			t.Errorf("CheckSurrogates(%s): %v", doc, err)
		case tc.at >= 0 && (!errors.As(err, &se) || se.Offset != tc.at):
			t.Errorf("CheckSurrogates(%s): %v, want a SyntaxError at %d", doc, err, tc.at)
		}
		if tc.str == `\ud83d\` {
			continue // not a complete string: only CheckSurrogates, which looks at escapes alone
		}
		s := Scanner{RejectLoneSurrogates: true}
		s.Reset(doc)
		s.Str(nil)
		if (s.Err() != nil) != (tc.at >= 0) {
			t.Errorf("Str(%s) with RejectLoneSurrogates: %v", doc, s.Err())
		}
		var lax Scanner
		lax.Reset(doc)
		if lax.Str(nil); lax.Err() != nil {
			t.Errorf("Str(%s): %v", doc, lax.Err())
		}
	}
}
