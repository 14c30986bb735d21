// Package synth populates a real registry v2 storage tree with a seeded, synthetic mix of
// content, through distribution's own storage API (the code the registry's HTTP handlers
// call), so that the layout on disk is exactly what a registry would have written.
//
// The mix covers what a garbage collector has to reason about: layers shared across images
// and repositories, Docker schema2 and OCI image manifests, Docker manifest lists and OCI
// image indexes (nested, children in the same repository), OCI referrers (untagged
// manifests with a subject and an artifactType), images copied into other repositories,
// tags moved to new manifests (tag index history), untags, manifest deletes done the way
// the HTTP API does them, layers of abandoned pushes and unfinished uploads.
//
// The same seed and Config always give the same blobs, manifests and tags (upload ids and
// their startedat times come from distribution and are not reproducible).
package synth

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Config sets the size and the mix of a generated registry. Probabilities are in [0, 1].
type Config struct {
	Repos          int // repositories, exactly; some names nest under others (a/b and a/b/c)
	ImagesPerRepo  int // top-level pushes per repository: 1..ImagesPerRepo, the seed decides
	LayersPerImage int // layers per image manifest: 1..LayersPerImage
	MaxLayerSize   int // layer bytes: 32..32+MaxLayerSize

	ShareRatio        float64 // a layer is drawn from the registry-wide shared pool
	IndexFraction     float64 // a top-level push is a manifest list / OCI image index
	NestedFraction    float64 // an OCI index also contains another OCI index
	ReferrerFraction  float64 // a pushed image or index gets referrers (signature, SBOM, ...)
	CrossRepoFraction float64 // a top-level push is also pushed to another repository

	RetagFraction  float64 // a tag is moved to a newly pushed manifest
	UntagFraction  float64 // a tag is deleted (repo.Tags(ctx).Untag)
	DeleteFraction float64 // a top-level manifest is deleted the way the HTTP API does it

	AbandonedLayers int // layers pushed and linked with no manifest ever referencing them
	Uploads         int // unfinished uploads (_uploads/<id> with data and startedat)

	// Layouts where distribution's GC is known to differ (docs/design.md); none in Small().
	UntaggedRepos int // extra repositories only ever pushed to by digest: no _manifests/tags
	OrphanRepos   int // extra repositories holding only _layers links (a first push abandoned)
}

// Small is the default used by tests: a handful of repositories with a few images each,
// every kind of content present for most seeds.
func Small() Config {
	return Config{
		Repos:             4,
		ImagesPerRepo:     4,
		LayersPerImage:    3,
		MaxLayerSize:      512,
		ShareRatio:        0.35,
		IndexFraction:     0.3,
		NestedFraction:    0.35,
		ReferrerFraction:  0.4,
		CrossRepoFraction: 0.2,
		RetagFraction:     0.3,
		UntagFraction:     0.15,
		DeleteFraction:    0.15,
		AbandonedLayers:   2,
		Uploads:           2,
	}
}

// Kind is the kind of a pushed manifest.
type Kind string

// Manifest kinds.
const (
	KindSchema2      Kind = "schema2"       // Docker image manifest v2 schema 2
	KindOCIManifest  Kind = "oci-manifest"  // OCI image manifest without subject
	KindManifestList Kind = "manifest-list" // Docker manifest list
	KindOCIIndex     Kind = "oci-index"     // OCI image index
	KindReferrer     Kind = "referrer"      // OCI image manifest with subject and artifactType
)

// Ref names a manifest in a repository.
type Ref struct {
	Repo   string
	Digest digest.Digest
}

// Referrer is an OCI referrer pushed to Repo.
type Referrer struct {
	Repo         string
	Digest       digest.Digest
	Subject      digest.Digest
	ArtifactType string
}

// Upload is an unfinished upload.
type Upload struct {
	Repo string
	ID   string
}

