package gc

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc/policy"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/spill"
	"github.com/regsweep/regsweep/storage"
)

// Plan is everything a sweep would delete, and why the rest is kept. It is a value:
// computing it deletes nothing, and it encodes to JSON so that planning and sweeping
// can run apart.
type Plan struct {
	// Storage names the storage the plan was made for (storage.ID); set by the caller.
	Storage    string         `json:"storage"`
	Mode       Mode           `json:"mode"`
	Blobs      []BlobItem     `json:"blobs"`
	Manifests  []ManifestItem `json:"manifests"`
	LayerLinks []LinkItem     `json:"layer_links"`
	Uploads    []UploadItem   `json:"uploads"`
	// Tags are the tags retention policies delete (WithPolicy); a sweep deletes
	// them first.
	Tags []TagItem `json:"tags,omitempty"`
	// EmptyRepositories are repositories the plan leaves with nothing in them
	// (WithPruneEmptyRepositories); a sweep removes their directories last.
	EmptyRepositories []RepoItem `json:"empty_repositories,omitempty"`
	Kept              []KeptItem `json:"kept"`
	// Blocked lists unreadable manifests that a root reaches. A sweep refuses while
	// it is not empty; every blob they might reference is kept regardless.
	Blocked      []graph.Warning `json:"blocked"`
	Warnings     []graph.Warning `json:"warnings"`
	Summary      Summary         `json:"summary"`
	Repositories []RepoStats     `json:"repositories"`
	// Retention says what the policies decided and what their untagging frees.
	Retention *Retention `json:"retention,omitempty"`

	// What the plan was made from and found, for analysis of the same marks; not
	// part of a plan read back from JSON.
	g       *graph.Graph
	scanned *graph.Graph // g before the plan's tag deletions
	m       *marks
	reached graph.Bitset // what the live manifests of some repository reach
	shared  graph.Bitset // what the live manifests of several repositories reach
	// blobSpill holds Blobs when they spilled to a file (WithSpillDir).
	blobSpill *spill.Array[BlobItem]
}

// Graph returns the graph the plan was made from, as the plan leaves it: without
// the tags it deletes (nil for a plan read from JSON).
func (p *Plan) Graph() *graph.Graph { return p.g }

// Scanned returns the graph as scanned, the tags the plan deletes included: what a
// re-check of the roots compares the storage with.
func (p *Plan) Scanned() *graph.Graph { return p.scanned }

// LiveManifest reports whether the plan's marks keep manifest id live (grace
// included: what only grace keeps is live for the stats).
func (p *Plan) LiveManifest(id uint32) bool { return p.m != nil && p.m.liveManifest.Has(id) }

// Shared reports whether the live manifests of more than one repository reach id.
func (p *Plan) Shared(id uint32) bool { return p.shared.Has(id) }

// Reached reports whether the live manifests of some repository reach id.
func (p *Plan) Reached(id uint32) bool { return p.reached.Has(id) }

// Mode records the options a plan was made with.
type Mode struct {
	DeleteUntagged   bool      `json:"delete_untagged"`
	KeepReferrers    bool      `json:"keep_referrers"`
	GraceSeconds     int64     `json:"grace_seconds"`
	UploadAgeSeconds int64     `json:"upload_age_seconds"`
	Now              time.Time `json:"now"`
	// Policy is the retention policy file the plan applied: apply decides again
	// with it and deletes only the tags both decisions agree on.
	Policy *policy.File `json:"policy,omitempty"`
	// PruneEmptyRepositories: the plan lists the repositories it leaves empty.
	PruneEmptyRepositories bool `json:"prune_empty_repositories,omitempty"`
}

// BlobItem is a blob directory to delete. Plans of large registries hold millions of
// these, so a sha256 digest is held as its 32 bytes and the path is computed, not held:
// 40 bytes an item instead of about 110, and no pointer, so that the collector never
// scans a plan's blobs (ten million at 100M blobs).
type BlobItem struct {
	raw  [32]byte
	size uint64 // otherDigest set: raw is the sha256 of a digest kept in otherDigests
}

const otherDigest = 1 << 63

// otherDigests holds the digests of blob items that are not canonical sha256, by the
// sha256 of their text: a handful in a registry, kept for the life of the process.
var otherDigests struct {
	sync.Mutex
	m map[[32]byte]digest.Digest
}

// NewBlobItem returns the item deleting blob d of size bytes, for plans made
// elsewhere (a pipeline) and written in this format.
func NewBlobItem(d digest.Digest, size int64) BlobItem { return newBlobItem(d, size) }

func newBlobItem(d digest.Digest, size int64) BlobItem {
	b := BlobItem{size: uint64(max(size, 0))}
	var ok bool
	if b.raw, ok = storage.SHA256Bytes(d); !ok {
		b.raw = sha256.Sum256([]byte(d))
		b.size |= otherDigest
		o := &otherDigests
		o.Lock()
		defer o.Unlock()
		if o.m == nil {
			o.m = map[[32]byte]digest.Digest{}
		}
		o.m[b.raw] = d
	}
	return b
}

// Size returns the blob's size in bytes.
func (b BlobItem) Size() int64 { return int64(b.size &^ otherDigest) }

// Digest returns the blob's digest.
func (b BlobItem) Digest() digest.Digest {
	if b.size&otherDigest != 0 {
		o := &otherDigests
		o.Lock()
		defer o.Unlock()
		return o.m[b.raw]
	}
	return digest.NewDigestFromBytes(digest.SHA256, b.raw[:])
}

// compareBlobs orders by digest text; for two sha256 digests that is their bytes.
func compareBlobs(a, b BlobItem) int {
	if a.size&otherDigest == 0 && b.size&otherDigest == 0 {
		return bytes.Compare(a.raw[:], b.raw[:])
	}
	return cmp.Compare(a.Digest(), b.Digest())
}

// Path returns the driver path of the blob directory.
func (b BlobItem) Path() string { return blobPath(b.Digest()) }

type blobItemJSON struct {
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
	Path   string        `json:"path"`
}

// MarshalJSON implements json.Marshaler.
func (b BlobItem) MarshalJSON() ([]byte, error) {
	d := b.Digest()
	return json.Marshal(blobItemJSON{d, b.Size(), blobPath(d)})
}

// UnmarshalJSON implements json.Unmarshaler; the path is recomputed from the digest.
func (b *BlobItem) UnmarshalJSON(data []byte) error {
	var j blobItemJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	if err := j.Digest.Validate(); err != nil {
		return fmt.Errorf("plan blob %q: %w", j.Digest, err)
	}
	if j.Size < 0 {
		return fmt.Errorf("plan blob %q: negative size %d", j.Digest, j.Size)
	}
	*b = newBlobItem(j.Digest, j.Size)
	return nil
}

func blobPath(d digest.Digest) string {
	p, _ := storage.Path(storage.Spec{Kind: storage.BlobDir, Digest: d})
	return p
}

// ManifestItem is a manifest revision link to delete, with its tag history entries.
type ManifestItem struct {
	Repository string        `json:"repository"`
	Digest     digest.Digest `json:"digest"`
	Path       string        `json:"path"`
	TagIndex   []string      `json:"tag_index,omitempty"`
}

// LinkItem is a _layers link to delete.
type LinkItem struct {
	Repository string        `json:"repository"`
	Digest     digest.Digest `json:"digest"`
	Path       string        `json:"path"`
	Reason     string        `json:"reason"`
}

// UploadItem is an upload directory to delete.
type UploadItem struct {
	Repository string    `json:"repository"`
	ID         string    `json:"id"`
	StartedAt  time.Time `json:"started_at"`
	Size       int64     `json:"size"` // of its files
	Path       string    `json:"path"`
}

// RepoItem is a repository whose directory a sweep removes: it holds no tag,
// revision, tag history, layer link or upload once the plan's other items are
// deleted. Paths are its data directories (_manifests, _layers, _uploads); nested
// repositories live beside them and are never touched.
type RepoItem struct {
	Repository string   `json:"repository"`
	Path       string   `json:"path"`
	Paths      []string `json:"paths"`
	// Links are the revision and layer links the repository still holds, of
	// manifests and blobs other repositories keep alive: they free no byte and go
	// with it (where tags are the roots, a repository without tags serves nothing).
	Revisions  int      `json:"revisions"`
	LayerLinks int      `json:"layer_links"`
	Links      []string `json:"links,omitempty"`
	// Before: a file in the repository modified after this time (grace before the
	// plan's time) keeps it, as does any file not in Links.
	Before time.Time `json:"before"`
}

// KeptItem is a blob or manifest that is not live but is kept, or a tag a policy
// would delete but a safety rule keeps, and why.
type KeptItem struct {
	Kind       string        `json:"kind"` // blob, manifest or tag
	Repository string        `json:"repository,omitempty"`
	Tag        string        `json:"tag,omitempty"`
	Digest     digest.Digest `json:"digest"`
	Size       int64         `json:"size,omitempty"`
	Reason     string        `json:"reason"`
}

// Summary holds the counts of the report contract.
type Summary struct {
	Repositories        int   `json:"repositories"`
	Tags                int   `json:"tags"`
	Manifests           int   `json:"manifests"`
	Blobs               int   `json:"blobs"`
	BlobBytes           int64 `json:"blob_bytes"`
	LiveBlobs           int   `json:"live_blobs"`
	LiveBytes           int64 `json:"live_bytes"`
	DeleteBlobs         int   `json:"delete_blobs"`
	DeleteBytes         int64 `json:"delete_bytes"`
	DeleteManifests     int   `json:"delete_manifests"`
	DeleteLayerLinks    int   `json:"delete_layer_links"`
	DeleteUploads       int   `json:"delete_uploads"`
	DeleteUploadBytes   int64 `json:"delete_upload_bytes"`
	DeleteTags          int   `json:"delete_tags"`
	DeleteRepositories  int   `json:"delete_repositories"`
	KeptByGrace         int   `json:"kept_by_grace"`
	UnreadableManifests int   `json:"unreadable_manifests"`
	// KeptReferrers counts untagged referrers (signatures, SBOMs, attestations) that
	// only the referrer rule keeps under delete-untagged: distribution's GC deletes them.
	KeptReferrers int `json:"kept_referrers"`
}

// RepoStats is one repository's line of the report.
type RepoStats struct {
	Name             string `json:"name"`
	Tags             int    `json:"tags"`
	Manifests        int    `json:"manifests"`
	Bytes            int64  `json:"bytes"`
	UniqueBytes      int64  `json:"unique_bytes"`
	SharedBytes      int64  `json:"shared_bytes"`
	ReclaimableBytes int64  `json:"reclaimable_bytes"`
}

// Reasons a plan keeps something, shared with engines that make the same plan
// elsewhere (regsweep-beam).
const (
	ReasonGrace = "younger than grace"
	// ReasonPartial keeps every blob.
	ReasonPartial    = "an unreadable manifest that a root reaches could not be read to its end: it might reference any blob"
	reasonNotPlanned = "not in the plan being applied"
)

// Paths returns every path the plan deletes.
func (p *Plan) Paths() map[string]bool {
	out := map[string]bool{}
	for _, b := range p.Blobs {
		out[b.Path()] = true
	}
	for _, m := range p.Manifests {
		out[m.Path] = true
		for _, t := range m.TagIndex {
			out[t] = true
		}
	}
	for _, l := range p.LayerLinks {
		out[l.Path] = true
	}
	for _, u := range p.Uploads {
		out[u.Path] = true
	}
	for _, t := range p.Tags {
		out[t.Path] = true
	}
	for _, r := range p.EmptyRepositories {
		out[r.Path] = true
	}
	return out
}

