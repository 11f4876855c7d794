package pgtest

import "syscall"

// setDeathSignal asks the kernel to send the server SIGQUIT (PostgreSQL's
// immediate shutdown) if this process dies first, so a test binary killed
// by its timeout does not leave a postmaster behind.
func setDeathSignal(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGQUIT }
