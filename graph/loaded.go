package graph

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Graph is an index loaded once for deciding and analysing: every fact that is not
// per blob, held in memory, read-only once loaded. Plans, repository stats,
// capacity, what-ifs and image graphs all read one Graph, through one walk. What is
// per blob and large stays in the index and is read on demand: digests, blob times
// (4 bytes a blob would be a tenth of a 10M-blob run's memory) and layer links, the
// most numerous fact of a registry.
type Graph struct {
	idx       *Index
	meta      Meta
	maxID     uint32
	present   Bitset
	sizes     sizeSource
	manifests *manifestTable
	repos     []Repo
	revisions []Link
	tags      []Tag
	tagIndex  []TagIndexEntry
	uploads   []Upload
	warnings  []Warning
	edgesOf   map[uint32][]Edge // nil: read per manifest from the index
	referrers map[uint32][]uint32
	revByID   []uint32        // g.revisions' indexes in manifest id order (revisions are in repository order)
	goneRepo  map[string]bool // a what-if: repositories treated as deleted
}

var _ walkSource = (*Graph)(nil)

// DefaultMaxHeldEdges is how many manifest references a Graph holds at most (8 bytes
// each, plus the map); beyond it, each manifest's references are read from the index
// when a walk expands it.
const DefaultMaxHeldEdges = 4 << 20

type loadOptions struct {
	maxHeldEdges int
	sizeMemory   int64 // ids whose sizes are held in memory; -1: an eighth of the memory limit
}

// LoadOption tunes Load.
type LoadOption func(*loadOptions)

// WithMaxHeldEdges sets how many references Load holds in memory at most (tests
// use 0 to plan as a large registry does).
func WithMaxHeldEdges(n int) LoadOption { return func(o *loadOptions) { o.maxHeldEdges = n } }

// WithSizeMemory sets for how many ids Load holds blob sizes in memory (4 bytes
// each); beyond, they are read from a file beside the index. By default, as many as
// an eighth of the Go memory limit holds.
func WithSizeMemory(ids int64) LoadOption { return func(o *loadOptions) { o.sizeMemory = ids } }

// Load reads idx into a Graph.
func Load(ctx context.Context, idx *Index, opts ...LoadOption) (*Graph, error) {
	o := loadOptions{maxHeldEdges: DefaultMaxHeldEdges, sizeMemory: -1}
	for _, opt := range opts {
		opt(&o)
	}
	meta, err := idx.Meta()
	if err != nil {
		return nil, err
	}
	g := &Graph{
		idx: idx, meta: meta, maxID: meta.MaxID,
		present:   NewBitset(meta.MaxID),
		manifests: newManifestTable(meta.Manifests),
		edgesOf:   map[uint32][]Edge{},
		referrers: map[uint32][]uint32{},
	}
	intern := interned{}.of
	steps := []func() error{
		func() error {
			if o.sizeMemory >= 0 && int64(meta.MaxID) >= o.sizeMemory || o.sizeMemory < 0 && !sizesInMemory(meta.MaxID) {
				// Past an eighth of the memory limit (4 bytes a blob: 400 MB at 100M
				// blobs), sizes go to a file read by blocks.
				z, err := writeSizeFile(idx.dir, meta.MaxID, func(fn func(uint32, int64) error) error {
					return idx.BlobSizes(func(b Blob) error {
						if b.ID > g.maxID {
							return fmt.Errorf("%w: blob id %d beyond the index's max id %d", ErrDamaged, b.ID, g.maxID)
						}
						g.present.Set(b.ID)
						return fn(b.ID, b.Size)
					})
				})
				g.sizes = z
				return err
			}
			sizes := NewSizes(meta.MaxID)
			g.sizes = &sizes
			return idx.BlobSizes(func(b Blob) error {
				if b.ID > g.maxID {
					return fmt.Errorf("%w: blob id %d beyond the index's max id %d", ErrDamaged, b.ID, g.maxID)
				}
				g.present.Set(b.ID)
				sizes.Set(b.ID, b.Size)
				return nil
			})
		},
		func() error {
			err := idx.Manifests(g.manifests.add)
			g.manifests.seal()
			return err
		},
		func() error { return idx.Repos(func(r Repo) error { g.repos = append(g.repos, r); return nil }) },
		func() error {
			if meta.Edges > o.maxHeldEdges {
				g.edgesOf = nil
				return nil
			}
			return idx.AllEdges(func(from uint32, e Edge) error { g.edgesOf[from] = append(g.edgesOf[from], e); return nil })
		},
		func() error {
			return idx.AllReferrers(func(subj, r uint32) error { g.referrers[subj] = append(g.referrers[subj], r); return nil })
		},
		func() error {
			return idx.Revisions(func(l Link) error {
				l.Repo = intern(l.Repo)
				g.revisions = append(g.revisions, l)
				return nil
			})
		},
		func() error {
			return idx.Tags(func(t Tag) error { t.Repo = intern(t.Repo); g.tags = append(g.tags, t); return nil })
		},
		func() error {
			return idx.TagIndex(func(e TagIndexEntry) error { g.tagIndex = append(g.tagIndex, e); return nil })
		},
		func() error {
			return idx.Uploads(func(u Upload) error { g.uploads = append(g.uploads, u); return nil })
		},
		func() error {
			return idx.Warnings(func(w Warning) error { g.warnings = append(g.warnings, w); return nil })
		},
	}
	for _, step := range steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := step(); err != nil {
			return nil, fmt.Errorf("read index: %w", err)
		}
	}
	g.linkRevisions()
	return g, nil
}

