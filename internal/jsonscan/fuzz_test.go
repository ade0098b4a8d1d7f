package jsonscan

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzAppendString checks the string encoder against encoding/json byte for byte.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "<&>", "\u2028", "\xff", "é\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: %s, want %s", s, got, want)
		}
	})
}

// FuzzBase64 checks Scanner.Base64 against Str followed by the standard library's decoder:
// the same bytes, the same base64 error, the same scanner error, the same position after.
func FuzzBase64(f *testing.F) {
	for _, s := range []string{"", "AA==", "AAA=", "AAAA", "QUJD\\/w==", "QU\nJD", "QUJD\n", "AB==", "A===", "AA=A", "AA==AAAA",
		"QUJDRA", "QUJD\"", "QUJD\\u0041AAA", "\x00AAA", "////++++"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		doc := []byte(`"` + s + `" `)
		var got, want Scanner
		got.Reset(doc)
		want.Reset(doc)
		room := base64.StdEncoding.DecodedLen(len(doc)) + 8
		out, _, err := got.Base64(make([]byte, 3, 3+room), nil)
		raw, _ := want.Str(nil)
		var ref []byte
		var refErr error
		if want.Err() == nil {
			ref = make([]byte, base64.StdEncoding.DecodedLen(len(raw)))
			var n int
			n, refErr = base64.StdEncoding.Decode(ref, raw)
			ref = ref[:n]
		}
		if (got.Err() == nil) != (want.Err() == nil) || got.Err() != nil && got.Err().Error() != want.Err().Error() {
			t.Fatalf("%q: scanner error %v, want %v", s, got.Err(), want.Err())
		}
		if got.Err() != nil {
			return
		}
		if (err == nil) != (refErr == nil) || err != nil && err.Error() != refErr.Error() {
			t.Fatalf("%q: base64 error %v, want %v", s, err, refErr)
		}
		if err == nil && !bytes.Equal(out[3:], ref) {
			t.Fatalf("%q: decoded %x, want %x", s, out[3:], ref)
		}
		if got.i != want.i {
			t.Fatalf("%q: position %d after, want %d", s, got.i, want.i)
		}
	})
}

// FuzzStr checks Str against encoding/json on one string value: the same verdict and, for
// valid UTF-8 (which encoding/json would rewrite), the same contents.
func FuzzStr(f *testing.F) {
	for _, s := range []string{`"a"`, `"Data"`, `"key-12\"3"`, `"\u00e9"`, "\"a\x01\"", `"abc`, `"` + strings.Repeat("x", 40) + `"`, `"\\"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		var s Scanner
		s.Reset(doc)
		v, _ := s.Str(nil)
		if s.Err() == nil {
			s.End()
		}
		var ref string
		refErr := json.Unmarshal(doc, &ref)
		if (s.Err() == nil) != (refErr == nil) {
			t.Fatalf("%q: error %v, encoding/json %v", doc, s.Err(), refErr)
		}
		if s.Err() == nil && utf8.Valid(v) && string(v) != ref {
			t.Fatalf("%q: %q, encoding/json %q", doc, v, ref)
		}
	})
}
