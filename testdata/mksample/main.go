// Command mksample writes testdata/sample: a small registry in the real v2 layout,
// pushed through distribution's own storage API, used by tests and by `make demo`.
// With -builds it writes testdata/builds instead: a CI registry of many builds and
// releases for the retention policy demo (push times in testdata/builds/pushed.tsv).
//
//	go run ./testdata/mksample testdata/sample/registry
//	go run ./testdata/mksample -builds testdata/builds/registry
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func main() {
	builds := len(os.Args) == 3 && os.Args[1] == "-builds"
	if len(os.Args) != 2 && !builds {
		log.Fatal("usage: mksample [-builds] DIR")
	}
	dir := os.Args[len(os.Args)-1]
	if err := os.RemoveAll(dir); err != nil {
		log.Fatal(err)
	}
	gen := run
	if builds {
		gen = runBuilds
	}
	if err := gen(context.Background(), dir); err != nil {
		log.Fatal(err)
	}
}

type pusher struct {
	ctx  context.Context
	ns   distribution.Namespace
	repo distribution.Repository
}

func (p *pusher) use(name string) error {
	n, err := reference.WithName(name)
	if err != nil {
		return err
	}
	p.repo, err = p.ns.Repository(p.ctx, n)
	return err
}

func (p *pusher) blob(mt, content string) (v1.Descriptor, error) {
	d, err := p.repo.Blobs(p.ctx).Put(p.ctx, mt, []byte(content))
	d.MediaType = mt
	return d, err
}

func (p *pusher) put(m distribution.Manifest, tag string) (v1.Descriptor, error) {
	ms, err := p.repo.Manifests(p.ctx)
	if err != nil {
		return v1.Descriptor{}, err
	}
	d, err := ms.Put(p.ctx, m)
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt, b, _ := m.Payload()
	desc := v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
	if tag != "" {
		err = p.repo.Tags(p.ctx).Tag(p.ctx, tag, desc)
	}
	return desc, err
}

// image pushes a config and layers and a manifest of the given kind.
func (p *pusher) image(oci bool, name string, layers []string, tag string) (v1.Descriptor, error) {
	cfgMT, layerMT := schema2.MediaTypeImageConfig, schema2.MediaTypeLayer
	if oci {
		cfgMT, layerMT = v1.MediaTypeImageConfig, v1.MediaTypeImageLayerGzip
	}
	cfg, err := p.blob(cfgMT, fmt.Sprintf(`{"architecture":"amd64","os":"linux","config":{"Labels":{"name":%q}}}`, name))
	if err != nil {
		return v1.Descriptor{}, err
	}
	var ls []v1.Descriptor
	for _, l := range layers {
		d, err := p.blob(layerMT, l)
		if err != nil {
			return v1.Descriptor{}, err
		}
		ls = append(ls, d)
	}
	if !oci {
		m, err := schema2.FromStruct(schema2.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: schema2.MediaTypeManifest, Config: cfg, Layers: ls})
		if err != nil {
			return v1.Descriptor{}, err
		}
		return p.put(m, tag)
	}
	return p.oci(v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest, Config: cfg, Layers: ls}, tag)
}

// oci stores an image-spec manifest as is, keeping subject and artifactType.
func (p *pusher) oci(m v1.Manifest, tag string) (v1.Descriptor, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return v1.Descriptor{}, err
	}
	var dm ocischema.DeserializedManifest
	if err := dm.UnmarshalJSON(b); err != nil {
		return v1.Descriptor{}, err
	}
	return p.put(&dm, tag)
}

