package qemu

import "syscall"

// sysProcAttr puts QEMU in its own process group and has the kernel kill it if the exporter
// dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
