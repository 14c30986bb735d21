//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types of the Docker schema2 family (the OCI ones come from image-spec).
const (
	mtDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtDockerConfig   = "application/vnd.docker.container.image.v1+json"
	mtDockerLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// blob is content as the registry stores it under blobs/: a layer, a config or a
// manifest. name is for humans reading a failed assertion.
type blob struct {
	name      string
	mediaType string
	data      []byte
	digest    digest.Digest
	diffID    digest.Digest // layers: digest of the uncompressed tar
}

func newBlob(name, mediaType string, data []byte) *blob {
	return &blob{name: name, mediaType: mediaType, data: data, digest: digest.FromBytes(data)}
}

func (b *blob) size() int64 { return int64(len(b.data)) }

func (b *blob) descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: b.mediaType, Digest: b.digest, Size: b.size()}
}

// layer makes a gzipped tar holding one file of n pseudo-random (incompressible,
// so sizes stay meaningful) bytes, deterministic in name.
func layer(name string, n int) []byte {
	seed := digest.FromString(name)
	r := rand.New(rand.NewChaCha8([32]byte(mustHex(seed))))
	content := make([]byte, n)
	for i := range content {
		content[i] = byte(r.Uint32())
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	mt := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "data/", Mode: 0o755, ModTime: mt}))
	must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "data/" + name, Mode: 0o644, Size: int64(n), ModTime: mt}))
	_, err := tw.Write(content)
	must(err)
	must(tw.Close())
	return tb.Bytes()
}

func mustHex(d digest.Digest) []byte {
	b, err := hex.DecodeString(d.Encoded())
	must(err)
	return b
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed) // no name, zero mtime: deterministic
	_, err := zw.Write(b)
	must(err)
	must(zw.Close())
	return out.Bytes()
}

// layerBlob is a layer of n bytes; oci picks the OCI or the Docker media type. The
// bytes (and so the digest) do not depend on the media type, so one layer can be
// shared by OCI and Docker images.
func layerBlob(name string, n int, oci bool) *blob {
	raw := layer(name, n)
	mt := v1.MediaTypeImageLayerGzip
	if !oci {
		mt = mtDockerLayer
	}
	b := newBlob("layer "+name, mt, gz(raw))
	b.diffID = digest.FromBytes(raw)
	return b
}

// manifest is an image (config and layers) or an index (children).
type manifest struct {
	blob
	config   *blob
	layers   []*blob
	children []*manifest
	subject  *manifest // OCI 1.1 referrers (signatures, SBOMs)
	oci      bool
}

func (m *manifest) isIndex() bool { return m.children != nil }

// refs is what distribution 2.8.2's References() returns: config and layers of an
// image, the children of an index (their manifests only).
func (m *manifest) refs() []*blob {
	if m.isIndex() {
		var out []*blob
		for _, c := range m.children {
			out = append(out, &c.blob)
		}
		return out
	}
	return append([]*blob{m.config}, m.layers...)
}

// closure calls fn with the manifest and everything it reaches, indexes recursively.
func (m *manifest) closure(fn func(*blob)) {
	fn(&m.blob)
	if m.isIndex() {
		for _, c := range m.children {
			c.closure(fn)
		}
		return
	}
	fn(m.config)
	for _, l := range m.layers {
		fn(l)
	}
}

// image builds an image manifest over layers, with a config naming it.
func image(name, arch string, oci bool, layers ...*blob) *manifest {
	var diffIDs []digest.Digest
	for _, l := range layers {
		if l.mediaType != layers[0].mediaType {
			panic("mixed layer media types in " + name)
		}
		diffIDs = append(diffIDs, l.diffID)
	}
	cfg := v1.Image{
		Created:  ptr(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)),
		Platform: v1.Platform{Architecture: arch, OS: "linux"},
		Config:   v1.ImageConfig{Labels: map[string]string{"e2e.image": name}, Cmd: []string{"/bin/true"}},
		RootFS:   v1.RootFS{Type: "layers", DiffIDs: diffIDs},
	}
	cfgBytes, err := json.Marshal(cfg)
	must(err)
	m := &manifest{oci: oci, layers: layers}
	var descs []v1.Descriptor
	for _, l := range layers {
		descs = append(descs, l.descriptor())
	}
	var mb []byte
	if oci {
		m.config = newBlob("config "+name, v1.MediaTypeImageConfig, cfgBytes)
		mb, err = json.MarshalIndent(v1.Manifest{
			Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
			Config: m.config.descriptor(), Layers: descs,
		}, "", "   ")
	} else {
		m.config = newBlob("config "+name, mtDockerConfig, cfgBytes)
		mb, err = json.MarshalIndent(struct {
			SchemaVersion int             `json:"schemaVersion"`
			MediaType     string          `json:"mediaType"`
			Config        v1.Descriptor   `json:"config"`
			Layers        []v1.Descriptor `json:"layers"`
		}{2, mtDockerManifest, m.config.descriptor(), descs}, "", "   ")
	}
	must(err)
	mt := v1.MediaTypeImageManifest
	if !oci {
		mt = mtDockerManifest
	}
	m.blob = *newBlob("manifest "+name, mt, mb)
	return m
}

