package gc

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc/policy"
	"github.com/regsweep/regsweep/graph"
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
	Tags []TagItem  `json:"tags,omitempty"`
	Kept []KeptItem `json:"kept"`
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
}

// BlobItem is a blob directory to delete. Plans of large registries hold millions of
// these, so a sha256 digest is held as its 32 bytes and the path is computed, not held:
// 64 bytes an item instead of about 110.
type BlobItem struct {
	raw  [32]byte
	text *digest.Digest // the digest when it is not canonical sha256
	Size int64
}

func newBlobItem(d digest.Digest, size int64) BlobItem {
	b := BlobItem{Size: size}
	var ok bool
	if b.raw, ok = storage.SHA256Bytes(d); !ok {
		b.text = &d
	}
	return b
}

// Digest returns the blob's digest.
func (b BlobItem) Digest() digest.Digest {
	if b.text != nil {
		return *b.text
	}
	return digest.NewDigestFromBytes(digest.SHA256, b.raw[:])
}

// compareBlobs orders by digest text; for two sha256 digests that is their bytes.
func compareBlobs(a, b BlobItem) int {
	if a.text == nil && b.text == nil {
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
	return json.Marshal(blobItemJSON{d, b.Size, blobPath(d)})
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

const (
	reasonGrace      = "younger than grace"
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
func NewPlan(ctx context.Context, src Source, opts ...Option) (*Plan, error) {
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
		Policy: o.policy,
	}, g: g, scanned: base, m: m, Tags: tagItems, Kept: tagKept}
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
	p.Blobs = make([]BlobItem, 0, candidates)
	deletedIDs := make([]uint32, 0, candidates) // of p.Blobs, until they are sorted
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
				why = reasonGrace
			}
		}
		if why != "" {
			p.Kept = append(p.Kept, KeptItem{Kind: "blob", Digest: b.Digest, Size: b.Size, Reason: why})
			if why == reasonGrace {
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
		deletedIDs = append(deletedIDs, id)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read blobs from index: %w", err)
	}
	// Digests of deleted blobs by id, while p.Blobs is still in id order.
	deletedDigest := func(id uint32) digest.Digest {
		if i, ok := slices.BinarySearch(deletedIDs, id); ok {
			return p.Blobs[i].Digest()
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
				p.Kept = append(p.Kept, KeptItem{Kind: "manifest", Repository: l.Repo, Digest: d, Reason: reasonGrace})
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
			w := graph.Warning{Kind: "unreadable_manifest", Repository: r, Digest: d.String(), Path: blobPath, Detail: man.Unreadable}
			if blocked.Has(id) {
				w.Detail += "; a live root reaches it, so every blob it might reference is kept and a sweep refuses"
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
			rev := path(storage.Spec{Kind: storage.RevisionLink, Repo: r, Digest: d})
			what := "revision link " + rev
			if len(tags) > 0 {
				what = "tag " + strings.Join(tags, ", ") + " and " + what
			}
			w := graph.Warning{Kind: "broken_root", Repository: r, Digest: d.String(), Path: blobPath,
				Detail: what + " name a manifest whose blob data is missing: the sweep refuses and everything " + r + " links is kept. If the blob store is mounted and complete, delete the manifest through the registry API and run again"}
			p.Blocked = append(p.Blocked, w)
			p.Warnings = append(p.Warnings, w)
		}
		if len(g.LinkedBy(id)) == 0 {
			w := graph.Warning{Kind: "missing_manifest", Digest: d.String(), Path: blobPath,
				Detail: "a live index references a manifest whose blob data is missing: what it references is unknown, so the sweep refuses"}
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
		p.Warnings = append(p.Warnings, graph.Warning{Kind: "missing_blob", Digest: d.String(), Path: blobPath,
			Detail: fmt.Sprintf("live manifest %s references it but its data is missing: that image cannot be pulled", dg(m.missing[id]))})
	}
	for _, t := range m.danglingTags {
		tp := path(storage.Spec{Kind: storage.TagCurrentLink, Repo: t.Repo, Tag: t.Name})
		p.Warnings = append(p.Warnings, graph.Warning{Kind: "dangling_tag", Repository: t.Repo, Digest: dg(t.ID).String(), Path: tp,
			Detail: "tag names a manifest without a revision link in this repository; the registry cannot serve it"})
	}
	err := g.Layers(func(l graph.Link) error {
		if !g.Present(l.ID) && l.Bad == "" {
			lp := path(storage.Spec{Kind: storage.LayerLink, Repo: l.Repo, Digest: dg(l.ID)})
			p.Warnings = append(p.Warnings, graph.Warning{Kind: "dangling_link", Repository: l.Repo, Digest: dg(l.ID).String(), Path: lp, Detail: "layer link names a blob whose data is missing"})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return bad
}

func (p *Plan) sort() {
	slices.SortFunc(p.Blobs, compareBlobs)
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
