package storage

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"golang.org/x/sync/errgroup"
)

// Shard is one independent part of a scan, for scans spread over machines: a blob
// store prefix (blobs/<alg>/<xx>) or a directory under repositories/ with all it
// holds (names nest, so it may hold several repositories), or with Own only the
// repository whose directory it is (_manifests, _layers, _uploads), its nested ones
// being shards of their own. Scanning every shard that Shards returns finds what Scan
// finds, in another order.
type Shard struct {
	Path  string `json:"path"`
	Blobs bool   `json:"blobs"`
	Own   bool   `json:"own,omitempty"`
}

// DefaultRepoShards is how many repository shards Shards aims at: a registry whose
// repositories sit under a few namespaces (one organisation, "library") still
// spreads over many workers.
const DefaultRepoShards = 256

// ShardOption changes what Shards does.
type ShardOption func(*shardOptions)

type shardOptions struct{ repoShards, workers int }

// WithRepoShards sets how many repository shards Shards aims at: directories under
// repositories/ are split into their children, breadth first, until there are at
// least n shards or nothing is left to split; each split is one listing.
func WithRepoShards(n int) ShardOption { return func(o *shardOptions) { o.repoShards = n } }

// WithShardWorkers sets how many directories Shards lists at once (16 by default).
func WithShardWorkers(n int) ShardOption { return func(o *shardOptions) { o.workers = n } }

// Shards lists the roots of drv's layout and returns its shards. What the roots
// themselves hold that is wrong (a missing blob store, symbolic links, stray files)
// comes through emit, as Scan reports it.
func Shards(ctx context.Context, drv driver.StorageDriver, emit func(Entry) error, opts ...ShardOption) ([]Shard, error) {
	o := shardOptions{repoShards: DefaultRepoShards, workers: 16}
	for _, opt := range opts {
		opt(&o)
	}
	drv = ReadDriver(drv)
	var (
		blobRoots, repoRoots []string
		blobErr, repoErr     error
		roots                sync.WaitGroup
	)
	roots.Go(func() { blobRoots, blobErr = drv.List(ctx, blobsDir) })
	roots.Go(func() { repoRoots, repoErr = drv.List(ctx, reposDir) })
	roots.Wait()
	if err := reportRoots(drv, blobErr, repoErr, false, emit); err != nil {
		return nil, err
	}
	blobRoots, err := once(blobRoots, emit)
	if err != nil {
		return nil, err
	}
	if repoRoots, err = once(repoRoots, emit); err != nil {
		return nil, err
	}
	var shards []Shard
	for _, algDir := range blobRoots {
		prefixes, _, err := list(ctx, drv, algDir, emit)
		if err == nil {
			prefixes, err = once(prefixes, emit)
		}
		if err != nil {
			return nil, err
		}
		for _, p := range prefixes {
			shards = append(shards, Shard{Path: p, Blobs: true})
		}
	}
	repos, err := splitRepos(ctx, drv, repoRoots, o.repoShards, o.workers)
	if err != nil {
		return nil, err
	}
	return append(shards, repos...), nil
}

// splitRepos returns shards for the directories dirs under repositories/, split
// level by level into their children (a level's listings at once, up to workers)
// until there are want of them or only repositories are left. A directory is split
// only when it lists cleanly: whatever is wrong with it (gone, a file, a symbolic
// link in it, a failed listing) stays for its shard's scan to report, once, as Scan
// reports it.
func splitRepos(ctx context.Context, drv driver.StorageDriver, dirs []string, want, workers int) ([]Shard, error) {
	var shards []Shard
	level := slices.Clone(dirs)
	for len(level) > 0 && len(shards)+len(level) < want {
		children := make([][]string, len(level))
		failed := make([]bool, len(level))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(max(workers, 1))
		for i, d := range level {
			g.Go(func() error {
				var err error
				children[i], err = drv.List(gctx, d)
				// A name listed twice is a file and a directory (object stores).
				failed[i] = err != nil || len(slices.Compact(slices.Sorted(slices.Values(children[i])))) < len(children[i])
				return gctx.Err()
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		var next []string
		for i, d := range level {
			var nested []string
			own := false
			for _, c := range children[i] {
				if strings.HasPrefix(path.Base(c), "_") {
					own = true
				} else {
					nested = append(nested, c)
				}
			}
			if failed[i] || len(nested) == 0 {
				shards = append(shards, Shard{Path: d})
				continue
			}
			if own {
				shards = append(shards, Shard{Path: d, Own: true})
			}
			next = append(next, nested...)
		}
		level = next
	}
	for _, d := range level {
		shards = append(shards, Shard{Path: d})
	}
	slices.SortFunc(shards, func(a, b Shard) int { return strings.Compare(a.Path, b.Path) })
	return shards, nil
}

// ScanShard scans one shard with up to workers listings and reads at once. Blobs
// and links come with their sizes and times (no deferred stats), tag links are
// read, not stated. fn is called from one goroutine at a time. Of the options,
// WithWalk applies.
func ScanShard(ctx context.Context, drv driver.StorageDriver, s Shard, workers int, fn func(Entry) error, opts ...ScanOption) error {
	if workers < 1 {
		return fmt.Errorf("workers must be at least 1, got %d", workers)
	}
	var o scanOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return err
		}
	}
	drv = ReadDriver(drv)
	var mu sync.Mutex
	emit := func(e Entry) error {
		mu.Lock()
		defer mu.Unlock()
		return fn(e)
	}
	walk := nativeWalkers[drv.Name()]
	if o.walk != nil {
		walk = *o.walk
	}
	if s.Blobs {
		if walk {
			return scanBlobs(ctx, drv, s.Path, emit)
		}
		return statBlobs(ctx, drv, s.Path, false, emit)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	reads := make(chan struct{}, workers)
	switch l := (&repoLister{drv: drv, emit: emit, sem: reads, g: g}); {
	case walk && s.Own:
		g.Go(func() error { return scanOwn(gctx, drv, s.Path, emit, reads, false, false, nil) })
	case walk:
		g.Go(func() error { return scanRepos(gctx, drv, s.Path, emit, reads, false, false, nil) })
	default:
		g.Go(func() error { return l.scanRepoDir(gctx, s.Path, !s.Own) })
	}
	return g.Wait()
}

// scanOwn walks the repository directory dir's own directories, not its nested
// repositories: one walk each of _manifests, _layers, _uploads (and any other entry
// whose name starts with _, to report it).
func scanOwn(ctx context.Context, drv driver.StorageDriver, dir string, emit func(Entry) error, sem chan struct{}, verify, linksOnly bool, cache LinkCache) error {
	children, _, err := list(ctx, drv, dir, emit)
	if err == nil {
		// A name listed twice keeps dir from being split (splitRepos); this is for
		// a file put since.
		children, err = once(children, emit)
	}
	if err != nil {
		return err
	}
	var tops []string
	for _, c := range children {
		if strings.HasPrefix(path.Base(c), "_") {
			tops = append(tops, c)
		}
	}
	return walkRepos(ctx, drv, tops, emit, sem, verify, linksOnly, cache, nil)
}