// interned makes repeated names one string each while a graph loads.
type interned map[string]string

func (in interned) of(v string) string {
	if w, ok := in[v]; ok {
		return w
	}
	in[v] = v
	return v
}

// linkRevisions orders the revision links by repository (as the index holds them)
// and by manifest, in 4 bytes a link: maps of lists took ~100 bytes a manifest.
func (g *Graph) linkRevisions() {
	byRepo := func(a, b Link) int { return cmp.Or(strings.Compare(a.Repo, b.Repo), cmp.Compare(a.ID, b.ID)) }
	if !slices.IsSortedFunc(g.revisions, byRepo) {
		slices.SortStableFunc(g.revisions, byRepo)
	}
	g.revByID = make([]uint32, len(g.revisions))
	for i := range g.revByID {
		g.revByID[i] = uint32(i)
	}
	slices.SortStableFunc(g.revByID, func(a, b uint32) int { return cmp.Compare(g.revisions[a].ID, g.revisions[b].ID) })
}

// Without returns the graph as it would be without the tags ("repo:tag") and the
// repositories named: a what-if. It shares what neither changes.
func (g *Graph) Without(tags, repos map[string]bool) *Graph {
	if len(tags) == 0 && len(repos) == 0 {
		return g
	}
	w := *g
	gone := func(repo string) bool { return repos[repo] }
	w.goneRepo = repos
	w.repos = slices.DeleteFunc(slices.Clone(g.repos), func(r Repo) bool { return gone(r.Name) })
	w.tags = slices.DeleteFunc(slices.Clone(g.tags), func(t Tag) bool { return gone(t.Repo) || tags[t.Repo+":"+t.Name] })
	w.revisions = slices.DeleteFunc(slices.Clone(g.revisions), func(l Link) bool { return gone(l.Repo) })
	w.tagIndex = slices.DeleteFunc(slices.Clone(g.tagIndex), func(e TagIndexEntry) bool { return gone(e.Repo) })
	w.uploads = slices.DeleteFunc(slices.Clone(g.uploads), func(u Upload) bool { return gone(u.Repo) })
	w.linkRevisions()
	return &w
}

// Meta is what the scan recorded about itself.
func (g *Graph) Meta() Meta { return g.meta }

// MaxID is the largest id.
func (g *Graph) MaxID() uint32 { return g.maxID }

// Present reports whether id's blob data is in the blob store.
func (g *Graph) Present(id uint32) bool { return g.present.Has(id) }

// Size returns the size of a present blob.
func (g *Graph) Size(id uint32) int64 { return g.sizes.Of(id) }

// SizesOf sets out[i] to the size of ids[i] (0 when unknown) for ids in ascending
// order: past the memory limit the sizes are on disk, and ids in order are read in
// spans, not a block each.
func (g *Graph) SizesOf(ids []uint32, out []int64) error { return g.sizes.OfSorted(ids, out) }

// Manifest returns what reading manifest id gave; false when id is no manifest.
func (g *Graph) Manifest(id uint32) (Manifest, bool) { return g.manifests.get(id) }

