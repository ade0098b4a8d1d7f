// Package dirlock locks a data directory for one process: `sluice serve` holds it
// exclusively for its whole life, the offline tools (`sluice inspect`) take it shared, so a
// second server on the same directory, or an inspection of a directory a server is writing,
// is refused with the holder's pid instead of corrupting records both think they own.
//
// The lock is flock(2) on a file named LOCK in the directory. The kernel releases it when the
// holder's process ends, however it ends (kill -9 included): there is no stale lock to clean
// up. An exclusive holder writes its pid and role into the file so that the refusal can name
// it; the file's content is informative only, the flock is the lock. Locks are per open file:
// two Acquires in one process conflict like two processes.
//
// Concurrency: a Lock is used by one goroutine (its owner) to Release it.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// FileName is the lock file's name in the locked directory.
const FileName = "LOCK"

// ErrLocked is wrapped by the error of an Acquire refused because another holder has the
// directory.
var ErrLocked = errors.New("data directory in use")

// Lock is a held lock of a directory.
type Lock struct {
	f *os.File
}

// Acquire locks dir, which must exist: exclusively (a server, which writes) or shared (a
// reader that must not run beside a writer). It does not wait: when the lock is held in a
// conflicting mode it fails at once with an error wrapping ErrLocked that names the holder
// (its pid and role, as the exclusive holder wrote them). role says who the caller is, e.g.
// "sluice serve"; an exclusive holder records it with its pid.
func Acquire(dir string, exclusive bool, role string) (*Lock, error) {
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("dirlock: %w", err)
	}
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	for {
		err = unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		holder := readHolder(f)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked by %s", ErrLocked, dir, holder)
		}
		return nil, fmt.Errorf("dirlock: lock %s: %w", path, err)
	}
	if exclusive {
		line := "pid " + strconv.Itoa(os.Getpid()) + " (" + role + ")\n"
		if err := f.Truncate(0); err == nil {
			f.WriteAt([]byte(line), 0) // informative only: a failure leaves the lock held
		}
	}
	return &Lock{f: f}, nil
}

// readHolder returns what the exclusive holder wrote into the lock file, or a phrase saying
// it is unknown (a shared holder writes nothing).
func readHolder(f *os.File) string {
	var b [256]byte
	n, _ := f.ReadAt(b[:], 0)
	if s := strings.TrimSpace(string(b[:n])); s != "" {
		return s
	}
	return "another process (a reader such as sluice inspect)"
}

// Release gives the lock back. Calling it again does nothing.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the last descriptor of the open file releases the flock
	l.f = nil
	return err
}
