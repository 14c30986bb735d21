package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/analysis"
)

type gcOptions struct {
	commonOptions
	sweepFlags
	markFlags
	scopeFlags
	dryRun      bool
	planOut     string
	maxIndexAge time.Duration
}

func newGCCommand() *cobra.Command {
	var o gcOptions
	cmd := &cobra.Command{
		Use:   "gc CONFIG",
		Short: "Mark and sweep registry storage (--dry-run: report what would be freed)",
		Long: `gc reads the registry configuration file CONFIG (REGISTRY_* environment overrides
apply, as for the registry), scans its storage into an on-disk index, marks what is live
and deletes the rest: tag history and revision links of dead manifests (-m only), then
blobs, then layer links, then stale uploads, then (--prune-empty-repositories) the
directories of repositories left with nothing in them. With --dry-run it only reports;
--repo GLOB then narrows the lists to some repositories (what is live is still decided
over all of them).

Run it while the registry is read-only or stopped, as for registry garbage-collect. The
grace period protects pushes that race the run. If a sweep is interrupted, run the same
command again: it resumes from the journal in the index and finishes.

With --policy FILE, retention policies decide which tags stay (see docs/retention.md);
the tags they do not keep are deleted first, in the same plan, and what only they kept
is collected where the policy says deleteUntagged. --until and --max-duration bound a
real run to a maintenance window: no delete starts after its end, and the next run
continues.

Exit codes:
  0  success
  1  error (storage, index, configuration)
  2  usage error (a bad policy file included)
  3  unreadable manifests are reachable from live roots: their blobs are kept and the
     sweep refuses (unless --ignore-unreadable); see the warnings
  4  the registry serving the storage accepts writes: the sweep refuses
  5  stopped at the maintenance window's end; run again to continue
  6  after the sweep, live data is missing or corrupt (see the check's problems)
  70 internal error`,
		Example: `  regsweep gc /etc/docker/registry/config.yml --dry-run          # what default-mode GC would free
  regsweep gc CONFIG -m --dry-run -o json > report.json            # delete-untagged, the JSON report
  regsweep gc CONFIG -m --until 05:00 --metrics-file gc.prom       # for real, in a window
  regsweep gc CONFIG --policy policy.yaml --dry-run                 # retention policy: which tags go`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.verify(); err != nil {
				return &codeError{exitUsage, err}
			}
			return runGC(cmd, args[0], o)
		},
	}
	o.commonOptions.bind(cmd)
	o.sweepFlags.bind(cmd)
	f := cmd.Flags()
	o.markFlags.bind(cmd, "delete")
	o.scopeFlags.bind(cmd)
	f.BoolVarP(&o.dryRun, "dry-run", "d", false, "do everything except delete")
	f.StringVar(&o.planOut, "plan-out", "", "write the plan as JSON to this file (for regsweep apply)")
	f.DurationVar(&o.maxIndexAge, "max-index-age", 0, "with --dry-run, reuse the index if a scan finished less than this long ago (0: always rescan); real sweeps always rescan")
	return cmd
}

func (o *gcOptions) verify() error {
	if err := o.commonOptions.verify(); err != nil {
		return err
	}
	if err := o.markFlags.verify(); err != nil {
		return err
	}
	if err := o.scopeFlags.verify(); err != nil {
		return err
	}
	if len(o.repos) > 0 && !o.dryRun {
		return fmt.Errorf("--repo narrows dry-run reports only: a sweep frees blobs registry-wide (to delete tags in some repositories, use a --policy whose repositories say which)")
	}
	if len(o.repos) > 0 && o.planOut != "" {
		return fmt.Errorf("--repo with --plan-out: a plan is always the whole storage's; leave out --repo to write it")
	}
	return o.sweepFlags.verify()
}

