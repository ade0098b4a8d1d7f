package load

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		str  string // the String form; "" means in
	}{
		{in: "1KiB", want: Size{Kind: Fixed, Min: 1024, Max: 1024}},
		{in: "100", want: Size{Kind: Fixed, Min: 100, Max: 100}, str: "100B"},
		{in: "0B", want: Size{Kind: Fixed}},
		{in: "1.5KiB", want: Size{Kind: Fixed, Min: 1536, Max: 1536}, str: "1536B"},
		{in: "0.3KB", want: Size{Kind: Fixed, Min: 300, Max: 300}, str: "300B"},
		{in: "2kb", want: Size{Kind: Fixed, Min: 2000, Max: 2000}, str: "2000B"},
		{in: "1MB", want: Size{Kind: Fixed, Min: 1e6, Max: 1e6}, str: "1000000B"},
		{in: " 3 MiB ", want: Size{Kind: Fixed, Min: 3 << 20, Max: 3 << 20}, str: "3MiB"},
		{in: "10MiB", want: Size{Kind: Fixed, Min: 10 << 20, Max: 10 << 20}},
		{in: "1e3", want: Size{Kind: Fixed, Min: 1000, Max: 1000}, str: "1000B"},
		{in: "uniform:100B-10KiB", want: Size{Kind: Uniform, Min: 100, Max: 10 << 10}},
		{in: "UNIFORM:5-5", want: Size{Kind: Uniform, Min: 5, Max: 5}, str: "uniform:5B-5B"},
		{in: "normal:1KiB,256B", want: Size{Kind: Normal, Max: MaxRecordBytes, Mean: 1024, StdDev: 256}},
		{in: "normal:100,0", want: Size{Kind: Normal, Max: MaxRecordBytes, Mean: 100}, str: "normal:100B,0B"},
		{in: "normal:0B,20MiB", want: Size{Kind: Normal, Max: MaxRecordBytes, StdDev: 20 << 20}, str: "normal:0B,20MiB"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		str := tt.str
		if str == "" {
			str = tt.in
		}
		if got.String() != str {
			t.Errorf("ParseSize(%q).String() = %q, want %q", tt.in, got.String(), str)
		}
		if back, err := ParseSize(got.String()); err != nil || back != got {
			t.Errorf("ParseSize(%q) = %+v, %v; want %+v back", got.String(), back, err, got)
		}
	}
}

func TestParseSizeErrors(t *testing.T) {
	for _, in := range []string{
		"", "KiB", "-1", "+1", "1.5", "0.0001KB", "11MiB", "1GiB", "abc", "1 KiBs", "NaN", "Inf",
		"uniform:", "uniform:10", "uniform:10-5", "uniform:1-20MiB", "uniform:x-1",
		"normal:", "normal:1KiB", "normal:20MiB,1", "normal:1,-1", "normal:1,x",
		"poisson:1KiB", ":1",
	} {
		if s, err := ParseSize(in); !errors.Is(err, ErrConfig) {
			t.Errorf("ParseSize(%q) = %+v, %v; want an ErrConfig", in, s, err)
		}
	}
}

func TestSizeWithin(t *testing.T) {
	const limit = 1 << 20
	tests := []struct {
		in   string
		want Size // zero: an error
	}{
		{"1MiB", Size{Kind: Fixed, Min: 1 << 20, Max: 1 << 20}},
		{"2MiB", Size{}},
		{"uniform:0B-1MiB", Size{Kind: Uniform, Max: 1 << 20}},
		{"uniform:0B-2MiB", Size{}},
		{"normal:1KiB,4MiB", Size{Kind: Normal, Max: limit, Mean: 1024, StdDev: 4 << 20}},
	}
	for _, tt := range tests {
		s, err := ParseSize(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.within(limit)
		if tt.want == (Size{}) {
			if !errors.Is(err, ErrConfig) {
				t.Errorf("%s within 1 MiB: %+v, %v; want an ErrConfig", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s within 1 MiB: %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

// TestSizeSample draws from each kind and checks the bounds and the rough mean.
func TestSizeSample(t *testing.T) {
	const seed = 7
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	tests := []struct {
		s        Size
		min, max int
		mean     float64 // expected, ±5%
	}{
		{Size{Kind: Fixed, Min: 1000, Max: 1000}, 1000, 1000, 1000},
		{Size{Kind: Uniform, Min: 100, Max: 300}, 100, 300, 200},
		{Size{Kind: Normal, Max: 100000, Mean: 10000, StdDev: 1000}, 0, 100000, 10000},
		// Truncated at 0: a mean of 0 draws only the upper half.
		{Size{Kind: Normal, Max: 100000, Mean: 0, StdDev: 1000}, 0, 100000, 798},
		// Entirely outside the range: clamped to its nearest end.
		{Size{Kind: Normal, Min: 0, Max: 10, Mean: 1e6, StdDev: 1}, 10, 10, 10},
	}
	for _, tt := range tests {
		sum := 0
		const n = 20000
		for range n {
			v := tt.s.Sample(r)
			if v < tt.min || v > tt.max {
				t.Fatalf("%+v drew %d, outside %d…%d", tt.s, v, tt.min, tt.max)
			}
			sum += v
		}
		if mean := float64(sum) / n; mean < tt.mean*0.95 || mean > tt.mean*1.05 {
			t.Errorf("%+v: mean %.1f, want about %.1f", tt.s, mean, tt.mean)
		}
	}
}
