package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newScanCommand() *cobra.Command {
	var o commonOptions
	cmd := &cobra.Command{
		Use:   "scan CONFIG --index DIR",
		Short: "Scan registry storage into the on-disk index (for report and graph)",
		Long: `scan reads the registry configuration file CONFIG (REGISTRY_* environment overrides
apply), lists its storage and reads every manifest into the index in DIR, replacing what
an earlier scan recorded there. It deletes nothing and plans nothing: regsweep report and
regsweep graph then answer from the index without touching storage.

Exit codes: 0 success, 1 error, 2 usage.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.indexDir == "" {
				return &codeError{exitUsage, fmt.Errorf("--index DIR is required: report and graph read the index from there")}
			}
			if o.workers < 1 {
				return &codeError{exitUsage, fmt.Errorf("--workers %d: want at least 1", o.workers)}
			}
			s, err := openSession(cmd, args[0], o, false, true)
			if err != nil {
				return err
			}
			defer s.close()
			if err := s.scan(cmd, o, false); err != nil {
				return err
			}
			meta, err := s.idx.Meta()
			if err != nil {
				return err
			}
			s.log.Info("scanned", "storage", s.id, "blobs", meta.Blobs, "manifests", meta.Manifests,
				"took", time.Since(s.start).Round(time.Millisecond), "report with", "regsweep report --index "+o.indexDir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.indexDir, "index", "", "directory of the on-disk index")
	f.IntVar(&o.workers, "workers", 16, "concurrent storage operations")
	f.DurationVar(&o.requestTimeout, "request-timeout", 30*time.Second, "object stores: give up on a request after this long without an answer and try again (5 tries, with backoff)")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "log only warnings and errors")
	f.BoolVar(&o.verifyLinks, "verify-links", false, "read every revision and layer link and check it against its path (one more read per link)")
	return cmd
}
