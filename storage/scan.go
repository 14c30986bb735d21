package storage

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// ErrNoRegistry is returned by Scan when the driver root holds no docker/registry/v2.
var ErrNoRegistry = errors.New("storage root holds no " + Root)

// Entry is one fact the scanner found. Kind says which fields are set:
//
//	BlobData        Digest, Size, ModTime
//	RevisionLink    Repo, Digest (from the path), Target (from the content), ModTime
//	TagCurrentLink  Repo, Tag, Target, ModTime
//	TagIndexLink    Repo, Tag, Digest
//	LayerLink       Repo, Digest, Target, ModTime
//	UploadDir       Repo, Upload, StartedAt, ModTime, Size (of its files)
//	KindRepo        Repo, HasManifests
//	KindWarning     Path, Warning
//
// Target is empty when a link's content could not be read as a digest; Warning then
// says why, and the entry still comes so that nothing it names is ever deleted.
type Entry struct {
	Kind         Kind
	Repo, Tag    string
	Upload       string
	Digest       digest.Digest
	Target       digest.Digest
	Size         int64
	ModTime      time.Time
	StartedAt    time.Time
	HasManifests bool
	Path         string
	Warning      string
	// Deferred is set on blobs and layer links a listing found without stating them
	// (WithDeferredStats): Size and ModTime are unknown, and whether the file is
	// there is not checked. StatDeferred fills them in.
	Deferred bool
	// WarnKind names the kind of problem a Warning is ("symlink"; empty: the
	// default of its entry kind).
	WarnKind string
	// Keep, on a KindWarning with a Digest: whatever else is found, that blob and
	// the links naming it must stay.
	Keep bool
	// Blocks: what the path hides is unknown and may be referenced from anywhere;
	// a sweep must refuse, and nothing in the blob store may be freed.
	Blocks bool
	// LinkCached: a tag link's content came from a LinkCache, not a read. ReadAt
	// is when it was read otherwise.
	LinkCached bool
	ReadAt     time.Time
}

// LinkCache gives the content a tag link had when it was last read, if the link
// listed now is the same file: the same size and modification time.
type LinkCache interface {
	Link(path string, size int64, modTime time.Time) ([]byte, bool)
}

// WithLinkCache reads tag links from c where it has them (for runs that delete
// nothing: a real run reads every tag link). Only where the driver walks natively
// (object stores), whose listing gives each link's size and time.
func WithLinkCache(c LinkCache) ScanOption {
	return func(o *scanOptions) error { o.linkCache = c; return nil }
}

// WithEarlyRevisions tells fn the digest of each revision link found before the
// blob store is listed (by the repository walks that start early on object stores),
// for a caller to start reading those manifests while the listing goes on. fn is
// called as Scan's fn is: from one goroutine at a time, never at once with it. A
// digest may come more than once, and its blob may be missing.
func WithEarlyRevisions(fn func(digest.Digest)) ScanOption {
	return func(o *scanOptions) error { o.earlyRevision = fn; return nil }
}

// Scan-only kinds: a repository found, and a problem with a path.
const (
	KindRepo Kind = 100 + iota
	KindWarning
)

type scanOptions struct {
	workers       int
	verifyLinks   bool
	walk          *bool
	deferStats    bool
	tagTimes      bool
	linksOnly     bool
	linkCache     LinkCache
	earlyRevision func(digest.Digest)
}

// ScanOption tunes Scan.
type ScanOption func(*scanOptions) error

// WithWorkers bounds how many listings and reads run at once.
func WithWorkers(n int) ScanOption {
	return func(o *scanOptions) error {
		if n < 1 {
			return fmt.Errorf("workers must be at least 1, got %d", n)
		}
		o.workers = n
		return nil
	}
}

// WithVerifyLinks reads every revision and layer link and checks its content against
// its path. Off by default: the path carries the digest, and on object storage each
// read is a request. Tag links are always read; their content is the only data.
func WithVerifyLinks(v bool) ScanOption {
	return func(o *scanOptions) error { o.verifyLinks = v; return nil }
}

// WithWalk forces the driver's Walk (true) or directory listing (false) instead of
// choosing by driver. Tests use it to check that both find the same.
func WithWalk(v bool) ScanOption {
	return func(o *scanOptions) error { o.walk = &v; return nil }
}

