package kpl

import "errors"

// Decode's errors. Any of them means the data is not an aggregated record and is read as an
// ordinary one, as the KCL does.
var (
	// ErrNotAggregated: the data does not start with Magic, or is too short to hold the
	// magic, a protobuf message and the digest.
	ErrNotAggregated = errors.New("kpl: not an aggregated record")
	// ErrDigest: the magic matches but the MD5 at the end is not that of the message.
	ErrDigest = errors.New("kpl: digest mismatch")
	// ErrMalformed: the digest matches but the message is not a valid AggregatedRecord.
	ErrMalformed = errors.New("kpl: malformed aggregated record")
)
