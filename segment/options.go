package segment

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/sluice-streams/sluice/internal/vfs"
)

// Mode is a durability mode.
type Mode int

const (
	// Sync acknowledges a batch only after fdatasync has made it durable. Concurrent
	// appenders share one fdatasync (group commit). Loss window: none.
	Sync Mode = iota
	// Interval acknowledges from the page cache and syncs every Durability.Interval.
	// Loss window: on power loss or a kernel crash, up to one interval of acknowledged
	// records, always a suffix of the shard. A process crash loses nothing.
	Interval
	// None never syncs on the append path; the kernel writes back when it chooses
	// (segments are still synced when sealed and at Close). Loss window: on power loss,
	// everything the kernel had not written back, a suffix of each shard.
	None
)

// Durability is a durability mode and, for Interval, its period.
type Durability struct {
	Mode     Mode
	Interval time.Duration
}

// ParseDurability parses "sync", "none" or "interval=T" (T a Go duration such as 200ms).
func ParseDurability(s string) (Durability, error) {
	switch {
	case s == "sync" || s == "":
		return Durability{Mode: Sync}, nil
	case s == "none":
		return Durability{Mode: None}, nil
	case strings.HasPrefix(s, "interval="):
		d, err := time.ParseDuration(strings.TrimPrefix(s, "interval="))
		if err != nil || d <= 0 {
			return Durability{}, fmt.Errorf("durability %q: interval must be a positive duration such as interval=200ms", s)
		}
		return Durability{Mode: Interval, Interval: d}, nil
	}
	return Durability{}, fmt.Errorf("durability %q: want sync, none or interval=T", s)
}

func (d Durability) String() string {
	switch d.Mode {
	case Sync:
		return "sync"
	case None:
		return "none"
	default:
		return "interval=" + d.Interval.String()
	}
}

const (
	// DefaultSegmentSize is the size a segment file is preallocated to and rolled at.
	DefaultSegmentSize = 128 << 20
	// MinSegmentSize is the smallest segment size accepted.
	MinSegmentSize = 64 << 10
	// defaultIndexInterval is the spacing of sparse index entries in bytes of frames.
	defaultIndexInterval = 4 << 10
	// reserveSpan is how many sequence numbers an open reserves past the ones it may hand
	// out: a restart skips at most this many numbers.
	reserveSpan = 1 << 32
)

// Options configure a Log. The zero value is valid: sync durability, 128 MiB segments, the
// operating system's files and clock.
type Options struct {
	// FS is the file layer; nil means vfs.OS.
	FS vfs.FS
	// Logger receives recovery and failure reports; nil discards them.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now. Arrival times are made monotonic:
	// a record never arrives before the one appended before it.
	Now func() time.Time
	// Durability is the acknowledgement promise.
	Durability Durability
	// SegmentSize is the preallocated size of a segment file, rolled when full; 0 means
	// DefaultSegmentSize. A batch larger than a segment gets a segment of its own size.
	SegmentSize int64
	// SegmentAge rolls the active segment, when the retention pass runs, once its first
	// record is this old, so that retention can delete whole segments; 0 means never.
	SegmentAge time.Duration
	// LogID is written into every segment header (the shard's id); it is informational.
	LogID uint64
	// FirstSeq is a lower bound for the sequence numbers of this log (a child shard starts
	// above its parents). 0 means 1.
	FirstSeq uint64
	// IndexInterval is the spacing of sparse index entries in bytes; 0 means 4 KiB.
	IndexInterval int64
	// Replicated puts the log in replicated mode (replicated.go): its owner assigns the
	// positions (AppendAt), decides what is readable (Publish) and may cut an unpublished
	// suffix (Truncate); Append is refused. A replicated log opens with nothing readable.
	// The files are the same as a single-node log's.
	Replicated bool

	reserveSpan uint64 // tests shrink it to exercise reservation renewal
	noSealer    bool   // tests: leave background seals pending until a sync or Close
}

func (o Options) withDefaults() Options {
	if o.FS == nil {
		o.FS = vfs.OS
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.SegmentSize < MinSegmentSize {
		o.SegmentSize = MinSegmentSize
	}
	o.SegmentSize = o.SegmentSize &^ (DataOffset - 1)
	if o.FirstSeq == 0 {
		o.FirstSeq = 1
	}
	if o.IndexInterval <= 0 {
		o.IndexInterval = defaultIndexInterval
	}
	if o.reserveSpan == 0 {
		o.reserveSpan = reserveSpan
	}
	return o
}
