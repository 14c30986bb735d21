package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/analysis"
	"github.com/regsweep/regsweep/graph"
)

// planFlags are those of the commands that plan from an index alone.
type planFlags struct {
	markFlags
	indexDir string
}

func (p *planFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.indexDir, "index", "", "directory of an index filled by regsweep scan (required)")
	p.markFlags.bind(cmd, "count as garbage")
}

func (p *planFlags) verify() error {
	if p.indexDir == "" {
		return fmt.Errorf("--index DIR is required (fill it with regsweep scan CONFIG --index DIR)")
	}
	return p.markFlags.verify()
}

// loadIndex opens the index, loads it once, and plans as gc would have at the time
// of the scan (grace and upload age count back from when it started, not from now;
// deleteUntagged overrides the flag). Reports delete nothing: storage that looks
// incomplete shows in their warnings instead of stopping them.
func (p planFlags) loadIndex(ctx context.Context, deleteUntagged bool, opts ...gc.Option) (*gc.Plan, func(), error) {
	idx, meta, err := openIndex(p.indexDir)
	if err != nil {
		return nil, nil, err
	}
	g, err := graph.Load(ctx, idx)
	if err != nil {
		idx.Close()
		return nil, nil, indexError(p.indexDir, err)
	}
	now := meta.Started
	if now.IsZero() {
		now = meta.Finished
	}
	m := p.markFlags
	m.deleteUntagged = deleteUntagged
	plan, err := gc.NewPlan(ctx, g, append(append(m.options(now), gc.WithAllowMassDelete(true), gc.WithSpillDir(p.indexDir)), opts...)...)
	if err != nil {
		idx.Close()
		return nil, nil, indexError(p.indexDir, err)
	}
	plan.Storage = meta.Storage
	return plan, func() { plan.Close(); idx.Close() }, nil
}

// openIndex opens an index that a scan filled; it never creates one.
func openIndex(dir string) (*graph.Index, graph.Meta, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || err == nil && len(ents) == 0 {
		return nil, graph.Meta{}, fmt.Errorf("no index in %s: run regsweep scan CONFIG --index %s first", dir, dir)
	}
	if err != nil {
		return nil, graph.Meta{}, err
	}
	idx, err := graph.Open(dir)
	if err != nil {
		return nil, graph.Meta{}, indexError(dir, err)
	}
	meta, err := idx.Meta()
	if err != nil {
		idx.Close()
		return nil, graph.Meta{}, indexError(dir, err)
	}
	return idx, meta, nil
}

// indexError says what to do about an index that cannot be used.
func indexError(dir string, err error) error {
	switch {
	case errors.Is(err, graph.ErrDamaged):
		return fmt.Errorf("the index at %s is damaged: rebuild it with `regsweep scan CONFIG --index %s` (%w)", dir, dir, err)
	case errors.Is(err, graph.ErrIndexInUse):
		return fmt.Errorf("%w: another regsweep is using the index at %s", err, dir)
	}
	return fmt.Errorf("index %s: %w", dir, err)
}

type reportOptions struct {
	planFlags
	scopeFlags
	output      string
	top         int
	untag       []string
	deleteRepos []string
	metricsFile string
	htmlRepos   []string
	dot         string
}

