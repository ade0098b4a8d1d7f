package lambda

import "syscall"

// childAttr makes the kernel kill a handler process when the trigger dies, even by
// SIGKILL, so that no environment outlives its runtime API.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
