package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/storage"
)

type gcOptions struct {
	dryRun           bool
	deleteUntagged   bool
	dropReferrers    bool
	grace, uploadAge time.Duration
	indexDir         string
	output           string
	workers          int
	quiet            bool
}

func newGCCommand() *cobra.Command {
	var o gcOptions
	cmd := &cobra.Command{
		Use:   "gc CONFIG",
		Short: "Mark and sweep registry storage (dry run: report what would be freed)",
		Long: `gc reads the registry configuration file CONFIG (REGISTRY_* environment overrides
apply, as for the registry), scans its storage into an on-disk index, marks what is live
and reports what a sweep would delete, per kind and per repository.

Exit codes:
  0  success
  1  error (storage, index, configuration)
  2  usage error, or a real sweep was asked for (not available yet: use --dry-run)
  3  unreadable manifests are reachable from live roots: their blobs are kept and a
     sweep would refuse; see the warnings`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.verify(); err != nil {
				return &codeError{exitUsage, err}
			}
			return runGC(cmd, args[0], o)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.dryRun, "dry-run", "d", false, "do everything except delete")
	f.BoolVarP(&o.deleteUntagged, "delete-untagged", "m", false, "delete manifests that no tag, live index or live subject reaches")
	f.BoolVar(&o.dropReferrers, "delete-untagged-referrers", false, "with -m, also delete untagged referrers (signatures, SBOMs) of live manifests, as distribution does")
	f.DurationVar(&o.grace, "grace", time.Hour, "keep anything modified more recently than this")
	f.DurationVar(&o.uploadAge, "upload-age", 168*time.Hour, "delete uploads started longer ago than this")
	f.StringVar(&o.indexDir, "index", "", "directory of the on-disk index (default: a temporary directory, removed afterwards)")
	f.StringVarP(&o.output, "output", "o", "text", "report format: text or json")
	f.IntVar(&o.workers, "workers", 16, "concurrent storage operations")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "log only warnings and errors")
	return cmd
}

func (o gcOptions) verify() error {
	if !slices.Contains([]string{"text", "json"}, o.output) {
		return fmt.Errorf("--output %q: want text or json", o.output)
	}
	if o.dropReferrers && !o.deleteUntagged {
		return fmt.Errorf("--delete-untagged-referrers needs --delete-untagged")
	}
	if o.workers < 1 {
		return fmt.Errorf("--workers %d: want at least 1", o.workers)
	}
	if o.grace < 0 || o.uploadAge <= 0 {
		return fmt.Errorf("--grace must be >= 0 and --upload-age > 0")
	}
	if !o.dryRun {
		return fmt.Errorf("deleting is not available in this version; run with --dry-run to see what would be deleted")
	}
	return nil
}

func runGC(cmd *cobra.Command, config string, o gcOptions) error {
	ctx := cmd.Context()
	level := slog.LevelInfo
	if o.quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	start := time.Now()

	drv, _, err := storage.Open(ctx, config)
	if err != nil {
		return err
	}
	dir := o.indexDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "regsweep-index-"); err != nil {
			return fmt.Errorf("create index directory: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	idx, err := graph.Open(dir)
	if err != nil {
		return err
	}
	defer idx.Close()
	log.Info("scanning storage", "driver", drv.Name(), "index", dir)
	if err := graph.Build(ctx, drv, idx, graph.WithWorkers(o.workers), graph.WithLogger(log, 5*time.Second)); err != nil {
		return fmt.Errorf("scan storage of %s: %w", config, err)
	}
	plan, err := gc.NewPlan(ctx, idx,
		gc.WithDeleteUntagged(o.deleteUntagged), gc.WithKeepReferrers(!o.dropReferrers),
		gc.WithGracePeriod(o.grace), gc.WithUploadAge(o.uploadAge), gc.WithNow(start))
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	rep := gc.NewReport(plan, o.dryRun)
	out := cmd.OutOrStdout()
	if o.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		writeText(out, rep)
	}
	for _, w := range rep.Warnings {
		log.Warn(w.Detail, "kind", w.Kind, "repository", w.Repository, "path", w.Path)
	}
	log.Info("done", "took", time.Since(start).Round(time.Millisecond))
	if len(plan.Blocked) > 0 {
		return &codeError{exitBlocked, fmt.Errorf("%d unreadable manifest(s) are reachable from live roots (first: %s in %q: %s); their blobs are kept and a sweep would refuse",
			len(plan.Blocked), plan.Blocked[0].Digest, plan.Blocked[0].Repository, plan.Blocked[0].Detail)}
	}
	return nil
}

