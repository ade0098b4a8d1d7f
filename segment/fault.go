package segment

import "runtime/debug"

// setPanicOnFault turns a fault on mapped memory (SIGBUS from a file truncated under its
// mapping) into a recoverable panic for the calling goroutine and returns the function that
// restores the previous setting: `defer setPanicOnFault()()`.
func setPanicOnFault() func() {
	old := debug.SetPanicOnFault(true)
	return func() { debug.SetPanicOnFault(old) }
}