func newReportCommand() *cobra.Command {
	var o reportOptions
	cmd := &cobra.Command{
		Use:   "report --index DIR",
		Short: "Capacity report from the index: where the bytes are, what GC frees, what-ifs",
		Long: `report answers from an index filled by regsweep scan, without touching storage: it
plans as gc --dry-run would have at the time of the scan (default mode unless -m) and
reports per repository (bytes, unique, shared, reclaimable, largest images) and for the
registry (stored, live, garbage, deduplication, blob sizes, blob ages).

--what-if-untag REPO:TAG and --what-if-delete-repo REPO (repeatable) report how many more
bytes GC would free after the change. Deleting a tag frees only the blobs nothing else
references, so this is usually much less than the image's size. --what-if-untag implies
-m: in default mode every manifest revision is a root and untagging frees nothing.

--output json carries the summary and repositories objects of gc --dry-run -o json, plus
capacity (and what_if). --output csv writes one row per repository; --output html one
self-contained page with charts, a sortable table and the image graphs of --html-repos
(default: the 3 largest repositories), drawn with Graphviz dot when it is installed.
--metrics-file writes Prometheus metrics for node_exporter's textfile collector.

--policy FILE answers what a retention policy would free: which tags it deletes, and
per policy and repository the bytes their untagging frees (JSON: delete.tags and
retention; text, CSV and HTML show the same).

Exit codes: 0 success, 1 error, 2 usage.`,
		Example: `  regsweep scan CONFIG --index /var/tmp/regsweep
  regsweep report --index /var/tmp/regsweep -o html > report.html
  regsweep report --index /var/tmp/regsweep -m --what-if-untag team/app:old
  regsweep report --index /var/tmp/regsweep --policy policy.yaml -o csv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.verify(); err != nil {
				return &codeError{exitUsage, err}
			}
			return runReport(cmd, o)
		},
	}
	o.planFlags.bind(cmd)
	o.scopeFlags.bind(cmd)
	f := cmd.Flags()
	f.StringVarP(&o.output, "output", "o", "text", "report format: text, json, csv or html")
	f.IntVar(&o.top, "top", 10, "repositories per ranking and images per repository")
	f.StringArrayVar(&o.untag, "what-if-untag", nil, "REPO:TAG: report what GC would free after deleting this tag (repeatable; implies -m)")
	f.StringArrayVar(&o.deleteRepos, "what-if-delete-repo", nil, "REPO: report what GC would free after deleting this repository (repeatable)")
	f.StringVar(&o.metricsFile, "metrics-file", "", "also write Prometheus metrics to this file (textfile collector format, replaced atomically)")
	f.StringSliceVar(&o.htmlRepos, "html-repos", nil, "repositories whose image graph the HTML report draws (default: the 3 largest)")
	f.StringVar(&o.dot, "dot", "dot", "Graphviz dot command for the HTML image graphs; when not found the Mermaid source is shown")
	return cmd
}

func (o *reportOptions) verify() error {
	if err := o.planFlags.verify(); err != nil {
		return err
	}
	if err := o.scopeFlags.verify(); err != nil {
		return err
	}
	switch o.output {
	case "text", "json", "csv", "html":
	default:
		return fmt.Errorf("--output %q: want text, json, csv or html", o.output)
	}
	if o.top < 1 {
		return fmt.Errorf("--top %d: want at least 1", o.top)
	}
	for _, t := range o.untag {
		if i := strings.LastIndex(t, ":"); i <= 0 || i == len(t)-1 || strings.Contains(t[i:], "/") {
			return fmt.Errorf("--what-if-untag %q: want REPOSITORY:TAG", t)
		}
	}
	for _, r := range o.deleteRepos {
		if r == "" {
			return fmt.Errorf("--what-if-delete-repo: empty repository name")
		}
	}
	if o.output != "html" && len(o.htmlRepos) > 0 {
		return fmt.Errorf("--html-repos needs --output html")
	}
	return nil
}

// capacityReport is report's JSON: the report contract's objects, then capacity.
type capacityReport struct {
	*analysis.Report
	Index    indexInfo          `json:"index"`
	Capacity *analysis.Capacity `json:"capacity"`
	WhatIf   *analysis.WhatIf   `json:"what_if,omitempty"`
}

// indexInfo says which scan the report answers from.
type indexInfo struct {
	Dir          string    `json:"dir"`
	Driver       string    `json:"driver"`
	ScanStarted  time.Time `json:"scan_started"`
	ScanFinished time.Time `json:"scan_finished"`
}

// newCapacityReport plans and computes everything report prints, from one load of
// the index: the plan, the what-if plan (the same graph without the tags and
// repositories named), the capacity view and the image graphs all share it.
func newCapacityReport(ctx context.Context, o reportOptions) (*capacityReport, *gc.Plan, func(), error) {
	// Untagging frees nothing where every revision is a root.
	m := o.deleteUntagged || len(o.untag) > 0
	plan, done, err := o.loadIndex(ctx, m)
	if err != nil {
		return nil, nil, nil, err
	}
	fail := func(err error) (*capacityReport, *gc.Plan, func(), error) { done(); return nil, nil, nil, err }
	c, err := analysis.NewCapacity(ctx, plan, analysis.WithTopN(o.top))
	if err != nil {
		return fail(indexError(o.indexDir, err))
	}
	meta := plan.Graph().Meta()
	r := &capacityReport{
		Report:   analysis.NewReport(plan, true),
		Index:    indexInfo{Dir: o.indexDir, Driver: meta.Driver, ScanStarted: meta.Started, ScanFinished: meta.Finished},
		Capacity: c,
	}
	if len(o.untag) > 0 || len(o.deleteRepos) > 0 {
		known := map[string]bool{}
		for _, rs := range plan.Repositories {
			known[rs.Name] = true
		}
		for _, name := range o.deleteRepos {
			if !known[name] {
				return fail(&codeError{exitUsage, fmt.Errorf("--what-if-delete-repo %s: no such repository in the index", name)})
			}
		}
		tags := map[string]bool{}
		for _, t := range plan.Graph().Tags() {
			tags[t.Repo+":"+t.Name] = true
		}
		for _, ref := range o.untag {
			if !tags[ref] {
				return fail(&codeError{exitUsage, fmt.Errorf("--what-if-untag %s: no such tag in the index", ref)})
			}
		}
		mf := o.markFlags
		mf.deleteUntagged = m
		after, err := gc.NewPlan(ctx, plan.Graph(), append(append(mf.options(plan.Mode.Now), gc.WithAllowMassDelete(true)),
			gc.WithoutTags(o.untag...), gc.WithoutRepos(o.deleteRepos...))...)
		if err != nil {
			return fail(fmt.Errorf("what-if plan: %w", err))
		}
		w := analysis.NewWhatIf(plan, after, o.untag, o.deleteRepos)
		r.WhatIf = &w
	}
	return r, plan, done, nil
}

func runReport(cmd *cobra.Command, o reportOptions) error {
	start := time.Now()
	if err := checkOutputs(o.metricsFile); err != nil {
		return err
	}
	ctx := cmd.Context()
	rep, plan, done, err := newCapacityReport(ctx, o)
	if err != nil {
		return err
	}
	defer done()
	full := rep.Report
	if !o.matcher.All() {
		if rep.Report, err = o.narrow(rep.Report, plan); err != nil {
			return err
		}
		rep.Capacity = analysis.NarrowCapacity(rep.Capacity, o.matcher)
	}
	// Render to memory first: a failing HTML graph leaves no half-written output.
	var buf bytes.Buffer
	switch o.output {
	case "json":
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	case "csv":
		err = writeCapacityCSV(&buf, rep)
	case "html":
		repos := o.htmlRepos
		if len(repos) == 0 {
			for i, r := range rep.Capacity.Top.ByBytes {
				if i == 3 {
					break
				}
				repos = append(repos, r.Name)
			}
		}
		var graphs []*analysis.ImageGraph
		if graphs, err = analysis.NewImageGraphs(ctx, plan, repos...); err != nil {
			return &codeError{exitUsage, fmt.Errorf("--html-repos: %w", err)}
		}
		err = writeHTML(ctx, &buf, rep, graphs, o.dot)
	default:
		writeCapacityText(&buf, rep)
	}
	if err != nil {
		return err
	}
	if _, err := cmd.OutOrStdout().Write(buf.Bytes()); err != nil {
		return err
	}
	if o.metricsFile != "" {
		extra := analysis.MetricsExtra{Duration: time.Since(start), LastSuccess: time.Now(), Prefix: "regsweep_report_"}
		// Metrics are the whole storage's whatever the scope: one series per repository.
		if err := writeMetricsFile(o.metricsFile, full, extra); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	return nil
}

// writeMetricsFile writes rep's metrics to name atomically (a temporary file in the
// same directory, renamed over it) and readable by node_exporter: the textfile
// collector only reads *.prom files, so the temporary one is never half-read.
func writeMetricsFile(name string, rep *analysis.Report, extra analysis.MetricsExtra) error {
	var b bytes.Buffer
	if err := analysis.WriteMetrics(&b, rep, extra); err != nil {
		return err
	}
	return writeFile(name, b.Bytes())
}

// csvHeader names report's CSV columns; scripts read them by name, so they are stable.
var csvHeader = []string{"name", "tags", "manifests", "bytes", "unique_bytes", "shared_bytes", "reclaimable_bytes", "largest_image", "largest_image_bytes",
	"policy", "policy_delete_tags", "policy_freed_bytes", "last_push"}

// writeCapacityCSV writes one row per repository, in name order. largest_image is the
// first tag (by name) of the repository's largest image, empty when it has no tag. The
// policy columns are empty for repositories no retention policy applies to.
func writeCapacityCSV(w io.Writer, r *capacityReport) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	i := strconv.Itoa
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	retention := map[string]gc.RepoRetention{}
	if r.Retention != nil {
		for _, x := range r.Retention.Repositories {
			retention[x.Name] = x
		}
	}
	for _, rc := range r.Capacity.Repositories {
		img, imgBytes := "", ""
		if len(rc.LargestImages) > 0 {
			img, imgBytes = rc.LargestImages[0].Tags[0], n(rc.LargestImages[0].Bytes)
		}
		pol, polTags, polBytes := "", "", ""
		if x, ok := retention[rc.Name]; ok {
			pol, polTags, polBytes = x.Policy, i(x.DeleteTags), n(x.FreedBytes)
		}
		last := ""
		if !rc.LastPush.IsZero() {
			last = rc.LastPush.UTC().Format(time.RFC3339)
		}
		row := []string{rc.Name, i(rc.Tags), i(rc.Manifests), n(rc.Bytes), n(rc.UniqueBytes), n(rc.SharedBytes), n(rc.ReclaimableBytes), img, imgBytes, pol, polTags, polBytes, last}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func ib(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }

// bucketLabel names a size bucket: "1 KiB–4 KiB", "empty".
func bucketLabel(b analysis.SizeBucket) string {
	if b.Max <= 1 {
		return "empty"
	}
	if b.Max > 1<<62 {
		return "≥ " + ib(b.Min)
	}
	return ib(b.Min) + "–" + ib(b.Max)
}

func modeText(m analysis.ReportMode) string {
	s := "default mode (every manifest revision is a root)"
	if m.DeleteUntagged {
		s = "delete-untagged mode (tags are roots)"
		if !m.KeepReferrers {
			s += ", referrers not kept"
		}
	}
	if m.Policy != nil {
		for _, p := range m.Policy.Policies {
			if p.DeleteUntagged && !m.DeleteUntagged {
				s = "delete-untagged mode where the retention policy says so, default mode elsewhere"
				break
			}
		}
		s += ", retention policy " + m.Policy.Name
	}
	return s + ", grace " + (time.Duration(m.GraceSeconds) * time.Second).String()
}

// whatIfText explains a what-if in one sentence.
func whatIfText(w *analysis.WhatIf) string {
	var change []string
	if len(w.UntagRefs) > 0 {
		change = append(change, "deleting tag "+strings.Join(w.UntagRefs, ", "))
	}
	if len(w.DeleteRepos) > 0 {
		change = append(change, "deleting repository "+strings.Join(w.DeleteRepos, ", "))
	}
	return fmt.Sprintf("After %s, GC would free %s (%s) more than the %s it frees now: only the blobs that nothing else references are freed.",
		strings.Join(change, " and "), ib(w.AdditionalBytes), nBlobs(w.AdditionalBlobs), ib(w.FreedBytesNow))
}

func writeCapacityText(w io.Writer, r *capacityReport) {
	s, c := r.Summary, r.Capacity
	fmt.Fprintf(w, "regsweep report — %s\n", modeText(r.Mode))
	fmt.Fprintf(w, "Index %s: %s storage scanned %s\n\n", r.Index.Dir, r.Index.Driver, r.Index.ScanStarted.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "Stored:   %s in %s (%s, %s, %s)\n", ib(c.TotalBytes), nBlobs(s.Blobs), plural(s.Repositories, "repository"), plural(s.Tags, "tag"), plural(s.Manifests, "manifest"))
	fmt.Fprintf(w, "Live:     %s in %s\n", ib(c.LiveBytes), nBlobs(s.LiveBlobs))
	fmt.Fprintf(w, "Garbage:  %s in %s: what GC frees now\n", ib(c.GarbageBytes), nBlobs(s.DeleteBlobs))
	if c.KeptBytes > 0 {
		fmt.Fprintf(w, "Kept:     %s not live but kept (younger than grace, or fail-closed)\n", ib(c.KeptBytes))
	}
	fmt.Fprintf(w, "Dedup:    %d tagged images reference %s, %.2f× the stored bytes\n", c.Images, ib(c.LogicalBytes), c.DedupRatio)
	writeScopeText(w, r.Scope, "would delete")
	if r.WhatIf != nil {
		fmt.Fprintf(w, "\nWhat if: %s\n", whatIfText(r.WhatIf))
	}
	writeRetentionText(w, r.Retention, r.Delete.Tags, "would delete", 10)

	repos := slices.Clone(c.Repositories)
	slices.SortStableFunc(repos, func(a, b analysis.RepoCapacity) int { return int(max(-1, min(1, b.Bytes-a.Bytes))) })
	if len(repos) > 0 {
		fmt.Fprintf(w, "\nRepositories, largest first:\n")
		fmt.Fprintf(w, "  %-32s %5s %9s %10s %10s %10s %12s  %s\n", "REPOSITORY", "TAGS", "MANIFESTS", "BYTES", "UNIQUE", "SHARED", "RECLAIMABLE", "LARGEST IMAGE")
		for i, x := range repos {
			if i == 20 {
				fmt.Fprintf(w, "  … %d more (use --output csv or json for all)\n", len(repos)-i)
				break
			}
			largest := "-"
			if len(x.LargestImages) > 0 {
				largest = x.LargestImages[0].Tags[0] + " (" + ib(x.LargestImages[0].Bytes) + ")"
			}
			fmt.Fprintf(w, "  %-32s %5d %9d %10s %10s %10s %12s  %s\n", x.Name, x.Tags, x.Manifests, ib(x.Bytes), ib(x.UniqueBytes), ib(x.SharedBytes), ib(x.ReclaimableBytes), largest)
		}
	}
	ranking := func(title string, l []analysis.RepoBytes) {
		if len(l) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		for i, x := range l {
			fmt.Fprintf(w, "  %2d. %-32s %10s\n", i+1, x.Name, ib(x.Bytes))
		}
	}
	ranking("Top repositories by unique bytes (what deleting each would free)", c.Top.ByUniqueBytes)
	ranking("Top repositories by reclaimable bytes", c.Top.ByReclaimableBytes)
	if len(c.Namespaces) > 0 {
		fmt.Fprintf(w, "\nNamespaces (unique: reached by no repository outside):\n")
		fmt.Fprintf(w, "  %-24s %5s %5s %10s %10s %12s  %s\n", "NAMESPACE", "REPOS", "TAGS", "BYTES", "UNIQUE", "RECLAIMABLE", "LAST PUSH")
		for i, n := range c.Namespaces {
			if i == 20 {
				fmt.Fprintf(w, "  … %d more (use --output json for all)\n", len(c.Namespaces)-i)
				break
			}
			fmt.Fprintf(w, "  %-24s %5d %5d %10s %10s %12s  %s\n", n.Name, n.Repositories, n.Tags, ib(n.Bytes), ib(n.UniqueBytes), ib(n.ReclaimableBytes), day(n.LastPush))
		}
	}
	if len(c.Tags) > 0 {
		fmt.Fprintf(w, "\nTags with the most unique bytes (what deleting the image and gc -m free):\n")
		for i, tg := range c.Tags {
			if i == 10 {
				fmt.Fprintf(w, "  … %d more tags (use --output json or html for all)\n", len(c.Tags)-i)
				break
			}
			fmt.Fprintf(w, "  %2d. %-40s %10s of %10s  pushed %s\n", i+1, tg.Repository+":"+tg.Tag, ib(tg.UniqueBytes), ib(tg.Bytes), day(tg.PushedAt))
		}
	}

	bar := func(v, maxV int64) string {
		if maxV <= 0 {
			return ""
		}
		n := int((v*30 + maxV - 1) / maxV)
		return strings.Repeat("█", n)
	}
	var maxBytes int64
	for _, b := range c.SizeHistogram {
		maxBytes = max(maxBytes, b.Bytes)
	}
	if len(c.SizeHistogram) > 0 {
		fmt.Fprintf(w, "\nBlob sizes (bar: bytes):\n")
		for _, b := range c.SizeHistogram {
			fmt.Fprintf(w, "  %-18s %13s %10s  %s\n", bucketLabel(b), nBlobs(b.Blobs), ib(b.Bytes), bar(b.Bytes, maxBytes))
		}
	}
	maxBytes = 0
	for _, a := range c.Age {
		maxBytes = max(maxBytes, a.Bytes)
	}
	fmt.Fprintf(w, "\nBlob age at the scan (bar: bytes):\n")
	for _, a := range c.Age {
		fmt.Fprintf(w, "  %-18s %13s %10s  %s\n", a.Label, nBlobs(a.Blobs), ib(a.Bytes), bar(a.Bytes, maxBytes))
	}
	if note := unknownAgeNote(c); note != "" {
		fmt.Fprintf(w, "  %s\n", note)
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintf(w, "\nWarnings (%d):\n", len(r.Warnings))
		for i, x := range r.Warnings {
			if i == 20 {
				fmt.Fprintf(w, "  … %d more (use --output json for all)\n", len(r.Warnings)-i)
				break
			}
			fmt.Fprintf(w, "  [%s] %s: %s\n", x.Kind, cmp.Or(x.Path, x.Repository), x.Detail)
		}
	}
}

// day is a date, or "-" when unknown.
func day(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.DateOnly)
}

// unknownAgeNote explains an "unknown" age bucket: an index built by gc does not
// know the times of blobs that tags reach.
func unknownAgeNote(c *analysis.Capacity) string {
	for _, a := range c.Age {
		if a.MaxAgeSeconds < 0 && a.Blobs > 0 {
			return fmt.Sprintf("%s have no known age: this index was built by gc or apply, which state only what a plan may delete; build it with regsweep scan CONFIG --index DIR to see every age", nBlobs(a.Blobs))
		}
	}
	return ""
}
