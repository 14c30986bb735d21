// Command regsweep analyzes and garbage-collects CNCF Distribution registry storage.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	// Storage drivers register themselves with distribution's factory.
	_ "github.com/distribution/distribution/v3/registry/storage/driver/azure"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/gcs"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/s3-aws"
	"github.com/spf13/cobra"
)

// Exit codes.
const (
	exitOK      = 0
	exitError   = 1
	exitUsage   = 2
	exitBlocked = 3 // unreadable manifests are reachable: a sweep would refuse
)

// exitError carries an exit code through cobra.
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "regsweep",
		Short:         "Storage analyzer and garbage collector for CNCF Distribution (registry v2) storage",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newGCCommand(), newApplyCommand(), newScanCommand(), newReportCommand(), newGraphCommand())
	return root
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err == nil {
		os.Exit(exitOK)
	}
	fmt.Fprintln(os.Stderr, "regsweep:", err)
	var ce *codeError
	if errors.As(err, &ce) {
		os.Exit(ce.code)
	}
	os.Exit(exitError)
}
