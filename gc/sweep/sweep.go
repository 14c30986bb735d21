// Package sweep deletes what a plan (gc.Plan) names: in the order that lets a rerun
// finish a crashed run, journaled, with bounded workers, re-checking the roots
// before each phase, never through a symbolic link. It is the only package that
// deletes.
package sweep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/storage"
)

// ErrBlocked is returned by Run when unreadable manifests are reachable.
var ErrBlocked = errors.New("unreadable manifests are reachable from live roots")

// ErrWindowEnded is returned by Run when the deadline (WithDeadline) came before the
// sweep was done: no delete started after it, every delete is journaled, and
// Result.Remaining says what is left for the next run.
var ErrWindowEnded = errors.New("stopped at the window's end")

// Journal records deletions so that a rerun after a crash knows what is done.
type Journal interface {
	// Journaled reports whether path was recorded as deleted.
	Journaled(path string) (bool, error)
	// RecordDeleted records that path was deleted.
	RecordDeleted(path string) error
}

type options struct {
	workers          int
	maxOps           float64
	journal          Journal
	ignoreUnreadable bool
	before           func(path string) error
	beforePhase      func(phase string) error
	recheck          Recheck
	recheckEvery     time.Duration
	fsRoot           string
	log              *slog.Logger
	progress         storage.Progress
	deadline         time.Time
	now              func() time.Time
	batcher          storage.Batcher
}

// Option tunes Run.
type Option func(*options) error

// WithWorkers bounds concurrent deletes (default 16).
func WithWorkers(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("workers must be at least 1, got %d", n)
		}
		o.workers = n
		return nil
	}
}

// WithMaxOps limits deletes per second (0: unlimited), for shared object stores.
func WithMaxOps(perSecond float64) Option {
	return func(o *options) error {
		if perSecond < 0 {
			return fmt.Errorf("max ops must not be negative, got %v", perSecond)
		}
		o.maxOps = perSecond
		return nil
	}
}

// WithJournal records every deletion in j. A path j holds is deleted again if it is
// there (pushed again since the interrupted sweep) and counted as already done if not.
func WithJournal(j Journal) Option {
	return func(o *options) error { o.journal = j; return nil }
}

// WithIgnoreUnreadable sweeps even when unreadable manifests are reachable. The plan
// keeps every blob they might reference regardless.
func WithIgnoreUnreadable(v bool) Option {
	return func(o *options) error { o.ignoreUnreadable = v; return nil }
}

// WithBeforeDelete calls fn before each delete; an error stops the sweep. Tests use
// it to crash at chosen points.
func WithBeforeDelete(fn func(path string) error) Option {
	return func(o *options) error { o.before = fn; return nil }
}

// Recheck returns the digests that roots written since the plan was made reach,
// with why, and how many such roots were found (RootCheck.Check).
type Recheck func(ctx context.Context) (map[digest.Digest]string, int, error)

// WithRecheck calls fn before each phase that deletes what a root may reference
// (revisions, blobs, layer links), and again every interval while one runs;
// nothing fn returns is deleted.
func WithRecheck(fn Recheck, every time.Duration) Option {
	return func(o *options) error { o.recheck, o.recheckEvery = fn, every; return nil }
}

// WithBeforePhase calls fn before each phase, before its re-check. Tests use it to
// push at phase boundaries.
func WithBeforePhase(fn func(phase string) error) Option {
	return func(o *options) error { o.beforePhase = fn; return nil }
}

// WithFilesystemRoot names the root directory of a filesystem driver, so that empty
// parent directories left by the deletes are removed.
func WithFilesystemRoot(dir string) Option {
	return func(o *options) error { o.fsRoot = dir; return nil }
}

// WithProgress reports deletions to p.
func WithProgress(p storage.Progress) Option {
	return func(o *options) error { o.progress = p; return nil }
}

// WithDeadline stops the sweep at t: no delete starts after it (those under way
// finish), and Run returns ErrWindowEnded with what is left.
func WithDeadline(t time.Time) Option {
	return func(o *options) error { o.deadline = t; return nil }
}

// WithClock sets the clock deadlines are read from (tests).
func WithClock(now func() time.Time) Option {
	return func(o *options) error { o.now = now; return nil }
}