// Summary records what Populate generated and the final state it left.
type Summary struct {
	Seed  int64
	Repos []string // sorted; repositories with a _manifests directory

	UntaggedRepos []string // the subset of Repos never tagged (Config.UntaggedRepos)
	OrphanRepos   []string // repositories with only _layers, not in Repos

	// Final state: tag -> manifest digest, and the manifests that still have a revision
	// link, per repository.
	Tags      map[string]map[string]digest.Digest
	Manifests map[string]map[digest.Digest]Kind

	Pushed    map[Kind]int // manifest pushes by kind, copies into other repositories included
	Referrers []Referrer   // every referrer push, deleted ones included
	Copies    int          // top-level manifests also pushed to another repository
	Retagged  int          // tags moved to a new manifest
	Untagged  int          // tags removed by Untag (not counting the untags of deletes)
	Deleted   []Ref        // manifests deleted through the API sequence
	Abandoned int          // layers linked but never referenced by a manifest
	Uploads   []Upload

	Blobs map[digest.Digest]int64 // every blob written (layers, configs, manifests) -> size
}

// NewFilesystem opens a filesystem driver rooted at root and a registry on it with deletes
// enabled and no blob descriptor cache, as the registry's garbage-collect command does.
func NewFilesystem(ctx context.Context, root string) (driver.StorageDriver, distribution.Namespace, error) {
	drv := filesystem.New(filesystem.DriverParameters{RootDirectory: root, MaxThreads: 100})
	ns, err := storage.NewRegistry(ctx, drv, storage.EnableDelete)
	if err != nil {
		return nil, nil, err
	}
	return drv, ns, nil
}

// Populate fills ns with content decided by seed and cfg.
func Populate(ctx context.Context, ns distribution.Namespace, seed int64, cfg Config) (*Summary, error) {
	cfg = cfg.withDefaults()
	g := &gen{
		ctx: ctx,
		ns:  ns,
		cfg: cfg,
		rng: rand.New(rand.NewPCG(uint64(seed), 0x5eed5eed^uint64(seed)<<1)),
		sum: &Summary{
			Seed:      seed,
			Tags:      map[string]map[string]digest.Digest{},
			Manifests: map[string]map[digest.Digest]Kind{},
			Pushed:    map[Kind]int{},
			Blobs:     map[digest.Digest]int64{},
		},
	}
	if err := g.run(); err != nil {
		return g.sum, fmt.Errorf("synth seed %d: %w", seed, err)
	}
	return g.sum, nil
}

func (c Config) withDefaults() Config {
	c.Repos = max(c.Repos, 1)
	c.ImagesPerRepo = max(c.ImagesPerRepo, 1)
	c.LayersPerImage = max(c.LayersPerImage, 1)
	c.MaxLayerSize = max(c.MaxLayerSize, 1)
	return c
}

type blob struct {
	data []byte
	dgst digest.Digest
}

// mrec is a pushed manifest: enough to push it again elsewhere.
type mrec struct {
	kind      Kind
	mediaType string
	dgst      digest.Digest
	payload   []byte
	blobs     []blob  // config and layers
	children  []*mrec // index children, pushed before the index
	referrers []*mrec // referrers pushed for this manifest
	subject   digest.Digest
	artifact  string
}

func (m *mrec) descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: m.mediaType, Digest: m.dgst, Size: int64(len(m.payload))}
}

type repoState struct {
	name     string
	repo     distribution.Repository
	pool     []blob  // layers pushed to this repository
	top      []*mrec // tag candidates: images and indexes pushed at top level
	refs     []*mrec // referrers
	all      map[digest.Digest]*mrec
	tags     map[string]digest.Digest
	tagCount int
	noTags   bool // pushed to by digest only
}

type gen struct {
	ctx    context.Context
	ns     distribution.Namespace
	cfg    Config
	rng    *rand.Rand
	sum    *Summary
	shared []blob
	repos  []*repoState
	nonce  int
}

func (g *gen) chance(p float64) bool { return p > 0 && g.rng.Float64() < p }

