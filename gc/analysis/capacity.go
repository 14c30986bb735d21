package analysis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
)

// Capacity is the capacity-planning view of an indexed registry under one plan: where
// the bytes are, how well they deduplicate, how big and how old the blobs are. It is
// computed from the index and the plan alone; nothing rescans storage.
type Capacity struct {
	// TotalBytes is what the blob store holds (summary.blob_bytes).
	TotalBytes int64 `json:"total_bytes"`
	// LiveBytes is what the plan's mode keeps because it is reachable (summary.live_bytes).
	LiveBytes int64 `json:"live_bytes"`
	// GarbageBytes is what the plan deletes (summary.delete_bytes).
	GarbageBytes int64 `json:"garbage_bytes"`
	// KeptBytes is neither live nor deleted: kept by grace or by fail-closed rules.
	KeptBytes int64 `json:"kept_bytes"`

	// Images counts the distinct manifests, per repository, that tags name and the
	// registry can serve (the repository has a revision link for it). Two tags naming
	// one manifest are one image.
	Images int `json:"images"`
	// LogicalBytes is the sum, over those images, of each image's bytes
	// (ImageInfo.Bytes): what the registry would hold if every image were stored on its
	// own, without sharing a blob with any other image or repository.
	LogicalBytes int64 `json:"logical_bytes"`
	// DedupRatio is LogicalBytes / TotalBytes: how many bytes of tagged images each
	// stored byte serves (0 when nothing is stored). It counts against all stored bytes,
	// garbage and untagged manifests included, so a registry full of garbage can score
	// below 1; collect the garbage and it rises.
	DedupRatio float64 `json:"dedup_ratio"`

	// SizeHistogram counts present blobs by size in power-of-4 buckets, from the
	// smallest non-empty bucket to the largest.
	SizeHistogram []SizeBucket `json:"size_histogram"`
	// Age counts present blobs by modification time, relative to the plan's time.
	Age []AgeBucket `json:"age"`

	Repositories []RepoCapacity  `json:"repositories"`
	Top          TopRepositories `json:"top"`
	// Namespaces roll repositories up by their first path component ("team/*").
	Namespaces []NamespaceCapacity `json:"namespaces"`
	// Tags lists every tag the registry can serve, most unique bytes first.
	Tags []TagInfo `json:"tags"`
}

// RepoCapacity is one repository: its gc.RepoStats and its largest images.
type RepoCapacity struct {
	gc.RepoStats
	// LargestImages are the repository's images (tags grouped by manifest), largest
	// first, at most the top-N the capacity was computed with.
	LargestImages []ImageInfo `json:"largest_images"`
	// LastPush is the newest time of its tag and revision links (tags' times are
	// known in an index regsweep scan built).
	LastPush time.Time `json:"last_push,omitzero"`
}

// NamespaceCapacity is the repositories under one first path component. Bytes are
// the distinct blobs their live manifests reach; unique those no repository outside
// the namespace reaches.
type NamespaceCapacity struct {
	Name             string    `json:"name"` // "team/*", or a repository without a namespace
	Repositories     int       `json:"repositories"`
	Tags             int       `json:"tags"`
	Manifests        int       `json:"manifests"`
	Bytes            int64     `json:"bytes"`
	UniqueBytes      int64     `json:"unique_bytes"`
	ReclaimableBytes int64     `json:"reclaimable_bytes"`
	LastPush         time.Time `json:"last_push,omitzero"`
}

// TagInfo is one tag: its image's bytes, and of those the bytes no other image (no
// other manifest a tag names) reaches. Two tags naming one manifest show the same
// image: deleting one of them frees nothing.
type TagInfo struct {
	Repository  string        `json:"repository"`
	Tag         string        `json:"tag"`
	Digest      digest.Digest `json:"digest"`
	PushedAt    time.Time     `json:"pushed_at,omitzero"`
	Bytes       int64         `json:"bytes"`
	UniqueBytes int64         `json:"unique_bytes"`
}

// ImageInfo is one manifest a repository's tags name. Bytes are the sizes of the
// distinct present blobs the manifest reaches: itself, its config and layers, and for
// an index its children, recursively. Referrers (signatures, SBOMs) are not part of
// the image: they point at it, it does not reach them.
type ImageInfo struct {
	Tags   []string      `json:"tags"`
	Digest digest.Digest `json:"digest"`
	Bytes  int64         `json:"bytes"`
	Blobs  int           `json:"blobs"`
}