func writeText(w io.Writer, r *gc.Report) {
	s := r.Summary
	b := func(n int64) string { return humanize.IBytes(uint64(n)) }
	mode := "default (every manifest revision is a root)"
	if r.Mode.DeleteUntagged {
		mode = "delete-untagged (tags are roots)"
		if !r.Mode.KeepReferrers {
			mode += ", referrers not kept"
		}
	}
	verb := "would delete"
	if !r.Mode.DryRun {
		verb = "deleted"
	}
	fmt.Fprintf(w, "regsweep gc — %s, grace %s\n\n", mode, time.Duration(r.Mode.GraceSeconds)*time.Second)
	fmt.Fprintf(w, "Storage:  %d repositories, %d tags, %d manifests, %d blobs (%s)\n", s.Repositories, s.Tags, s.Manifests, s.Blobs, b(s.BlobBytes))
	fmt.Fprintf(w, "Live:     %d blobs (%s)\n", s.LiveBlobs, b(s.LiveBytes))
	fmt.Fprintf(w, "Garbage:  %s %d blobs (%s), %d manifest revisions, %d layer links, %d uploads\n",
		verb, s.DeleteBlobs, b(s.DeleteBytes), s.DeleteManifests, s.DeleteLayerLinks, s.DeleteUploads)
	if s.KeptByGrace > 0 || len(r.Kept) > 0 {
		fmt.Fprintf(w, "Kept:     %d items not live but kept (%d younger than grace)\n", len(r.Kept), s.KeptByGrace)
	}
	if s.UnreadableManifests > 0 {
		fmt.Fprintf(w, "Unreadable manifests: %d\n", s.UnreadableManifests)
	}

	repos := slices.Clone(r.Repositories)
	slices.SortStableFunc(repos, func(a, b gc.RepoStats) int {
		if a.ReclaimableBytes != b.ReclaimableBytes {
			if a.ReclaimableBytes > b.ReclaimableBytes {
				return -1
			}
			return 1
		}
		return 0
	})
	if len(repos) > 10 {
		repos = repos[:10]
	}
	if len(repos) > 0 {
		fmt.Fprintf(w, "\nTop repositories by reclaimable bytes:\n")
		fmt.Fprintf(w, "  %-32s %5s %9s %10s %10s %10s %12s\n", "REPOSITORY", "TAGS", "MANIFESTS", "BYTES", "UNIQUE", "SHARED", "RECLAIMABLE")
		for _, x := range repos {
			fmt.Fprintf(w, "  %-32s %5d %9d %10s %10s %10s %12s\n", x.Name, x.Tags, x.Manifests, b(x.Bytes), b(x.UniqueBytes), b(x.SharedBytes), b(x.ReclaimableBytes))
		}
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintf(w, "\nWarnings (%d):\n", len(r.Warnings))
		for i, x := range r.Warnings {
			if i == 20 {
				fmt.Fprintf(w, "  … %d more (use --output json for all)\n", len(r.Warnings)-i)
				break
			}
			where := x.Path
			if where == "" {
				where = x.Repository
			}
			fmt.Fprintf(w, "  [%s] %s: %s\n", x.Kind, where, x.Detail)
		}
	}
	if len(r.Blocked) > 0 {
		fmt.Fprintf(w, "\nA sweep would refuse: %d unreadable manifest(s) are reachable; every blob they might reference is kept.\n", len(r.Blocked))
	}
}