// WithBatcher deletes blobs and layer links through b, a thousand files to a
// request (storage.NewBatcher: S3's DeleteObjects) instead of a listing and a delete
// each. What b deletes is each item's one file: a blob's data, a layer link; on an
// object store that is the whole of its directory. A file already gone counts as
// deleted (DeleteObjects does not tell).
func WithBatcher(b storage.Batcher) Option {
	return func(o *options) error { o.batcher = b; return nil }
}

// batchTimeout bounds one batch request, the SDK's retries included: no delete
// may wait forever.
const batchTimeout = 5 * time.Minute

// WithLogger sets where progress lines go.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error { o.log = l; return nil }
}

// Result is what a sweep did.
type Result struct {
	// DeletedTags counts tag directories deleted; KeptTags the planned ones not
	// deleted because the tag was pushed again (or names another manifest) since
	// the plan was made.
	DeletedTags       int `json:"deleted_tags"`
	KeptTags          int `json:"kept_tags"`
	DeletedManifests  int `json:"deleted_manifests"`
	DeletedTagIndex   int `json:"deleted_tag_index"`
	DeletedBlobs      int `json:"deleted_blobs"`
	DeletedLayerLinks int `json:"deleted_layer_links"`
	DeletedUploads    int `json:"deleted_uploads"`
	// DeletedRepositories counts empty repositories removed; KeptRepositories
	// those planned but found holding a file just before (pushed since the plan).
	DeletedRepositories int   `json:"deleted_repositories"`
	KeptRepositories    int   `json:"kept_repositories,omitempty"`
	FreedBytes          int64 `json:"freed_bytes"` // of blobs
	// FreedUploadBytes is what the uploads deleted held.
	FreedUploadBytes int64 `json:"freed_upload_bytes"`
	// AlreadyDone counts items an earlier, interrupted sweep had deleted.
	AlreadyDone int `json:"already_done"`
	// Missing counts items that were gone when the sweep came to them.
	Missing int `json:"missing"`
	// LeftAlone counts items not deleted because they are, or lie below, a
	// symbolic link (storage.FS refuses those deletes).
	LeftAlone int `json:"left_alone,omitempty"`
	// Rechecks counts the times the roots were listed again before deleting;
	// RecheckRoots the roots written during the run that they found, and
	// KeptByRecheck the planned items those roots reach, which were not deleted.
	Rechecks      int `json:"rechecks"`
	RecheckRoots  int `json:"recheck_roots"`
	KeptByRecheck int `json:"kept_by_recheck"`
	// Seconds the deletes took, and the rate they went at: what the next window's
	// estimate starts from.
	Seconds          float64 `json:"seconds"`
	DeletesPerSecond float64 `json:"deletes_per_second"`
	// StoppedAt is set when the window ended before the sweep did; Remaining says
	// what is left for the next run.
	StoppedAt time.Time  `json:"stopped_at,omitzero"`
	Remaining *Remaining `json:"remaining,omitempty"`
}

// Remaining is what a sweep stopped at its window's end left undone.
type Remaining struct {
	Tags       int   `json:"tags"`
	TagIndex   int   `json:"tag_index"`
	Manifests  int   `json:"manifests"`
	Blobs      int   `json:"blobs"`
	Bytes      int64 `json:"bytes"`
	LayerLinks int   `json:"layer_links"`
	Uploads    int   `json:"uploads"`
	// Repositories are empty repositories not yet removed.
	Repositories int `json:"repositories"`
}

// Items counts the items left.
func (r Remaining) Items() int {
	return r.Tags + r.TagIndex + r.Manifests + r.Blobs + r.LayerLinks + r.Uploads + r.Repositories
}