// WithDeferredStats lets the directory-listing strategy (filesystem, inmemory) emit
// blobs and layer links as listed, without a stat each (Entry.Deferred), and skip tag
// history, for the caller to stat (StatDeferred) and list (ListTagIndex) only what
// it needs: on those drivers a stat is the price of a size and a time, which object
// stores' listings carry for free. Revision links are still stated: an API delete
// removes the link file and leaves its directory. Ignored when verifying links.
func WithDeferredStats(v bool) ScanOption {
	return func(o *scanOptions) error { o.deferStats = v; return nil }
}

// WithTagTimes states each tag's current link after reading it, on the drivers that
// list without times (filesystem, inmemory): its time is the tag's push time, which
// retention policies rank by. On by default; a plan without policies does without
// (one call a tag saved). Object stores' listings carry the times anyway.
func WithTagTimes(v bool) ScanOption {
	return func(o *scanOptions) error { o.tagTimes = v; return nil }
}

// WithLinkTimesOnly lists only the repositories' links, each with its time: the
// blob store, uploads and tag history are skipped, and tag links are stated rather
// than read (Target is empty). A sweep uses it to find what was pushed since a scan.
func WithLinkTimesOnly() ScanOption {
	return func(o *scanOptions) error { o.linksOnly = true; return nil }
}

