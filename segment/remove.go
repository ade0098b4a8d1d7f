package segment

import (
	"errors"
	"os"
)

// Remove closes the log, if it is open, and deletes its directory with every file in it. The
// mappings of Views still held stay readable until released (the files are unlinked, not
// truncated). It is for a log whose records nobody needs any more (a shard pruned by
// retention).
func (l *Log) Remove() error {
	if err := l.Close(); err != nil && !errors.Is(err, ErrClosed) {
		return err
	}
	return os.RemoveAll(l.dir)
}
