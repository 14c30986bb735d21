package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// A Go program that panics, or dies of a fatal runtime error, exits 2: the code
// regsweep gives usage errors. So regsweep runs itself as a child, in which usage
// errors exit childUsage, and turns the child's 2 into exitCrash: a crash never
// reads as "usage" to a cron job or a script.
const (
	childEnv   = "REGSWEEP_SUPERVISED"
	childUsage = 64 // EX_USAGE, inside the child only
)

// supervise runs regsweep as a child process with the same arguments, standard
// streams and environment, passes signals on, and returns its exit code, mapped.
// Where it cannot start the child it runs in this process.
func supervise() int {
	exe, err := os.Executable()
	if err != nil {
		return runMain()
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.SysProcAttr = childAttr() // the child dies with us
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	if err := cmd.Start(); err != nil {
		signal.Stop(sigs)
		return runMain()
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	signal.Stop(sigs)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintln(os.Stderr, "regsweep:", err)
		return exitError
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		fmt.Fprintf(os.Stderr, "regsweep: stopped by signal %v; run the same command again to finish an interrupted sweep\n", ws.Signal())
		return 128 + int(ws.Signal())
	}
	switch code := cmd.ProcessState.ExitCode(); code {
	case childUsage:
		return exitUsage
	case 2:
		fmt.Fprintf(os.Stderr, "regsweep: crashed: an internal error, not a usage error (exit %d). The output above says where; please report it. A sweep it was running is finished by running the same command again.\n", exitCrash)
		return exitCrash
	default:
		return code
	}
}

// crashForTest panics in a goroutine, as a bug would: tests check that a crash
// does not exit 2.
func crashForTest() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		panic("regsweep: crash requested by REGSWEEP_CRASH_FOR_TEST") // no one recovers it
	}()
	<-done
}