func (g *gen) run() error {
	names := g.repoNames()
	for i := range g.cfg.UntaggedRepos {
		names = append(names, fmt.Sprintf("bydigest%d", i))
	}
	for i, name := range names {
		rs, err := g.repoState(name)
		if err != nil {
			return err
		}
		rs.noTags = i >= g.cfg.Repos
		g.repos = append(g.repos, rs)
	}
	for range max(2, g.cfg.Repos) {
		g.shared = append(g.shared, g.randomBlob())
	}
	for i := range g.cfg.OrphanRepos {
		rs, err := g.repoState(fmt.Sprintf("orphan%d", i))
		if err != nil {
			return err
		}
		for range 1 + g.rng.IntN(3) {
			if _, err := g.putBlob(rs, g.layer(rs)); err != nil {
				return err
			}
		}
		g.sum.OrphanRepos = append(g.sum.OrphanRepos, rs.name)
	}

	// Pushes. The first push of every repository is tagged, so that every repository has
	// a _manifests/tags directory (distribution's -m skips repositories without one).
	for _, rs := range g.repos {
		n := 1 + g.rng.IntN(g.cfg.ImagesPerRepo)
		for i := range n {
			m, err := g.pushTop(rs)
			if err != nil {
				return err
			}
			if !rs.noTags && (i == 0 || g.chance(0.8)) {
				if err := g.tag(rs, g.newTag(rs), m); err != nil {
					return err
				}
			}
		}
	}
	for range g.cfg.AbandonedLayers {
		rs := g.repos[g.rng.IntN(len(g.repos))]
		if _, err := g.putBlob(rs, g.randomBlob()); err != nil {
			return err
		}
		g.sum.Abandoned++
	}

	// Copies into other repositories (docker tag + push elsewhere, cosign copy).
	if len(g.repos) > 1 {
		for _, src := range g.repos {
			for _, m := range slices.Clone(src.top) {
				if !g.chance(g.cfg.CrossRepoFraction) {
					continue
				}
				dst := g.repos[g.rng.IntN(len(g.repos))]
				if dst == src {
					continue
				}
				if _, ok := dst.all[m.dgst]; ok {
					continue
				}
				if err := g.copyTo(dst, m, true); err != nil {
					return err
				}
				dst.top = append(dst.top, m)
				g.sum.Copies++
				if !dst.noTags && g.chance(0.5) {
					if err := g.tag(dst, g.newTag(dst), m); err != nil {
						return err
					}
				}
			}
		}
	}

	// Mutations: retags, API deletes, untags.
	for _, rs := range g.repos {
		for _, t := range sortedKeys(rs.tags) {
			if !g.chance(g.cfg.RetagFraction) {
				continue
			}
			var m *mrec
			if len(rs.top) > 1 && g.chance(0.3) {
				// Roll the tag to a manifest already in the repository (possibly one it
				// named before: its tag index then has both).
				m = rs.top[g.rng.IntN(len(rs.top))]
				if m.dgst == rs.tags[t] {
					continue
				}
			} else {
				var err error
				if m, err = g.pushTop(rs); err != nil {
					return err
				}
			}
			if err := g.tag(rs, t, m); err != nil {
				return err
			}
			g.sum.Retagged++
		}
		for _, m := range slices.Clone(rs.top) {
			if g.chance(g.cfg.DeleteFraction) {
				if err := g.apiDelete(rs, m); err != nil {
					return err
				}
			}
		}
		for _, m := range slices.Clone(rs.refs) {
			if g.chance(g.cfg.DeleteFraction / 2) {
				if err := g.apiDelete(rs, m); err != nil {
					return err
				}
			}
		}
		for _, t := range sortedKeys(rs.tags) {
			if g.chance(g.cfg.UntagFraction) {
				if err := rs.repo.Tags(g.ctx).Untag(g.ctx, t); err != nil {
					return fmt.Errorf("untag %s:%s: %w", rs.name, t, err)
				}
				delete(rs.tags, t)
				g.sum.Untagged++
			}
		}
	}

	for range g.cfg.Uploads {
		rs := g.repos[g.rng.IntN(len(g.repos))]
		bw, err := rs.repo.Blobs(g.ctx).Create(g.ctx)
		if err != nil {
			return fmt.Errorf("create upload in %s: %w", rs.name, err)
		}
		if _, err := bw.Write(g.randomBlob().data); err != nil {
			return fmt.Errorf("write upload in %s: %w", rs.name, err)
		}
		// Close keeps the upload resumable, as the PATCH handler does; no commit.
		if err := bw.Close(); err != nil {
			return fmt.Errorf("close upload in %s: %w", rs.name, err)
		}
		g.sum.Uploads = append(g.sum.Uploads, Upload{Repo: rs.name, ID: bw.ID()})
	}

	for _, rs := range g.repos {
		g.sum.Repos = append(g.sum.Repos, rs.name)
		if rs.noTags {
			g.sum.UntaggedRepos = append(g.sum.UntaggedRepos, rs.name)
		}
		g.sum.Tags[rs.name] = map[string]digest.Digest{}
		for t, d := range rs.tags {
			g.sum.Tags[rs.name][t] = d
		}
		g.sum.Manifests[rs.name] = map[digest.Digest]Kind{}
		for d, m := range rs.all {
			g.sum.Manifests[rs.name][d] = m.kind
		}
	}
	sort.Strings(g.sum.Repos)
	return nil
}

