package graph

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/regsweep/regsweep/storage"
)

// On the filesystem and inmemory drivers a blob's size and time cost a stat each,
// where object stores list them for free. A scan with deferred stats
// (storage.WithDeferredStats) lists blobs and layer links without them, and the
// build then stats only what a plan may need: blobs and layer links that no tag
// reaches (they may be deleted, so grace needs their time and the report their
// size), and blobs whose size no manifest gives. What tags reach is live whatever
// the mode, so its size comes from the manifests that reference it and its time
// stays unknown (zero, never younger than grace). Tag history is listed only in
// repositories where some linked manifest is not reached from a tag, the only
// place a sweep may delete revisions.
type deferred struct {
	blobs    Bitset         // ids listed without a stat
	sizes    Sizes          // as the manifests say them
	exact    Bitset         // sizes taken from the bytes themselves (a manifest read)
	conflict Bitset         // manifests disagree on the size
	layers   []deferredLink // one per layer link: held in 8 bytes
	revs     []deferredLink // revision links: repository, manifest id
	tags     []deferredLink // tag targets: repository, manifest id
	repos    []string       // deferredLink.repo indexes these
	repoNum  map[string]uint32
}

type deferredLink struct{ repo, id uint32 }

func (d *deferred) link(repo string, id uint32) deferredLink {
	n, ok := d.repoNum[repo]
	if !ok {
		if d.repoNum == nil {
			d.repoNum = map[string]uint32{}
		}
		n = uint32(len(d.repos))
		d.repos = append(d.repos, repo)
		d.repoNum[repo] = n
	}
	return deferredLink{n, id}
}

func (d *deferred) on() bool { return len(d.blobs) > 0 || len(d.layers) > 0 }

// noteSize records that a manifest gives id's size as n (exact when it is the
// length of the bytes read).
func (d *deferred) noteSize(id uint32, n int64, exact bool) {
	if n < 0 || !d.blobs.Has(id) || d.exact.Has(id) {
		return
	}
	if exact {
		d.exact.Set(id)
		d.conflict.Clear(id)
	} else if old, ok := d.sizes.Lookup(id); ok && old != n {
		d.conflict.Set(id)
		return
	}
	d.sizes.Set(id, n)
}

// needsStat reports whether deferred blob id needs a stat: tags do not reach it, or
// the manifests do not agree on one size for it.
func (d *deferred) needsStat(id uint32, reached Bitset) bool {
	_, known := d.sizes.Lookup(id)
	return !reached.Has(id) || !known || d.conflict.Has(id)
}

// resolveDeferred stats what the scan left open, rewrites the id records of deferred
// blobs, writes the layer links and lists the tag history that is needed.
func (b *builder) resolveDeferred(ctx context.Context, drv driver.StorageDriver, workers int, progress storage.Progress) error {
	d := &b.def
	if !d.on() {
		return nil
	}
	if err := b.flush(); err != nil { // references are read back below
		return err
	}
	reached, err := b.reachedFromTags()
	if err != nil {
		return err
	}
	// Blobs, a batch of id chunks at a time so that memory stays flat.
	stats := 0
	for id := uint32(1); id <= b.next; id++ {
		if d.blobs.Has(id) && d.needsStat(id, reached) {
			stats++
		}
	}
	progress.Phase("checking blobs no tag reaches", int64(stats))
	last := b.next / idChunk
	for first := uint32(0); first <= last; first += chunksPerBatch {
		if err := b.resolveChunks(ctx, drv, workers, first, min(chunksPerBatch, last+1-first), reached, progress); err != nil {
			return err
		}
	}
	// Layer links: those of blobs tags reach need nothing more.
	var stat []deferredLink
	for _, l := range d.layers {
		if reached.Has(l.id) && b.present.Has(l.id) {
			if err := b.putLayer(d.repos[l.repo], l.id, l.id, time.Time{}, ""); err != nil {
				return err
			}
			continue
		}
		stat = append(stat, l)
	}
	d.layers = nil
	if err := b.statLayers(ctx, drv, workers, stat, progress); err != nil {
		return err
	}
	// Tag history, where a sweep may delete a revision.
	need := map[string]bool{}
	for _, r := range d.revs {
		if !reached.Has(r.id) {
			need[d.repos[r.repo]] = true
		}
	}
	for repo := range need {
		if err := storage.ListTagIndex(ctx, drv, repo, workers, b.add); err != nil {
			return err
		}
	}
	b.def = deferred{}
	return nil
}

