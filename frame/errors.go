package frame

import "errors"

// Errors of a frame that fails validation. They are static so that rejecting a frame does not
// allocate; callers wrap them with where the frame was (file and offset, or position in an
// answer).
var (
	// ErrShort reports a frame that runs past the end of the bytes given.
	ErrShort = errors.New("frame runs past the end of the buffer")
	// ErrLen reports a length word outside [HeaderSize, HeaderSize+MaxKeyLen+MaxDataLen].
	ErrLen = errors.New("frame length out of range")
	// ErrLens reports key and data lengths that exceed their limits or do not add up to the
	// length word.
	ErrLens = errors.New("frame length disagrees with its key and data lengths")
	// ErrCRC reports a frame whose CRC does not match its bytes.
	ErrCRC = errors.New("frame CRC mismatch")
)
