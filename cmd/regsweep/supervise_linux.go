package main

import "syscall"

// childAttr kills the child when the supervisor dies (killed with SIGKILL, say),
// so that no sweep goes on unseen.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