// SizeBucket holds the blobs with Min <= size < Max. Max is 1 for the empty-blob
// bucket; the others span a power of 4.
type SizeBucket struct {
	Min   int64 `json:"min"`
	Max   int64 `json:"max"`
	Blobs int   `json:"blobs"`
	Bytes int64 `json:"bytes"`
}

// AgeBucket holds the blobs last modified less than MaxAgeSeconds before the plan's
// time (and no less than the previous bucket's); the bucket "older" has MaxAgeSeconds
// 0 and holds everything older. Blobs dated after the plan's time count as age 0.
// When the index was built with deferred stats (regsweep gc), blobs that tags reach
// have no time: a last bucket "unknown" (MaxAgeSeconds -1) holds them.
type AgeBucket struct {
	Label         string `json:"label"`
	MaxAgeSeconds int64  `json:"max_age_seconds"`
	Blobs         int    `json:"blobs"`
	Bytes         int64  `json:"bytes"`
}

// TopRepositories ranks repositories, largest first (ties by name); zero values are left out.
type TopRepositories struct {
	ByBytes            []RepoBytes `json:"by_bytes"`
	ByUniqueBytes      []RepoBytes `json:"by_unique_bytes"`
	ByReclaimableBytes []RepoBytes `json:"by_reclaimable_bytes"`
}

// RepoBytes is one line of a ranking.
type RepoBytes struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

type capacityOptions struct{ top int }

var errNoGraph = errors.New("the plan was not made from a loaded graph (a plan read back from JSON has none)")

// CapacityOption tunes NewCapacity.
type CapacityOption func(*capacityOptions) error

// WithTopN sets how many repositories each ranking and how many images each
// repository lists (default 10).
func WithTopN(n int) CapacityOption {
	return func(o *capacityOptions) error {
		if n < 1 {
			return fmt.Errorf("top N must be at least 1, got %d", n)
		}
		o.top = n
		return nil
	}
}

var ageBounds = []struct {
	label string
	max   time.Duration
}{
	{"<1d", 24 * time.Hour},
	{"<7d", 7 * 24 * time.Hour},
	{"<30d", 30 * 24 * time.Hour},
	{"<90d", 90 * 24 * time.Hour},
	{"<365d", 365 * 24 * time.Hour},
	{"older", 0},
}

