package load

import "errors"

// Errors returned by the package, wrapped with what was wrong; test with errors.Is.
var (
	// ErrConfig reports a Config that cannot run: a size that does not parse or does not fit
	// the stream's maximum record size, a count or rate out of range, an unknown protocol or
	// fan-out mode, a stream name Kinesis would refuse.
	ErrConfig = errors.New("load: invalid configuration")
	// ErrSetup reports a failure before any record was put: the stream could not be
	// described, created or made ACTIVE, or an enhanced fan-out consumer could not be
	// registered.
	ErrSetup = errors.New("load: setup failed")
)
