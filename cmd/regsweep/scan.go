package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newScanCommand() *cobra.Command {
	var o storageFlags
	cmd := &cobra.Command{
		Use:   "scan CONFIG --index DIR",
		Short: "Scan registry storage into the on-disk index (for report and graph)",
		Long: `scan reads the registry configuration file CONFIG (REGISTRY_* environment overrides
apply), lists its storage and reads every manifest into the index in DIR, replacing what
an earlier scan recorded there. It deletes nothing and plans nothing: regsweep report and
regsweep graph then answer from the index without touching storage.

Exit codes: 0 success, 1 error, 2 usage.`,
		Example: `  regsweep scan /etc/docker/registry/config.yml --index /var/tmp/regsweep
  REGISTRY_STORAGE_S3_BUCKET=other regsweep scan CONFIG --index /var/tmp/other`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.indexDir == "" {
				return &codeError{exitUsage, fmt.Errorf("--index DIR is required: report and graph read the index from there")}
			}
			if err := o.verify(); err != nil {
				return &codeError{exitUsage, err}
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
	o.bind(cmd, "directory of the on-disk index (required)")
	return cmd
}
