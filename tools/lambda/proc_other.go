//go:build !linux

package lambda

import "syscall"

// childAttr is nil: only Linux kills a child with its parent (proc_linux.go).
func childAttr() *syscall.SysProcAttr { return nil }
