// Command regsweep analyzes and garbage-collects CNCF Distribution registry storage.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	// Storage drivers register themselves with distribution's factory. Not inmemory:
	// no other process can read it.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/azure"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/gcs"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"
	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/internal/memlimit"
	"github.com/regsweep/regsweep/storage"
)

// Exit codes.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitBlocked  = 3  // unreadable manifests, broken roots or incomplete storage: a sweep refuses
	exitWritable = 4  // the registry serving the storage accepts writes: a sweep refuses
	exitWindow   = 5  // stopped at the maintenance window's end: run again to continue
	exitDamaged  = 6  // live data is missing or corrupt (verify, or gc's check after a sweep)
	exitCrash    = 70 // an internal error (EX_SOFTWARE): a panic or a fatal runtime error
)

// exitError carries an exit code through cobra.
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

// DefaultMemoryLimit is the resident memory a run aims to stay under unless
// GOMEMLIMIT or --memory-limit says otherwise: a run's live data (bitsets and arrays
// over ids) is far smaller than what a busy scan allocates and drops, and without a
// limit the heap may grow to twice the live size between collections. The Go runtime
// gets what the mapped index leaves of it (memlimit).
const DefaultMemoryLimit = 256 << 20

func newRootCommand() *cobra.Command {
	memLimit := byteSize(DefaultMemoryLimit)
	root := &cobra.Command{
		Version:       version(),
		Use:           "regsweep",
		Short:         "Storage analyzer and garbage collector for CNCF Distribution (registry v2) storage",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			if _, set := os.LookupEnv("GOMEMLIMIT"); !set && memLimit > 0 {
				memlimit.Start(cmd.Context(), int64(memLimit), memlimit.Every)
			}
		},
	}
	root.PersistentFlags().Var(&memLimit, "memory-limit",
		"soft limit on resident memory (256MiB, 1GB, or bytes), the mapped index included (GOMEMLIMIT overrides, for the Go runtime alone; 0: none). Not a cap: a larger live set still runs, with more garbage collection")
	root.AddCommand(newGCCommand(), newApplyCommand(), newScanCommand(), newReportCommand(), newGraphCommand(), newVerifyCommand(), newInspectCommand(), newIndexCommand(), newDocsCommand())
	// Every usage error is exit 2: bad flags and flag values, and wrong arguments.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &codeError{exitUsage, err} })
	for _, c := range root.Commands() {
		if args := c.Args; args != nil {
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return &codeError{exitUsage, err}
				}
				return nil
			}
		}
	}
	return root
}

// exitCode maps what a command returned to the process's exit code.
func exitCode(err error) int {
	var ce *codeError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ce):
		return ce.code
	case strings.HasPrefix(err.Error(), "unknown command "), strings.HasPrefix(err.Error(), "unknown shorthand flag"):
		return exitUsage // cobra's, before any command runs
	}
	return exitError
}

// Object stores: hundreds of requests in flight to one endpoint, on connections
// that are kept, not dialed again for each.
func init() { storage.KeepConnections() }

func main() {
	if os.Getenv(childEnv) == "" {
		os.Exit(supervise())
	}
	os.Exit(runMain())
}

// runMain runs the command line in this process and returns its exit code.
func runMain() int {
	if os.Getenv("REGSWEEP_CRASH_FOR_TEST") != "" {
		crashForTest()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	code := exitCode(err)
	if err != nil {
		fmt.Fprintln(os.Stderr, "regsweep:", err)
	}
	if code == exitUsage && os.Getenv(childEnv) != "" {
		return childUsage // the supervisor makes it 2 again
	}
	return code
}

// version is the module version and the VCS revision the binary was built from.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	var rev, when, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = ", modified"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		v += " (" + rev + " " + when + dirty + ")"
	}
	return v + ", " + bi.GoVersion
}