// reachedFromTags marks what tags reach, by the walk every part of regsweep shares
// (walk.go): what a plan keeps live under any mode, so that skipping its stat never
// leaves a blob a plan may delete without its time.
func (b *builder) reachedFromTags() (Bitset, error) {
	// Only tags whose repository links their manifest are roots here: fewer than a
	// plan's, which is the safe side (what is not reached is stated).
	linked := make(map[deferredLink]bool, len(b.def.revs))
	for _, r := range b.def.revs {
		linked[r] = true
	}
	var roots []uint32
	for _, t := range b.def.tags {
		if linked[t] {
			roots = append(roots, t.id)
		}
	}
	src := &buildSource{b: b}
	reached := NewBitset(b.next)
	_, err := newWalker(src, b.next, WalkOptions{}).walk(roots, func(id, _ uint32, kind EdgeKind) {
		if kind != EdgeSubject {
			reached.Set(id)
		}
	})
	if err == nil {
		err = src.err
	}
	if err != nil {
		return nil, err
	}
	return reached, nil
}

// buildSource is what the tag walk reads while the index is being built: manifest
// records and references from the index (flushed), revision links from the build.
type buildSource struct {
	b      *builder
	err    error
	revsOf map[uint32][]uint32 // repository number -> manifests it links
	repos  map[uint32][]uint32 // manifest -> repository numbers
}

func (s *buildSource) manifest(id uint32) (Manifest, bool) {
	var m Manifest
	ok, err := s.b.idx.get(idKey(pManifest, id), func(v []byte) error { return json.Unmarshal(v, &m) })
	if err != nil && s.err == nil {
		s.err = fmt.Errorf("read manifest %d: %w", id, err)
	}
	m.ID = id
	return m, ok
}

func (s *buildSource) edges(id uint32) ([]Edge, error) {
	var out []Edge
	err := s.b.idx.Edges(id, func(e Edge) error { out = append(out, e); return nil })
	return out, err
}

func (s *buildSource) referrersOf(uint32) []uint32 { return nil }

func (s *buildSource) revisionsNear(id uint32) []uint32 {
	if s.revsOf == nil {
		s.revsOf, s.repos = map[uint32][]uint32{}, map[uint32][]uint32{}
		for _, r := range s.b.def.revs {
			s.revsOf[r.repo] = append(s.revsOf[r.repo], r.id)
			s.repos[r.id] = append(s.repos[r.id], r.repo)
		}
	}
	var out []uint32
	for _, r := range s.repos[id] {
		out = append(out, s.revsOf[r]...)
	}
	return out
}