func run(ctx context.Context, dir string) error {
	drv := filesystem.New(filesystem.DriverParameters{RootDirectory: dir, MaxThreads: 100})
	ns, err := storage.NewRegistry(ctx, drv, storage.EnableDelete)
	if err != nil {
		return err
	}
	p := &pusher{ctx: ctx, ns: ns}
	base := "base-os-layer: debian bookworm rootfs"

	// library/debian: a Docker image, re-pushed so 12.0 moved on; the old manifest is untagged.
	if err := p.use("library/debian"); err != nil {
		return err
	}
	if _, err := p.image(false, "debian-12.0", []string{base, "debian 12.0 security updates"}, "12"); err != nil {
		return err
	}
	if _, err := p.image(false, "debian-12.1", []string{base, "debian 12.1 security updates"}, "12"); err != nil {
		return err
	}

	// team/app/api: a multi-platform OCI index (two children) with a signature (referrer).
	if err := p.use("team/app/api"); err != nil {
		return err
	}
	amd, err := p.image(true, "api-amd64", []string{base, "api binary amd64"}, "")
	if err != nil {
		return err
	}
	arm, err := p.image(true, "api-arm64", []string{"base-os-layer arm64", "api binary arm64"}, "")
	if err != nil {
		return err
	}
	amd.Platform = &v1.Platform{Architecture: "amd64", OS: "linux"}
	arm.Platform = &v1.Platform{Architecture: "arm64", OS: "linux"}
	idx, err := ocischema.FromDescriptors([]v1.Descriptor{amd, arm}, nil)
	if err != nil {
		return err
	}
	idxDesc, err := p.put(idx, "v1")
	if err != nil {
		return err
	}
	empty, err := p.blob(v1.MediaTypeEmptyJSON, "{}")
	if err != nil {
		return err
	}
	sig, err := p.blob("application/vnd.dev.cosign.simplesigning.v1+json", `{"critical":{"image":{"docker-manifest-digest":"`+idxDesc.Digest.String()+`"}}}`)
	if err != nil {
		return err
	}
	subject := idxDesc
	if _, err := p.oci(v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
		ArtifactType: "application/vnd.dev.cosign.artifact.sig.v1+json", Config: empty, Layers: []v1.Descriptor{sig}, Subject: &subject}, ""); err != nil {
		return err
	}

	// team/app/web: shares the base layer; tag "old" deleted through the API's way (untag + delete).
	if err := p.use("team/app/web"); err != nil {
		return err
	}
	old, err := p.image(false, "web-old", []string{base, "web assets 2023"}, "old")
	if err != nil {
		return err
	}
	if _, err := p.image(false, "web-new", []string{base, "web assets 2024"}, "latest"); err != nil {
		return err
	}
	if err := p.repo.Tags(ctx).Untag(ctx, "old"); err != nil {
		return err
	}
	ms, err := p.repo.Manifests(ctx)
	if err != nil {
		return err
	}
	if err := ms.Delete(ctx, old.Digest); err != nil {
		return err
	}
	// A Docker manifest list over the new image, tagged "multi".
	web, err := p.image(false, "web-new", []string{base, "web assets 2024"}, "")
	if err != nil {
		return err
	}
	ml, err := manifestlist.FromDescriptors([]manifestlist.ManifestDescriptor{{Descriptor: web, Platform: manifestlist.PlatformSpec{Architecture: "amd64", OS: "linux"}}})
	if err != nil {
		return err
	}
	if _, err := p.put(ml, "multi"); err != nil {
		return err
	}

	// An abandoned upload, started long ago.
	w, err := p.repo.Blobs(ctx).Create(ctx)
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte("half an upload")); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	started := filepath.Join(dir, "docker/registry/v2/repositories/team/app/web/_uploads", w.ID(), "startedat")
	if err := os.WriteFile(started, []byte(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).Format(time.RFC3339)), 0o644); err != nil {
		return err
	}

	// An orphan blob: data in the blob store that no repository links.
	orphan := "orphan blob: uploaded by a crashed client"
	od := digest.FromString(orphan)
	return drv.PutContent(ctx, fmt.Sprintf("/docker/registry/v2/blobs/sha256/%s/%s/data", od.Encoded()[:2], od.Encoded()), []byte(orphan))
}