// The lists below are the graph's own: callers must not change them.

// ManifestIDs returns the ids of every manifest read (or found missing), in order.
func (g *Graph) ManifestIDs() []uint32 { return g.manifests.ids }

// Repos returns every repository directory.
func (g *Graph) Repos() []Repo { return g.repos }

// Revisions returns every manifest revision link.
func (g *Graph) Revisions() []Link { return g.revisions }

// Tags returns every tag current link.
func (g *Graph) Tags() []Tag { return g.tags }

// TagIndex returns every tag history entry.
func (g *Graph) TagIndex() []TagIndexEntry { return g.tagIndex }

// Uploads returns every upload directory.
func (g *Graph) Uploads() []Upload { return g.uploads }

// Warnings returns what the scan found wrong.
func (g *Graph) Warnings() []Warning { return g.warnings }

// LinkedBy returns the repositories that link manifest id, in a new list.
func (g *Graph) LinkedBy(id uint32) []string {
	var out []string
	i, _ := slices.BinarySearchFunc(g.revByID, id, func(r, id uint32) int { return cmp.Compare(g.revisions[r].ID, id) })
	for ; i < len(g.revByID) && g.revisions[g.revByID[i]].ID == id; i++ {
		out = append(out, g.revisions[g.revByID[i]].Repo)
	}
	return out
}

// RevisionsOf returns the manifests repo links, in a new list.
func (g *Graph) RevisionsOf(repo string) []uint32 {
	var out []uint32
	i, _ := slices.BinarySearchFunc(g.revisions, repo, func(l Link, repo string) int { return strings.Compare(l.Repo, repo) })
	for ; i < len(g.revisions) && g.revisions[i].Repo == repo; i++ {
		out = append(out, g.revisions[i].ID)
	}
	return out
}

// Referrers returns the manifests whose subject is id.
func (g *Graph) Referrers(id uint32) []uint32 { return g.referrers[id] }

// Edges returns the references out of manifest id.
func (g *Graph) Edges(id uint32) ([]Edge, error) {
	if g.edgesOf != nil {
		return g.edgesOf[id], nil
	}
	var out []Edge
	err := g.idx.Edges(id, func(e Edge) error { out = append(out, e); return nil })
	return out, err
}

// ManifestRecord reads what the index holds about manifest id, the platforms of an
// index's children included (which the loaded graph does not hold).
func (g *Graph) ManifestRecord(id uint32) (Manifest, bool, error) { return g.idx.ManifestRecord(id) }

// Digest returns id's digest, from the index.
func (g *Graph) Digest(id uint32) (digest.Digest, error) {
	d, err := g.idx.Digest(id)
	if err != nil {
		return "", fmt.Errorf("%w: no digest for id %d: %v", ErrDamaged, id, err)
	}
	return d, nil
}

// Blobs streams the present blobs in id order with their sizes and times; digests
// only when withDigest.
func (g *Graph) Blobs(withDigest bool, fn func(Blob) error) error {
	if withDigest {
		return g.idx.Blobs(fn)
	}
	return g.idx.BlobSizes(fn)
}

// Layers streams the layer links (there is one per blob per repository: they are
// never all held), leaving out those of repositories a what-if deletes.
func (g *Graph) Layers(fn func(Link) error) error {
	return g.idx.Layers(func(l Link) error {
		if g.goneRepo[l.Repo] {
			return nil
		}
		return fn(l)
	})
}

// walkSource.
func (g *Graph) manifest(id uint32) (Manifest, bool) { return g.Manifest(id) }
func (g *Graph) edges(id uint32) ([]Edge, error)     { return g.Edges(id) }
func (g *Graph) referrersOf(id uint32) []uint32      { return g.referrers[id] }
func (g *Graph) revisionsNear(id uint32) []uint32 {
	var out []uint32
	for _, r := range g.LinkedBy(id) {
		out = append(out, g.RevisionsOf(r)...)
	}
	return out
}

// PresentSet returns the set of present blobs (read-only).
func (g *Graph) PresentSet() Bitset { return g.present }

// Graph returns g: a loaded graph is its own source.
func (g *Graph) Graph(context.Context) (*Graph, error) { return g, nil }

// Graph loads the index (see Load).
func (x *Index) Graph(ctx context.Context) (*Graph, error) { return Load(ctx, x) }
