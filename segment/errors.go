package segment

import "errors"

// Errors returned by the log. They are wrapped with the file, segment and offset they concern;
// test with errors.Is.
var (
	// ErrCorrupt reports damage before the last durable point, or anywhere in a sealed
	// segment: a bad CRC, a malformed frame, a missing segment. Reads stop before the damage;
	// a log that found corruption while opening refuses appends.
	ErrCorrupt = errors.New("segment: corrupt log")
	// ErrFailed reports that an earlier write or fdatasync failed. The log stops
	// acknowledging appends until it is reopened, so nothing is acknowledged that may not be
	// durable.
	ErrFailed = errors.New("segment: log failed; reopen it")
	// ErrNoSpace reports that the disk is full. Nothing of the batch was acknowledged and
	// the log is unchanged; appends succeed again once space returns.
	ErrNoSpace = errors.New("segment: no space left on device")
	// ErrClosed reports use of a closed log.
	ErrClosed = errors.New("segment: log closed")
	// ErrTooLarge reports a record whose key or data exceeds frame.MaxKeyLen or frame.MaxDataLen.
	ErrTooLarge = errors.New("segment: record too large")
	// ErrReplicated reports a call that belongs to the other mode: Append on a replicated
	// log, or AppendAt, Publish or Truncate on a single-node one.
	ErrReplicated = errors.New("segment: wrong call for the log's mode (replicated or not)")
	// ErrOrder reports an AppendAt whose positions are not strictly increasing above the
	// log's last position.
	ErrOrder = errors.New("segment: positions out of order")
	// ErrBelowTip reports a Truncate that would cut published records.
	ErrBelowTip = errors.New("segment: cut below the published tip")
	// ErrVersion reports a file written by an unknown format version.
	ErrVersion = errors.New("segment: unknown format version")
)
