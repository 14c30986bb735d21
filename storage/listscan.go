package storage

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// nativeWalkers are drivers whose Walk is a recursive listing, a request per page of
// keys. The others (filesystem, inmemory) walk by listing every directory and stating
// every entry; for them the scanner lists only the directories the layout has and
// states the one file each leaf directory holds (<hex>/data, <hex>/link), which takes
// about a third of the calls.
var nativeWalkers = map[string]bool{"s3aws": true, "gcs": true, "azure": true}

func isNotFound(err error) bool {
	var nf driver.PathNotFoundError
	return errors.As(err, &nf)
}

// strayFile is the warning for a regular file where the layout has a directory.
const strayFile = "a file where the layout has a directory: left alone"

// isNotDir reports a file where the layout has a directory (FS says ErrNotDir;
// distribution's driver passes the errno on).
func isNotDir(err error) bool {
	return errors.Is(err, ErrNotDir) || errors.Is(err, syscall.ENOTDIR)
}

// list lists p, treating a missing directory as empty. Children that are symbolic
// links (FS leaves them out) and a file where a directory should be are reported
// through emit and left alone; links says how many children were links.
func list(ctx context.Context, drv driver.StorageDriver, p string, emit func(Entry) error) ([]string, int, error) {
	l, err := drv.List(ctx, p)
	return listed(p, l, err, emit)
}

// listing is what a List gave.
type listing struct {
	l   []string
	err error
}

// listed is list for a listing of p already made.
func listed(p string, l []string, err error, emit func(Entry) error) ([]string, int, error) {
	var se *SymlinkError
	switch {
	case isNotFound(err):
		return nil, 0, nil
	case errors.As(err, &se):
		return l, len(se.Links), emitSymlinks(err, emit)
	case isNotDir(err):
		return nil, 0, emit(Entry{Kind: KindWarning, Path: p, Warning: strayFile})
	case err != nil:
		return nil, 0, fmt.Errorf("list %s: %w", p, err)
	}
	return l, 0, nil
}