// Run deletes what p names, in the order that lets a rerun finish a crashed one:
// references (tags, tag history, revision links) first, then blobs, then layer
// links, then uploads. It only reads p.
func Run(ctx context.Context, drv driver.StorageDriver, p *gc.Plan, opts ...Option) (*Result, error) {
	o := options{workers: 16, log: slog.New(slog.DiscardHandler), progress: storage.NoProgress{}, now: time.Now}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if len(p.Blocked) > 0 && !o.ignoreUnreadable {
		w := p.Blocked[0]
		return nil, fmt.Errorf("refusing to sweep: %w: %d, first %s in %q (%s); fix or remove them, or pass --ignore-unreadable (their blobs stay kept)",
			ErrBlocked, len(p.Blocked), w.Digest, w.Repository, w.Detail)
	}
	fsys, _ := drv.(*storage.FS)
	limit := rate.NewLimiter(rate.Inf, 1)
	if o.maxOps > 0 {
		limit = rate.NewLimiter(rate.Limit(o.maxOps), 1)
	}
	var (
		res     Result
		mu      sync.Mutex // res, rem, stopped
		done    atomic.Int64
		total   = countItems(p)
		rem     = planned(p)
		started = time.Now()
		pruneMu sync.Mutex
		prune   []string
		stopped bool
	)
	ended := func() bool { return !o.deadline.IsZero() && !o.now().Before(o.deadline) }
	defer func() {
		res.Seconds = time.Since(started).Seconds()
		if n := done.Load(); n > 0 && res.Seconds > 0 {
			res.DeletesPerSecond = float64(n) / res.Seconds
		}
	}()
	type job struct {
		path   string
		leaf   string        // the item's one file under path, where a batch may delete it
		digest digest.Digest // what the item names, for the re-check
		left   *int          // its kind's count in rem
		size   int64
		count  func()
		// check, when set, runs just before the delete and says why the item
		// stays after all (a tag pushed again since the plan).
		check func(ctx context.Context) (string, error)
	}
	handled := func(j job) { // with mu held
		*j.left--
		rem.Bytes -= j.size
	}
	// mayStart waits for the rate limit and says whether a delete may start: not
	// once the window has ended (the sweep is then stopped); an error only when the
	// run is cancelled.
	mayStart := func(ctx context.Context) (bool, error) {
		wctx := ctx
		if !o.deadline.IsZero() {
			var cancel context.CancelFunc
			wctx, cancel = context.WithDeadline(ctx, o.deadline)
			defer cancel()
		}
		if err := limit.Wait(wctx); err != nil {
			if ctx.Err() == nil && !o.deadline.IsZero() {
				err = nil // the window ends before the limit lets this one start
			}
			mu.Lock()
			stopped = stopped || err == nil
			mu.Unlock()
			return false, err
		}
		if ended() {
			mu.Lock()
			stopped = true
			mu.Unlock()
			return false, nil // no delete starts after the window's end
		}
		return true, nil
	}
	// finish records deleted jobs: journaled (unless record is false), counted
	// as handled, their directories' parents queued for pruning.
	finish := func(jobs []job, record bool) error {
		for _, j := range jobs {
			if o.journal != nil && record {
				if err := o.journal.RecordDeleted(j.path); err != nil {
					return fmt.Errorf("journal deletion of %s: %w", j.path, err)
				}
			}
			mu.Lock()
			handled(j)
			mu.Unlock()
			if fsys != nil || o.fsRoot != "" {
				pruneMu.Lock()
				prune = append(prune, path.Dir(j.path))
				pruneMu.Unlock()
			}
		}
		n := int64(len(jobs))
		o.progress.Add(n)
		if d := done.Add(n); d/1000 != (d-n)/1000 {
			o.log.Info("sweeping", "done", d, "of", total, "rate/s", int(float64(d)/time.Since(started).Seconds()))
		}
		return nil
	}
	del := func(ctx context.Context, j job) error {
		p := j.path
		// Only what a sweep deletes, by the grammar: a plan made elsewhere, or
		// changed by hand, never names the root, a repository or an empty path.
		if err := deletable(p); err != nil {
			return err
		}
		// The journal says what an interrupted sweep deleted; it never hides a path
		// that is there again (pushed again since): the plan, made from a scan after
		// the interruption, says whether it goes, and the delete says whether it was
		// still there.
		journaled := false
		if o.journal != nil {
			var err error
			if journaled, err = o.journal.Journaled(p); err != nil {
				return fmt.Errorf("read sweep journal: %w", err)
			}
		}
		if ok, err := mayStart(ctx); !ok {
			return err
		}
		if o.before != nil {
			if err := o.before(p); err != nil {
				return err
			}
		}
		if j.check != nil {
			why, err := j.check(ctx)
			if err != nil {
				return err
			}
			if why != "" {
				o.log.Info("kept: "+why, "path", p)
				mu.Lock()
				res.KeptTags++
				handled(j)
				mu.Unlock()
				o.progress.Add(1)
				return nil
			}
		}
		err := drv.Delete(ctx, p)
		var nf driver.PathNotFoundError
		switch {
		case errors.As(err, &nf) && journaled:
			mu.Lock()
			res.AlreadyDone++
			handled(j)
			mu.Unlock()
			o.progress.Add(1)
			return nil
		case errors.As(err, &nf):
			mu.Lock()
			res.Missing++
			mu.Unlock()
		case errors.Is(err, storage.ErrSymlink):
			o.log.Warn("not deleted: it is, or lies below, a symbolic link", "path", p)
			mu.Lock()
			res.LeftAlone++
			handled(j)
			mu.Unlock()
			o.progress.Add(1)
			return nil // not journaled: a rerun looks again
		case err != nil:
			return fmt.Errorf("delete %s: %w", p, err)
		default:
			if journaled {
				o.log.Info("deleted again: it was there again after an interrupted sweep had deleted it", "path", p)
			}
			mu.Lock()
			j.count()
			mu.Unlock()
		}
		return finish([]job{j}, !journaled)
	}
	// delBatch deletes jobs' files in one request, as del would one by one: the
	// grammar's check, the hook, the rate limit (one operation), the journal.
	delBatch := func(ctx context.Context, jobs []job) error {
		files := make([]string, 0, len(jobs))
		for _, j := range jobs {
			if err := deletable(j.path); err != nil {
				return err
			}
			file := j.path + "/" + j.leaf
			if o.before != nil {
				if err := o.before(file); err != nil {
					return err
				}
			}
			files = append(files, file)
		}
		if ok, err := mayStart(ctx); !ok {
			return err
		}
		bctx, cancel := context.WithTimeout(ctx, batchTimeout)
		err := o.batcher.DeleteFiles(bctx, files)
		cancel()
		if err != nil {
			return err
		}
		mu.Lock()
		for _, j := range jobs {
			j.count()
		}
		mu.Unlock()
		return finish(jobs, true)
	}
	var (
		protect   map[digest.Digest]string
		lastCheck time.Time
		estimated bool
	)
	// estimate says once, after the first deletes, whether the rest fits the window.
	estimate := func() {
		if estimated || o.deadline.IsZero() {
			return
		}
		n, took := done.Load(), time.Since(started)
		if n < 1000 && took < 2*time.Second || n == 0 {
			return
		}
		estimated = true
		mu.Lock()
		left := rem.Items()
		mu.Unlock()
		perSec := float64(n) / took.Seconds()
		need := time.Duration(float64(left) / perSec * float64(time.Second))
		window := o.deadline.Sub(o.now())
		if need > window {
			o.log.Warn("the rest does not fit the window at the rate measured so far: the sweep stops at the window's end; run again to continue",
				"rate/s", int(perSec), "left", left, "needs", need.Round(time.Second), "window left", window.Round(time.Second))
			return
		}
		o.log.Info("the rest fits the window at the rate measured so far", "rate/s", int(perSec), "left", left, "needs", need.Round(time.Second), "window left", window.Round(time.Second))
	}
	recheck := func(ctx context.Context) error {
		if o.recheck == nil {
			return nil
		}
		p, roots, err := o.recheck(ctx)
		if err != nil {
			return err
		}
		protect, lastCheck = p, time.Now()
		res.Rechecks++
		if roots > res.RecheckRoots {
			o.log.Warn("roots were written during the sweep: the registry takes pushes; what they reference is kept", "roots", roots)
		}
		res.RecheckRoots = roots
		return nil
	}
	stop := func() error {
		res.StoppedAt = o.now()
		r := rem
		res.Remaining = &r
		return ErrWindowEnded
	}
	// run deletes jobs in batches; between batches of a long phase, the roots are
	// checked again when the last check is older than recheckEvery.
	run := func(jobs []job) error {
		const batch = 1000
		for start := 0; start < len(jobs); start += batch {
			if ended() {
				return stop()
			}
			// The journal's disk must keep room for its writes: badger writes through
			// memory maps, where a full disk kills the process.
			if sc, ok := o.journal.(interface{ CheckSpace(int) error }); ok {
				if err := sc.CheckSpace(0); err != nil {
					return err
				}
			}
			if start > 0 && o.recheck != nil && o.recheckEvery > 0 && time.Since(lastCheck) > o.recheckEvery {
				if err := recheck(ctx); err != nil {
					return err
				}
			}
			g, gctx := errgroup.WithContext(ctx)
			g.SetLimit(o.workers)
			var files []job // to delete in one request
			for _, j := range jobs[start:min(start+batch, len(jobs))] {
				if gctx.Err() != nil || ended() {
					break
				}
				if why, ok := protect[j.digest]; ok && j.digest != "" {
					o.log.Info("kept: a root written during the run reaches it", "path", j.path, "why", why)
					mu.Lock()
					res.KeptByRecheck++
					handled(j)
					mu.Unlock()
					o.progress.Add(1)
					continue
				}
				if o.batcher != nil && j.leaf != "" {
					files = append(files, j)
					continue
				}
				g.Go(func() error { return del(gctx, j) })
			}
			if len(files) > 0 {
				g.Go(func() error { return delBatch(gctx, files) })
			}
			if err := g.Wait(); err != nil {
				return err
			}
			if stopped || ended() {
				return stop()
			}
			estimate()
		}
		return ctx.Err()
	}
	// phase runs one phase, after its hook and, when it deletes what roots
	// reference, a re-check.
	phase := func(name string, check bool, jobs ...[]job) error {
		if o.beforePhase != nil {
			if err := o.beforePhase(name); err != nil {
				return err
			}
		}
		n := 0
		for _, js := range jobs {
			n += len(js)
		}
		if n == 0 {
			return nil
		}
		if ended() {
			return stop()
		}
		if check {
			if err := recheck(ctx); err != nil {
				return fmt.Errorf("sweep %s: %w", name, err)
			}
		}
		o.log.Info("sweep phase", "phase", name, "items", n)
		for _, js := range jobs {
			if err := run(js); err != nil {
				if errors.Is(err, ErrWindowEnded) {
					return err
				}
				return fmt.Errorf("sweep %s: %w", name, err)
			}
		}
		return nil
	}

	o.progress.Phase("sweeping", int64(total))
	// 1. Tags: what retention policies delete, first, as distribution's tag delete
	// does. Each is checked just before: a tag pushed since the plan stays.
	var tags []job
	for _, t := range p.Tags {
		tags = append(tags, job{path: t.Path, left: &rem.Tags, count: func() { res.DeletedTags++ }, check: tagCheck(drv, t)})
	}
	if err := phase("tags", false, tags); err != nil {
		return &res, err
	}
	// 2. References: tag history first, then the revision links themselves.
	var refs, revs []job
	for _, m := range p.Manifests {
		for _, t := range m.TagIndex {
			refs = append(refs, job{path: t, digest: m.Digest, left: &rem.TagIndex, count: func() { res.DeletedTagIndex++ }})
		}
		revs = append(revs, job{path: m.Path, digest: m.Digest, left: &rem.Manifests, count: func() { res.DeletedManifests++ }})
	}
	if err := phase("tag history and manifest revisions", true, refs, revs); err != nil {
		return &res, err
	}
	// 3. Blobs.
	var blobs []job
	for _, b := range p.Blobs {
		size := b.Size()
		blobs = append(blobs, job{path: b.Path(), leaf: "data", digest: b.Digest(), left: &rem.Blobs, size: size, count: func() { res.DeletedBlobs++; res.FreedBytes += size }})
	}
	if err := phase("blobs", true, blobs); err != nil {
		return &res, err
	}
	// 4. Layer links: the whole <hex> directory, so no empty one is left.
	var links []job
	for _, l := range p.LayerLinks {
		links = append(links, job{path: path.Dir(l.Path), leaf: path.Base(l.Path), digest: l.Digest, left: &rem.LayerLinks, count: func() { res.DeletedLayerLinks++ }})
	}
	if err := phase("layer links", true, links); err != nil {
		return &res, err
	}
	// 5. Uploads: no root references one.
	var ups []job
	for _, u := range p.Uploads {
		size := u.Size
		ups = append(ups, job{path: u.Path, left: &rem.Uploads, count: func() { res.DeletedUploads++; res.FreedUploadBytes += size }})
	}
	if err := phase("uploads", false, ups); err != nil {
		return &res, err
	}
	// 6. Empty repositories, last: only once everything in them is gone, and each
	// looked at again just before, so a push since the plan keeps its repository.
	if n := len(p.EmptyRepositories); n > 0 {
		if o.beforePhase != nil {
			if err := o.beforePhase("empty repositories"); err != nil {
				return &res, err
			}
		}
		o.log.Info("sweep phase", "phase", "empty repositories", "items", n)
		for _, r := range p.EmptyRepositories {
			if ended() {
				return &res, stop()
			}
			if err := limit.Wait(ctx); err != nil {
				return &res, err
			}
			deleted, err := removeRepository(ctx, drv, r, o.log)
			if err != nil {
				return &res, fmt.Errorf("sweep empty repositories: %w", err)
			}
			if deleted {
				res.DeletedRepositories++
				if fsys != nil || o.fsRoot != "" {
					prune = append(prune, r.Path)
				}
			} else {
				res.KeptRepositories++
			}
			rem.Repositories--
			o.progress.Add(1)
			done.Add(1)
		}
	}
	switch {
	case fsys != nil:
		// Also every blob prefix directory: one a crashed sweep emptied is found by
		// no plan, since nothing below it is left.
		prune = append(prune, blobPrefixes(ctx, fsys)...)
		pruneEmpty(fsys.RemoveEmptyDir, prune)
	case o.fsRoot != "":
		pruneEmpty(func(d string) bool { return removeEmptyDir(o.fsRoot, d) }, prune)
	}
	return &res, nil
}