// Dropped returns the paths of p that later no longer deletes, sorted.
func (p *Plan) Dropped(later *Plan) []string {
	now := later.Paths()
	var out []string
	for k := range p.Paths() {
		if !now[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Source gives the loaded graph to plan from: an index (graph.Index loads itself)
// or a graph already loaded, which plans, what-ifs and reports then share.
type Source interface {
	Graph(ctx context.Context) (*graph.Graph, error)
}

// NewPlan marks the indexed registry and lists what a sweep would delete.
func NewPlan(ctx context.Context, src Source, opts ...Option) (_ *Plan, err error) {
	var made *Plan // released if planning fails once it spilled
	defer func() {
		if err != nil && made != nil {
			made.Close()
		}
	}()
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	g, err := src.Graph(ctx)
	if err != nil {
		return nil, err
	}
	// base is the graph as it is (after what-ifs); g, as the plan leaves it: without
	// the tags the policies delete.
	base := g.Without(o.withoutTags, o.withoutRepos)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !o.allowMassDelete {
		if err := checkComplete(base); err != nil {
			return nil, err
		}
	}
	var (
		tagDel    map[string]bool
		tagItems  []TagItem
		tagKept   []KeptItem
		decisions []decision
		tagWarn   *graph.Warning
	)
	g = base
	if o.policy != nil {
		if tagDel, tagItems, tagKept, decisions, tagWarn, err = decideTags(base, &o); err != nil {
			return nil, err
		}
		if len(tagDel) > 0 {
			gone := maps.Clone(tagDel)
			maps.Copy(gone, o.withoutTags)
			g = g.Without(gone, o.withoutRepos)
		}
	}
	m, err := mark(g, o)
	if err != nil {
		return nil, err
	}
	var baseMarks *marks // what the plan would keep without the tag deletions
	if o.policy != nil {
		if baseMarks, err = mark(base, o); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := &Plan{Mode: Mode{
		DeleteUntagged: o.deleteUntagged, KeepReferrers: o.keepReferrers,
		GraceSeconds: int64(o.grace / time.Second), UploadAgeSeconds: int64(o.uploadAge / time.Second), Now: o.now,
		Policy: o.policy, PruneEmptyRepositories: o.pruneRepos,
	}, g: g, scanned: base, m: m, Tags: tagItems, Kept: tagKept}
	made = p
	// The index holds a digest for every id it hands out; one that is lost means a
	// damaged index, which is an error, not a reason to guess.
	var lost error
	dg := func(id uint32) digest.Digest {
		d, err := g.Digest(id)
		if err != nil && lost == nil {
			lost = err
		}
		return d
	}
	// Blobs a symbolic link names stay, with every link naming them.
	protect := map[digest.Digest]string{}
	for _, w := range g.Warnings() {
		if w.Keep && w.Digest != "" {
			protect[digest.Digest(w.Digest)] = w.Path + ": " + w.Kind
		}
	}

	// 1. Blobs: present, not live, not kept. Streamed from the index, which yields
	// them in id order with their digests.
	deleted := graph.NewBitset(g.MaxID())
	candidates := 0 // present and not live: sized once, a plan may hold millions
	for i, w := range g.PresentSet() {
		if i < len(m.live) {
			w &^= m.live[i]
		}
		candidates += bits.OnesCount64(w)
	}
	p.Blobs = p.blobArray(o.spillDir, candidates)
	cutoff := o.cutoff()
	err = g.Blobs(false, func(b graph.Blob) error {
		id := b.ID
		if !m.live.Has(id) || m.keptWhy[id] != "" {
			d, err := g.Digest(id) // only those kept or deleted need one
			if err != nil {
				return err
			}
			b.Digest = d
		}
		why := m.keptWhy[id]
		if why == "" && !m.live.Has(id) {
			switch {
			case protect[b.Digest] != "":
				why = protect[b.Digest]
			case m.keepAll != "":
				why = m.keepAll
			case b.ModTime.After(cutoff):
				why = ReasonGrace
			}
		}
		if why != "" {
			p.Kept = append(p.Kept, KeptItem{Kind: "blob", Digest: b.Digest, Size: b.Size, Reason: why})
			if why == ReasonGrace {
				p.Summary.KeptByGrace++
			}
			return nil
		}
		if m.live.Has(id) {
			p.Summary.LiveBlobs++
			p.Summary.LiveBytes += b.Size
			return nil
		}
		if o.only != nil && !o.only[blobPath(b.Digest)] {
			p.Kept = append(p.Kept, KeptItem{Kind: "blob", Digest: b.Digest, Size: b.Size, Reason: reasonNotPlanned})
			return nil
		}
		deleted.Set(id)
		p.Blobs = append(p.Blobs, newBlobItem(b.Digest, b.Size))
		if len(p.Blobs)%releaseEvery == 0 {
			p.blobSpill.Release() // written items leave the process (nil: not spilled)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read blobs from index: %w", err)
	}
	// Digests of deleted blobs by id, while p.Blobs is still in id order: the item of
	// id is the number of deleted ids below it (a rank over the bitset, 4 bytes per 64
	// ids instead of 4 bytes per deleted blob).
	below := make([]uint32, len(deleted))
	for i, n := 1, uint32(0); i < len(deleted); i++ {
		n += uint32(bits.OnesCount64(deleted[i-1]))
		below[i] = n
	}
	deletedDigest := func(id uint32) digest.Digest {
		if deleted.Has(id) {
			w := id / 64
			return p.Blobs[below[w]+uint32(bits.OnesCount64(deleted[w]&(1<<(id%64)-1)))].Digest()
		}
		return dg(id)
	}

	// 2. Revision links of manifests that are not live (delete-untagged only).
	type repoID struct {
		repo string
		id   uint32
	}
	history := map[repoID][]graph.TagIndexEntry{}
	for _, e := range g.TagIndex() {
		k := repoID{e.Repo, e.ID}
		history[k] = append(history[k], e)
	}
	revIDs := map[string][]uint32{} // the ids of p.Manifests, by repository
	if o.anyUntagged() {
		for _, l := range g.Revisions() {
			if !o.untagged(l.Repo) {
				continue
			}
			young := m.youngOnly.Has(l.ID)
			if m.liveManifest.Has(l.ID) && !young || l.Bad != "" || m.pinnedRepo[l.Repo] != "" {
				continue
			}
			d := dg(l.ID)
			if why := protect[d]; why != "" {
				p.Kept = append(p.Kept, KeptItem{Kind: "manifest", Repository: l.Repo, Digest: d, Reason: why})
				continue
			}
			if young || l.ModTime.After(cutoff) {
				p.Kept = append(p.Kept, KeptItem{Kind: "manifest", Repository: l.Repo, Digest: d, Reason: ReasonGrace})
				p.Summary.KeptByGrace++
				continue
			}
			path, err := storage.Path(storage.Spec{Kind: storage.RevisionDir, Repo: l.Repo, Digest: d})
			if err != nil {
				return nil, fmt.Errorf("revision of %s in %q: %w", d, l.Repo, err)
			}
			if o.only != nil && !o.only[path] {
				p.Kept = append(p.Kept, KeptItem{Kind: "manifest", Repository: l.Repo, Digest: d, Reason: reasonNotPlanned})
				continue
			}
			item := ManifestItem{Repository: l.Repo, Digest: d, Path: path}
			for _, e := range history[repoID{l.Repo, l.ID}] {
				if tagDel[l.Repo+":"+e.Tag] {
					continue // deleted with its tag
				}
				tp, err := storage.Path(storage.Spec{Kind: storage.TagIndexDir, Repo: l.Repo, Tag: e.Tag, Digest: d})
				if err != nil {
					return nil, fmt.Errorf("history of tag %s in %q: %w", e.Tag, l.Repo, err)
				}
				if o.only == nil || o.only[tp] {
					item.TagIndex = append(item.TagIndex, tp)
				}
			}
			slices.Sort(item.TagIndex)
			p.Manifests = append(p.Manifests, item)
			revIDs[l.Repo] = append(revIDs[l.Repo], l.ID)
		}
	}

	// 3. Layer links of deleted blobs, and dangling ones.
	err = g.Layers(func(l graph.Link) error {
		if l.Bad != "" || m.pinnedRepo[l.Repo] != "" || m.keepAll != "" {
			return nil
		}
		reason := ""
		switch {
		case deleted.Has(l.ID):
			reason = "blob deleted"
		case !g.Present(l.ID) && !m.live.Has(l.ID) && m.keptWhy[l.ID] == "":
			// A live manifest references it: deleting the link frees nothing, and if
			// the listing missed the blob rather than the storage losing it, breaks
			// the image.
			reason = "blob data missing"
		default:
			return nil
		}
		d := deletedDigest(l.ID)
		if protect[d] != "" {
			return nil
		}
		path, err := storage.Path(storage.Spec{Kind: storage.LayerLink, Repo: l.Repo, Digest: d})
		if err != nil {
			return fmt.Errorf("layer link of %s in %q: %w", d, l.Repo, err)
		}
		if o.only != nil && !o.only[path] {
			return nil
		}
		p.LayerLinks = append(p.LayerLinks, LinkItem{Repository: l.Repo, Digest: d, Path: path, Reason: reason})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read layer links: %w", err)
	}

	// 4. Uploads older than the upload age.
	for _, u := range g.Uploads() {
		if u.StartedAt.After(o.now.Add(-o.uploadAge)) {
			continue
		}
		path, err := storage.Path(storage.Spec{Kind: storage.UploadDir, Repo: u.Repo, Upload: u.ID})
		if err != nil || o.only != nil && !o.only[path] {
			continue
		}
		p.Uploads = append(p.Uploads, UploadItem{Repository: u.Repo, ID: u.ID, StartedAt: u.StartedAt, Size: u.Size, Path: path})
	}

	if o.pruneRepos {
		if err := p.emptyRepositories(g, m, o, protect); err != nil {
			return nil, err
		}
	}
	if tagWarn != nil {
		p.Warnings = append(p.Warnings, *tagWarn)
	}
	if err := p.warnings(g, m, dg); err != nil {
		return nil, fmt.Errorf("read layer links: %w", err)
	}
	if lost != nil {
		return nil, lost
	}
	p.Summary.KeptReferrers = m.referrersKept
	if err := p.stats(g, base.Tags(), m, deleted); err != nil {
		return nil, err
	}
	if err := p.sortSpilled(o.spillDir); err != nil {
		return nil, fmt.Errorf("sort %d blob items: %w", len(p.Blobs), err)
	}
	p.sort()
	if o.policy != nil {
		if err := p.retention(o, base, baseMarks, deleted, decisions, revIDs); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (p *Plan) warnings(g *graph.Graph, m *marks, dg func(uint32) digest.Digest) error {
	// A path the grammar refuses for what the index holds means a damaged index.
	var bad error
	path := func(s storage.Spec) string {
		q, err := storage.Path(s)
		if err != nil && bad == nil {
			bad = fmt.Errorf("%w: %v", graph.ErrDamaged, err)
		}
		return q
	}
	p.Warnings = append(p.Warnings, g.Warnings()...)
	blocked := graph.NewBitset(g.MaxID())
	for _, id := range m.blocked {
		blocked.Set(id)
	}
	ids := g.ManifestIDs()
	for _, id := range ids {
		man, _ := g.Manifest(id)
		if man.Unreadable == "" {
			continue
		}
		d := dg(id)
		blobPath := path(storage.Spec{Kind: storage.BlobData, Digest: d})
		repos := g.LinkedBy(id)
		if len(repos) == 0 {
			repos = []string{""}
		}
		for _, r := range repos {
			w := UnreadableWarning(r, d, blobPath, man.Unreadable, blocked.Has(id))
			if blocked.Has(id) {
				p.Blocked = append(p.Blocked, w)
			}
			p.Warnings = append(p.Warnings, w)
		}
	}
	// Missing manifests that a root reaches: broken roots (a tag or revision link
	// naming a manifest whose blob is gone) and missing children of live indexes.
	tagsOf := map[uint32][]graph.Tag{}
	for _, t := range g.Tags() {
		if t.ID != 0 && blocked.Has(t.ID) {
			tagsOf[t.ID] = append(tagsOf[t.ID], t)
		}
	}
	for _, id := range ids {
		man, _ := g.Manifest(id)
		if !man.Missing || !blocked.Has(id) {
			continue
		}
		d := dg(id)
		blobPath := path(storage.Spec{Kind: storage.BlobData, Digest: d})
		for _, r := range g.LinkedBy(id) {
			var tags []string
			for _, t := range tagsOf[id] {
				if t.Repo == r {
					tags = append(tags, t.Name)
				}
			}
			w := BrokenRootWarning(r, d, blobPath, path(storage.Spec{Kind: storage.RevisionLink, Repo: r, Digest: d}), tags)
			p.Blocked = append(p.Blocked, w)
			p.Warnings = append(p.Warnings, w)
		}
		if len(g.LinkedBy(id)) == 0 {
			w := MissingManifestWarning(d, blobPath)
			p.Blocked = append(p.Blocked, w)
			p.Warnings = append(p.Warnings, w)
		}
	}
	for _, w := range g.Warnings() {
		if w.Blocks {
			p.Blocked = append(p.Blocked, w)
		}
	}
	missing := make([]uint32, 0, len(m.missing))
	for id := range m.missing {
		missing = append(missing, id)
	}
	slices.Sort(missing)
	for _, id := range missing {
		d := dg(id)
		blobPath := path(storage.Spec{Kind: storage.BlobData, Digest: d})
		p.Warnings = append(p.Warnings, MissingBlobWarning(d, blobPath, dg(m.missing[id])))
	}
	for _, t := range m.danglingTags {
		tp := path(storage.Spec{Kind: storage.TagCurrentLink, Repo: t.Repo, Tag: t.Name})
		p.Warnings = append(p.Warnings, DanglingTagWarning(t.Repo, dg(t.ID), tp))
	}
	err := g.Layers(func(l graph.Link) error {
		if !g.Present(l.ID) && l.Bad == "" {
			lp := path(storage.Spec{Kind: storage.LayerLink, Repo: l.Repo, Digest: dg(l.ID)})
			p.Warnings = append(p.Warnings, DanglingLinkWarning(l.Repo, dg(l.ID), lp))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return bad
}

// Seal sorts a plan assembled item by item elsewhere (a pipeline) as NewPlan sorts
// its own, and counts its items into the summary's delete counts.
func (p *Plan) Seal() {
	p.sort()
	p.countItems()
}

// countItems sets the summary's delete counts from the items.
func (p *Plan) countItems() {
	s := &p.Summary
	s.DeleteBlobs, s.DeleteBytes = len(p.Blobs), 0
	p.blobChunks(func(_ int, c []BlobItem) bool {
		for _, b := range c {
			s.DeleteBytes += b.Size()
		}
		return true
	})
	s.DeleteManifests, s.DeleteLayerLinks = len(p.Manifests), len(p.LayerLinks)
	s.DeleteUploads, s.DeleteUploadBytes = len(p.Uploads), 0
	for _, u := range p.Uploads {
		s.DeleteUploadBytes += u.Size
	}
}

func (p *Plan) sort() {
	if p.blobSpill == nil && !slices.IsSortedFunc(p.Blobs, compareBlobs) { // spilled: sortSpilled
		slices.SortFunc(p.Blobs, compareBlobs)
	}
	slices.SortFunc(p.Manifests, func(a, b ManifestItem) int { return cmp.Compare(a.Path, b.Path) })
	slices.SortFunc(p.LayerLinks, func(a, b LinkItem) int { return cmp.Compare(a.Path, b.Path) })
	slices.SortFunc(p.Uploads, func(a, b UploadItem) int { return cmp.Compare(a.Path, b.Path) })
	slices.SortFunc(p.Tags, func(a, b TagItem) int {
		return cmp.Or(cmp.Compare(a.Repository, b.Repository), cmp.Compare(a.Tag, b.Tag))
	})
	slices.SortStableFunc(p.Warnings, func(a, b graph.Warning) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Path, b.Path), cmp.Compare(a.Repository, b.Repository), cmp.Compare(a.Digest, b.Digest))
	})
	slices.SortFunc(p.Kept, func(a, b KeptItem) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Repository, b.Repository), cmp.Compare(a.Tag, b.Tag), cmp.Compare(a.Digest, b.Digest))
	})
}

// emptyRepositories lists the repositories that hold nothing once the plan's items
// are deleted. Anything the plan keeps in a repository keeps it: a tag (readable or
// not), a revision, tag history, a layer link, an upload, a warning naming it or a
// path below it. Fails closed: with everything kept (keepAll) no repository goes.
//
// Where tags are the roots, a repository with no tag left holds nothing it can
// serve by tag: the revision links and layer links the plan keeps there (for
// manifests and blobs other repositories keep alive, so deleting them frees no
// byte) go with it, unless younger than grace (a push under way).
func (p *Plan) emptyRepositories(g *graph.Graph, m *marks, o options, protect map[digest.Digest]string) error {
	if m.keepAll != "" {
		return nil
	}
	gone := p.Paths()
	deletedTags := map[[2]string]bool{}
	for _, t := range p.Tags {
		deletedTags[[2]string{t.Repository, t.Tag}] = true
	}
	left := map[string]bool{}
	for _, t := range g.Tags() { // without the tags the plan deletes
		left[t.Repo] = true
	}
	linkLeft := func(repo string, s storage.Spec) error {
		path, err := storage.Path(s)
		if err != nil {
			return err
		}
		if !gone[path] {
			left[repo] = true
		}
		return nil
	}
	for _, e := range g.TagIndex() {
		if left[e.Repo] {
			continue
		}
		if deletedTags[[2]string{e.Repo, e.Tag}] {
			continue // the tag's directory goes, history and all
		}
		d, err := g.Digest(e.ID)
		if err != nil {
			return err
		}
		if err := linkLeft(e.Repo, storage.Spec{Kind: storage.TagIndexDir, Repo: e.Repo, Tag: e.Tag, Digest: d}); err != nil {
			return err
		}
	}
	orphanRevs := map[string][]string{}
	for _, l := range g.Revisions() {
		if left[l.Repo] {
			continue
		}
		d, err := g.Digest(l.ID)
		if err != nil {
			return err
		}
		path, err := storage.Path(storage.Spec{Kind: storage.RevisionDir, Repo: l.Repo, Digest: d})
		if err != nil {
			return err
		}
		switch {
		case gone[path]:
		case !o.untagged(l.Repo) || l.Bad != "" || l.ModTime.After(o.cutoff()) || m.youngOnly.Has(l.ID) ||
			protect[d] != "":
			left[l.Repo] = true
		default:
			// The link file, which the sweep finds and checks when it looks again.
			orphanRevs[l.Repo] = append(orphanRevs[l.Repo], path+"/link")
		}
	}
	// Layer links the plan keeps in a repository with no manifest left link blobs
	// other repositories keep: nothing in this one needs them once it is empty.
	// Their times are not in the index (a listing does not stat them): the sweep
	// stats each before removing the repository, and a young one keeps it.
	orphans := map[string][]string{}
	err := g.Layers(func(l graph.Link) error {
		if left[l.Repo] {
			return nil
		}
		d, err := g.Digest(l.ID)
		if err != nil {
			return err
		}
		path, err := storage.Path(storage.Spec{Kind: storage.LayerLink, Repo: l.Repo, Digest: d})
		if err != nil {
			return err
		}
		switch {
		case gone[path]:
		case l.Bad != "" || l.ModTime.After(o.cutoff()):
			left[l.Repo] = true
		default:
			orphans[l.Repo] = append(orphans[l.Repo], path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, u := range g.Uploads() {
		if err := linkLeft(u.Repo, storage.Spec{Kind: storage.UploadDir, Repo: u.Repo, Upload: u.ID}); err != nil {
			left[u.Repo] = true // an upload id the grammar rejects stays, and its repository
		}
	}
	repoDirs := map[string]string{}
	for _, r := range g.Repos() {
		if dir, err := storage.RepoPath(r.Name); err == nil {
			repoDirs[dir] = r.Name
		}
	}
	for _, w := range g.Warnings() {
		switch {
		case w.Kind == "orphan_repository":
			// Only _layers or _uploads, no _manifests: what is in them decides.
		case w.Repository != "":
			left[w.Repository] = true
		case strings.HasPrefix(w.Path, storage.Root+"/blobs/") || w.Path == "":
		default:
			if s, err := storage.Parse(w.Path); err == nil && s.Repo != "" {
				left[s.Repo] = true
			} else if name, ok := repoDirs[w.Path]; ok {
				left[name] = true
			} else {
				// A stray file somewhere under repositories: it may be any
				// repository's, so none is removed.
				return nil
			}
		}
	}
	for _, r := range g.Repos() {
		if left[r.Name] || r.Bad != "" || m.pinnedRepo[r.Name] != "" {
			continue
		}
		dir, err := storage.RepoPath(r.Name)
		if err != nil {
			continue
		}
		item := RepoItem{Repository: r.Name, Path: dir, Before: o.cutoff()}
		for _, sub := range storage.RepoDataDirs {
			sp, err := storage.Path(storage.Spec{Kind: storage.RepoDataDir, Repo: r.Name, Rest: sub})
			if err != nil {
				return err
			}
			item.Paths = append(item.Paths, sp)
		}
		if o.only != nil && !o.only[dir] {
			continue
		}
		item.Revisions, item.LayerLinks = len(orphanRevs[r.Name]), len(orphans[r.Name])
		item.Links = append(orphanRevs[r.Name], orphans[r.Name]...)
		slices.Sort(item.Links)
		p.EmptyRepositories = append(p.EmptyRepositories, item)
	}
	slices.SortFunc(p.EmptyRepositories, func(a, b RepoItem) int { return strings.Compare(a.Repository, b.Repository) })
	p.Summary.DeleteRepositories = len(p.EmptyRepositories)
	return nil
}
