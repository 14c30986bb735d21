package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/spf13/cobra"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/analysis"
	"github.com/regsweep/regsweep/gc/sweep"
	"github.com/regsweep/regsweep/gc/verify"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/probe"
	"github.com/regsweep/regsweep/internal/runlock"
	"github.com/regsweep/regsweep/storage"
)

// commonOptions are the flags of the commands that scan storage and report on it.
type commonOptions struct {
	storageFlags
	metricsFile string
	output      string
}

func (c *commonOptions) bind(cmd *cobra.Command) {
	c.storageFlags.bind(cmd, "directory of the on-disk index and sweep journal (default: under the user cache dir, one per storage)")
	f := cmd.Flags()
	f.StringVarP(&c.output, "output", "o", "text", "report format: text or json")
	f.StringVar(&c.metricsFile, "metrics-file", "", "also write Prometheus metrics to this file (node_exporter textfile format, replaced atomically)")
}

func (c *commonOptions) verify() error {
	if c.output != "text" && c.output != "json" {
		return fmt.Errorf("--output %q: want text or json", c.output)
	}
	return c.storageFlags.verify()
}

// session is an opened storage and index.
type session struct {
	log   *slog.Logger
	prog  storage.Progress
	drv   driver.StorageDriver
	cfg   *configuration.Configuration
	id    string
	idx   *graph.Index
	dir   string        // of the index
	lock  *runlock.Lock // held by runs that delete
	start time.Time
	// workers is --workers, or the default for the storage (storage.Concurrency).
	workers int
	// deadline is when the maintenance window of a real run ends (zero: none).
	deadline time.Time
	// tagTimes: the plan applies a retention policy, which needs tags' push times.
	tagTimes bool
	// plans made, released at close (their blob items may be in a spill file)
	plans []*gc.Plan
}

// openSession opens the storage config names and its index. A run that may delete
// (deletes) first takes the storage's run lock. A run that rebuilds the index
// anyway (rebuilds) replaces a damaged one.
func openSession(cmd *cobra.Command, config string, c storageFlags, deletes, rebuilds bool) (*session, error) {
	level := slog.LevelInfo
	if c.quiet {
		level = slog.LevelWarn
	}
	s := &session{log: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level})), start: time.Now()}
	s.prog = newProgress(cmd.ErrOrStderr(), s.log, c.quiet)
	var err error
	if s.drv, s.cfg, err = storage.Open(cmd.Context(), config); err != nil {
		return nil, err
	}
	var adaptive *storage.AdaptiveOptions
	s.workers, adaptive = storage.Concurrency(s.drv.Name(), c.workers)
	if adaptive != nil {
		// Object stores: many requests in flight, fewer when the store throttles.
		adaptive.OnCut = func(limit int, err error) {
			s.log.Warn("storage: fewer requests in flight", "limit", limit, "because", err)
		}
		s.drv = storage.NewAdaptive(s.drv, *adaptive)
	}
	if s.drv.Name() != "filesystem" {
		// Object stores: no request may wait forever, and passing faults pass.
		s.drv = storage.NewPatient(s.drv, storage.PatientOptions{Timeout: c.requestTimeout, OnRetry: func(op, path string, attempt int, err error) {
			s.log.Warn("storage: trying again", "op", op, "path", path, "attempt", attempt, "error", err)
		}})
	}
	s.id = storage.ID(s.cfg)
	if deletes {
		if s.lock, err = runlock.Acquire(s.id); err != nil {
			return nil, fmt.Errorf("%s: %w", s.id, err)
		}
	}
	dir := c.indexDir
	if dir == "" {
		root, err := indexRoot()
		if err != nil {
			return nil, fmt.Errorf("%v; pass --index DIR", err)
		}
		sum := sha256.Sum256([]byte(s.id))
		dir = filepath.Join(root, hex.EncodeToString(sum[:8]))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.close()
		return nil, fmt.Errorf("create index directory: %w", err)
	}
	s.dir = dir
	s.idx, err = graph.Open(dir)
	if errors.Is(err, graph.ErrDamaged) && rebuilds {
		s.log.Warn("the index is damaged; rebuilding it (an interrupted sweep's journal is lost with it: the rescan finds what is left)", "index", dir, "error", err)
		if err = graph.Wipe(dir); err == nil {
			s.idx, err = graph.Open(dir)
		}
	}
	if err != nil {
		s.close()
		return nil, indexError(dir, err)
	}
	s.log.Info("opened", "storage", s.id, "index", dir)
	return s, nil
}