// removeRepository deletes the data directories of a repository the plan found
// empty, unless one holds a file now (or cannot be listed, or is a link): then it
// keeps the repository and says why. Nested repositories are never below them.
func removeRepository(ctx context.Context, drv driver.StorageDriver, r gc.RepoItem, log *slog.Logger) (bool, error) {
	// Not deletable(): no other item may name these directories.
	for _, d := range r.Paths {
		if s, err := storage.Parse(d); err != nil || s.Kind != storage.RepoDataDir || s.Repo != r.Repository {
			return false, fmt.Errorf("refusing to delete %q: not a data directory of repository %s: %w", d, r.Repository, ErrNotDeletable)
		}
	}
	links := map[string]bool{}
	for _, l := range r.Links {
		links[l] = true
	}
	var nf driver.PathNotFoundError
	// looked sorts the error of stating, listing or deleting d: none or a missing
	// path goes on, a symbolic link keeps the repository, anything else fails.
	looked := func(err error, what, d string) (keep bool, _ error) {
		switch {
		case err == nil || errors.As(err, &nf):
			return false, nil
		case errors.Is(err, storage.ErrSymlink):
			log.Warn("kept: the repository holds a symbolic link", "repository", r.Repository, "path", d)
			return true, nil
		}
		return false, fmt.Errorf("%s %s of empty repository %s: %w", what, d, r.Repository, err)
	}
	// On object stores a key can be a file and a directory at once; a walk of the
	// directory leaves the file out, and a delete of the directory takes it too.
	for _, d := range r.Paths {
		fi, serr := drv.Stat(ctx, d)
		if keep, err := looked(serr, "stat", d); keep || err != nil {
			return false, err
		}
		if serr == nil && !fi.IsDir() {
			log.Warn("kept repository: a file is named like its directory", "repository", r.Repository, "file", d)
			return false, nil
		}
	}
	// Files are collected during the walk and looked at after it: a call made from
	// inside a walk could wait forever for a slot of an adaptive limit the walk holds.
	var files []string
	for _, d := range r.Paths {
		werr := drv.Walk(ctx, d, func(fi driver.FileInfo) error {
			if !fi.IsDir() {
				files = append(files, fi.Path())
			}
			return nil
		})
		if keep, err := looked(werr, "list", d); keep || err != nil {
			return false, err
		}
	}
	for _, f := range files {
		if !links[f] {
			log.Info("kept repository: it holds a file the plan did not know (pushed since the plan?)", "repository", r.Repository, "file", f)
			return false, nil
		}
		// A listing may carry no time (the filesystem's does not): ask.
		st, err := drv.Stat(ctx, f)
		if err != nil {
			return false, fmt.Errorf("stat %s before removing repository %s: %w", f, r.Repository, err)
		}
		if st.ModTime().After(r.Before) {
			log.Info("kept repository: a link in it is younger than grace (a push under way?)", "repository", r.Repository, "file", f, "modified", st.ModTime().UTC().Format(time.RFC3339))
			return false, nil
		}
	}
	for _, d := range r.Paths {
		if keep, err := looked(drv.Delete(ctx, d), "delete", d); keep || err != nil {
			return false, err
		}
	}
	log.Info("removed empty repository", "repository", r.Repository)
	return true, nil
}

