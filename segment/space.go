package segment

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// A full disk is an episode, not a failure: appends are refused with ErrNoSpace, the log is
// unchanged, and appends succeed again once space returns (a file deleted, retention). The
// log reports an episode twice: at Error when the first append is refused, with the cause,
// and at Info when an append succeeds again, with how many were refused and for how long.
// The refusals in between are counted, not logged, so that a client retrying in a loop does
// not flood the log.
//
// A failed write or fdatasync is another matter: it is sticky (ErrFailed), logged once by
// failLocked, and only a reopen clears it, because the kernel may have dropped the dirty
// pages it could not write.

// fullEpisode is the state of a full-disk episode; guarded by Log.mu.
type fullEpisode struct {
	refused uint64    // appends refused with ErrNoSpace since since; 0: no episode
	since   time.Time // when the first was refused
	shrunk  bool      // the active segment is smaller than Options.SegmentSize
}

// noteSpaceLocked records the outcome of an append for the full-disk episode. Called with mu
// held.
func (l *Log) noteSpaceLocked(err error) {
	switch {
	case err != nil && errors.Is(err, ErrNoSpace):
		if l.full.refused == 0 {
			l.full.since = l.opts.Now()
			l.logger.Error("disk full: appends refused until space is freed", "err", err)
		}
		l.full.refused++
	case err == nil && l.full.refused > 0:
		l.logger.Info("disk space available again: appends resumed",
			"refused", l.full.refused, "for", l.opts.Now().Sub(l.full.since))
		l.full = fullEpisode{shrunk: l.full.shrunk}
	}
}

// noteShrinkLocked records the capacity of a new active segment, and logs when a full disk
// first makes it smaller than configured. Called with mu held.
func (l *Log) noteShrinkLocked(capacity int64) {
	shrunk := capacity < l.opts.SegmentSize
	if shrunk && !l.full.shrunk {
		l.logger.Warn("disk nearly full: new segments are smaller than configured",
			"bytes", capacity, "configured", l.opts.SegmentSize)
	}
	l.full.shrunk = shrunk
}

// alignUp rounds n up to a multiple of DataOffset, the alignment of segment sizes.
func alignUp(n int64) int64 { return (n + DataOffset - 1) &^ (DataOffset - 1) }

// SizeFor returns the default segment size for a log under dir: DefaultSegmentSize, or a
// sixteenth of the file system's size when that is smaller, so that a small disk holds many
// segments rather than one preallocated file it cannot complete; never below MinSegmentSize.
// A file system that cannot be measured gets DefaultSegmentSize.
func SizeFor(dir string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil || st.Bsize <= 0 {
		return DefaultSegmentSize
	}
	total := int64(st.Blocks) * int64(st.Bsize)
	return min(DefaultSegmentSize, max(MinSegmentSize, total/16&^(DataOffset-1)))
}