func (g *gen) repoState(name string) (*repoState, error) {
	named, err := reference.WithName(name)
	if err != nil {
		return nil, err
	}
	repo, err := g.ns.Repository(g.ctx, named)
	if err != nil {
		return nil, err
	}
	return &repoState{name: name, repo: repo, all: map[digest.Digest]*mrec{}, tags: map[string]digest.Digest{}}, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// repoNames picks distinct repository names; some nest under an earlier one.
func (g *gen) repoNames() []string {
	var names []string
	seen := map[string]bool{}
	for i := 0; len(names) < g.cfg.Repos; i++ {
		var name string
		switch r := g.rng.IntN(10); {
		case r < 4:
			name = fmt.Sprintf("app%d", i)
		case r < 7:
			name = fmt.Sprintf("team%d/svc%d", g.rng.IntN(3), i)
		default:
			if len(names) == 0 {
				name = fmt.Sprintf("base%d", i)
			} else {
				name = fmt.Sprintf("%s/sub%d", names[g.rng.IntN(len(names))], i)
			}
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	return names
}

func (g *gen) newTag(rs *repoState) string {
	rs.tagCount++
	switch g.rng.IntN(4) {
	case 0:
		if _, ok := rs.tags["latest"]; !ok {
			return "latest"
		}
	case 1:
		return fmt.Sprintf("1.%d.%d", rs.tagCount, g.rng.IntN(10))
	}
	return fmt.Sprintf("v%d", rs.tagCount)
}

func (g *gen) randomBlob() blob {
	n := 32 + g.rng.IntN(g.cfg.MaxLayerSize)
	b := make([]byte, (n+7)&^7)
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], g.rng.Uint64())
	}
	b = b[:n]
	return blob{data: b, dgst: digest.FromBytes(b)}
}

func (g *gen) putBlob(rs *repoState, b blob) (v1.Descriptor, error) {
	desc, err := rs.repo.Blobs(g.ctx).Put(g.ctx, "application/octet-stream", b.data)
	if err != nil {
		return desc, fmt.Errorf("put blob %s to %s: %w", b.dgst, rs.name, err)
	}
	if desc.Digest != b.dgst {
		return desc, fmt.Errorf("put blob to %s: digest %s, want %s", rs.name, desc.Digest, b.dgst)
	}
	g.sum.Blobs[b.dgst] = int64(len(b.data))
	return desc, nil
}

// layer picks a layer: from the shared pool, from this repository's earlier layers, or new.
func (g *gen) layer(rs *repoState) blob {
	switch {
	case g.chance(g.cfg.ShareRatio):
		return g.shared[g.rng.IntN(len(g.shared))]
	case len(rs.pool) > 0 && g.chance(0.3):
		return rs.pool[g.rng.IntN(len(rs.pool))]
	}
	b := g.randomBlob()
	rs.pool = append(rs.pool, b)
	return b
}

var platforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64", Variant: "v8"},
	{OS: "linux", Architecture: "arm", Variant: "v7"},
	{OS: "linux", Architecture: "s390x"},
	{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2700"},
}