// planned counts what p deletes, by kind.
func planned(p *gc.Plan) Remaining {
	r := Remaining{Tags: len(p.Tags), Manifests: len(p.Manifests), Blobs: len(p.Blobs), LayerLinks: len(p.LayerLinks), Uploads: len(p.Uploads),
		Repositories: len(p.EmptyRepositories)}
	for _, m := range p.Manifests {
		r.TagIndex += len(m.TagIndex)
	}
	for _, b := range p.Blobs {
		r.Bytes += b.Size()
	}
	return r
}

// tagCheck reads t's current link as it is now: a tag that names another manifest,
// or was pushed after the plan was made (its link is newer), stays. Read before
// stated, as the scan does: a push in between makes the time newer.
func tagCheck(drv driver.StorageDriver, t gc.TagItem) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		p, err := storage.Path(storage.Spec{Kind: storage.TagCurrentLink, Repo: t.Repository, Tag: t.Tag})
		if err != nil {
			return "", err
		}
		b, err := drv.GetContent(ctx, p)
		if errors.As(err, new(driver.PathNotFoundError)) {
			return "", nil // only history left, or deleted already: nothing names a manifest
		}
		if err != nil {
			return "", fmt.Errorf("read tag %s of %s before deleting it: %w", t.Tag, t.Repository, err)
		}
		if d := digest.Digest(strings.TrimSpace(string(b))); d != t.Digest {
			return fmt.Sprintf("tag %s of %s names %s now, not %s as when the plan was made", t.Tag, t.Repository, d, t.Digest), nil
		}
		fi, err := drv.Stat(ctx, p)
		if err != nil {
			return "", fmt.Errorf("stat tag %s of %s before deleting it: %w", t.Tag, t.Repository, err)
		}
		if fi.ModTime().After(t.PushedAt) {
			return fmt.Sprintf("tag %s of %s was pushed again at %s, after the plan was made", t.Tag, t.Repository, fi.ModTime().UTC().Format(time.RFC3339)), nil
		}
		return "", nil
	}
}

