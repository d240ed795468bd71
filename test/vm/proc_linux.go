package vm

import "syscall"

// sysProcAttr makes QEMU and the storage daemon die with the test process
// even when it is killed before its clean-ups run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