func (s *session) close() {
	for _, p := range s.plans {
		p.Close()
	}
	if s.idx != nil {
		s.idx.Close()
	}
	s.lock.Release()
}

func (s *session) doneProgress() {
	if p, ok := s.prog.(*progress); ok {
		p.Done()
	}
}

// scan builds the index. forPlan defers stats a plan does not need (the times of
// blobs that tags reach, which only capacity reports show, and of tags, which only
// retention policies need: s.tagTimes).
func (s *session) scan(cmd *cobra.Command, c storageFlags, forPlan bool) error {
	ctx := cmd.Context()
	if !s.deadline.IsZero() {
		// A scan that outlasts the window is of no use: nothing may be deleted after it.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadlineCause(ctx, s.deadline, errWindowEnded)
		defer cancel()
	}
	if err := graph.Build(ctx, s.drv, s.idx, graph.WithWorkers(s.workers), graph.WithVerifyLinks(c.verifyLinks), graph.WithDeferredStats(forPlan), graph.WithScanOptions(storage.WithTagTimes(!forPlan || s.tagTimes)), graph.WithLogger(s.log, time.Minute), graph.WithProgress(s.prog), graph.WithStorageID(s.id), graph.WithManifestCache(!c.noCache),
		graph.WithTagLinkCache(s.lock == nil)); err != nil { // a run that deletes reads every tag link
		if errors.Is(context.Cause(ctx), errWindowEnded) && cmd.Context().Err() == nil {
			s.doneProgress()
			return windowStopped("the window ended during the scan; nothing was deleted")
		}
		return fmt.Errorf("scan %s: %w", s.id, err)
	}
	s.doneProgress()
	return nil
}

// scanUnlessFresh reuses the index when a dry run allows an index of maxAge. A real
// sweep always rescans: a push after an old scan could reference a blob it frees.
func (s *session) scanUnlessFresh(cmd *cobra.Command, c storageFlags, dryRun bool, maxAge time.Duration) error {
	if dryRun && maxAge > 0 {
		if m, err := s.idx.Meta(); err == nil && m.Storage == s.id && time.Since(m.Finished) < maxAge {
			s.log.Info("reusing index", "scanned", m.Finished.Format(time.RFC3339), "age", time.Since(m.Finished).Round(time.Second))
			return nil
		}
	}
	return s.scan(cmd, c, true)
}

// plan loads the index once and plans from it with the mark flags and opts; the
// plan carries the loaded graph to the sweep and the reports.
func (s *session) plan(ctx context.Context, m markFlags, opts ...gc.Option) (*gc.Plan, error) {
	g, err := graph.Load(ctx, s.idx)
	if err != nil {
		return nil, indexError(s.dir, err)
	}
	// Blob items past an eighth of the memory limit go to a file beside the index.
	p, err := gc.NewPlan(ctx, g, append(append(m.options(s.start), gc.WithSpillDir(s.dir)), opts...)...)
	if err != nil {
		return nil, s.planError(err)
	}
	s.plans = append(s.plans, p)
	p.Storage = s.id
	return p, nil
}

// sweepOptions of the commands that delete.
type sweepFlags struct {
	windowFlags
	noVerify         bool
	maxOps           float64
	ignoreUnreadable bool
	allowMassDelete  bool
	registryURL      string
	registryUser     string
	end              time.Time // of the window, set by verify; zero: none
}