// stat states the file p of the layout directory dir. A file that is not there (an
// emptied directory, a link an API delete removed), a symbolic link, and a file
// where dir should be a directory are reported through emit, not errors: fi is
// then nil.
func stat(ctx context.Context, drv driver.StorageDriver, p, dir string, emit func(Entry) error) (driver.FileInfo, error) {
	fi, err := drv.Stat(ctx, p)
	switch {
	case isNotFound(err):
		return nil, nil
	case errors.Is(err, ErrSymlink):
		return nil, emitSymlinks(err, emit)
	case isNotDir(err):
		return nil, emit(Entry{Kind: KindWarning, Path: dir, Warning: strayFile})
	case err != nil:
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	return fi, nil
}

// emitSymlinks reports the symbolic links err names.
func emitSymlinks(err error, emit func(Entry) error) error {
	var se *SymlinkError
	if !errors.As(err, &se) {
		return err
	}
	for _, p := range se.Links {
		for _, e := range SymlinkEntries(p) {
			if err := emit(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// SymlinkEntries is what a scan reports for a symbolic link at p, which it does not
// follow and no sweep deletes. What the link means depends on where it sits: what
// it hides is kept, and where that could be anything, the sweep is blocked.
func SymlinkEntries(p string) []Entry {
	const not = "symbolic link: regsweep does not follow it and leaves it alone"
	place, s := Locate(p)
	w := Entry{Kind: KindWarning, WarnKind: "symlink", Path: p, Repo: s.Repo, Warning: not}
	switch place {
	case PlaceStore, PlaceRepoTree:
		w.Blocks = true
		w.Warning += "; what lies behind it may reference any blob, so nothing in the blob store is freed and a sweep refuses (replace the link with the data, or point rootdirectory at the real location)"
	case PlaceManifests:
		w.Kind, w.HasManifests, w.Blocks = KindRepo, true, true
		w.Warning += "; the repository's manifests behind it are unknown: everything in " + s.Repo + " is kept, nothing in the blob store is freed and a sweep refuses"
	case PlaceLayers:
		w.Kind, w.HasManifests = KindRepo, true
		w.Warning += "; the repository's layer links behind it are unknown: everything in " + s.Repo + " is kept"
	case PlaceOne:
		switch s.Kind {
		case BlobDir:
			// The registry would serve what it points at: present, of unknown size, kept.
			w.Digest, w.Keep = s.Digest, true
			w.Warning += "; blob " + s.Digest.String() + " and the links naming it are kept"
			return []Entry{{Kind: BlobData, Digest: s.Digest, Path: p}, w}
		case LayerDir:
			// A layer link that cannot be read, like a corrupt one: kept, with its blob.
			return []Entry{{Kind: LayerLink, WarnKind: "symlink", Repo: s.Repo, Digest: s.Digest, Target: s.Digest, Path: p, Warning: not}}
		case RevisionDir:
			// A revision whose link cannot be read, like a corrupt one: kept, and a root.
			return []Entry{{Kind: RevisionLink, WarnKind: "symlink", Repo: s.Repo, Digest: s.Digest, Path: p, Warning: not}}
		case TagCurrentLink:
			return []Entry{{Kind: TagCurrentLink, WarnKind: "symlink", Repo: s.Repo, Tag: s.Tag, Path: p, Warning: not}}
		}
	}
	return []Entry{w}
}

// listDigests lists <dir>/<alg>/<hex> and returns each digest with its directory.
func listDigests(ctx context.Context, drv driver.StorageDriver, dir string, emit func(Entry) error, fn func(d digest.Digest, p string) error) error {
	algs, _, err := list(ctx, drv, dir, emit)
	if err != nil {
		return err
	}
	for _, a := range algs {
		hexes, _, err := list(ctx, drv, a, emit)
		if err != nil {
			return err
		}
		for _, h := range hexes {
			d, err := joinDigest(path.Base(a), path.Base(h))
			if err != nil {
				if err := emit(Entry{Kind: KindWarning, Path: h, Warning: "not a digest directory: " + err.Error()}); err != nil {
					return err
				}
				continue
			}
			if err := fn(d, h); err != nil {
				return err
			}
		}
	}
	return nil
}

// statBlobs lists one blob prefix directory and states each <hex>/data, unless
// stats are deferred.
func statBlobs(ctx context.Context, drv driver.StorageDriver, prefix string, deferStats bool, emit func(Entry) error) error {
	hexes, _, err := list(ctx, drv, prefix, emit)
	if err != nil {
		return err
	}
	for _, h := range hexes {
		p := h + "/data"
		s, err := Parse(p)
		if err != nil || s.Kind != BlobData {
			if err := emit(Entry{Kind: KindWarning, Path: h, Warning: "unexpected entry in blob store"}); err != nil {
				return err
			}
			continue
		}
		if deferStats {
			if err := emit(Entry{Kind: BlobData, Digest: s.Digest, Path: p, Deferred: true}); err != nil {
				return err
			}
			continue
		}
		fi, err := stat(ctx, drv, p, h, emit)
		if err != nil {
			return err
		}
		if fi == nil {
			continue
		}
		if err := emit(Entry{Kind: BlobData, Digest: s.Digest, Size: fi.Size(), ModTime: fi.ModTime(), Path: p}); err != nil {
			return err
		}
	}
	return nil
}

// repoLister scans repositories by listing the layout's directories.
type repoLister struct {
	drv        driver.StorageDriver
	emit       func(Entry) error
	sem        chan struct{}
	verify     bool
	deferStats bool
	tagTimes   bool // WithTagTimes
	linksOnly  bool // WithLinkTimesOnly
	g          *errgroup.Group
}

// scanDir scans one directory under repositories/: a repository if it holds
// _manifests, _layers or _uploads, and a namespace of nested ones otherwise.
func (l *repoLister) scanDir(ctx context.Context, dir string) error {
	return l.scanRepoDir(ctx, dir, true)
}

// scanRepoDir is scanDir that leaves out nested repositories unless nested.
func (l *repoLister) scanRepoDir(ctx context.Context, dir string, nested bool) error {
	entries, _, err := list(ctx, l.drv, dir, l.emit)
	if err != nil {
		return err
	}
	name := strings.TrimPrefix(dir, reposDir+"/")
	seen, manifests := false, false
	for _, e := range entries {
		switch base := path.Base(e); {
		case base == "_manifests":
			seen, manifests = true, true
			if err := l.scanManifests(ctx, name, e); err != nil {
				return err
			}
		case base == "_layers":
			seen = true
			if err := l.scanLayers(ctx, name, e); err != nil {
				return err
			}
		case base == "_uploads":
			seen = true
			if l.linksOnly {
				continue
			}
			if err := l.scanUploads(ctx, name, e); err != nil {
				return err
			}
		case strings.HasPrefix(base, "_"):
			if err := l.emit(Entry{Kind: KindWarning, Path: e, Warning: "unexpected entry in repository"}); err != nil {
				return err
			}
		case !nested:
			// A nested repository or namespace: a shard of its own.
		default:
			// A nested repository or namespace: its own task when a worker is free.
			if !l.g.TryGo(func() error { return l.scanDir(ctx, e) }) {
				if err := l.scanDir(ctx, e); err != nil {
					return err
				}
			}
		}
	}
	if !seen {
		return nil
	}
	e := Entry{Kind: KindRepo, Repo: name, HasManifests: manifests, Path: dir}
	if err := ValidRepoName(name); err != nil {
		e.Warning = fmt.Sprintf("invalid repository name %q (%v): everything in it is kept", name, err)
	}
	return l.emit(e)
}

// link states (or, verifying, reads) <dir>/link and emits it.
func (l *repoLister) link(ctx context.Context, kind Kind, repo string, d digest.Digest, dir string) error {
	p := dir + "/link"
	if l.deferStats && kind == LayerLink {
		return l.emit(Entry{Kind: kind, Repo: repo, Digest: d, Target: d, Path: p, Deferred: true})
	}
	fi, err := stat(ctx, l.drv, p, dir, l.emit)
	if fi == nil || err != nil {
		return err
	}
	e := Entry{Kind: kind, Repo: repo, Digest: d, Target: d, ModTime: fi.ModTime(), Path: p}
	if l.verify {
		b, err := l.read(ctx, p)
		checkLink(&e, b, err)
	}
	return l.emit(e)
}

// readTag reads a tag's current link and then states it: its time is the tag's push
// time (distribution rewrites the link on every push), which retention policies
// rank by. Stated after the read, a push in between makes the time newer, never
// older, than the content read. A failed stat leaves the time zero: unknown, which
// a policy never deletes by.
func (l *repoLister) readTag(ctx context.Context, p string) ([]byte, time.Time, error) {
	b, err := l.read(ctx, p)
	if err != nil || !l.tagTimes {
		return b, time.Time{}, err
	}
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, time.Time{}, ctx.Err()
	}
	defer func() { <-l.sem }()
	fi, serr := l.drv.Stat(ctx, p)
	if serr != nil {
		return b, time.Time{}, nil
	}
	return b, fi.ModTime(), nil
}

func (l *repoLister) read(ctx context.Context, p string) ([]byte, error) {
	return readBounded(ctx, l.drv, l.sem, p)
}

// readBounded reads p while holding one of sem's slots, which bound reads across
// all repositories.
func readBounded(ctx context.Context, drv driver.StorageDriver, sem chan struct{}, p string) ([]byte, error) {
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-sem }()
	return drv.GetContent(ctx, p)
}

// checkLink sets e.Target (and e.Warning) from a link's content.
func checkLink(e *Entry, b []byte, err error) {
	e.Target = ""
	if err != nil {
		e.Warning = fmt.Sprintf("read link: %v", err)
		return
	}
	d, perr := digest.Parse(strings.TrimSpace(string(b)))
	switch {
	case perr != nil:
		e.Warning = fmt.Sprintf("link content %.80q is not a digest: %v", b, perr)
	case e.Digest != "" && d != e.Digest:
		e.Target, e.Warning = d, fmt.Sprintf("link content %s disagrees with its path", d)
	default:
		e.Target = d
	}
}

// checkStartedAt sets e.StartedAt (or e.Warning) from an upload's startedat file.
func checkStartedAt(e *Entry, b []byte, err error) {
	if err != nil {
		e.Warning = fmt.Sprintf("read startedat: %v", err)
		return
	}
	t, perr := time.Parse(time.RFC3339, strings.TrimSpace(string(b)))
	if perr != nil {
		e.Warning = fmt.Sprintf("startedat %.40q is not an RFC 3339 time", b)
		return
	}
	e.StartedAt = t
}

func (l *repoLister) scanManifests(ctx context.Context, repo, dir string) error {
	err := listDigests(ctx, l.drv, dir+"/revisions", l.emit, func(d digest.Digest, p string) error {
		return l.link(ctx, RevisionLink, repo, d, p)
	})
	if err != nil {
		return err
	}
	tags, _, err := list(ctx, l.drv, dir+"/tags", l.emit)
	if err != nil {
		return err
	}
	// Tag links are read concurrently: their content is the data.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		read []Entry
	)
	for _, t := range tags {
		tag := path.Base(t)
		if l.linksOnly {
			if err := l.tagTime(ctx, repo, tag, t); err != nil {
				return err
			}
			continue
		}
		if !l.deferStats {
			if err := listTagIndex(ctx, l.drv, repo, t, l.emit); err != nil {
				return err
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := t + "/current/link"
			b, mt, err := l.readTag(ctx, p)
			if isNotFound(err) {
				return // a tag directory with history only
			}
			e := Entry{Kind: TagCurrentLink, Repo: repo, Tag: tag, Path: p, ModTime: mt}
			if isNotDir(err) {
				e = Entry{Kind: KindWarning, Path: t, Warning: strayFile}
			} else {
				checkLink(&e, b, err)
			}
			mu.Lock()
			read = append(read, e)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, e := range read {
		if err := l.emit(e); err != nil {
			return err
		}
	}
	return nil
}

// tagTime states a tag's current link and emits it with its time and no target.
func (l *repoLister) tagTime(ctx context.Context, repo, tag, t string) error {
	p := t + "/current/link"
	fi, err := stat(ctx, l.drv, p, t, l.emit)
	if fi == nil || err != nil {
		return err
	}
	return l.emit(Entry{Kind: TagCurrentLink, Repo: repo, Tag: tag, Path: p, ModTime: fi.ModTime()})
}

// listTagIndex emits the history entries of the tag directory t.
func listTagIndex(ctx context.Context, drv driver.StorageDriver, repo, t string, emit func(Entry) error) error {
	tag := path.Base(t)
	return listDigests(ctx, drv, t+"/index", emit, func(d digest.Digest, _ string) error {
		return emit(Entry{Kind: TagIndexLink, Repo: repo, Tag: tag, Digest: d, Path: t + "/index/" + string(d.Algorithm()) + "/" + d.Encoded() + "/link"})
	})
}

// ListTagIndex emits the history entries of every tag of repo, for a scan that
// deferred them, listing up to workers tags at once. fn is called from one goroutine.
func ListTagIndex(ctx context.Context, drv driver.StorageDriver, repo string, workers int, fn func(Entry) error) error {
	// repo is a directory a scan listed, valid name or not (an invalid one is kept
	// whole, but its history is still the registry's).
	if repo == "" || path.Clean(repo) != repo || strings.HasPrefix(repo, "../") || repo == ".." {
		return fmt.Errorf("list tag history: %q is not a repository directory", repo)
	}
	dir := path.Join(reposDir, repo, "_manifests", "tags") // as scanManifests lists it
	drv = ReadDriver(drv)
	var mu sync.Mutex
	emit := func(e Entry) error { mu.Lock(); defer mu.Unlock(); return fn(e) }
	tags, _, err := list(ctx, drv, dir, emit)
	if err != nil {
		return err
	}
	found := make([][]Entry, len(tags))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, workers))
	for i, t := range tags {
		g.Go(func() error {
			return listTagIndex(gctx, drv, repo, t, func(e Entry) error {
				if e.Kind != TagIndexLink {
					return emit(e) // a warning
				}
				found[i] = append(found[i], e)
				return nil
			})
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, es := range found {
		for _, e := range es {
			if err := emit(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// StatDeferred states the file of a deferred entry and fills in its size and time.
// It returns false when the file is not there: a blob directory without data, or a
// layer link directory whose link an API delete removed, or a file where the layout
// has that directory (Warning then says so). When the file or its directory is a
// symbolic link, the error wraps ErrSymlink: the caller reports SymlinkEntries of
// the directory instead.
func StatDeferred(ctx context.Context, drv driver.StorageDriver, e Entry) (Entry, bool, error) {
	fi, err := ReadDriver(drv).Stat(ctx, e.Path)
	switch {
	case isNotFound(err):
		return e, false, nil
	case errors.Is(err, ErrSymlink):
		return e, false, err
	case isNotDir(err):
		e.Warning = strayFile
		return e, false, nil // the caller names the directory
	case err != nil:
		return e, false, fmt.Errorf("stat %s: %w", e.Path, err)
	}
	e.Size, e.ModTime, e.Deferred = fi.Size(), fi.ModTime(), false
	return e, true, nil
}

func (l *repoLister) scanLayers(ctx context.Context, repo, dir string) error {
	return listDigests(ctx, l.drv, dir, l.emit, func(d digest.Digest, p string) error {
		return l.link(ctx, LayerLink, repo, d, p)
	})
}

func (l *repoLister) scanUploads(ctx context.Context, repo, dir string) error {
	ids, _, err := list(ctx, l.drv, dir, l.emit)
	if err != nil {
		return err
	}
	for _, u := range ids {
		e := Entry{Kind: UploadDir, Repo: repo, Upload: path.Base(u), Path: u}
		if _, err := Path(Spec{Kind: UploadDir, Repo: repo, Upload: e.Upload}); err != nil {
			if err := l.emit(Entry{Kind: KindWarning, Path: u, Warning: err.Error()}); err != nil {
				return err
			}
			continue
		}
		files, links, err := list(ctx, l.drv, u, l.emit)
		if err != nil {
			return err
		}
		if links > 0 {
			continue // an upload holding a link is left alone, link and all
		}
		for _, f := range files {
			if fi, err := l.drv.Stat(ctx, f); err == nil {
				e.Size += fi.Size()
				if fi.ModTime().After(e.ModTime) {
					e.ModTime = fi.ModTime()
				}
			}
		}
		// The hash states below hashstates/<alg>: what an upload holds besides data.
		if hs, _, err := list(ctx, l.drv, u+"/hashstates", l.emit); err == nil {
			for _, alg := range hs {
				states, _, _ := list(ctx, l.drv, alg, l.emit)
				for _, st := range states {
					if fi, err := l.drv.Stat(ctx, st); err == nil && !fi.IsDir() {
						e.Size += fi.Size()
					}
				}
			}
		}
		b, err := l.read(ctx, u+"/startedat")
		if isNotFound(err) {
			e.Warning = "upload has no startedat file; using its newest file time"
		} else {
			checkStartedAt(&e, b, err)
		}
		if err := l.emit(e); err != nil {
			return err
		}
	}
	return nil
}

// AnyRepository returns the name of a repository of the storage (one holding
// _manifests), or "" when it has none: something to name in a request about it.
func AnyRepository(ctx context.Context, drv driver.StorageDriver) (string, error) {
	drv = ReadDriver(drv)
	var find func(dir string, depth int) (string, error)
	find = func(dir string, depth int) (string, error) {
		l, err := drv.List(ctx, dir)
		if isNotFound(err) || isNotDir(err) {
			return "", nil
		}
		if err != nil && !errors.Is(err, ErrSymlink) {
			return "", fmt.Errorf("list %s: %w", dir, err)
		}
		slices.Sort(l)
		for _, e := range l {
			if path.Base(e) == "_manifests" && dir != reposDir {
				name := strings.TrimPrefix(dir, reposDir+"/")
				if ValidRepoName(name) == nil {
					return name, nil
				}
			}
		}
		for _, e := range l {
			if depth < 8 && !strings.HasPrefix(path.Base(e), "_") {
				if name, err := find(e, depth+1); name != "" || err != nil {
					return name, err
				}
			}
		}
		return "", nil
	}
	return find(reposDir, 0)
}