// referrer builds an OCI 1.1 artifact manifest (empty config, artifactType) with one
// layer that refers to subject, as signatures and SBOMs do.
func referrer(name, artifactType string, subject *manifest, layer *blob) *manifest {
	cfg := newBlob("empty config", v1.MediaTypeEmptyJSON, []byte("{}"))
	mb, err := json.MarshalIndent(v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest, ArtifactType: artifactType,
		Config: cfg.descriptor(), Layers: []v1.Descriptor{layer.descriptor()}, Subject: ptr(subject.descriptor()),
	}, "", "   ")
	must(err)
	return &manifest{blob: *newBlob("referrer "+name, v1.MediaTypeImageManifest, mb), config: cfg, layers: []*blob{layer}, subject: subject, oci: true}
}

// rawBlob is an artifact layer: any bytes, any media type.
func rawBlob(name, mediaType string, n int) *blob {
	b := layer(name, n)
	return newBlob("artifact "+name, mediaType, b)
}

// index builds an OCI image index (oci) or a Docker manifest list over children,
// each with the platform of its config.
func index(name string, oci bool, children ...*manifest) *manifest {
	var descs []v1.Descriptor
	for _, c := range children {
		var cfg v1.Image
		must(json.Unmarshal(c.config.data, &cfg))
		d := c.descriptor()
		d.Platform = &v1.Platform{Architecture: cfg.Architecture, OS: cfg.OS}
		descs = append(descs, d)
	}
	mt := v1.MediaTypeImageIndex
	if !oci {
		mt = mtDockerList
	}
	b, err := json.MarshalIndent(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: mt, Manifests: descs}, "", "   ")
	must(err)
	return &manifest{blob: *newBlob("index "+name, mt, b), children: children, oci: oci}
}

// writeOCILayout writes one OCI image layout holding every manifest of ms (and all
// they reach), each top-level manifest under its ref name.
func writeOCILayout(dir string, refs map[string]*manifest) error {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	idx := v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex}
	names := make([]string, 0, len(refs))
	for n := range refs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		m := refs[n]
		if !m.oci {
			return fmt.Errorf("ref %s: skopeo's oci: transport refuses Docker media types", n)
		}
		var err error
		m.closure(func(b *blob) {
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, "blobs", "sha256", b.digest.Encoded()), b.data, 0o644)
			}
		})
		if err != nil {
			return err
		}
		d := m.descriptor()
		d.Annotations = map[string]string{v1.AnnotationRefName: n}
		idx.Manifests = append(idx.Manifests, d)
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, v1.ImageLayoutFile), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// writeDir writes m in skopeo's dir: transport format (version 1.1): manifest.json,
// blobs named by their hex digest, and for a list each instance's manifest as
// <hex>.manifest.json.
func writeDir(dir string, m *manifest) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "version"), []byte("Directory Transport Version: 1.1\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), m.data, 0o644); err != nil {
		return err
	}
	images := []*manifest{m}
	if m.isIndex() {
		images = m.children
		for _, c := range m.children {
			if err := os.WriteFile(filepath.Join(dir, c.digest.Encoded()+".manifest.json"), c.data, 0o644); err != nil {
				return err
			}
		}
	}
	for _, im := range images {
		for _, b := range append([]*blob{im.config}, im.layers...) {
			if err := os.WriteFile(filepath.Join(dir, b.digest.Encoded()), b.data, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func must(err error) {
	if err != nil {
		panic(err)
	}
}