func (g *gen) pushTop(rs *repoState) (*mrec, error) {
	var m *mrec
	var err error
	if g.chance(g.cfg.IndexFraction) {
		m, err = g.pushIndex(rs, g.rng.IntN(2) == 0, true)
	} else {
		m, err = g.pushImage(rs, g.rng.IntN(2) == 0, platforms[0])
	}
	if err != nil {
		return nil, err
	}
	rs.top = append(rs.top, m)
	if g.chance(g.cfg.ReferrerFraction) {
		if err := g.pushReferrers(rs, m, 0); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// pushImage pushes layers, a config and an image manifest (OCI or Docker schema2).
func (g *gen) pushImage(rs *repoState, oci bool, pf v1.Platform) (*mrec, error) {
	nl := 1 + g.rng.IntN(g.cfg.LayersPerImage)
	var layers []blob
	seen := map[digest.Digest]bool{}
	for range nl {
		l := g.layer(rs)
		if seen[l.dgst] {
			continue
		}
		seen[l.dgst] = true
		layers = append(layers, l)
	}
	g.nonce++
	img := v1.Image{
		Platform: pf,
		Config:   v1.ImageConfig{Env: []string{fmt.Sprintf("SYNTH=%d-%d", g.nonce, g.rng.Uint64())}},
		RootFS:   v1.RootFS{Type: "layers"},
	}
	for _, l := range layers {
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, digest.FromBytes(append([]byte("diff:"), l.data...)))
	}
	cj, err := json.Marshal(img)
	if err != nil {
		return nil, err
	}
	cfgBlob := blob{data: cj, dgst: digest.FromBytes(cj)}
	m := &mrec{blobs: append([]blob{cfgBlob}, layers...)}
	for _, b := range m.blobs {
		if _, err := g.putBlob(rs, b); err != nil {
			return nil, err
		}
	}

	var dm distribution.Manifest
	if oci {
		om := v1.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: v1.MediaTypeImageManifest,
			Config:    v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: cfgBlob.dgst, Size: int64(len(cj))},
		}
		for _, l := range layers {
			om.Layers = append(om.Layers, v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: l.dgst, Size: int64(len(l.data))})
		}
		if g.chance(0.3) {
			om.Annotations = map[string]string{"org.opencontainers.image.revision": fmt.Sprintf("%x", g.rng.Uint32())}
		}
		m.kind, m.mediaType = KindOCIManifest, v1.MediaTypeImageManifest
		dm, err = ociManifest(om)
	} else {
		sm := schema2.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: schema2.MediaTypeManifest,
			Config:    v1.Descriptor{MediaType: schema2.MediaTypeImageConfig, Digest: cfgBlob.dgst, Size: int64(len(cj))},
		}
		for _, l := range layers {
			sm.Layers = append(sm.Layers, v1.Descriptor{MediaType: schema2.MediaTypeLayer, Digest: l.dgst, Size: int64(len(l.data))})
		}
		m.kind, m.mediaType = KindSchema2, schema2.MediaTypeManifest
		dm, err = schema2.FromStruct(sm)
	}
	if err != nil {
		return nil, err
	}
	return m, g.putManifest(rs, m, dm)
}

// ociManifest keeps the marshalled image-spec bytes (artifactType, subject) as the payload.
func ociManifest(om v1.Manifest) (*ocischema.DeserializedManifest, error) {
	b, err := json.MarshalIndent(om, "", "   ")
	if err != nil {
		return nil, err
	}
	dm := &ocischema.DeserializedManifest{}
	return dm, dm.UnmarshalJSON(b)
}

