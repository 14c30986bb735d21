package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/storage"
)

// Rehash reads every blob of g from drv with bounded workers and adds a problem for
// each whose content does not hash to its name (live when a root reaches it).
// progress counts bytes.
func (r *Report) Rehash(ctx context.Context, drv driver.StorageDriver, g *graph.Graph, workers int, progress storage.Progress) error {
	if progress == nil {
		progress = storage.NoProgress{}
	}
	r.Checksums = true
	var total int64
	if err := g.Blobs(false, func(b graph.Blob) error { total += b.Size; return nil }); err != nil {
		return err
	}
	progress.Phase("hashing (bytes)", total)
	var (
		mu  sync.Mutex
		bad []Problem
	)
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(max(1, workers))
	err := g.Blobs(true, func(b graph.Blob) error {
		if ectx.Err() != nil {
			return ectx.Err()
		}
		eg.Go(func() error {
			n, why, err := hashBlob(ectx, drv, b.Digest, progress)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			r.Summary.BlobsHashed++
			r.Summary.BytesHashed += n
			if why != "" {
				p, _ := storage.Path(storage.Spec{Kind: storage.BlobData, Digest: b.Digest})
				bad = append(bad, Problem{Kind: CorruptBlob, Digest: b.Digest.String(), Path: p, Detail: why, Live: r.reached.Has(b.ID), id: b.ID})
			}
			return nil
		})
		return nil
	})
	if werr := eg.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	for _, p := range bad {
		r.Problems = append(r.Problems, r.attribute(g, p)...)
	}
	r.sort()
	return nil
}

// hashBlob reads d's data and says why it is not d, if it is not.
func hashBlob(ctx context.Context, drv driver.StorageDriver, d digest.Digest, progress storage.Progress) (int64, string, error) {
	if !d.Algorithm().Available() {
		return 0, fmt.Sprintf("digest algorithm %s is not available to check", d.Algorithm()), nil
	}
	p, err := storage.Path(storage.Spec{Kind: storage.BlobData, Digest: d})
	if err != nil {
		return 0, "", err
	}
	rc, err := drv.Reader(ctx, p, 0)
	if errors.As(err, new(driver.PathNotFoundError)) {
		return 0, "", nil // deleted since the scan: the closure check says if it matters
	}
	if err != nil {
		return 0, "", fmt.Errorf("read %s: %w", p, err)
	}
	defer rc.Close()
	v := d.Verifier()
	n, err := io.Copy(io.MultiWriter(v, countWriter{progress}), rc)
	if err != nil {
		return n, "", fmt.Errorf("read %s: %w", p, err)
	}
	if !v.Verified() {
		return n, fmt.Sprintf("the content (%d bytes) does not hash to its name: the blob is corrupt", n), nil
	}
	return n, "", nil
}

type countWriter struct{ p storage.Progress }

func (c countWriter) Write(b []byte) (int, error) { c.p.Add(int64(len(b))); return len(b), nil }

// attribute names the roots that need p's blob, one problem per repository; a blob
// no root needs is one problem, not live.
func (r *Report) attribute(g *graph.Graph, p Problem) []Problem {
	byRepo := map[string]*Problem{}
	var repos []string
	for _, rt := range r.roots {
		c := r.closures[rt.id]
		if rt.id != p.id && (c == nil || !slices.Contains(c.blobs, p.id) && !slices.Contains(c.manifests, p.id)) {
			continue
		}
		q := byRepo[rt.repo]
		if q == nil {
			cp := p
			cp.Repository, cp.Live = rt.repo, true
			q = &cp
			byRepo[rt.repo] = q
			repos = append(repos, rt.repo)
		}
		if rt.tag != "" {
			q.Tags = append(q.Tags, rt.tag)
		} else if d, err := g.Digest(rt.id); err == nil {
			q.Revisions = append(q.Revisions, d.String())
		}
	}
	if len(repos) == 0 {
		p.Detail += "; no root needs it"
		return []Problem{p}
	}
	out := make([]Problem, 0, len(repos))
	for _, repo := range repos {
		q := byRepo[repo]
		slices.Sort(q.Tags)
		q.Tags = slices.Compact(q.Tags)
		slices.Sort(q.Revisions)
		q.Revisions = slices.Compact(q.Revisions)
		out = append(out, *q)
	}
	return out
}