// NewCapacity computes the capacity view of the graph p was planned from.
func NewCapacity(ctx context.Context, p *gc.Plan, opts ...CapacityOption) (*Capacity, error) {
	o := capacityOptions{top: 10}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	g := p.Graph()
	if g == nil {
		return nil, errNoGraph
	}
	c := &Capacity{
		TotalBytes:   p.Summary.BlobBytes,
		LiveBytes:    p.Summary.LiveBytes,
		GarbageBytes: p.Summary.DeleteBytes,
		KeptBytes:    p.Summary.BlobBytes - p.Summary.LiveBytes - p.Summary.DeleteBytes,
	}

	var hist [33]SizeBucket // 0, then [4^k, 4^(k+1)) for k = 0..31 covers int64
	for i := range hist {
		if i == 0 {
			hist[i].Max = 1
			continue
		}
		hist[i].Min = 1 << (2 * (i - 1))
		hist[i].Max = hist[i].Min << 2
		if i == len(hist)-1 {
			hist[i].Max = 1<<63 - 1
		}
	}
	c.Age = make([]AgeBucket, len(ageBounds))
	for i, a := range ageBounds {
		c.Age[i] = AgeBucket{Label: a.label, MaxAgeSeconds: int64(a.max / time.Second)}
	}
	unknown := AgeBucket{Label: "unknown", MaxAgeSeconds: -1}
	err := g.Blobs(false, func(b graph.Blob) error {
		h := &hist[sizeBucket(b.Size)]
		h.Blobs++
		h.Bytes += b.Size
		if b.ModTime.IsZero() {
			unknown.Blobs++
			unknown.Bytes += b.Size
			return nil
		}
		age := p.Mode.Now.Sub(b.ModTime)
		for i, a := range ageBounds {
			if a.max == 0 || age < a.max {
				c.Age[i].Blobs++
				c.Age[i].Bytes += b.Size
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read blobs: %w", err)
	}
	if unknown.Blobs > 0 {
		c.Age = append(c.Age, unknown)
	}
	lo, hi := -1, -1
	for i, h := range hist {
		if h.Blobs > 0 {
			if lo < 0 {
				lo = i
			}
			hi = i
		}
	}
	c.SizeHistogram = []SizeBucket{}
	if lo >= 0 {
		c.SizeHistogram = slices.Clone(hist[lo : hi+1])
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// Images: tags whose manifest has a revision link in the tag's repository.
	linked := map[string]map[uint32]bool{}
	for _, l := range g.Revisions() {
		if linked[l.Repo] == nil {
			linked[l.Repo] = map[uint32]bool{}
		}
		linked[l.Repo][l.ID] = true
	}
	tagsOf := map[tagKey][]string{}
	for _, t := range g.Tags() {
		if t.Bad == "" && t.ID != 0 && linked[t.Repo][t.ID] {
			k := tagKey{t.Repo, t.ID}
			tagsOf[k] = append(tagsOf[k], t.Name)
		}
	}
	w := newImageWalker(g)
	images := map[string][]ImageInfo{}
	imageBytes := map[uint32]int64{}
	for k, tags := range tagsOf {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		bytes, blobs, err := w.image(k.id)
		if err != nil {
			return nil, err
		}
		d, err := g.Digest(k.id)
		if err != nil {
			return nil, err
		}
		slices.Sort(tags)
		images[k.repo] = append(images[k.repo], ImageInfo{Tags: tags, Digest: d, Bytes: bytes, Blobs: blobs})
		imageBytes[k.id] = bytes
		c.Images++
		c.LogicalBytes += bytes
	}
	if c.TotalBytes > 0 {
		c.DedupRatio = float64(c.LogicalBytes) / float64(c.TotalBytes)
	}

	if err := c.tagsAndNamespaces(ctx, p, tagsOf, imageBytes); err != nil {
		return nil, err
	}
	lastPush := map[string]time.Time{}
	for _, l := range g.Revisions() {
		if l.ModTime.After(lastPush[l.Repo]) {
			lastPush[l.Repo] = l.ModTime
		}
	}
	for _, t := range g.Tags() {
		if t.ModTime.After(lastPush[t.Repo]) {
			lastPush[t.Repo] = t.ModTime
		}
	}
	for i := range c.Namespaces {
		for r, when := range lastPush {
			if namespaceOf(r) == c.Namespaces[i].Name && when.After(c.Namespaces[i].LastPush) {
				c.Namespaces[i].LastPush = when
			}
		}
	}

	c.Repositories = make([]RepoCapacity, len(p.Repositories))
	for i, r := range p.Repositories {
		imgs := images[r.Name]
		slices.SortFunc(imgs, func(a, b ImageInfo) int {
			return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), cmp.Compare(a.Tags[0], b.Tags[0]))
		})
		if len(imgs) > o.top {
			imgs = imgs[:o.top]
		}
		c.Repositories[i] = RepoCapacity{RepoStats: r, LargestImages: nonNil(imgs), LastPush: lastPush[r.Name]}
	}
	rank := func(v func(gc.RepoStats) int64) []RepoBytes {
		out := []RepoBytes{}
		for _, r := range p.Repositories {
			if n := v(r); n > 0 {
				out = append(out, RepoBytes{Name: r.Name, Bytes: n})
			}
		}
		slices.SortFunc(out, func(a, b RepoBytes) int { return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), cmp.Compare(a.Name, b.Name)) })
		if len(out) > o.top {
			out = out[:o.top]
		}
		return out
	}
	c.Top = TopRepositories{
		ByBytes:            rank(func(r gc.RepoStats) int64 { return r.Bytes }),
		ByUniqueBytes:      rank(func(r gc.RepoStats) int64 { return r.UniqueBytes }),
		ByReclaimableBytes: rank(func(r gc.RepoStats) int64 { return r.ReclaimableBytes }),
	}
	return c, nil
}

// sizeBucket is 0 for empty blobs, else 1 + floor(log4(size)).
func sizeBucket(n int64) int {
	if n <= 0 {
		return 0
	}
	b := 1
	for n >= 4 {
		n >>= 2
		b++
	}
	return b
}

