package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sluice-streams/sluice/segment"
)

// maxSegmentSize bounds --segment-size: a segment is mapped whole.
const maxSegmentSize = 16 << 30

// byteSize is the value of --segment-size: a size in bytes written as a number with an
// optional binary unit (KiB, MiB, GiB); 0 leaves the engine's default.
type byteSize int64

var sizeUnits = []struct {
	suffix string
	shift  uint
}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}

func (b *byteSize) Set(s string) error {
	num, shift := strings.TrimSpace(s), uint(0)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, shift = strings.TrimSpace(rest), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > maxSegmentSize>>shift {
		return fmt.Errorf("%q: want a size such as 8MiB, 128MiB or 1GiB, at most 16GiB", s)
	}
	if n <<= shift; n != 0 && n < segment.MinSegmentSize {
		return fmt.Errorf("%q: at least %d KiB", s, segment.MinSegmentSize>>10)
	}
	*b = byteSize(n)
	return nil
}

func (b *byteSize) String() string {
	n := int64(*b)
	for _, u := range sizeUnits {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return "0"
}
