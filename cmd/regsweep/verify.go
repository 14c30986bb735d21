package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/gc/verify"
	"github.com/regsweep/regsweep/graph"
)

type verifyOptions struct {
	commonOptions
	deleteUntagged bool
	dropReferrers  bool
	checksums      bool
}

func newVerifyCommand() *cobra.Command {
	var o verifyOptions
	cmd := &cobra.Command{
		Use:   "verify CONFIG",
		Short: "Check storage as fsck does: every tag's image is whole and served; --checksums re-hashes blobs",
		Long: `verify scans the storage CONFIG names (every blob stated, every link read) and checks
that every root has its whole closure: every tag (and in default mode every manifest
revision) names a manifest that is there and parses, whose index children, config,
layers and live referrers are there, and that its repository links (the registry serves
a repository only the blobs it links). Every link must parse and name a blob.
--checksums also reads every blob and checks that its content hashes to its name.

Each problem names the repository, the tags it breaks and the path. Run it before a
first real sweep and after one (gc runs the closure check after every real sweep,
unless --no-verify). It deletes nothing.

Exit codes: 0 clean, 1 error, 2 usage, 6 live data is missing or corrupt.`,
		Example: `  regsweep verify /etc/docker/registry/config.yml
  regsweep verify CONFIG -m --checksums -o json > fsck.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.commonOptions.verify(); err != nil {
				return &codeError{exitUsage, err}
			}
			if o.dropReferrers && !o.deleteUntagged {
				return &codeError{exitUsage, fmt.Errorf("--delete-untagged-referrers needs --delete-untagged")}
			}
			return runVerify(cmd, args[0], o)
		},
	}
	o.commonOptions.bind(cmd)
	f := cmd.Flags()
	f.BoolVarP(&o.deleteUntagged, "delete-untagged", "m", false, "only tags are roots (what gc -m keeps): untagged manifests need not be whole")
	f.BoolVar(&o.dropReferrers, "delete-untagged-referrers", false, "with -m, untagged referrers (signatures, SBOMs) need not be whole either")
	f.BoolVar(&o.checksums, "checksums", false, "read every blob and check that its content hashes to its name (reads the whole storage)")
	return cmd
}

func runVerify(cmd *cobra.Command, config string, o verifyOptions) error {
	if err := checkOutputs(o.metricsFile); err != nil {
		return err
	}
	o.verifyLinks = true
	s, err := openSession(cmd, config, o.storageFlags, false, true)
	if err != nil {
		return err
	}
	defer s.close()
	s.tagTimes = true
	if err := s.scan(cmd, o.storageFlags, false); err != nil {
		return err
	}
	rep, err := s.verify(cmd.Context(), o.deleteUntagged, !o.dropReferrers, o.checksums, s.workers)
	if err != nil {
		return err
	}
	if err := writeVerify(cmd.OutOrStdout(), rep, o.output); err != nil {
		return err
	}
	return verifyExit(rep)
}

// verify loads the index the session just built and checks it.
func (s *session) verify(ctx context.Context, deleteUntagged, keepReferrers, checksums bool, workers int) (*verify.Report, error) {
	g, err := graph.Load(ctx, s.idx)
	if err != nil {
		return nil, indexError(s.dir, err)
	}
	rep, err := verify.Check(ctx, g, verify.Options{DeleteUntagged: deleteUntagged, KeepReferrers: keepReferrers, Read: verify.Reader(s.drv)})
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", s.id, err)
	}
	if checksums {
		if err := rep.Rehash(ctx, s.drv, g, workers, s.prog); err != nil {
			return nil, fmt.Errorf("verify checksums of %s: %w", s.id, err)
		}
		s.doneProgress()
	}
	for _, p := range rep.Problems {
		if p.Live {
			s.log.Error(p.Detail, "kind", p.Kind, "repository", p.Repository, "tags", p.Tags, "path", p.Path)
		} else {
			s.log.Warn(p.Detail, "kind", p.Kind, "repository", p.Repository, "path", p.Path)
		}
	}
	return rep, nil
}

// verifyExit is exit 6 when live data is missing or corrupt.
func verifyExit(rep *verify.Report) error {
	if rep.Clean() {
		return nil
	}
	p := rep.Problems[0]
	return &codeError{exitDamaged, fmt.Errorf("live data is missing or corrupt: %d problem(s) break live images; first: %s", rep.Summary.LiveProblems, p)}
}

func writeVerify(w io.Writer, rep *verify.Report, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	s := rep.Summary
	mode := "default (every manifest revision is a root)"
	if rep.DeleteUntagged {
		mode = "delete-untagged (tags are roots)"
	}
	fmt.Fprintf(w, "regsweep verify — %s\n\n", mode)
	fmt.Fprintf(w, "Checked:  %s, %s, %s, %s, %s; the roots reach %s\n",
		plural(s.Repositories, "repository"), plural(s.Tags, "tag"), plural(s.Roots, "root"), plural(s.Manifests, "manifest"), nBlobs(s.Blobs), plural(s.Reached, "blob"))
	if rep.Checksums {
		fmt.Fprintf(w, "Hashed:   %s, %s\n", nBlobs(s.BlobsHashed), ib(s.BytesHashed))
	}
	writeProblems(w, rep)
	return nil
}

// writeProblems lists what verify found, live problems first.
func writeProblems(w io.Writer, rep *verify.Report) {
	s := rep.Summary
	if s.Problems == 0 {
		fmt.Fprintf(w, "OK:       every root's image is whole and linked in its repository\n")
		return
	}
	fmt.Fprintf(w, "Problems: %d, %d of them breaking live images\n", s.Problems, s.LiveProblems)
	for i, p := range rep.Problems {
		if i == 50 {
			fmt.Fprintf(w, "  … %d more (use --output json for all)\n", len(rep.Problems)-i)
			break
		}
		fmt.Fprintf(w, "  %s\n", p)
	}
}