// blobPrefixes lists the blobs/<alg>/<xx> directories, to be pruned when empty.
func blobPrefixes(ctx context.Context, fsys *storage.FS) []string {
	var out []string
	algs, _ := fsys.List(ctx, storage.Root+"/blobs")
	for _, a := range algs {
		xx, _ := fsys.List(ctx, a)
		out = append(out, xx...)
	}
	return out
}

// removeEmptyDir removes root/d if it is an empty directory and not a link.
func removeEmptyDir(root, d string) bool {
	p := filepath.Join(root, filepath.FromSlash(d))
	if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
		return false
	}
	return os.Remove(p) == nil
}

// ErrNotDeletable is wrapped when a plan names a path that is not one a sweep
// deletes.
var ErrNotDeletable = errors.New("not a path a sweep deletes")

// deletable checks that p is a blob, revision, tag, tag history, layer link or
// upload directory of the layout.
func deletable(p string) error {
	s, err := storage.Parse(p)
	if err != nil {
		return fmt.Errorf("refusing to delete %q: %w (%v)", p, ErrNotDeletable, err)
	}
	switch s.Kind {
	case storage.BlobDir, storage.RevisionDir, storage.TagIndexDir, storage.LayerDir, storage.UploadDir, storage.TagDir:
		return nil
	}
	return fmt.Errorf("refusing to delete %q (a %v): %w", p, s.Kind, ErrNotDeletable)
}

func countItems(p *gc.Plan) int { return planned(p).Items() }

// pruneEmpty removes directories left empty by the sweep, stopping below the
// layout's fixed directories: the registry recreates what it needs on the next push.
func pruneEmpty(remove func(dir string) bool, dirs []string) {
	stop := map[string]bool{"": true, "/": true, "blobs": true, "repositories": true, "_layers": true, "_manifests": true,
		"_uploads": true, "revisions": true, "tags": true, "index": true, "sha256": true, "sha384": true, "sha512": true}
	seen := map[string]bool{}
	for _, d := range dirs {
		for !stop[path.Base(d)] && !seen[d] {
			seen[d] = true
			if !remove(d) {
				break // not empty, gone, or a link
			}
			d = path.Dir(d)
		}
	}
}