func (f *sweepFlags) bind(cmd *cobra.Command) {
	f.windowFlags.bind(cmd)
	cmd.Flags().BoolVar(&f.noVerify, "no-verify", false, "skip the check after a real sweep that every root's image is still whole (it scans the storage again; exit 6 when one is not)")
	cmd.Flags().Float64Var(&f.maxOps, "max-ops", 0, "at most this many deletes per second (0: no limit)")
	cmd.Flags().BoolVar(&f.ignoreUnreadable, "ignore-unreadable", false, "sweep even when unreadable manifests or broken roots are reachable (every blob they might reference is still kept)")
	cmd.Flags().StringVar(&f.registryURL, "registry-url", "", "the registry serving this storage, probed before deleting: a sweep refuses (exit 4) if it accepts pushes (default: http.addr and http.host of the config; none: do not probe)")
	cmd.Flags().StringVar(&f.registryUser, "registry-user", os.Getenv("REGSWEEP_REGISTRY_USERNAME"), "user for the probe of a registry with authentication (env REGSWEEP_REGISTRY_USERNAME; the password only from REGSWEEP_REGISTRY_PASSWORD)")
	cmd.Flags().BoolVar(&f.allowMassDelete, "allow-mass-delete", false, fmt.Sprintf("plan even storage that looks incomplete: tags but no blob, or more than %.0f%% of tag and revision links naming a missing manifest (an unmounted volume, a wrong root or prefix)", gc.MaxBrokenRoots*100))
}

// verify checks the flags and sets when the window ends, counted from now.
func (f *sweepFlags) verify() error {
	if f.maxOps < 0 {
		return fmt.Errorf("--max-ops %v: want 0 (no limit) or more", f.maxOps)
	}
	end, err := f.deadline(time.Now())
	if err != nil {
		return err
	}
	f.end = end
	return nil
}

// blockedError says why a plan cannot be swept: unreadable manifests or broken
// roots that live roots reach, or symbolic links hiding what may be referenced.
func blockedError(p *gc.Plan, verb string) error {
	w := p.Blocked[0]
	where := w.Path
	if w.Repository != "" {
		where = fmt.Sprintf("%s in %s", cmp.Or(w.Digest, w.Path), w.Repository)
	}
	return &codeError{exitBlocked, fmt.Errorf("%s: %d unreadable manifest(s), broken root(s) or symbolic link(s) are in the way (first: %s %s: %s); what they might reference is kept. Fix them, or pass --ignore-unreadable to sweep the rest",
		verb, len(p.Blocked), w.Kind, where, w.Detail)}
}

// testBeforeDelete, when tests set it, is called before every delete: an error
// stops the sweep as a crash would.
var testBeforeDelete func(path string) error

// recheckEvery is how often a long deletion phase lists the roots again.
const recheckEvery = time.Minute

// checkRegistry asks the registry serving this storage whether it accepts writes,
// and refuses (exit 4) unless it is read-only, stopped, or the operator opted out.
// The upload it starts, and cancels, goes to an existing repository.
func (s *session) checkRegistry(ctx context.Context, f sweepFlags) ([]analysis.RegistryCheck, error) {
	creds := probe.Credentials{Username: f.registryUser, Password: os.Getenv("REGSWEEP_REGISTRY_PASSWORD")}
	results, err := probe.Check(ctx, s.cfg, s.drv, f.registryURL, creds, s.log)
	var out []analysis.RegistryCheck
	for _, r := range results {
		out = append(out, analysis.RegistryCheck{URL: r.URL, State: string(r.State), Detail: r.Detail})
	}
	switch {
	case errors.Is(err, probe.ErrBadURL):
		return nil, &codeError{exitUsage, err}
	case errors.Is(err, probe.ErrWritable):
		return out, &codeError{exitWritable, err}
	}
	return out, err
}

