package graph

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/regsweep/regsweep/storage"
)

// MaxManifestSize is the largest manifest read, as in distribution.
const MaxManifestSize = 4 << 20

// Media types of legacy schema1 manifests, which distribution v3 no longer parses.
const (
	MediaTypeSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// ErrUnknownMediaType is wrapped when a manifest's media type is not one we parse.
var ErrUnknownMediaType = errors.New("unknown manifest media type")

// EdgeKind says what a manifest's reference points at.
type EdgeKind byte

// Edge kinds, stored as one byte in the index.
const (
	EdgeConfig  EdgeKind = 'c' // image config blob
	EdgeLayer   EdgeKind = 'l' // layer (or artifact) blob
	EdgeChild   EdgeKind = 'm' // index / manifest list -> child manifest
	EdgeSubject EdgeKind = 's' // referrer -> subject (OCI 1.1)
	EdgeFSLayer EdgeKind = 'f' // schema1 fsLayers blob
)

func (k EdgeKind) String() string {
	switch k {
	case EdgeConfig:
		return "config"
	case EdgeLayer:
		return "layer"
	case EdgeChild:
		return "child"
	case EdgeSubject:
		return "subject"
	case EdgeFSLayer:
		return "fslayer"
	case EdgeMentions:
		return "mentions"
	case EdgeMaybeIndexed:
		return "maybe-indexed"
	case EdgeReferrer:
		return "referrer"
	}
	return fmt.Sprintf("edge(%c)", byte(k))
}

// Ref is one reference out of a parsed manifest.
type Ref struct {
	Kind   EdgeKind
	Digest digest.Digest
	Size   int64 // as the descriptor says; -1 when the format has none (schema1)
	// Platform of an index child ("linux/arm64/v8"), when the index gives one.
	Platform string
}

// PlatformString renders a platform as os/architecture[/variant] ("" for none).
func PlatformString(p *v1.Platform) string {
	if p == nil || p.OS == "" && p.Architecture == "" {
		return ""
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Parsed is what a manifest says about the graph.
type Parsed struct {
	MediaType    string
	ArtifactType string
	Refs         []Ref
}

// EdgeParser turns the bytes of one kind of manifest into references.
type EdgeParser interface {
	Parse(b []byte) (Parsed, error)
}

type (
	schema2Parser      struct{}
	manifestListParser struct{}
	ociManifestParser  struct{}
	ociIndexParser     struct{}
	schema1Parser      struct{}
)

var (
	_ EdgeParser = schema2Parser{}
	_ EdgeParser = manifestListParser{}
	_ EdgeParser = ociManifestParser{}
	_ EdgeParser = ociIndexParser{}
	_ EdgeParser = schema1Parser{}
)

var parsers = map[string]EdgeParser{
	schema2.MediaTypeManifest:          schema2Parser{},
	manifestlist.MediaTypeManifestList: manifestListParser{},
	v1.MediaTypeImageManifest:          ociManifestParser{},
	v1.MediaTypeImageIndex:             ociIndexParser{},
	MediaTypeSchema1:                   schema1Parser{},
	MediaTypeSchema1Signed:             schema1Parser{},
}

// ParseManifest picks the parser by the stored mediaType (and schemaVersion), as
// distribution's manifest store does; an OCI document without mediaType is an index
// when it has "manifests".
func ParseManifest(b []byte) (Parsed, error) {
	var head struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
		Config        json.RawMessage `json:"config"`
		Layers        json.RawMessage `json:"layers"`
		FSLayers      json.RawMessage `json:"fsLayers"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return Parsed{}, fmt.Errorf("not JSON: %w", err)
	}
	mt := head.MediaType
	switch head.SchemaVersion {
	case 1:
		if mt == "" {
			mt = MediaTypeSchema1
		}
		if mt != MediaTypeSchema1 && mt != MediaTypeSchema1Signed {
			return Parsed{}, fmt.Errorf("schemaVersion 1 with mediaType %q: %w", mt, ErrUnknownMediaType)
		}
	case 2:
		if mt == "" {
			mt = v1.MediaTypeImageManifest
			if head.Manifests != nil {
				mt = v1.MediaTypeImageIndex
			}
		}
	default:
		return Parsed{}, fmt.Errorf("schemaVersion %d: %w", head.SchemaVersion, ErrUnknownMediaType)
	}
	if head.SchemaVersion == 2 && (mt == MediaTypeSchema1 || mt == MediaTypeSchema1Signed) {
		return Parsed{}, fmt.Errorf("schemaVersion 2 with mediaType %q: %w", mt, ErrUnknownMediaType)
	}
	// A document carrying the reference fields of two kinds would lose references
	// whichever parser read it: refuse it rather than guess.
	isIndex := mt == v1.MediaTypeImageIndex || mt == manifestlist.MediaTypeManifestList
	if isIndex && (head.Config != nil || head.Layers != nil) || !isIndex && head.Manifests != nil && head.SchemaVersion == 2 ||
		head.FSLayers != nil && head.SchemaVersion != 1 {
		return Parsed{}, fmt.Errorf("mediaType %q with references of another manifest kind (manifests, config/layers, fsLayers): ambiguous", mt)
	}
	p, ok := parsers[mt]
	if !ok {
		return Parsed{}, fmt.Errorf("%q: %w", mt, ErrUnknownMediaType)
	}
	out, err := p.Parse(b)
	if err != nil {
		return Parsed{}, err
	}
	out.MediaType = mt
	for _, r := range out.Refs {
		if err := storage.ValidDigest(r.Digest); err != nil {
			return Parsed{}, fmt.Errorf("%s reference %q: %w", r.Kind, r.Digest, err)
		}
	}
	return out, nil
}

func blobRefs(config v1.Descriptor, layers []v1.Descriptor) []Ref {
	refs := make([]Ref, 0, 1+len(layers))
	refs = append(refs, Ref{Kind: EdgeConfig, Digest: config.Digest, Size: config.Size})
	for _, l := range layers {
		refs = append(refs, Ref{Kind: EdgeLayer, Digest: l.Digest, Size: l.Size})
	}
	return refs
}

func (schema2Parser) Parse(b []byte) (Parsed, error) {
	var m schema2.DeserializedManifest
	if err := m.UnmarshalJSON(b); err != nil {
		return Parsed{}, fmt.Errorf("docker schema2 manifest: %w", err)
	}
	return Parsed{Refs: blobRefs(m.Config, m.Layers)}, nil
}

func (manifestListParser) Parse(b []byte) (Parsed, error) {
	var m manifestlist.DeserializedManifestList
	if err := m.UnmarshalJSON(b); err != nil {
		return Parsed{}, fmt.Errorf("docker manifest list: %w", err)
	}
	var p Parsed
	for _, c := range m.Manifests {
		pl := c.Platform
		p.Refs = append(p.Refs, Ref{Kind: EdgeChild, Digest: c.Digest, Size: c.Size,
			Platform: PlatformString(&v1.Platform{OS: pl.OS, Architecture: pl.Architecture, Variant: pl.Variant})})
	}
	return p, nil
}

// OCI documents are read with image-spec's structs: distribution's lack subject
// and artifactType, and dropping subject would lose referrers.
func (ociManifestParser) Parse(b []byte) (Parsed, error) {
	var m v1.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Parsed{}, fmt.Errorf("oci image manifest: %w", err)
	}
	if m.MediaType != "" && m.MediaType != v1.MediaTypeImageManifest {
		return Parsed{}, fmt.Errorf("oci image manifest with mediaType %q: %w", m.MediaType, ErrUnknownMediaType)
	}
	if m.Config.Digest == "" {
		return Parsed{}, errors.New("oci image manifest without config")
	}
	p := Parsed{ArtifactType: m.ArtifactType, Refs: blobRefs(m.Config, m.Layers)}
	if m.Subject != nil {
		p.Refs = append(p.Refs, Ref{Kind: EdgeSubject, Digest: m.Subject.Digest, Size: m.Subject.Size})
	}
	return p, nil
}

func (ociIndexParser) Parse(b []byte) (Parsed, error) {
	var m v1.Index
	if err := json.Unmarshal(b, &m); err != nil {
		return Parsed{}, fmt.Errorf("oci image index: %w", err)
	}
	p := Parsed{ArtifactType: m.ArtifactType}
	for _, c := range m.Manifests {
		p.Refs = append(p.Refs, Ref{Kind: EdgeChild, Digest: c.Digest, Size: c.Size, Platform: PlatformString(c.Platform)})
	}
	if m.Subject != nil {
		p.Refs = append(p.Refs, Ref{Kind: EdgeSubject, Digest: m.Subject.Digest, Size: m.Subject.Size})
	}
	return p, nil
}

// schema1 has no distribution type any more; only fsLayers matter to the graph.
func (schema1Parser) Parse(b []byte) (Parsed, error) {
	var m struct {
		FSLayers []struct {
			BlobSum digest.Digest `json:"blobSum"`
		} `json:"fsLayers"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return Parsed{}, fmt.Errorf("schema1 manifest: %w", err)
	}
	if len(m.FSLayers) == 0 {
		return Parsed{}, errors.New("schema1 manifest without fsLayers")
	}
	var p Parsed
	for _, l := range m.FSLayers {
		p.Refs = append(p.Refs, Ref{Kind: EdgeFSLayer, Digest: l.BlobSum, Size: -1})
	}
	return p, nil
}