// pushIndex pushes 2-3 child images (untagged, same repository) and a Docker manifest
// list or an OCI image index over them; an OCI index may nest another index.
func (g *gen) pushIndex(rs *repoState, oci, mayNest bool) (*mrec, error) {
	n := 2 + g.rng.IntN(2)
	perm := g.rng.Perm(len(platforms))
	m := &mrec{}
	for i := range n {
		c, err := g.pushImage(rs, oci, platforms[perm[i]])
		if err != nil {
			return nil, err
		}
		m.children = append(m.children, c)
		if g.chance(g.cfg.ReferrerFraction / 3) {
			if err := g.pushReferrers(rs, c, 0); err != nil {
				return nil, err
			}
		}
	}
	var nested *mrec
	if oci && mayNest && g.chance(g.cfg.NestedFraction) {
		c, err := g.pushIndex(rs, true, false)
		if err != nil {
			return nil, err
		}
		nested = c
		m.children = append(m.children, c)
	}

	var dm distribution.Manifest
	var err error
	if oci {
		idx := v1.Index{
			Versioned: specs.Versioned{SchemaVersion: 2},
			MediaType: v1.MediaTypeImageIndex,
		}
		for i, c := range m.children {
			d := c.descriptor()
			if c != nested {
				pf := platforms[perm[i]]
				d.Platform = &pf
			} else {
				d.Annotations = map[string]string{"synth.nested": "true"}
			}
			idx.Manifests = append(idx.Manifests, d)
		}
		b, merr := json.MarshalIndent(idx, "", "   ")
		if merr != nil {
			return nil, merr
		}
		di := &ocischema.DeserializedImageIndex{}
		err = di.UnmarshalJSON(b)
		m.kind, m.mediaType, dm = KindOCIIndex, v1.MediaTypeImageIndex, di
	} else {
		var descs []manifestlist.ManifestDescriptor
		for i, c := range m.children {
			pf := platforms[perm[i]]
			descs = append(descs, manifestlist.ManifestDescriptor{
				Descriptor: c.descriptor(),
				Platform: manifestlist.PlatformSpec{Architecture: pf.Architecture, OS: pf.OS,
					OSVersion: pf.OSVersion, Variant: pf.Variant},
			})
		}
		var ml *manifestlist.DeserializedManifestList
		ml, err = manifestlist.FromDescriptors(descs)
		m.kind, m.mediaType, dm = KindManifestList, manifestlist.MediaTypeManifestList, ml
	}
	if err != nil {
		return nil, err
	}
	return m, g.putManifest(rs, m, dm)
}

var artifactTypes = []struct{ artifact, layer string }{
	{"application/vnd.dev.cosign.artifact.sig.v1+json", "application/vnd.dev.cosign.simplesigning.v1+json"},
	{"application/vnd.cncf.notary.signature", "application/jose+json"},
	{"application/spdx+json", "application/spdx+json"},
	{"application/vnd.in-toto+json", "application/vnd.in-toto+json"},
}

