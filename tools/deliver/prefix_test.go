package deliver

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

func strp(s string) *string { return &s }

// TestPrefixes evaluates Prefix and ErrorOutputPrefix by Firehose's rules and examples, at
// 10:30:05 UTC on 27 August 2018.
func TestPrefixes(t *testing.T) {
	at := time.Date(2018, 8, 27, 10, 30, 5, 0, time.UTC)
	for _, tc := range []struct {
		name              string
		prefix, errPrefix *string
		want, wantErr     string // regular expressions of the evaluated prefixes
	}{
		{"none", nil, nil, `2018/08/27/10/`, `processing-failed/2018/08/27/10/`},
		{"literal gets the hour appended", strp("myFirehosePrefix/"), nil,
			`myFirehosePrefix/2018/08/27/10/`, `myFirehosePrefix/processing-failed/2018/08/27/10/`},
		{"error prefix without timestamp", nil, strp("myFirehoseFailures/!{firehose:error-output-type}/"),
			`2018/08/27/10/`, `myFirehoseFailures/processing-failed/`},
		{"Firehose's example", strp("myFirehose/DeliveredYear=!{timestamp:yyyy}/anyMonth/rand=!{firehose:random-string}"),
			strp("myFirehoseFailures/!{firehose:error-output-type}/!{timestamp:yyyy}/anyMonth/!{timestamp:dd}"),
			`myFirehose/DeliveredYear=2018/anyMonth/rand=[0-9a-f]{11}`, `myFirehoseFailures/processing-failed/2018/anyMonth/27`},
		{"quotes and fields", strp("dt=!{timestamp:yyyy'-'MM'-'dd}/h=!{timestamp:H}/d=!{timestamp:DDD}/!{timestamp:yy''mm''ss}/"), strp("e/!{firehose:error-output-type}"),
			`dt=2018-08-27/h=10/d=239/18'30'05/`, `e/processing-failed`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, e, err := parsePrefixes(tc.prefix, tc.errPrefix)
			if err != nil {
				t.Fatal(err)
			}
			seed := newObjectSeed("s", "data", 0, 1)
			for _, c := range []struct {
				p    *Prefix
				want string
			}{{&p, tc.want}, {&e, tc.wantErr}} {
				got := string(c.p.appendEval(nil, at, &seed))
				if !regexp.MustCompile(`^` + c.want + `$`).MatchString(got) {
					t.Errorf("%s evaluates to %q, want %s", c.p.String(), got, c.want)
				}
			}
		})
	}
}

// TestPrefixErrors are the prefixes Firehose refuses, and the patterns this delivery does
// not implement.
func TestPrefixErrors(t *testing.T) {
	for _, tc := range []struct {
		prefix, errPrefix *string
		want              string
	}{
		{strp("!{timestamp:yyyy/MM/dd}"), nil, "ErrorOutputPrefix is required"},
		{strp("a/!{firehose:error-output-type}/"), strp("e/!{firehose:error-output-type}"), "ErrorOutputPrefix only"},
		{nil, strp("e/!{timestamp:yyyy}/"), "must use !{firehose:error-output-type}"},
		{strp("a/!{timestamp:yyyy"), strp("e"), "closing }"},
		{strp("a/!{nothing}"), strp("e"), "namespace:value"},
		{strp("a/!{partitionKeyFromQuery:id}"), strp("e"), "dynamic partitioning"},
		{strp("a/!{other:x}"), strp("e"), "unknown namespace"},
		{strp("a/!{firehose:uuid}"), strp("e"), "random-string and error-output-type"},
		{strp("a/!{timestamp:MMM}"), strp("e"), "MMM is not supported"},
		{strp("a/!{timestamp:yyyy-EEE}"), strp("e"), "EEE is not supported"},
		{strp("a/!{timestamp:'open}"), strp("e"), "closing quote"},
		{strp(strings.Repeat("x", 500)), nil, "at most 512"},
	} {
		_, _, err := parsePrefixes(tc.prefix, tc.errPrefix)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Prefix %v, ErrorOutputPrefix %v: error %v, want one saying %q", deref(tc.prefix), deref(tc.errPrefix), err, tc.want)
		}
	}
}

func deref(s *string) string {
	if s == nil {
		return "(absent)"
	}
	return *s
}

// TestObjectSeed: the same object gets the same uuid and random strings; another shard or
// position, another kind, or the next string of one prefix gets others.
func TestObjectSeed(t *testing.T) {
	a, b := newObjectSeed("s", "data", 1, 7), newObjectSeed("s", "data", 1, 7)
	if a.uuid() != b.uuid() || string(a.next(11)) != string(b.next(11)) {
		t.Fatal("the same object's seeds differ")
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(a.uuid()) {
		t.Errorf("uuid %q is not an RFC 9562 version 8 UUID", a.uuid())
	}
	seen := map[string]bool{a.uuid(): true}
	for _, s := range []objectSeed{newObjectSeed("s", "data", 2, 7), newObjectSeed("s", "data", 1, 8), newObjectSeed("s", "error", 1, 7), newObjectSeed("t", "data", 1, 7)} {
		if seen[s.uuid()] {
			t.Errorf("two objects share uuid %s", s.uuid())
		}
		seen[s.uuid()] = true
	}
	if x, y := a.next(11), a.next(11); string(x) == string(y) {
		t.Error("two random strings of one prefix are the same")
	}
}