// imageWalker sums what a manifest reaches, by the shared walk without referrers:
// an image does not reach its signatures, they point at it.
type imageWalker struct {
	g    *graph.Graph
	w    *graph.Walker
	seen graph.Bitset
	ids  []uint32
}

func newImageWalker(g *graph.Graph) *imageWalker {
	return &imageWalker{g: g, w: g.NewWalker(graph.WalkOptions{}), seen: graph.NewBitset(g.MaxID())}
}

// image returns the bytes and count of the distinct present blobs root reaches.
func (w *imageWalker) image(root uint32) (int64, int, error) {
	for _, id := range w.ids {
		w.seen.Clear(id)
	}
	w.ids = w.ids[:0]
	var bytes int64
	var blobs int
	_, err := w.w.Walk([]uint32{root}, func(id, _ uint32, kind graph.EdgeKind) {
		if kind == graph.EdgeSubject || w.seen.Set(id) {
			return
		}
		w.ids = append(w.ids, id)
		if w.g.Present(id) {
			bytes += w.g.Size(id)
			blobs++
		}
	})
	return bytes, blobs, err
}

// WhatIf compares what a plan frees now with what it would free after a change
// (tags untagged, repositories deleted): deleting a tag frees only the blobs that
// nothing else references, so the difference is usually less than the image's size.
type WhatIf struct {
	UntagRefs       []string `json:"untag"`
	DeleteRepos     []string `json:"delete_repositories"`
	FreedBytesNow   int64    `json:"freed_bytes_now"`
	FreedBytesAfter int64    `json:"freed_bytes_after"`
	AdditionalBytes int64    `json:"additional_bytes"`
	AdditionalBlobs int      `json:"additional_blobs"`
	FreedBlobsNow   int      `json:"freed_blobs_now"`
	FreedBlobsAfter int      `json:"freed_blobs_after"`
}

// NewWhatIf compares base, planned as things are, with after, planned with the same
// mode plus WithoutTags(untag...) and WithoutRepos(repos...). The additional blobs
// and bytes are those after deletes and base does not.
func NewWhatIf(base, after *gc.Plan, untag, repos []string) WhatIf {
	w := WhatIf{
		UntagRefs: nonNil(slices.Clone(untag)), DeleteRepos: nonNil(slices.Clone(repos)),
		FreedBytesNow: base.Summary.DeleteBytes, FreedBytesAfter: after.Summary.DeleteBytes,
		FreedBlobsNow: base.Summary.DeleteBlobs, FreedBlobsAfter: after.Summary.DeleteBlobs,
	}
	now := map[digest.Digest]bool{}
	for _, b := range base.Blobs {
		now[b.Digest()] = true
	}
	for _, b := range after.Blobs {
		if !now[b.Digest()] {
			w.AdditionalBlobs++
			w.AdditionalBytes += b.Size()
		}
	}
	return w
}

// tagKey is a manifest of a repository that tags name.
type tagKey struct {
	repo string
	id   uint32
}

// namespaceOf is a repository's first path component and "/*", or the repository
// itself when it has none.
func namespaceOf(repo string) string {
	if ns, _, ok := strings.Cut(repo, "/"); ok {
		return ns + "/*"
	}
	return repo
}

