package audit

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by Log after Close.
var ErrClosed = errors.New("audit: log closed")

// Damage is what Verify reports: the first place where the log is not as written. Line is
// 1-based; 0 means the file as a whole (missing, renamed or out of order).
type Damage struct {
	File   string // file name, within the directory
	Line   int
	Reason string
}

func (d *Damage) Error() string {
	if d.Line == 0 {
		return fmt.Sprintf("%s: %s", d.File, d.Reason)
	}
	return fmt.Sprintf("%s:%d: %s", d.File, d.Line, d.Reason)
}