func runGC(cmd *cobra.Command, config string, o gcOptions) error {
	if err := checkOutputs(o.metricsFile, o.planOut); err != nil {
		return err
	}
	s, err := openSession(cmd, config, o.storageFlags, !o.dryRun, !o.dryRun || o.maxIndexAge == 0)
	if err != nil {
		return err
	}
	defer s.close()
	s.tagTimes = o.policy != nil
	if !o.dryRun {
		s.deadline = o.end
		if !s.deadline.IsZero() {
			s.log.Info("maintenance window", "ends", s.deadline.Format(time.RFC3339), "in", time.Until(s.deadline).Round(time.Second))
		}
		// Fail before the scan, not hours after it; sweep asks again before deleting.
		if _, err := s.checkRegistry(cmd.Context(), o.sweepFlags); err != nil {
			return err
		}
	}
	if err := s.scanUnlessFresh(cmd, o.storageFlags, o.dryRun, o.maxIndexAge); err != nil {
		return err
	}
	plan, err := s.plan(cmd.Context(), o.markFlags, gc.WithAllowMassDelete(o.allowMassDelete))
	if err != nil {
		return err
	}
	if o.planOut != "" {
		b, err := json.MarshalIndent(plan, "", "  ")
		if err != nil {
			return err
		}
		if err := writeFile(o.planOut, b); err != nil {
			return fmt.Errorf("write plan: %w", err)
		}
		s.log.Info("plan written", "file", o.planOut, "apply with", "regsweep apply "+config+" "+o.planOut)
	}
	out := cmd.OutOrStdout()
	if o.dryRun {
		rep := analysis.NewReport(plan, true)
		rep.Window = s.estimate(plan, o.end, o.maxOps)
		shown, err := o.narrow(rep, plan)
		if err != nil {
			return err
		}
		if err := writeReport(out, shown, o.output); err != nil {
			return err
		}
		s.logWarnings(plan)
		if len(plan.Blocked) > 0 {
			return blockedError(plan, "a sweep would refuse")
		}
		return s.writeMetrics(o.metricsFile, rep)
	}
	rep, err := s.sweep(cmd, plan, o.storageFlags, o.sweepFlags)
	if rep != nil {
		if werr := writeReport(out, rep, o.output); werr != nil {
			return werr
		}
	}
	s.logWarnings(plan)
	if exitCode(err) == exitWindow && rep != nil {
		if merr := s.writeMetrics(o.metricsFile, rep); merr != nil {
			s.log.Error("metrics not written", "error", merr)
		}
	}
	if err != nil {
		return err
	}
	s.log.Info("done", "took", time.Since(s.start).Round(time.Millisecond))
	return s.writeMetrics(o.metricsFile, rep)
}

func (s *session) logWarnings(p *gc.Plan) {
	for _, w := range p.Warnings {
		s.log.Warn(w.Detail, "kind", w.Kind, "repository", w.Repository, "path", w.Path)
	}
}

func writeText(w io.Writer, r *analysis.Report) {
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
	if pol := r.Mode.Policy; pol != nil {
		if !r.Mode.DeleteUntagged && untaggedByPolicy(r) {
			mode = "delete-untagged where the retention policy says so, every manifest revision a root elsewhere"
		}
		mode += ", retention policy " + pol.Name
	}
	fmt.Fprintf(w, "regsweep gc — %s, grace %s\n\n", mode, time.Duration(r.Mode.GraceSeconds)*time.Second)
	fmt.Fprintf(w, "Storage:  %s, %s, %s, %s (%s)\n", plural(s.Repositories, "repository"), plural(s.Tags, "tag"), plural(s.Manifests, "manifest"), nBlobs(s.Blobs), b(s.BlobBytes))
	fmt.Fprintf(w, "Live:     %s (%s)\n", nBlobs(s.LiveBlobs), b(s.LiveBytes))
	fmt.Fprintf(w, "Garbage:  %s %s (%s), %s, %s, %s (%s); %s in all\n",
		verb, nBlobs(s.DeleteBlobs), b(s.DeleteBytes), plural(s.DeleteManifests, "manifest revision"), plural(s.DeleteLayerLinks, "layer link"),
		plural(s.DeleteUploads, "stale upload"), b(s.DeleteUploadBytes), b(s.DeleteBytes+s.DeleteUploadBytes))
	if r.Mode.Policy != nil {
		fmt.Fprintf(w, "Tags:     %s %d of %s (retention policy), first\n", verb, s.DeleteTags, plural(s.Tags, "tag"))
	}
	if r.Mode.PruneEmptyRepositories {
		names := []string{}
		revs, links := 0, 0
		for i, x := range r.Delete.Repositories {
			revs += x.Revisions
			links += x.LayerLinks
			switch {
			case i < 5:
				names = append(names, x.Repository)
			case i == 5:
				names = append(names, fmt.Sprintf("… %d more", len(r.Delete.Repositories)-i))
			}
		}
		fmt.Fprintf(w, "Empty:    %s %s, last", verb, plural(len(r.Delete.Repositories), "empty repository"))
		if revs+links > 0 {
			fmt.Fprintf(w, ", with the %s and %s they hold of images kept elsewhere", plural(revs, "revision link"), plural(links, "layer link"))
		}
		if len(names) > 0 {
			fmt.Fprintf(w, ": %s", strings.Join(names, ", "))
		}
		fmt.Fprintln(w)
	}
	if s.KeptByGrace > 0 || len(r.Kept) > 0 {
		fmt.Fprintf(w, "Kept:     %d items not live but kept (%d younger than grace)\n", len(r.Kept), s.KeptByGrace)
	}
	if s.KeptReferrers > 0 {
		fmt.Fprintf(w, "Referrers: %d untagged signatures/SBOMs of live images kept (registry garbage-collect -m deletes them)\n", s.KeptReferrers)
	}
	if s.UnreadableManifests > 0 {
		fmt.Fprintf(w, "Unreadable manifests: %d\n", s.UnreadableManifests)
	}
	writeScopeText(w, r.Scope, verb)

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
	writeRetentionText(w, r.Retention, r.Delete.Tags, verb, 10)
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
	for _, c := range r.Registry {
		fmt.Fprintf(w, "\nRegistry: %s %s", cmp.Or(c.URL, "(none configured)"), c.State)
		if c.Detail != "" {
			fmt.Fprintf(w, " (%s)", c.Detail)
		}
		fmt.Fprintln(w)
	}
	if res := r.Result; res != nil {
		fmt.Fprintf(w, "\nSwept: deleted %s, %s (%s freed), %s, %s, %s, %s",
			plural(res.DeletedTags, "tag"), nBlobs(res.DeletedBlobs), b(res.FreedBytes), plural(res.DeletedManifests, "manifest revision"),
			plural(res.DeletedTagIndex, "tag history entry"), plural(res.DeletedLayerLinks, "layer link"), plural(res.DeletedUploads, "upload")+" ("+b(res.FreedUploadBytes)+")")
		if res.DeletedRepositories > 0 || res.KeptRepositories > 0 {
			fmt.Fprintf(w, ", %s removed", plural(res.DeletedRepositories, "empty repository"))
			if res.KeptRepositories > 0 {
				fmt.Fprintf(w, " (%d kept: not empty any more)", res.KeptRepositories)
			}
		}
		if res.AlreadyDone > 0 || res.Missing > 0 {
			fmt.Fprintf(w, " (%d done by an interrupted run, %d already gone)", res.AlreadyDone, res.Missing)
		}
		fmt.Fprintln(w)
		if res.RecheckRoots > 0 {
			fmt.Fprintf(w, "Pushed during the sweep: %d roots found by %d re-checks; %d planned items they reference were kept. The registry takes writes: make it read-only for the next run.\n", res.RecheckRoots, res.Rechecks, res.KeptByRecheck)
		}
		if res.KeptTags > 0 {
			fmt.Fprintf(w, "Kept: %d planned tags were pushed again (or name another manifest) since the plan was made.\n", res.KeptTags)
		}
		if res.LeftAlone > 0 {
			fmt.Fprintf(w, "Left alone: %d planned items are, or lie below, symbolic links.\n", res.LeftAlone)
		}
	}
	if r.Verify != nil {
		fmt.Fprintln(w)
		writeProblems(w, r.Verify)
	}
	writeWindowText(w, r.Window, r.Result)
	if len(r.Dropped) > 0 {
		fmt.Fprintf(w, "\nKept since the plan was made (referenced again or younger than grace): %d paths\n", len(r.Dropped))
	}
	if len(r.AlreadyDeleted) > 0 {
		fmt.Fprintf(w, "\nAlready deleted by an interrupted run of this plan: %d paths\n", len(r.AlreadyDeleted))
	}
	if r.Result != nil {
		fmt.Fprintln(w, "\nNote: a running registry may still answer from its blob-descriptor cache for deleted blobs; restart it (or flush its redis cache).")
	}
	if len(r.Blocked) > 0 {
		fmt.Fprintf(w, "\nA sweep would refuse: %d unreadable manifest(s) are reachable; every blob they might reference is kept.\n", len(r.Blocked))
	}
}

