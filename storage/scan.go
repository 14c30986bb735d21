package storage

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
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
//	UploadDir       Repo, Upload, StartedAt, ModTime
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
}

// Scan-only kinds: a repository found, and a problem with a path.
const (
	KindRepo Kind = 100 + iota
	KindWarning
)

type scanOptions struct {
	workers int
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

// Scan lists the whole v2 layout of drv, in parallel: one task per blob prefix
// (blobs/<alg>/<xx>) and one per top-level repository name. fn is called from one
// goroutine at a time, so callers need no locks.
func Scan(ctx context.Context, drv driver.StorageDriver, fn func(Entry) error, opts ...ScanOption) error {
	o := scanOptions{workers: 16}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return err
		}
	}
	blobRoots, blobErr := listDirs(ctx, drv, blobsDir)
	repoRoots, repoErr := listDirs(ctx, drv, reposDir)
	var nf driver.PathNotFoundError
	if errors.As(blobErr, &nf) && errors.As(repoErr, &nf) {
		return fmt.Errorf("scan %s storage: %w", drv.Name(), ErrNoRegistry)
	}
	var (
		mu   sync.Mutex
		emit = func(e Entry) error {
			mu.Lock()
			defer mu.Unlock()
			return fn(e)
		}
	)
	warn := func(p, format string, a ...any) error {
		return emit(Entry{Kind: KindWarning, Path: p, Warning: fmt.Sprintf(format, a...)})
	}
	switch {
	case errors.As(blobErr, &nf):
		if err := warn(blobsDir, "no blobs directory: no blob data to keep or delete"); err != nil {
			return err
		}
	case blobErr != nil:
		return fmt.Errorf("list %s: %w", blobsDir, blobErr)
	}
	if repoErr != nil && !errors.As(repoErr, &nf) {
		return fmt.Errorf("list %s: %w", reposDir, repoErr)
	}

	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(o.workers)
	// blobs/<alg>/<xx>: expand one level so each prefix is its own task.
	for _, algDir := range blobRoots {
		prefixes, err := listDirs(ctx, drv, algDir)
		if err != nil {
			return fmt.Errorf("list %s: %w", algDir, err)
		}
		for _, p := range prefixes {
			g.Go(func() error { return scanBlobs(ctx, drv, p, emit) })
		}
	}
	for _, r := range repoRoots {
		g.Go(func() error { return scanRepos(ctx, drv, r, emit) })
	}
	return g.Wait()
}

func listDirs(ctx context.Context, drv driver.StorageDriver, p string) ([]string, error) {
	l, err := drv.List(ctx, p)
	if err != nil {
		return nil, err
	}
	return l, nil
}

func scanBlobs(ctx context.Context, drv driver.StorageDriver, prefix string, emit func(Entry) error) error {
	err := drv.Walk(ctx, prefix, func(fi driver.FileInfo) error {
		if fi.IsDir() {
			return nil
		}
		s, err := Parse(fi.Path())
		if err != nil || s.Kind != BlobData {
			return emit(Entry{Kind: KindWarning, Path: fi.Path(), Warning: "unexpected file in blob store"})
		}
		return emit(Entry{Kind: BlobData, Digest: s.Digest, Size: fi.Size(), ModTime: fi.ModTime(), Path: fi.Path()})
	})
	var nf driver.PathNotFoundError
	if errors.As(err, &nf) {
		return nil // emptied while we listed
	}
	if err != nil {
		return fmt.Errorf("walk %s: %w", prefix, err)
	}
	return nil
}