// planError gives a planning error its exit code and its advice.
func (s *session) planError(err error) error {
	switch {
	case errors.Is(err, gc.ErrIncompleteStorage):
		return &codeError{exitBlocked, fmt.Errorf("refusing: %w", err)}
	case errors.Is(err, graph.ErrDamaged):
		return indexError(s.dir, err)
	}
	return fmt.Errorf("plan: %w", err)
}

// sweep executes plan with the index as journal and returns the report.
func (s *session) sweep(cmd *cobra.Command, plan *gc.Plan, c storageFlags, f sweepFlags) (*analysis.Report, error) {
	checks, err := s.checkRegistry(cmd.Context(), f)
	if err != nil {
		rep := analysis.NewReport(plan, false)
		rep.Registry = checks
		return rep, err
	}
	if prev, err := s.idx.UnfinishedPlan(); err != nil {
		return nil, err
	} else if prev != nil {
		n, _ := s.idx.JournalCount()
		s.log.Warn("an earlier sweep of this storage was interrupted; finishing it", "deletions already journaled", n)
	}
	if len(plan.Blocked) > 0 && !f.ignoreUnreadable {
		rep := analysis.NewReport(plan, false)
		rep.Registry = checks
		return rep, blockedError(plan, "refusing to sweep")
	}
	j, err := json.Marshal(plan)
	if err != nil {
		return nil, err
	}
	if err := s.idx.JournalPlan(j); err != nil {
		return nil, fmt.Errorf("journal plan: %w", err)
	}
	meta, err := s.idx.Meta()
	if err != nil {
		return nil, err
	}
	window := s.estimate(plan, s.deadline, f.maxOps)
	if !s.deadline.IsZero() && !time.Now().Before(s.deadline) {
		rep := analysis.NewReport(plan, false)
		rep.Registry, rep.Window = checks, window
		window.Stopped = true
		return rep, windowStopped("the window ended before the sweep began; nothing was deleted")
	}
	roots := sweep.NewRootCheck(s.drv, plan.Scanned(), meta.Started, time.Duration(plan.Mode.GraceSeconds)*time.Second, s.workers, plan.Mode.KeepReferrers)
	opts := []sweep.Option{sweep.WithRecheck(roots.Check, recheckEvery), sweep.WithBeforeDelete(testBeforeDelete),
		sweep.WithWorkers(s.workers), sweep.WithMaxOps(f.maxOps), sweep.WithJournal(s.idx), sweep.WithDeadline(s.deadline),
		sweep.WithIgnoreUnreadable(f.ignoreUnreadable), sweep.WithLogger(s.log), sweep.WithProgress(s.prog)}
	if b, ok := storage.NewBatcher(s.drv); ok {
		// S3: blobs and layer links a thousand to a request.
		opts = append(opts, sweep.WithBatcher(b))
	}
	res, err := sweep.Run(cmd.Context(), s.drv, plan, opts...)
	s.doneProgress()
	s.saveRate(res, s.workers)
	rep := analysis.NewReport(plan, false)
	rep.Result, rep.Registry, rep.Window = res, checks, window
	if errors.Is(err, sweep.ErrWindowEnded) {
		// The journal keeps the plan: the next run knows a sweep was cut short.
		window.Stopped = true
		left := res.Remaining
		return rep, windowStopped(fmt.Sprintf("%s left: %s, %s, %s (%s), %s, %s",
			plural(left.Items(), "item"), plural(left.Tags, "tag"), plural(left.Manifests, "manifest revision"), nBlobs(left.Blobs), ib(left.Bytes), plural(left.LayerLinks, "layer link"), plural(left.Uploads, "upload")))
	}
	if err != nil {
		return nil, fmt.Errorf("%w; rerun the same command to finish", err)
	}
	if err := s.idx.JournalPlan(nil); err != nil {
		return nil, fmt.Errorf("clear journal: %w", err)
	}
	if f.noVerify {
		return rep, nil
	}
	rep.Verify, err = s.verifyAfter(cmd, plan, c)
	if err != nil {
		return rep, err
	}
	if rep.Verify != nil && !rep.Verify.Clean() {
		return rep, &codeError{exitDamaged, fmt.Errorf("the sweep finished, but live data is missing or corrupt: %d problem(s); first: %s. Run regsweep verify for the whole picture", rep.Verify.Summary.LiveProblems, rep.Verify.Problems[0])}
	}
	return rep, nil
}

