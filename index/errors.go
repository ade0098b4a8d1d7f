package index

import "errors"

// ErrInvalid reports an index file that cannot be used: missing fields, bad magic, bad
// CRC, wrong version, out-of-order entries, or a description that does not match the
// segment (stale). Callers rebuild the index from the segment when they see it.
var ErrInvalid = errors.New("index: invalid index")