// scanRepos walks everything under one top-level repository directory; names nest,
// so it may find several repositories.
func scanRepos(ctx context.Context, drv driver.StorageDriver, top string, emit func(Entry) error) error {
	type repoSeen struct{ manifests bool }
	repos := map[string]*repoSeen{}
	uploads := map[string]*Entry{} // repo + "\x00" + id
	seen := func(s Spec) *repoSeen {
		r := repos[s.Repo]
		if r == nil {
			r = &repoSeen{}
			repos[s.Repo] = r
		}
		return r
	}
	readLink := func(p string) (digest.Digest, string) {
		b, err := drv.GetContent(ctx, p)
		if err != nil {
			return "", fmt.Sprintf("read link: %v", err)
		}
		d, err := digest.Parse(strings.TrimSpace(string(b)))
		if err != nil {
			return "", fmt.Sprintf("link content %.80q is not a digest: %v", b, err)
		}
		return d, ""
	}
	err := drv.Walk(ctx, top, func(fi driver.FileInfo) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := fi.Path()
		if fi.IsDir() {
			// A repository is a directory holding _manifests, even an empty one.
			if strings.HasSuffix(p, "/_manifests") {
				if s, err := Parse(p + "/revisions/sha256/" + strings.Repeat("0", 64)); err == nil {
					seen(s).manifests = true
				}
			}
			return nil
		}
		s, err := Parse(p)
		if err != nil {
			return emit(Entry{Kind: KindWarning, Path: p, Warning: "unexpected file in repositories: " + err.Error()})
		}
		r := seen(s)
		switch s.Kind {
		case RevisionLink:
			r.manifests = true
			t, w := readLink(p)
			if w == "" && t != s.Digest {
				w = fmt.Sprintf("link content %s disagrees with its path", t)
			}
			return emit(Entry{Kind: RevisionLink, Repo: s.Repo, Digest: s.Digest, Target: t, ModTime: fi.ModTime(), Path: p, Warning: w})
		case TagCurrentLink:
			t, w := readLink(p)
			return emit(Entry{Kind: TagCurrentLink, Repo: s.Repo, Tag: s.Tag, Target: t, ModTime: fi.ModTime(), Path: p, Warning: w})
		case TagIndexLink:
			return emit(Entry{Kind: TagIndexLink, Repo: s.Repo, Tag: s.Tag, Digest: s.Digest, Path: p})
		case LayerLink:
			t, w := readLink(p)
			if w == "" && t != s.Digest {
				w = fmt.Sprintf("link content %s disagrees with its path", t)
			}
			return emit(Entry{Kind: LayerLink, Repo: s.Repo, Digest: s.Digest, Target: t, ModTime: fi.ModTime(), Path: p, Warning: w})
		case UploadStartedAt, UploadData, UploadHashState:
			key := s.Repo + "\x00" + s.Upload
			u := uploads[key]
			if u == nil {
				dir, _ := Path(Spec{Kind: UploadDir, Repo: s.Repo, Upload: s.Upload})
				u = &Entry{Kind: UploadDir, Repo: s.Repo, Upload: s.Upload, Path: dir}
				uploads[key] = u
			}
			if fi.ModTime().After(u.ModTime) {
				u.ModTime = fi.ModTime()
			}
			if s.Kind == UploadStartedAt {
				b, err := drv.GetContent(ctx, p)
				if err != nil {
					u.Warning = fmt.Sprintf("read startedat: %v", err)
					return nil
				}
				t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(b)))
				if err != nil {
					u.Warning = fmt.Sprintf("startedat %.40q is not an RFC 3339 time", b)
					return nil
				}
				u.StartedAt = t
			}
		}
		return nil
	})
	var nf driver.PathNotFoundError
	if err != nil && !errors.As(err, &nf) {
		return fmt.Errorf("walk %s: %w", top, err)
	}
	for _, u := range uploads {
		if u.StartedAt.IsZero() && u.Warning == "" {
			u.Warning = "upload has no startedat file; using its newest file time"
		}
		if err := emit(*u); err != nil {
			return err
		}
	}
	for name, r := range repos {
		p := path.Join(reposDir, name)
		e := Entry{Kind: KindRepo, Repo: name, HasManifests: r.manifests, Path: p}
		if err := ValidRepoName(name); err != nil {
			e.Warning = fmt.Sprintf("invalid repository name %q (%v): everything in it is kept", name, err)
		}
		if err := emit(e); err != nil {
			return err
		}
	}
	return nil
}
