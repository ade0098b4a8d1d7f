//go:build unix

package agent

import (
	"os"
	"syscall"
)

// fileID returns the device and inode of a file, and whether it still has a name.
func fileID(fi os.FileInfo) (dev, ino uint64, linked bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, true
	}
	return uint64(st.Dev), uint64(st.Ino), st.Nlink > 0 //nolint:unconvert // Dev is int32 on darwin
}