// tagsAndNamespaces fills c.Tags (with the bytes of each image no other image
// reaches) and c.Namespaces, by the shared walk.
func (c *Capacity) tagsAndNamespaces(ctx context.Context, p *gc.Plan, tagsOf map[tagKey][]string, imageBytes map[uint32]int64) error {
	g := p.Graph()
	// Whether one or several distinct tagged manifests reach each blob: two bits a
	// blob, as the repository stats keep, not a count.
	once, many := graph.NewBitset(g.MaxID()), graph.NewBitset(g.MaxID())
	ids := map[uint32]bool{}
	for k := range tagsOf {
		ids[k.id] = true
	}
	w := newImageWalker(g)
	sorted := slices.Sorted(maps.Keys(ids))
	for _, id := range sorted {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, _, err := w.image(id); err != nil {
			return err
		}
		for _, x := range w.ids {
			if once.Set(x) {
				many.Set(x)
			}
		}
	}
	unique := map[uint32]int64{}
	for _, id := range sorted {
		if _, _, err := w.image(id); err != nil {
			return err
		}
		for _, x := range w.ids {
			if !many.Has(x) && g.Present(x) {
				unique[id] += g.Size(x)
			}
		}
	}
	pushed := map[tagKey]map[string]time.Time{}
	for _, t := range g.Tags() {
		k := tagKey{t.Repo, t.ID}
		if pushed[k] == nil {
			pushed[k] = map[string]time.Time{}
		}
		pushed[k][t.Name] = t.ModTime
	}
	for k, tags := range tagsOf {
		d, err := g.Digest(k.id)
		if err != nil {
			return err
		}
		for _, t := range tags {
			c.Tags = append(c.Tags, TagInfo{Repository: k.repo, Tag: t, Digest: d, PushedAt: pushed[k][t], Bytes: imageBytes[k.id], UniqueBytes: unique[k.id]})
		}
	}
	slices.SortFunc(c.Tags, func(a, b TagInfo) int {
		return cmp.Or(cmp.Compare(b.UniqueBytes, a.UniqueBytes), cmp.Compare(b.Bytes, a.Bytes), cmp.Compare(a.Repository, b.Repository), cmp.Compare(a.Tag, b.Tag))
	})
	c.Tags = nonNil(c.Tags)

	// Namespaces: which namespace's live manifests reach each blob (-1: several).
	nsIndex := map[string]int{}
	for _, r := range p.Repositories {
		ns := namespaceOf(r.Name)
		i, ok := nsIndex[ns]
		if !ok {
			i = len(c.Namespaces)
			nsIndex[ns] = i
			c.Namespaces = append(c.Namespaces, NamespaceCapacity{Name: ns})
		}
		n := &c.Namespaces[i]
		n.Repositories++
		n.Tags += r.Tags
		n.Manifests += r.Manifests
		n.ReclaimableBytes += r.ReclaimableBytes
	}
	nsBytes, nsUnique, err := groupBytes(p, len(c.Namespaces), func(repo string) (int, bool) {
		i, ok := nsIndex[namespaceOf(repo)]
		return i, ok
	})
	if err != nil {
		return err
	}
	for i := range c.Namespaces {
		c.Namespaces[i].Bytes, c.Namespaces[i].UniqueBytes = nsBytes[i], nsUnique[i]
	}
	slices.SortFunc(c.Namespaces, func(a, b NamespaceCapacity) int {
		return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), cmp.Compare(a.Name, b.Name))
	})
	c.Namespaces = nonNil(c.Namespaces)
	return nil
}

// groupBytes sums, for n groups of repositories, the distinct present blobs the
// live manifests of each group reach, and of those the bytes no other group reaches.
// groupOf places a repository in a group (false: in none, and it reaches nothing).
func groupBytes(p *gc.Plan, n int, groupOf func(repo string) (int, bool)) (bytes, unique []int64, err error) {
	g := p.Graph()
	rootsOf := make([][]uint32, n)
	for _, l := range g.Revisions() {
		if i, ok := groupOf(l.Repo); ok && p.LiveManifest(l.ID) {
			rootsOf[i] = append(rootsOf[i], l.ID)
		}
	}
	// Two walks per group over two bitsets, as for repositories: the first marks
	// what one group reaches and what several do, the second sums.
	once, many := graph.NewBitset(g.MaxID()), graph.NewBitset(g.MaxID())
	walker := g.NewWalker(graph.WalkOptions{})
	seen := graph.NewBitset(g.MaxID())
	reach := func(roots []uint32, fn func(x uint32)) error {
		var touched []uint32
		_, err := walker.Walk(roots, func(x, _ uint32, kind graph.EdgeKind) {
			if kind == graph.EdgeSubject || seen.Set(x) {
				return
			}
			touched = append(touched, x)
			fn(x)
		})
		for _, x := range touched {
			seen.Clear(x)
		}
		return err
	}
	for _, roots := range rootsOf {
		if err := reach(roots, func(x uint32) {
			if once.Set(x) {
				many.Set(x)
			}
		}); err != nil {
			return nil, nil, err
		}
	}
	bytes, unique = make([]int64, n), make([]int64, n)
	for i, roots := range rootsOf {
		if err := reach(roots, func(x uint32) {
			if g.Present(x) {
				bytes[i] += g.Size(x)
				if !many.Has(x) {
					unique[i] += g.Size(x)
				}
			}
		}); err != nil {
			return nil, nil, err
		}
	}
	return bytes, unique, nil
}