// verifyAfter scans the storage again after a sweep and checks every root's
// closure, in the plan's mode, so that a sweep never ends green over a broken tag.
// Within a window it stops at the window's end: the sweep is done, so that is not
// an error, and the report says the check was skipped.
func (s *session) verifyAfter(cmd *cobra.Command, plan *gc.Plan, c storageFlags) (*verify.Report, error) {
	ctx := cmd.Context()
	if !s.deadline.IsZero() {
		if !time.Now().Before(s.deadline) {
			s.log.Warn("the window has ended: the check after the sweep is skipped; run regsweep verify")
			return nil, nil
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadlineCause(ctx, s.deadline, errWindowEnded)
		defer cancel()
	}
	s.log.Info("checking that every root's image is whole (--no-verify skips this)")
	err := graph.Build(ctx, s.drv, s.idx, graph.WithWorkers(s.workers), graph.WithDeferredStats(true), graph.WithScanOptions(storage.WithTagTimes(s.tagTimes)),
		graph.WithLogger(s.log, time.Minute), graph.WithProgress(s.prog), graph.WithStorageID(s.id), graph.WithManifestCache(!c.noCache))
	s.doneProgress()
	if errors.Is(context.Cause(ctx), errWindowEnded) && cmd.Context().Err() == nil {
		s.log.Warn("the window ended during the check after the sweep: skipped; run regsweep verify")
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("scan %s again to check it: %w", s.id, err)
	}
	return s.verify(ctx, plan.Mode.DeleteUntagged, plan.Mode.KeepReferrers, false, s.workers)
}

// writeMetrics writes rep's metrics when asked; a failed run writes none, so the last
// success timestamp stays that of the last success. A run stopped at its window's end
// writes them without that timestamp (regsweep_window_stopped says so).
func (s *session) writeMetrics(metricsFile string, rep *analysis.Report) error {
	if metricsFile == "" {
		return nil
	}
	extra := analysis.MetricsExtra{Duration: time.Since(s.start), LastSuccess: time.Now()}
	if rep.Window != nil && rep.Window.Stopped {
		extra.LastSuccess = time.Time{}
	}
	if err := writeMetricsFile(metricsFile, rep, extra); err != nil {
		return fmt.Errorf("write metrics %s: %w", metricsFile, err)
	}
	return nil
}

func writeReport(w io.Writer, rep *analysis.Report, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	writeText(w, rep)
	return nil
}

// checkOutputs makes sure that the files a run writes at its end can be written,
// before the run deletes anything: a sweep that completes and then fails to write
// its metrics would read as a failed sweep to cron. It creates and removes a
// temporary file beside each.
func checkOutputs(paths ...string) error {
	for _, name := range paths {
		if name == "" {
			continue
		}
		if fi, err := os.Stat(name); err == nil && fi.IsDir() {
			return fmt.Errorf("output %s is a directory: give a file name", name)
		}
		tmp, err := os.CreateTemp(filepath.Dir(name), ".regsweep-check-*")
		if err != nil {
			return fmt.Errorf("output %s cannot be written (checked before anything is read or deleted): %w", name, err)
		}
		tmp.Close()
		os.Remove(tmp.Name())
	}
	return nil
}

// writeFile writes b to name atomically (a temporary file in the same directory,
// renamed), readable by other users such as node_exporter.
func writeFile(name string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".regsweep-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
