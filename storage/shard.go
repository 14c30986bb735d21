package storage

import (
	"context"
	"fmt"
	"sync"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"golang.org/x/sync/errgroup"
)

// Shard is one independent part of a scan, for scans spread over machines: a blob
// store prefix (blobs/<alg>/<xx>) or a top-level directory under repositories/ (names
// nest, so it may hold several repositories). Scanning every shard that Shards
// returns finds what Scan finds, in another order.
type Shard struct {
	Path  string `json:"path"`
	Blobs bool   `json:"blobs"`
}

// Shards lists the roots of drv's layout and returns its shards. What the roots
// themselves hold that is wrong (a missing blob store, symbolic links, stray files)
// comes through emit, as Scan reports it.
func Shards(ctx context.Context, drv driver.StorageDriver, emit func(Entry) error) ([]Shard, error) {
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
	var shards []Shard
	for _, algDir := range blobRoots {
		prefixes, _, err := list(ctx, drv, algDir, emit)
		if err != nil {
			return nil, err
		}
		for _, p := range prefixes {
			shards = append(shards, Shard{Path: p, Blobs: true})
		}
	}
	for _, r := range repoRoots {
		shards = append(shards, Shard{Path: r})
	}
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
	if walk {
		g.Go(func() error { return scanRepos(gctx, drv, s.Path, emit, reads, false, false, nil) })
	} else {
		l := &repoLister{drv: drv, emit: emit, sem: reads, g: g}
		g.Go(func() error { return l.scanDir(gctx, s.Path) })
	}
	return g.Wait()
}
