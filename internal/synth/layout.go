package synth

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/regsweep/regsweep/storage"
)

// Layout sizes a registry written straight into the v2 layout, for benchmarks: the
// same files a registry would write, without its API, so that large trees are quick
// to make on any driver.
type Layout struct {
	Repos             int
	ManifestsPerRepo  int
	TagsPerRepo       int // tags point at distinct manifests; the rest are untagged
	LayersPerManifest int
	ShareRatio        float64 // chance a layer comes from the registry-wide shared pool
	IndexFraction     float64 // chance a tag points at an index over two manifests
	OrphanBlobs       int     // blobs nothing links
	BlobSize          int     // bytes of each config and layer
	Namespaces        int     // top-level names the repositories are spread over (10 if 0)
	Workers           int     // concurrent writes
}

// LayoutStats counts what Generate wrote.
type LayoutStats struct {
	Repos, Manifests, Indexes, Tags, Blobs, Files int
}

// Generate writes a seeded registry into drv.
func Generate(ctx context.Context, drv driver.StorageDriver, seed uint64, l Layout) (*LayoutStats, error) {
	if l.Workers < 1 {
		l.Workers = 16
	}
	if l.BlobSize < 1 {
		l.BlobSize = 64
	}
	if l.Namespaces < 1 {
		l.Namespaces = 10
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(l.Workers)
	var (
		mu      sync.Mutex
		st      LayoutStats
		written = map[digest.Digest]bool{}
	)
	put := func(spec storage.Spec, b []byte) error {
		p, err := storage.Path(spec)
		if err != nil {
			return err
		}
		mu.Lock()
		st.Files++
		mu.Unlock()
		g.Go(func() error { return drv.PutContent(ctx, p, b) })
		return nil
	}
	blob := func(b []byte) (digest.Digest, error) {
		d := digest.FromBytes(b)
		mu.Lock()
		seen := written[d]
		written[d] = true
		if !seen {
			st.Blobs++
		}
		mu.Unlock()
		if seen {
			return d, nil
		}
		return d, put(storage.Spec{Kind: storage.BlobData, Digest: d}, b)
	}
	random := func() []byte {
		b := make([]byte, l.BlobSize)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	pool := make([][]byte, max(1, l.Repos*l.ManifestsPerRepo*l.LayersPerManifest/20))
	for i := range pool {
		pool[i] = random()
	}
	link := func(kind storage.Kind, repo string, d digest.Digest) error {
		return put(storage.Spec{Kind: kind, Repo: repo, Digest: d}, []byte(d))
	}
	// putManifest stores a manifest or index blob and links it into repo.
	putManifest := func(repo, mediaType string, v any) (v1.Descriptor, error) {
		b, err := json.Marshal(v)
		if err != nil {
			return v1.Descriptor{}, err
		}
		d, err := blob(b)
		if err != nil {
			return v1.Descriptor{}, err
		}
		return v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(b))}, link(storage.RevisionLink, repo, d)
	}
	for r := 0; r < l.Repos; r++ {
		repo := fmt.Sprintf("team%d/app%d", r%l.Namespaces, r)
		st.Repos++
		var mans []v1.Descriptor
		for m := 0; m < l.ManifestsPerRepo; m++ {
			cfg, err := blob(random())
			if err != nil {
				return nil, err
			}
			if err := link(storage.LayerLink, repo, cfg); err != nil {
				return nil, err
			}
			man := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
				Config: v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: cfg, Size: int64(l.BlobSize)}}
			for i := 0; i < l.LayersPerManifest; i++ {
				var b []byte
				if rng.Float64() < l.ShareRatio {
					b = pool[rng.IntN(len(pool))]
				} else {
					b = random()
				}
				d, err := blob(b)
				if err != nil {
					return nil, err
				}
				if err := link(storage.LayerLink, repo, d); err != nil {
					return nil, err
				}
				man.Layers = append(man.Layers, v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: d, Size: int64(len(b))})
			}
			desc, err := putManifest(repo, v1.MediaTypeImageManifest, man)
			if err != nil {
				return nil, err
			}
			st.Manifests++
			mans = append(mans, desc)
		}
		for t := 0; t < l.TagsPerRepo && t < len(mans); t++ {
			target := mans[t]
			if rng.Float64() < l.IndexFraction && t+1 < len(mans) {
				idx := v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex,
					Manifests: []v1.Descriptor{mans[t], mans[len(mans)-1-t%max(1, len(mans)-l.TagsPerRepo)]}}
				desc, err := putManifest(repo, v1.MediaTypeImageIndex, idx)
				if err != nil {
					return nil, err
				}
				st.Indexes++
				target = desc
			}
			tag := fmt.Sprintf("v%d", t)
			if err := put(storage.Spec{Kind: storage.TagCurrentLink, Repo: repo, Tag: tag}, []byte(target.Digest)); err != nil {
				return nil, err
			}
			if err := put(storage.Spec{Kind: storage.TagIndexLink, Repo: repo, Tag: tag, Digest: target.Digest}, []byte(target.Digest)); err != nil {
				return nil, err
			}
			st.Tags++
		}
	}
	for i := 0; i < l.OrphanBlobs; i++ {
		if _, err := blob(random()); err != nil {
			return nil, err
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return &st, nil
}