// untaggedByPolicy reports whether a policy of the report's says deleteUntagged.
func untaggedByPolicy(r *analysis.Report) bool {
	for _, p := range r.Mode.Policy.Policies {
		if p.DeleteUntagged {
			return true
		}
	}
	return false
}

// writeScopeText says what the repositories of --repo account for.
func writeScopeText(w io.Writer, sc *analysis.Scope, verb string) {
	if sc == nil {
		return
	}
	fmt.Fprintf(w, "\nScope:    --repo %s: %s of %d, %s, %s, %s live (%s reached by no other repository)\n",
		strings.Join(sc.Globs, " --repo "), plural(sc.Repositories, "repository"), sc.Repositories+sc.RepositoriesOutOfScope,
		plural(sc.Tags, "tag"), plural(sc.Manifests, "manifest"), ib(sc.Bytes), ib(sc.UniqueBytes))
	fmt.Fprintf(w, "          %s %s (%s) only they link, %s (%s) they and other repositories link, %s, %s, %s (%s)\n",
		verb, nBlobs(sc.DeleteBlobs), ib(sc.DeleteBytes), nBlobs(sc.SharedDeleteBlobs), ib(sc.SharedDeleteBytes),
		plural(sc.DeleteManifests, "manifest revision"), plural(sc.DeleteLayerLinks, "layer link"), plural(sc.DeleteUploads, "stale upload"), ib(sc.DeleteUploadBytes))
	if sc.UnlinkedDeleteBlobs > 0 {
		fmt.Fprintf(w, "          and %s (%s) no repository links, outside any scope\n", nBlobs(sc.UnlinkedDeleteBlobs), ib(sc.UnlinkedDeleteBytes))
	}
	fmt.Fprintln(w, "          Lists below show the scope; the totals above are the whole storage's, as a sweep frees blobs registry-wide.")
}