// statLayers stats layer links in id order, a batch at a time (their digests come
// from the id chunks, read in order), and writes those that are there.
func (b *builder) statLayers(ctx context.Context, drv driver.StorageDriver, workers int, stat []deferredLink, progress storage.Progress) error {
	const batch = 4096
	slices.SortFunc(stat, func(x, y deferredLink) int { return cmp.Compare(x.id, y.id) })
	progress.Phase("checking layer links no tag reaches", int64(len(stat)))
	paths := make([]string, batch)
	found := make([]time.Time, batch)
	ok := make([]bool, batch)
	for start := 0; start < len(stat); start += batch {
		links := stat[start:min(start+batch, len(stat))]
		for i, l := range links {
			dg, err := b.idx.Digest(l.id)
			if err != nil {
				return err
			}
			if paths[i], err = storage.Path(storage.Spec{Kind: storage.LayerLink, Repo: b.def.repos[l.repo], Digest: dg}); err != nil {
				return fmt.Errorf("layer link of %s in %q: %w", dg, b.def.repos[l.repo], err)
			}
		}
		var odd oddities
		err := parallel(ctx, workers, len(links), func(ctx context.Context, i int) error {
			e, there, err := storage.StatDeferred(ctx, drv, storage.Entry{Path: paths[i], Repo: b.def.repos[links[i].repo]})
			found[i], ok[i] = e.ModTime, there
			progress.Add(1)
			return odd.note(e, err)
		})
		if err != nil {
			return err
		}
		if err := odd.add(b, false); err != nil {
			return err
		}
		for i, l := range links {
			if ok[i] {
				if err := b.putLayer(b.def.repos[l.repo], l.id, l.id, found[i], ""); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// chunksPerBatch id chunks are resolved at once: their stats run together, so that
// workers stay busy, while memory holds a few thousand records.
const chunksPerBatch = 16

// resolveChunks rewrites id chunks first..first+n-1 with the sizes and times of their
// deferred blobs, stating those it must.
func (b *builder) resolveChunks(ctx context.Context, drv driver.StorageDriver, workers int, first, n uint32, reached Bitset, progress storage.Progress) error {
	d := &b.def
	type rec struct {
		d     digest.Digest
		blob  *Blob
		stat  bool
		found bool
	}
	recs := make([][]rec, n)
	for c := range n {
		chunk := first + c
		v, _, err := b.idx.getPacked(idKey(pID, chunk))
		if err != nil {
			return err
		}
		err = decodeIDChunk(chunk*idChunk, v, func(id uint32, dg digest.Digest, blob *Blob) error {
			r := rec{d: dg, blob: blob}
			if d.blobs.Has(id) {
				if d.needsStat(id, reached) {
					r.stat = true
				} else {
					size, _ := d.sizes.Lookup(id)
					r.blob = &Blob{Size: size} // time unknown
				}
			}
			recs[c] = append(recs[c], r)
			return nil
		})
		if err != nil {
			return err
		}
	}
	var todo []*rec
	for c := range recs {
		for i := range recs[c] {
			if recs[c][i].stat {
				todo = append(todo, &recs[c][i])
			}
		}
	}
	var odd oddities
	err := parallel(ctx, workers, len(todo), func(ctx context.Context, i int) error {
		r := todo[i]
		p, err := storage.Path(storage.Spec{Kind: storage.BlobData, Digest: r.d})
		if err != nil {
			return err
		}
		e, there, err := storage.StatDeferred(ctx, drv, storage.Entry{Path: p})
		r.found = there
		if there {
			r.blob = &Blob{Size: e.Size, ModTime: e.ModTime}
		}
		if errors.Is(err, storage.ErrSymlink) {
			// Present, of unknown size, and kept (storage.SymlinkEntries).
			r.found, r.blob = true, &Blob{}
		}
		progress.Add(1)
		return odd.note(e, err)
	})
	if err != nil {
		return err
	}
	if err := odd.add(b, true); err != nil {
		return err
	}
	for c := range recs {
		chunk := first + uint32(c)
		var out []byte
		for i, r := range recs[c] {
			id := chunk*idChunk + uint32(i)
			if r.stat && !r.found {
				r.blob = nil // an emptied blob directory
				b.present.Clear(id)
				b.meta.Blobs--
			}
			out = appendIDRecord(out, r.d, r.blob)
		}
		if chunk == b.idChunkN {
			b.idBuf = append(b.idBuf[:0], out...) // the chunk still being filled
		}
		if err := b.setPacked(idKey(pID, chunk), out); err != nil {
			return err
		}
	}
	return nil
}

// oddities collects, from several goroutines, what deferred stats met that a listing
// would have reported: symbolic links and files where directories should be.
type oddities struct {
	mu      sync.Mutex
	entries []storage.Entry
}

// note keeps what e and err say, and passes on any other error.
func (f *oddities) note(e storage.Entry, err error) error {
	var add []storage.Entry
	switch {
	case errors.Is(err, storage.ErrSymlink):
		var se *storage.SymlinkError
		if !errors.As(err, &se) {
			return err
		}
		for _, l := range se.Links {
			add = append(add, storage.SymlinkEntries(l)...)
		}
	case err != nil:
		return err
	case e.Warning != "":
		add = []storage.Entry{{Kind: storage.KindWarning, Path: path.Dir(e.Path), Warning: e.Warning}}
	}
	f.mu.Lock()
	f.entries = append(f.entries, add...)
	f.mu.Unlock()
	return nil
}

// add reports the entries to the builder in path order; blob data, which the
// caller has already recorded as present, is left out.
func (f *oddities) add(b *builder, blobsDone bool) error {
	slices.SortStableFunc(f.entries, func(x, y storage.Entry) int { return cmp.Compare(x.Path, y.Path) })
	for _, e := range f.entries {
		if blobsDone && e.Kind == storage.BlobData {
			continue
		}
		if err := b.add(e); err != nil {
			return err
		}
	}
	return nil
}

// parallel calls fn for 0..n-1 from at most workers goroutines, which take the next
// index as they finish: a stat each is too little work for a goroutine each.
func parallel(ctx context.Context, workers, n int, fn func(context.Context, int) error) error {
	var next atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for range min(workers, n) {
		g.Go(func() error {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := fn(ctx, i); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}