// Scan lists the whole v2 layout of drv, in parallel: first the blob store, one task
// per prefix (blobs/<alg>/<xx>), then the repositories, one task per top-level name,
// with link reads spread over the same number of workers. Every BlobData entry comes
// before any other. fn is called from one goroutine at a time: callers need no locks.
func Scan(ctx context.Context, drv driver.StorageDriver, fn func(Entry) error, opts ...ScanOption) error {
	o := scanOptions{workers: 16, tagTimes: true}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return err
		}
	}
	drv = ReadDriver(drv)
	walk := nativeWalkers[drv.Name()]
	if o.walk != nil {
		walk = *o.walk
	}
	defer_ := o.deferStats && !walk && !o.verifyLinks && !o.linksOnly
	var (
		mu   sync.Mutex
		emit = func(e Entry) error {
			mu.Lock()
			defer mu.Unlock()
			return fn(e)
		}
	)
	// On drivers whose walks resume after a key, the repository walks start as soon
	// as repositories/ is listed, with the blob walks: up to earlyWalks of them, each
	// held at walkRepos's gate after a page until the blob store is listed. The rest
	// start after it.
	reads := make(chan struct{}, o.workers) // bounds link reads across repositories
	early := walk && !o.linksOnly && drv.Name() == "s3aws"
	blobsListed := make(chan struct{})
	ectx, cancelEarly := context.WithCancel(ctx)
	eg, egctx := errgroup.WithContext(ectx)
	defer func() {
		cancelEarly()
		eg.Wait() // nothing emits once Scan has returned
	}()
	var earlyRevision func(digest.Digest)
	if o.earlyRevision != nil {
		earlyRevision = func(d digest.Digest) {
			mu.Lock()
			defer mu.Unlock()
			o.earlyRevision(d)
		}
	}
	startEarly := func(repoRoots []string) {
		walkers := make(chan struct{}, o.workers)
		earlySlots := make(chan struct{}, earlyWalks)
		var heldDone atomic.Int64 // entries held by early walks that are done walking
		for _, r := range repoRoots {
			eg.Go(func() error {
				var g *gate
				select {
				case earlySlots <- struct{}{}:
					g = &gate{revision: earlyRevision}
					g.wait = func(held int, finished bool) error {
						// A walk done walking makes no more requests: it gives up its
						// slot to the next, while what all such walks hold fits.
						slot := true
						if finished && heldDone.Add(int64(held)) <= earlyHeld {
							<-earlySlots
							slot = false
						}
						select {
						case <-blobsListed:
							if slot {
								<-earlySlots
							}
							return nil
						case <-egctx.Done():
							return egctx.Err()
						}
					}
				case <-blobsListed:
				case <-egctx.Done():
					return egctx.Err()
				}
				select {
				case walkers <- struct{}{}:
				case <-egctx.Done():
					return egctx.Err()
				}
				defer func() { <-walkers }()
				return walkRepos(egctx, drv, []string{r}, emit, reads, o.verifyLinks, o.linksOnly, o.linkCache, g)
			})
		}
	}

	// Both roots at once: on an object store each is a round trip. Where the driver
	// walks natively, the blob store is walked whole, up to about a page, instead
	// of listed: a small one is then done in that one request (probeBlobs).
	//
	// With the probe go, in the same round trip, the listings a blob store past a
	// page needs before its prefixes can be walked: blobs/ and blobs/sha256/. Two
	// requests wasted on a small store; two round trips saved on a large one.
	var (
		blobRoots, repoRoots []string
		blobErr, repoErr     error
		probed               bool // the probe listed the whole blob store
		probeErr             error
		probeSeen            = map[string]bool{}
		sha                  listing // blobs/sha256, listed with the probe
		roots                sync.WaitGroup
	)
	if !o.linksOnly {
		if walk {
			roots.Go(func() {
				probed, probeErr = probeBlobs(ctx, drv, blobsDir, func(e Entry) error { probeSeen[e.Path] = true; return emit(e) })
			})
			roots.Go(func() { sha.l, sha.err = drv.List(ctx, sha256Dir) })
		}
		roots.Go(func() { blobRoots, blobErr = drv.List(ctx, blobsDir) })
	}
	roots.Go(func() {
		repoRoots, repoErr = drv.List(ctx, reposDir)
		if repoErr == nil {
			repoRoots, repoErr = once(repoRoots, emit)
		}
		if early && repoErr == nil {
			startEarly(repoRoots) // not waiting for the probe's page to be read
		}
	})
	roots.Wait()
	if walk && !o.linksOnly {
		var nf driver.PathNotFoundError
		switch {
		case probed:
			blobRoots, blobErr = nil, nil // the probe had it all
		case probeErr != nil && !errors.As(probeErr, &nf):
			blobRoots, blobErr = nil, probeErr
		}
		// Not found: the listing says so too, or the driver cannot walk that far
		// up and lists instead.
	}
	if err := reportRoots(drv, blobErr, repoErr, o.linksOnly, emit); err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.workers)
	// Warnings that name a digest are held until the blob store is listed: every
	// BlobData entry comes first.
	var held []Entry
	holdEmit := func(e Entry) error {
		if e.Kind == BlobData {
			return emit(e)
		}
		mu.Lock()
		held = append(held, e)
		mu.Unlock()
		return nil
	}
	// blobs/<alg>/<xx>: expand one level so each prefix is its own task; after a
	// probe that stopped at probeKeys, skipping what it emitted.
	emitBlob := emit
	if walk && len(probeSeen) > 0 {
		emitBlob = func(e Entry) error {
			if probeSeen[e.Path] {
				return nil // emitted by the probe
			}
			return emit(e)
		}
	}
	// A name listed twice is a file and a directory: the probe reported the file
	// if its page went that far.
	strays := func(e Entry) error {
		if probeSeen[e.Path] {
			return nil
		}
		return holdEmit(e)
	}
	blobRoots, err := once(blobRoots, strays)
	if err != nil {
		return err
	}
	for _, algDir := range blobRoots {
		var prefixes []string
		var err error
		if walk && algDir == sha256Dir {
			prefixes, _, err = listed(algDir, sha.l, sha.err, holdEmit)
		} else {
			prefixes, _, err = list(gctx, drv, algDir, holdEmit)
		}
		if err == nil {
			prefixes, err = once(prefixes, strays)
		}
		if err != nil {
			return err
		}
		for _, p := range prefixes {
			if walk {
				g.Go(func() error { return scanBlobs(gctx, drv, p, emitBlob) })
			} else {
				g.Go(func() error { return statBlobs(gctx, drv, p, defer_, holdEmit) })
			}
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, e := range held {
		if err := emit(e); err != nil {
			return err
		}
	}
	close(blobsListed)
	if early {
		return eg.Wait()
	}
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(o.workers)
	lister := &repoLister{drv: drv, emit: emit, sem: reads, verify: o.verifyLinks, deferStats: defer_, tagTimes: o.tagTimes, linksOnly: o.linksOnly, g: g}
	for _, r := range repoRoots {
		if walk {
			g.Go(func() error { return scanRepos(gctx, drv, r, emit, reads, o.verifyLinks, o.linksOnly, o.linkCache) })
		} else {
			g.Go(func() error { return lister.scanDir(gctx, r) })
		}
	}
	return g.Wait()
}

// once drops the second of a name listed twice, and reports it as a stray file: on
// object stores a key can be a file and a directory at once, and List names it as
// each. Walked twice, the directory's entries would come twice.
func once(l []string, emit func(Entry) error) ([]string, error) {
	seen := make(map[string]bool, len(l))
	out := l[:0:0]
	for _, p := range l {
		if seen[p] {
			if err := emit(Entry{Kind: KindWarning, Path: p, Warning: strayFile}); err != nil {
				return nil, err
			}
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	return out, nil
}

// reportRoots reports what listing the layout's two roots gave: no registry at
// all is an error, a missing blob store and symbolic links are entries, any other
// failure an error. noBlobs: the blob store was not listed.
func reportRoots(drv driver.StorageDriver, blobErr, repoErr error, noBlobs bool, emit func(Entry) error) error {
	var nf driver.PathNotFoundError
	if (noBlobs || errors.As(blobErr, &nf)) && errors.As(repoErr, &nf) {
		return fmt.Errorf("scan %s storage: %w", drv.Name(), ErrNoRegistry)
	}
	switch {
	case noBlobs:
	case errors.As(blobErr, &nf):
		if err := emit(Entry{Kind: KindWarning, Path: blobsDir, Warning: "no blobs directory: no blob data to keep or delete"}); err != nil {
			return err
		}
	case errors.Is(blobErr, ErrSymlink):
		if err := emitSymlinks(blobErr, emit); err != nil {
			return err
		}
	case blobErr != nil:
		return fmt.Errorf("list %s: %w", blobsDir, blobErr)
	}
	switch {
	case errors.Is(repoErr, ErrSymlink):
		return emitSymlinks(repoErr, emit)
	case repoErr != nil && !errors.As(repoErr, &nf):
		return fmt.Errorf("list %s: %w", reposDir, repoErr)
	}
	return nil
}

// probeKeys is about one listing page of an object store.
const probeKeys = 1000

// earlyWalks bounds the repository walks that start before the blob store is
// listed, each holding a page of entries until it is.
const earlyWalks = 32

// earlyHeld bounds the entries that early walks done walking hold until the blob
// store is listed, beyond the pages of those still walking.
var earlyHeld int64 = earlyWalks * probeKeys

// gate holds a repository walk that started before the blob store is listed.
type gate struct {
	// wait blocks until the blob store is listed. held: entries the walk holds;
	// finished: it has nothing more to walk.
	wait func(held int, finished bool) error
	// revision, if set, is told each revision link found meanwhile.
	revision func(digest.Digest)
}

var (
	errProbeFull = errors.New("more than one page of blobs")
	errAtGate    = errors.New("a page walked before the blob store is listed")
)

// probeBlobs walks dir until probeKeys files and reports whether that was all of
// it. A missing dir is driver.PathNotFoundError. It stops at the probeKeys-th file,
// the last of a full first page, not at the next one: that would cost a second
// page's round trip to learn only that there is more.
func probeBlobs(ctx context.Context, drv driver.StorageDriver, dir string, emit func(Entry) error) (bool, error) {
	n, full := 0, false
	err := drv.Walk(ctx, dir, func(fi driver.FileInfo) error {
		if fi.IsDir() {
			return nil
		}
		if err := emitBlobFile(fi, emit); err != nil {
			return err
		}
		if n++; n == probeKeys {
			full = true // drivers wrap the error without %w
			return errProbeFull
		}
		return nil
	})
	var nf driver.PathNotFoundError
	switch {
	case full:
		return false, nil
	case errors.As(err, &nf):
		return false, err
	case err != nil:
		return false, fmt.Errorf("walk %s: %w", dir, err)
	}
	return true, nil
}

func emitBlobFile(fi driver.FileInfo, emit func(Entry) error) error {
	s, err := Parse(fi.Path())
	if err != nil || s.Kind != BlobData {
		return emit(Entry{Kind: KindWarning, Path: fi.Path(), Warning: "unexpected file in blob store"})
	}
	return emit(Entry{Kind: BlobData, Digest: s.Digest, Size: fi.Size(), ModTime: fi.ModTime(), Path: fi.Path()})
}

func scanBlobs(ctx context.Context, drv driver.StorageDriver, prefix string, emit func(Entry) error) error {
	files := 0
	err := drv.Walk(ctx, prefix, func(fi driver.FileInfo) error {
		if fi.IsDir() {
			return nil
		}
		files++
		return emitBlobFile(fi, emit)
	})
	var nf driver.PathNotFoundError
	switch {
	case err != nil && !errors.As(err, &nf):
		return fmt.Errorf("walk %s: %w", prefix, err)
	case files > 0:
		return nil
	}
	// Nothing under it: emptied while we listed, or a file (object stores list
	// files and directories alike), which is reported as a stray.
	fi, err := drv.Stat(ctx, prefix)
	switch {
	case errors.As(err, &nf):
		return nil
	case err != nil:
		return fmt.Errorf("stat %s: %w", prefix, err)
	case fi.IsDir():
		return nil
	}
	return emitBlobFile(fi, emit)
}

// scanRepos walks everything under one top-level repository directory; names nest,
// so it may find several repositories. Links to read are collected during the walk
// and read concurrently after it, bounded by sem.
func scanRepos(ctx context.Context, drv driver.StorageDriver, top string, emit func(Entry) error, sem chan struct{}, verify, linksOnly bool, cache LinkCache) error {
	return walkRepos(ctx, drv, []string{top}, emit, sem, verify, linksOnly, cache, nil)
}

// walkRepos is scanRepos over several tops: a repository's own directories
// (_manifests, _layers, _uploads) when its nested repositories are shards of their own.
//
// A walk with a gate (not nil) runs before the blob store is listed: it holds
// what it would emit, and stops at its probeKeys-th file (the end of a listing
// page) until gate.wait returns, then emits what it held and goes on after that
// file; the driver's walks must resume after a key (s3aws). It waits with no request
// in flight, and holds a page of entries at most; it tells gate.revision each
// revision link meanwhile.
func walkRepos(ctx context.Context, drv driver.StorageDriver, tops []string, emit func(Entry) error, sem chan struct{}, verify, linksOnly bool, cache LinkCache, gate *gate) error {
	var (
		held   []Entry
		toRead []*Entry
	)
	out := emit
	if gate != nil {
		out = func(e Entry) error { held = append(held, e); return nil }
	}
	// pass waits at the gate, if there is one still shut, then emits what was held.
	pass := func(finished bool) error {
		if gate == nil {
			return nil
		}
		if err := gate.wait(len(held)+len(toRead), finished); err != nil {
			return err
		}
		gate, out = nil, emit
		for _, e := range held {
			if err := emit(e); err != nil {
				return err
			}
		}
		held = nil
		return nil
	}
	var (
		files    int    // files walked while the gate was shut
		pausedAt string // the file a walk stopped at, at the gate
	)
	repos := map[string]bool{} // name -> has _manifests
	uploads := map[string]*Entry{}
	var started []*Entry // uploads whose startedat to read
	dir := func(p string) {
		// A repository is a directory holding _manifests, even an empty one.
		if name, ok := strings.CutSuffix(p, "/_manifests"); ok {
			if name, ok := strings.CutPrefix(name, reposDir+"/"); ok && !strings.Contains("/"+name, "/_") {
				repos[name] = true
			}
		}
	}
	for _, top := range tops {
		dir(top) // a walk does not yield its top
	}
	walked := 0
	visitFile := func(fi driver.FileInfo) error {
		walked++
		if err := ctx.Err(); err != nil {
			return err
		}
		p := fi.Path()
		if fi.IsDir() {
			dir(p)
			return nil
		}
		s, err := Parse(p)
		if err != nil {
			return out(Entry{Kind: KindWarning, Path: p, Warning: "unexpected file in repositories: " + err.Error()})
		}
		switch s.Kind {
		case RevisionDir, TagIndexDir, LayerDir, UploadDir, TagDir, RepoDataDir:
			// An object store's key can be a file and a directory at once.
			return out(Entry{Kind: KindWarning, Path: p, Warning: strayFile})
		}
		if _, ok := repos[s.Repo]; !ok {
			repos[s.Repo] = false
		}
		switch s.Kind {
		case RevisionLink, LayerLink:
			if s.Kind == RevisionLink {
				repos[s.Repo] = true
				if gate != nil && gate.revision != nil {
					gate.revision(s.Digest)
				}
			}
			e := &Entry{Kind: s.Kind, Repo: s.Repo, Digest: s.Digest, Target: s.Digest, ModTime: fi.ModTime(), Path: p}
			if verify {
				toRead = append(toRead, e)
				return nil
			}
			return out(*e)
		case TagCurrentLink:
			e := &Entry{Kind: TagCurrentLink, Repo: s.Repo, Tag: s.Tag, Size: fi.Size(), ModTime: fi.ModTime(), Path: p}
			if linksOnly {
				return out(*e)
			}
			toRead = append(toRead, e)
		case TagIndexLink:
			if linksOnly {
				return nil
			}
			return out(Entry{Kind: TagIndexLink, Repo: s.Repo, Tag: s.Tag, Digest: s.Digest, Path: p})
		case UploadStartedAt, UploadData, UploadHashState:
			if linksOnly {
				return nil
			}
			key := s.Repo + "\x00" + s.Upload
			u := uploads[key]
			if u == nil {
				dir, err := Path(Spec{Kind: UploadDir, Repo: s.Repo, Upload: s.Upload})
				if err != nil {
					return out(Entry{Kind: KindWarning, Path: p, Warning: err.Error()})
				}
				u = &Entry{Kind: UploadDir, Repo: s.Repo, Upload: s.Upload, Path: dir}
				uploads[key] = u
			}
			if fi.ModTime().After(u.ModTime) {
				u.ModTime = fi.ModTime()
			}
			u.Size += fi.Size()
			if s.Kind == UploadStartedAt {
				started = append(started, &Entry{Path: p, Upload: key})
			}
		}
		return nil
	}
	visit := func(fi driver.FileInfo) error {
		if err := visitFile(fi); err != nil || fi.IsDir() || gate == nil {
			return err
		}
		if files++; files == probeKeys {
			pausedAt = fi.Path()
			return errAtGate // drivers wrap it without %w: pausedAt says so
		}
		return nil
	}
	for _, top := range tops {
		walked = 0
		var (
			err   error
			after string
		)
		for {
			var opts []func(*driver.WalkOptions)
			if after != "" {
				opts = append(opts, driver.WithStartAfterHint(after))
			}
			pausedAt = ""
			err = drv.Walk(ctx, top, visit, opts...)
			if pausedAt == "" {
				break
			}
			if err := pass(false); err != nil {
				return err
			}
			after = pausedAt
		}
		var nf driver.PathNotFoundError
		if err != nil && !errors.As(err, &nf) {
			return fmt.Errorf("walk %s: %w", top, err)
		}
		if walked == 0 {
			// Nothing under top: on object stores a stray file where a directory
			// belongs walks as empty. It is reported as a walk from above finds it.
			if fi, err := drv.Stat(ctx, top); err == nil && !fi.IsDir() {
				if err := visitFile(fi); err != nil {
					return err
				}
			} else if err != nil && !errors.As(err, &nf) {
				return fmt.Errorf("stat %s: %w", top, err)
			}
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, e := range toRead {
		g.Go(func() error {
			if e.Kind == TagCurrentLink && cache != nil {
				if b, ok := cache.Link(e.Path, e.Size, e.ModTime); ok {
					checkLink(e, b, nil)
					e.LinkCached = true
					return nil
				}
			}
			readAt := time.Now()
			b, err := readBounded(gctx, drv, sem, e.Path)
			if gctx.Err() != nil {
				return gctx.Err()
			}
			checkLink(e, b, err)
			e.ReadAt = readAt
			return nil
		})
	}
	for _, st := range started {
		u := uploads[st.Upload]
		g.Go(func() error {
			b, err := readBounded(gctx, drv, sem, st.Path)
			if gctx.Err() != nil {
				return gctx.Err()
			}
			checkStartedAt(u, b, err)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := pass(true); err != nil {
		return err
	}
	for _, e := range toRead {
		if err := emit(*e); err != nil {
			return err
		}
	}
	for _, u := range uploads {
		if u.StartedAt.IsZero() && u.Warning == "" {
			u.Warning = "upload has no startedat file; using its newest file time"
		}
		if err := emit(*u); err != nil {
			return err
		}
	}
	for name, hasManifests := range repos {
		e := Entry{Kind: KindRepo, Repo: name, HasManifests: hasManifests, Path: path.Join(reposDir, name)}
		if err := ValidRepoName(name); err != nil {
			e.Warning = fmt.Sprintf("invalid repository name %q (%v): everything in it is kept", name, err)
		}
		if err := emit(e); err != nil {
			return err
		}
	}
	return nil
}