// pushReferrers pushes 1-2 untagged OCI manifests whose subject is subj (in rs), each with
// its own payload layer and either the shared empty config or a config blob of its own;
// a referrer may itself get a referrer (a signature of an SBOM).
func (g *gen) pushReferrers(rs *repoState, subj *mrec, depth int) error {
	for range 1 + g.rng.IntN(2) {
		at := artifactTypes[g.rng.IntN(len(artifactTypes))]
		payload := g.randomBlob()
		m := &mrec{kind: KindReferrer, mediaType: v1.MediaTypeImageManifest, subject: subj.dgst, artifact: at.artifact}
		om := v1.Manifest{
			Versioned:    specs.Versioned{SchemaVersion: 2},
			MediaType:    v1.MediaTypeImageManifest,
			ArtifactType: at.artifact,
			Layers:       []v1.Descriptor{{MediaType: at.layer, Digest: payload.dgst, Size: int64(len(payload.data))}},
			Subject:      &v1.Descriptor{MediaType: subj.mediaType, Digest: subj.dgst, Size: int64(len(subj.payload))},
			Annotations:  map[string]string{"synth.referrer": fmt.Sprint(g.rng.Uint32())},
		}
		if g.chance(0.6) {
			empty := []byte("{}")
			m.blobs = append(m.blobs, blob{data: empty, dgst: digest.FromBytes(empty)})
			om.Config = v1.Descriptor{MediaType: v1.MediaTypeEmptyJSON, Digest: v1.DescriptorEmptyJSON.Digest, Size: 2}
		} else {
			cb := g.randomBlob()
			m.blobs = append(m.blobs, cb)
			om.Config = v1.Descriptor{MediaType: "application/vnd.synth.artifact.config.v1+json", Digest: cb.dgst, Size: int64(len(cb.data))}
		}
		m.blobs = append(m.blobs, payload)
		for _, b := range m.blobs {
			if _, err := g.putBlob(rs, b); err != nil {
				return err
			}
		}
		dm, err := ociManifest(om)
		if err != nil {
			return err
		}
		if err := g.putManifest(rs, m, dm); err != nil {
			return err
		}
		subj.referrers = append(subj.referrers, m)
		rs.refs = append(rs.refs, m)
		g.sum.Referrers = append(g.sum.Referrers, Referrer{Repo: rs.name, Digest: m.dgst, Subject: subj.dgst, ArtifactType: at.artifact})
		if depth == 0 && g.chance(0.25) {
			if err := g.pushReferrers(rs, m, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (g *gen) putManifest(rs *repoState, m *mrec, dm distribution.Manifest) error {
	_, payload, err := dm.Payload()
	if err != nil {
		return err
	}
	ms, err := rs.repo.Manifests(g.ctx)
	if err != nil {
		return err
	}
	d, err := ms.Put(g.ctx, dm)
	if err != nil {
		return fmt.Errorf("put %s manifest to %s: %w", m.kind, rs.name, err)
	}
	if d != digest.FromBytes(payload) {
		return fmt.Errorf("put %s manifest to %s: digest %s is not the payload's", m.kind, rs.name, d)
	}
	m.dgst, m.payload = d, payload
	rs.all[d] = m
	g.sum.Pushed[m.kind]++
	g.sum.Blobs[d] = int64(len(payload))
	return nil
}

// copyTo pushes m (children first, blobs, then the same manifest bytes) to dst, and with
// withReferrers sometimes its referrers too.
func (g *gen) copyTo(dst *repoState, m *mrec, withReferrers bool) error {
	for _, c := range m.children {
		if _, ok := dst.all[c.dgst]; ok {
			continue
		}
		if err := g.copyTo(dst, c, false); err != nil {
			return err
		}
	}
	for _, b := range m.blobs {
		if _, err := g.putBlob(dst, b); err != nil {
			return err
		}
	}
	dm, _, err := distribution.UnmarshalManifest(m.mediaType, m.payload)
	if err != nil {
		return fmt.Errorf("copy %s: %w", m.dgst, err)
	}
	if err := g.putManifest(dst, m, dm); err != nil {
		return err
	}
	if withReferrers {
		for _, r := range m.referrers {
			if _, ok := dst.all[r.dgst]; ok || !g.chance(0.5) {
				continue
			}
			if err := g.copyTo(dst, r, false); err != nil {
				return err
			}
			dst.refs = append(dst.refs, r)
			g.sum.Referrers = append(g.sum.Referrers, Referrer{Repo: dst.name, Digest: r.dgst, Subject: r.subject, ArtifactType: r.artifact})
		}
	}
	return nil
}

func (g *gen) tag(rs *repoState, tag string, m *mrec) error {
	if err := rs.repo.Tags(g.ctx).Tag(g.ctx, tag, m.descriptor()); err != nil {
		return fmt.Errorf("tag %s:%s: %w", rs.name, tag, err)
	}
	rs.tags[tag] = m.dgst
	return nil
}

// apiDelete deletes a manifest as DELETE /v2/<name>/manifests/<digest> does: untag every
// tag whose current link names it, then delete the revision link.
func (g *gen) apiDelete(rs *repoState, m *mrec) error {
	if _, ok := rs.all[m.dgst]; !ok {
		return nil
	}
	ts := rs.repo.Tags(g.ctx)
	tags, err := ts.Lookup(g.ctx, v1.Descriptor{Digest: m.dgst})
	if err != nil {
		return fmt.Errorf("lookup tags of %s@%s: %w", rs.name, m.dgst, err)
	}
	for _, t := range tags {
		if err := ts.Untag(g.ctx, t); err != nil {
			return fmt.Errorf("untag %s:%s: %w", rs.name, t, err)
		}
		delete(rs.tags, t)
	}
	ms, err := rs.repo.Manifests(g.ctx)
	if err != nil {
		return err
	}
	if err := ms.Delete(g.ctx, m.dgst); err != nil {
		return fmt.Errorf("delete %s@%s: %w", rs.name, m.dgst, err)
	}
	delete(rs.all, m.dgst)
	rs.top = slices.DeleteFunc(rs.top, func(x *mrec) bool { return x == m })
	rs.refs = slices.DeleteFunc(rs.refs, func(x *mrec) bool { return x == m })
	g.sum.Deleted = append(g.sum.Deleted, Ref{Repo: rs.name, Digest: m.dgst})
	return nil
}
