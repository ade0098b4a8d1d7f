package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestSegmentSizeFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64 // -1: refused
		text string
	}{
		{"8MiB", 8 << 20, "8MiB"},
		{"128MiB", 128 << 20, "128MiB"},
		{"1GiB", 1 << 30, "1GiB"},
		{"64KiB", 64 << 10, "64KiB"},
		{"1048576", 1 << 20, "1MiB"},
		{"70000B", 70000, "70000B"},
		{"0", 0, "0"},
		{"32KiB", -1, ""},  // below segment.MinSegmentSize
		{"17GiB", -1, ""},  // above maxSegmentSize
		{"8MB", -1, ""},    // decimal units are not accepted
		{"-1MiB", -1, ""},  // negative
		{"lots", -1, ""},   // not a number
		{"1.5GiB", -1, ""}, // not an integer
	} {
		var b byteSize
		err := b.Set(tc.in)
		if tc.want < 0 {
			if err == nil {
				t.Errorf("%q: accepted as %d, want an error", tc.in, b)
			}
			continue
		}
		if err != nil || int64(b) != tc.want || b.String() != tc.text {
			t.Errorf("%q: %d %q %v, want %d %q", tc.in, b, b.String(), err, tc.want, tc.text)
		}
	}
}

// TestServeSegmentSizeSetting: --segment-size is read from the command line and from
// SLUICE_SEGMENT_SIZE like every flag of serve, and a bad value is a usage error naming it.
func TestServeSegmentSizeSetting(t *testing.T) {
	var stderr bytes.Buffer
	if status := runServe([]string{"--segment-size", "1KiB"}, io.Discard, &stderr); status != exitUsage || !strings.Contains(stderr.String(), "segment-size") {
		t.Fatalf("--segment-size 1KiB: status %d, want %d; stderr:\n%s", status, exitUsage, stderr.String())
	}
	stderr.Reset()
	t.Setenv("SLUICE_SEGMENT_SIZE", "lots")
	if status := runServe(nil, io.Discard, &stderr); status != exitUsage || !strings.Contains(stderr.String(), "SLUICE_SEGMENT_SIZE") {
		t.Fatalf("SLUICE_SEGMENT_SIZE=lots: status %d, want %d; stderr:\n%s", status, exitUsage, stderr.String())
	}
}
