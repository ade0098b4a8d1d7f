package load

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// MaxRecordBytes is the largest record data a Size may ask for: 10 MiB, the most a sluice
// stream can be set to accept (a Kinesis stream accepts 1 MiB unless raised).
const MaxRecordBytes = 10 << 20

// SizeKind is the shape of a Size distribution.
type SizeKind uint8

const (
	// Fixed: every record has Min (= Max) bytes.
	Fixed SizeKind = iota
	// Uniform: each size from Min to Max, both included, is equally likely.
	Uniform
	// Normal: sizes are drawn from a normal distribution of Mean and StdDev, rounded to
	// whole bytes and truncated to Min…Max: a draw outside is drawn again (after 16 misses
	// it is clamped, which only a distribution mostly outside the range reaches).
	Normal
)

// Size is a distribution of record data sizes in bytes (the data only; the partition key
// is not counted). ParseSize reads its text form.
type Size struct {
	Kind     SizeKind
	Min, Max int     // bytes; Normal: the truncation bounds, 0 and MaxRecordBytes unless narrowed
	Mean     float64 // Normal only, bytes
	StdDev   float64 // Normal only, bytes
}

// ParseSize parses a size distribution:
//
//	1KiB                    fixed: every record the same size
//	uniform:100B-10KiB      uniform between two sizes, both included
//	normal:1KiB,256B        normal with a mean and a standard deviation, truncated to
//	                        0…MaxRecordBytes (then to the stream's maximum record size)
//
// A byte quantity is a number (decimals allowed) with an optional unit: B (the default),
// KiB, MiB (powers of 1,024) or KB, MB (powers of 1,000), case-insensitive. It must come to
// a whole number of bytes, at most MaxRecordBytes (a standard deviation: any finite
// amount).
func ParseSize(s string) (Size, error) {
	bad := func(why string) (Size, error) {
		return Size{}, fmt.Errorf("%w: size %q: %s", ErrConfig, s, why)
	}
	kind, rest, found := strings.Cut(s, ":")
	if !found {
		n, err := parseBytes(s, true)
		if err != nil {
			return bad(err.Error())
		}
		return Size{Kind: Fixed, Min: n, Max: n}, nil
	}
	switch strings.ToLower(kind) {
	case "uniform":
		lo, hi, ok := strings.Cut(rest, "-")
		if !ok {
			return bad("want uniform:MIN-MAX, such as uniform:100B-10KiB")
		}
		a, err := parseBytes(lo, true)
		if err != nil {
			return bad(err.Error())
		}
		b, err := parseBytes(hi, true)
		if err != nil {
			return bad(err.Error())
		}
		if a > b {
			return bad("the minimum is above the maximum")
		}
		return Size{Kind: Uniform, Min: a, Max: b}, nil
	case "normal":
		m, sd, ok := strings.Cut(rest, ",")
		if !ok {
			return bad("want normal:MEAN,STDDEV, such as normal:1KiB,256B")
		}
		mean, err := parseBytes(m, true)
		if err != nil {
			return bad(err.Error())
		}
		dev, err := parseBytes(sd, false)
		if err != nil {
			return bad(err.Error())
		}
		return Size{Kind: Normal, Min: 0, Max: MaxRecordBytes, Mean: float64(mean), StdDev: float64(dev)}, nil
	}
	return bad("want a size (1KiB), uniform:MIN-MAX or normal:MEAN,STDDEV")
}

// units are the byte units ParseSize accepts, lower-case, longest first so that "kib" is
// not read as "b".
var units = []struct {
	name string
	mult float64
}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"kb", 1e3}, {"mb", 1e6}, {"b", 1}}

// parseBytes parses a byte quantity; bounded limits it to MaxRecordBytes.
func parseBytes(s string, bounded bool) (int, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range units {
		if num, ok := strings.CutSuffix(t, u.name); ok {
			t, mult = strings.TrimSpace(num), u.mult
			break
		}
	}
	if t == "" || t[0] == '+' || t[0] == '-' {
		return 0, fmt.Errorf("%q is not a byte quantity", s)
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a byte quantity", s)
	}
	v *= mult
	if bounded && v > MaxRecordBytes || v > math.MaxInt32 {
		return 0, fmt.Errorf("%s is over %s", s, formatBytes(MaxRecordBytes))
	}
	// A decimal times a unit is inexact in binary (0.3 × 1000 is 300.00000000000006).
	if math.Abs(v-math.Round(v)) > 1e-6 {
		return 0, fmt.Errorf("%s is not a whole number of bytes", s)
	}
	return int(math.Round(v)), nil
}

// formatBytes writes n in the largest binary unit that divides it: 1KiB, 1536B, 2MiB.
func formatBytes(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

// String returns the text form ParseSize reads back. A Normal's truncation bounds are not
// part of it.
func (s Size) String() string {
	switch s.Kind {
	case Uniform:
		return "uniform:" + formatBytes(s.Min) + "-" + formatBytes(s.Max)
	case Normal:
		return "normal:" + formatBytes(int(s.Mean)) + "," + formatBytes(int(s.StdDev))
	}
	return formatBytes(s.Min)
}

// MarshalText writes the String form, so that a Size reads well in JSON.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses what MarshalText wrote.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err == nil {
		*s = v
	}
	return err
}

// within returns s limited to records of at most limit bytes: a Fixed or Uniform size that
// can exceed it is an error; a Normal one is truncated to it.
func (s Size) within(limit int) (Size, error) {
	if s.Kind == Normal {
		s.Max = min(s.Max, limit)
		if s.Min > s.Max {
			return s, fmt.Errorf("%w: size %s: the stream takes at most %s", ErrConfig, s, formatBytes(limit))
		}
		return s, nil
	}
	if s.Max > limit {
		return s, fmt.Errorf("%w: size %s: the stream takes records of at most %s", ErrConfig, s, formatBytes(limit))
	}
	return s, nil
}

// Sample draws one size.
func (s Size) Sample(r *rand.Rand) int {
	switch s.Kind {
	case Uniform:
		return s.Min + r.IntN(s.Max-s.Min+1)
	case Normal:
		var v float64
		for range 16 {
			v = math.Round(r.NormFloat64()*s.StdDev + s.Mean)
			if v >= float64(s.Min) && v <= float64(s.Max) {
				return int(v)
			}
		}
		return int(max(float64(s.Min), min(float64(s.Max), v)))
	}
	return s.Min
}
