package graph_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/regsweep/regsweep/graph"
)

// errAny marks a case that must fail, for any reason.
var errAny = errors.New("any error")

func desc(mt, content string) v1.Descriptor {
	return v1.Descriptor{MediaType: mt, Digest: digest.FromString(content), Size: int64(len(content))}
}

func withPlatform(d v1.Descriptor, arch, os, variant string) v1.Descriptor {
	d.Platform = &v1.Platform{Architecture: arch, OS: os, Variant: variant}
	return d
}

type payloader interface {
	Payload() (string, []byte, error)
}

// payload returns the canonical bytes of a manifest built by distribution:
// payload(t)(schema2.FromStruct(m)).
func payload(t *testing.T) func(payloader, error) []byte {
	return func(m payloader, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		_, b, err := m.Payload()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// topLevel decodes the top-level keys of a document, to check that test inputs
// are shaped as their case claims.
func topLevel(t *testing.T, b []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("test input is not a JSON object: %v", err)
	}
	return m
}

type manifestCase struct {
	name    string
	input   []byte
	want    graph.Parsed
	wantErr error // nil: must parse; errAny: any error; else errors.Is
}

func runManifestCases(t *testing.T, cases []manifestCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := graph.ParseManifest(tc.input)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("ParseManifest: %v\ninput:\n%s", err, tc.input)
			case tc.wantErr != nil && err == nil:
				t.Fatalf("ParseManifest = %+v, want error\ninput:\n%s", got, tc.input)
			case tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
				t.Fatalf("ParseManifest error %v, want errors.Is %v", err, tc.wantErr)
			case tc.wantErr == nil:
				if d := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); d != "" {
					t.Errorf("ParseManifest mismatch (-want +got):\n%s", d)
				}
			}
			if err != nil {
				if d := cmp.Diff(graph.Parsed{}, got, cmpopts.EquateEmpty()); d != "" {
					t.Errorf("ParseManifest returned a non-zero Parsed with its error:\n%s", d)
				}
				if tc.wantErr != graph.ErrUnknownMediaType && errors.Is(err, graph.ErrUnknownMediaType) {
					t.Errorf("error %v wraps ErrUnknownMediaType, but the media type is known", err)
				}
			}
		})
	}
}

// Blobs and manifests the cases refer to.
var (
	dockerCfg = desc(schema2.MediaTypeImageConfig, `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}`)
	dockerL1  = desc(schema2.MediaTypeLayer, "docker layer 1")
	dockerL2  = desc(schema2.MediaTypeLayer, "docker layer 2")
	dockerL3  = desc(schema2.MediaTypeForeignLayer, "windows foreign layer")

	ociCfg = desc(v1.MediaTypeImageConfig, `{"architecture":"arm64","os":"linux","rootfs":{"type":"layers"}}`)
	ociL1  = desc(v1.MediaTypeImageLayerGzip, "oci layer 1")
	ociL2  = desc(v1.MediaTypeImageLayerZstd, "oci layer 2")

	amd64Manifest = withPlatform(desc(v1.MediaTypeImageManifest, "amd64 manifest"), "amd64", "linux", "")
	arm64Manifest = withPlatform(desc(v1.MediaTypeImageManifest, "arm64 manifest"), "arm64", "linux", "v8")
	attestation   = desc(v1.MediaTypeImageManifest, "buildkit attestation manifest")
	childIndex    = desc(v1.MediaTypeImageIndex, "nested child index")

	subjectImage = desc(v1.MediaTypeImageIndex, "the signed image index")
	cosignSig    = desc("application/vnd.dev.cosign.simplesigning.v1+json", `{"critical":{"type":"cosign container image signature"}}`)
	sbomLayer    = desc("application/spdx+json", `{"spdxVersion":"SPDX-2.3"}`)
)

// The digest of "{}", the OCI empty descriptor's content.
const emptyJSONDigest = digest.Digest("sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")

func TestEmptyJSONDigestConstant(t *testing.T) {
	if v1.DescriptorEmptyJSON.Digest != emptyJSONDigest || digest.FromString("{}") != emptyJSONDigest {
		t.Fatalf("empty JSON descriptor digest %s, want %s", v1.DescriptorEmptyJSON.Digest, emptyJSONDigest)
	}
}

const emptyLayerBlobSum = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"

var schema1Layer = digest.FromString("schema1 layer")

// An unsigned schema1 manifest as `docker push` to a v2.0 registry wrote it (fsLayers
// newest first, with the empty tar layer repeated).
var schema1Unsigned = `{
   "schemaVersion": 1,
   "mediaType": "application/vnd.docker.distribution.manifest.v1+json",
   "name": "library/hello-world",
   "tag": "latest",
   "architecture": "amd64",
   "fsLayers": [
      {
         "blobSum": "` + emptyLayerBlobSum + `"
      },
      {
         "blobSum": "` + string(schema1Layer) + `"
      },
      {
         "blobSum": "` + emptyLayerBlobSum + `"
      }
   ],
   "history": [
      {
         "v1Compatibility": "{\"id\":\"c4a1e8c1e6a2b3d5e7f90123456789abcdef0123456789abcdef0123456789ab\",\"parent\":\"b2a1e8c1e6a2b3d5e7f90123456789abcdef0123456789abcdef0123456789ab\",\"created\":\"2016-01-04T19:23:19.148873Z\",\"container_config\":{\"Cmd\":[\"/bin/sh\",\"-c\",\"#(nop) CMD [\\\"/hello\\\"]\"]},\"throwaway\":true}"
      },
      {
         "v1Compatibility": "{\"id\":\"b2a1e8c1e6a2b3d5e7f90123456789abcdef0123456789abcdef0123456789ab\",\"parent\":\"a1a1e8c1e6a2b3d5e7f90123456789abcdef0123456789abcdef0123456789ab\",\"created\":\"2016-01-04T19:23:18.726617Z\",\"container_config\":{\"Cmd\":[\"/bin/sh\",\"-c\",\"#(nop) COPY file:f9a8bd9a9c7f9a8b in /\"]}}"
      },
      {
         "v1Compatibility": "{\"id\":\"a1a1e8c1e6a2b3d5e7f90123456789abcdef0123456789abcdef0123456789ab\",\"created\":\"2016-01-04T19:23:18.1Z\",\"container_config\":{\"Cmd\":null},\"throwaway\":true}"
      }
   ]
}`

// The same manifest signed (JWS "prettyjws" form, as distribution 2.x stored it).
func schema1Signed(mediaType string) string {
	mt := ""
	if mediaType != "" {
		mt = `
   "mediaType": "` + mediaType + `",`
	}
	return `{
   "schemaVersion": 1,` + mt + `
   "name": "library/hello-world",
   "tag": "latest",
   "architecture": "amd64",
   "fsLayers": [
      {
         "blobSum": "` + emptyLayerBlobSum + `"
      },
      {
         "blobSum": "` + string(schema1Layer) + `"
      }
   ],
   "history": [
      {
         "v1Compatibility": "{\"id\":\"c4a1e8c1e6a2b3d5e7f90123456789abcdef0123456789abcdef0123456789ab\",\"created\":\"2016-01-04T19:23:19.148873Z\",\"throwaway\":true}"
      },
      {
         "v1Compatibility": "{\"id\":\"b2a1e8c1e6a2b3d5e7f90123456789abcdef0123456789abcdef0123456789ab\",\"created\":\"2016-01-04T19:23:18.726617Z\"}"
      }
   ],
   "signatures": [
      {
         "header": {
            "jwk": {
               "crv": "P-256",
               "kid": "OD6I:6DRK:JXEJ:KBM4:255X:NSAA:MUSF:E4VM:ZI6W:CUN2:L4Z6:LSF4",
               "kty": "EC",
               "x": "3gAwX48IQ5oaYQAYSxor6rYYc_6yjuLCjtQ9LUakg4A",
               "y": "t72ge6kIA1XOjqjVoEOiPPAURltJFBMGDSQvEGVB010"
            },
            "alg": "ES256"
         },
         "signature": "XREm0L8WNn27Ga_iE_vRnTxVMhhYY0Zst_FfkKopg6gWSoTOZTuW4rK0fg_IqnKkEKlbD83tD46LKEGi5aIVFg",
         "protected": "eyJmb3JtYXRMZW5ndGgiOjY2MjgsImZvcm1hdFRhaWwiOiJDbjAiLCJ0aW1lIjoiMjAxNS0wNC0wOFQxODo1Mjo1OVoifQ"
      }
   ]
}`
}

func TestParseManifest(t *testing.T) {
	// Docker schema2, built by distribution.
	dockerManifest := payload(t)(schema2.FromStruct(schema2.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: schema2.MediaTypeManifest,
		Config:    dockerCfg,
		Layers:    []v1.Descriptor{dockerL1, dockerL2, dockerL3},
	}))

	// Docker manifest list, built by distribution.
	dockerList := payload(t)(manifestlist.FromDescriptors([]manifestlist.ManifestDescriptor{
		{Descriptor: desc(schema2.MediaTypeManifest, "docker amd64"), Platform: manifestlist.PlatformSpec{Architecture: "amd64", OS: "linux"}},
		{Descriptor: desc(schema2.MediaTypeManifest, "docker arm v7"), Platform: manifestlist.PlatformSpec{Architecture: "arm", OS: "linux", Variant: "v7"}},
		{Descriptor: desc(schema2.MediaTypeManifest, "docker windows"), Platform: manifestlist.PlatformSpec{Architecture: "amd64", OS: "windows", OSVersion: "10.0.17763.1"}},
	}))
	// The same list as the Docker CLI of old wrote it, without mediaType: it is
	// read as an OCI index (the shape is the same).
	var listNoMT manifestlist.ManifestList
	if err := json.Unmarshal(dockerList, &listNoMT); err != nil {
		t.Fatal(err)
	}
	listNoMT.MediaType = ""
	dockerListNoMT := marshal(t, listNoMT)

	// OCI image manifest, built by distribution and by image-spec.
	ociManifest := payload(t)(ocischema.FromStruct(ocischema.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   v1.MediaTypeImageManifest,
		Config:      ociCfg,
		Layers:      []v1.Descriptor{ociL1, ociL2},
		Annotations: map[string]string{v1.AnnotationCreated: "2024-05-01T00:00:00Z"},
	}))
	ociManifestNoMT := marshal(t, v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		Config:    ociCfg,
		Layers:    []v1.Descriptor{ociL1, ociL2},
	})
	ociManifestNoLayers := marshal(t, v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    ociCfg,
	})

	// OCI index, built by distribution and by image-spec.
	ociIndex := payload(t)(ocischema.FromDescriptors([]v1.Descriptor{amd64Manifest, arm64Manifest, attestation},
		map[string]string{v1.AnnotationRefName: "v1"}))
	ociIndexNoMT := marshal(t, v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		Manifests: []v1.Descriptor{amd64Manifest, arm64Manifest},
	})
	ociIndexEmpty := marshal(t, v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
		Manifests: []v1.Descriptor{},
	})
	nestedIndex := marshal(t, v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
		Manifests: []v1.Descriptor{childIndex, amd64Manifest},
	})

	// OCI 1.1 referrers.
	subj := subjectImage
	signature := marshal(t, v1.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    v1.MediaTypeImageManifest,
		ArtifactType: "application/vnd.dev.cosign.artifact.sig.v1+json",
		Config:       v1.DescriptorEmptyJSON,
		Layers:       []v1.Descriptor{cosignSig},
		Subject:      &subj,
		Annotations:  map[string]string{"dev.cosignproject.cosign/signature": "MEUCIQ=="},
	})
	// An SBOM whose type is carried by the config media type (no artifactType).
	sbomCfg := desc("application/vnd.example.sbom.config.v1+json", `{"sbom":true}`)
	sbom := marshal(t, v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    sbomCfg,
		Layers:    []v1.Descriptor{sbomLayer},
		Subject:   &subj,
	})
	indexWithSubject := marshal(t, v1.Index{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    v1.MediaTypeImageIndex,
		ArtifactType: "application/vnd.example.attestations.v1",
		Manifests:    []v1.Descriptor{attestation},
		Subject:      &subj,
	})
	indexNoMTWithSubject := marshal(t, v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		Manifests: []v1.Descriptor{attestation},
		Subject:   &subj,
	})

	// The inputs must have the shape their case claims.
	for name, b := range map[string][]byte{"ociManifestNoMT": ociManifestNoMT, "ociIndexNoMT": ociIndexNoMT,
		"dockerListNoMT": dockerListNoMT, "indexNoMTWithSubject": indexNoMTWithSubject} {
		if _, ok := topLevel(t, b)["mediaType"]; ok {
			t.Fatalf("%s has a top-level mediaType:\n%s", name, b)
		}
	}
	if _, ok := topLevel(t, ociManifestNoMT)["manifests"]; ok {
		t.Fatalf("ociManifestNoMT has manifests:\n%s", ociManifestNoMT)
	}
	if !strings.Contains(string(signature), `"subject"`) || !strings.Contains(string(signature), `"artifactType"`) {
		t.Fatalf("signature lacks subject or artifactType:\n%s", signature)
	}

	cfg := func(d v1.Descriptor) graph.Ref {
		return graph.Ref{Kind: graph.EdgeConfig, Digest: d.Digest, Size: d.Size}
	}
	layer := func(d v1.Descriptor) graph.Ref {
		return graph.Ref{Kind: graph.EdgeLayer, Digest: d.Digest, Size: d.Size}
	}
	child := func(d v1.Descriptor) graph.Ref {
		return graph.Ref{Kind: graph.EdgeChild, Digest: d.Digest, Size: d.Size, Platform: graph.PlatformString(d.Platform)}
	}
	subject := func(d v1.Descriptor) graph.Ref {
		return graph.Ref{Kind: graph.EdgeSubject, Digest: d.Digest, Size: d.Size}
	}
	fsLayer := func(d digest.Digest) graph.Ref { return graph.Ref{Kind: graph.EdgeFSLayer, Digest: d, Size: -1} }

	var dl manifestlist.ManifestList
	if err := json.Unmarshal(dockerList, &dl); err != nil {
		t.Fatal(err)
	}
	// A Docker list's platform sits beside its descriptor.
	dockerChild := func(m manifestlist.ManifestDescriptor) graph.Ref {
		r := child(m.Descriptor)
		r.Platform = graph.PlatformString(&v1.Platform{OS: m.Platform.OS, Architecture: m.Platform.Architecture, Variant: m.Platform.Variant})
		return r
	}
	dockerChildren := []graph.Ref{dockerChild(dl.Manifests[0]), dockerChild(dl.Manifests[1]), dockerChild(dl.Manifests[2])}

	cases := []manifestCase{
		{
			name:  "docker schema2",
			input: dockerManifest,
			want: graph.Parsed{MediaType: schema2.MediaTypeManifest,
				Refs: []graph.Ref{cfg(dockerCfg), layer(dockerL1), layer(dockerL2), layer(dockerL3)}},
		},
		{
			name:  "docker schema2 compact JSON",
			input: []byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":7023,"digest":"` + string(dockerCfg.Digest) + `"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":32654,"digest":"` + string(dockerL2.Digest) + `"}]}`),
			want: graph.Parsed{MediaType: schema2.MediaTypeManifest,
				Refs: []graph.Ref{{Kind: graph.EdgeConfig, Digest: dockerCfg.Digest, Size: 7023}, {Kind: graph.EdgeLayer, Digest: dockerL2.Digest, Size: 32654}}},
		},
		{
			name:  "docker manifest list",
			input: dockerList,
			want:  graph.Parsed{MediaType: manifestlist.MediaTypeManifestList, Refs: dockerChildren},
		},
		{
			name:  "docker manifest list without mediaType reads as OCI index",
			input: dockerListNoMT,
			want:  graph.Parsed{MediaType: v1.MediaTypeImageIndex, Refs: dockerChildren},
		},
		{
			name:  "oci image manifest",
			input: ociManifest,
			want: graph.Parsed{MediaType: v1.MediaTypeImageManifest,
				Refs: []graph.Ref{cfg(ociCfg), layer(ociL1), layer(ociL2)}},
		},
		{
			name:  "oci image manifest without mediaType",
			input: ociManifestNoMT,
			want: graph.Parsed{MediaType: v1.MediaTypeImageManifest,
				Refs: []graph.Ref{cfg(ociCfg), layer(ociL1), layer(ociL2)}},
		},
		{
			name:  "oci image manifest without layers",
			input: ociManifestNoLayers,
			want:  graph.Parsed{MediaType: v1.MediaTypeImageManifest, Refs: []graph.Ref{cfg(ociCfg)}},
		},
		{
			name:  "oci index",
			input: ociIndex,
			want: graph.Parsed{MediaType: v1.MediaTypeImageIndex,
				Refs: []graph.Ref{child(amd64Manifest), child(arm64Manifest), child(attestation)}},
		},
		{
			name:  "oci index without mediaType, detected by manifests",
			input: ociIndexNoMT,
			want: graph.Parsed{MediaType: v1.MediaTypeImageIndex,
				Refs: []graph.Ref{child(amd64Manifest), child(arm64Manifest)}},
		},
		{
			name:  "oci index without mediaType and no children",
			input: []byte(`{"schemaVersion":2,"manifests":[]}`),
			want:  graph.Parsed{MediaType: v1.MediaTypeImageIndex},
		},
		{
			name:  "oci index empty",
			input: ociIndexEmpty,
			want:  graph.Parsed{MediaType: v1.MediaTypeImageIndex},
		},
		{
			name:  "nested index: a child index is still a child",
			input: nestedIndex,
			want: graph.Parsed{MediaType: v1.MediaTypeImageIndex,
				Refs: []graph.Ref{child(childIndex), child(amd64Manifest)}},
		},
		{
			name:  "oci artifact manifest with artifactType and subject",
			input: signature,
			want: graph.Parsed{MediaType: v1.MediaTypeImageManifest,
				ArtifactType: "application/vnd.dev.cosign.artifact.sig.v1+json",
				Refs:         []graph.Ref{{Kind: graph.EdgeConfig, Digest: emptyJSONDigest, Size: 2}, layer(cosignSig), subject(subjectImage)}},
		},
		{
			name:  "oci manifest with subject and no artifactType",
			input: sbom,
			want: graph.Parsed{MediaType: v1.MediaTypeImageManifest,
				Refs: []graph.Ref{cfg(sbomCfg), layer(sbomLayer), subject(subjectImage)}},
		},
		{
			name:  "oci index with subject and artifactType",
			input: indexWithSubject,
			want: graph.Parsed{MediaType: v1.MediaTypeImageIndex,
				ArtifactType: "application/vnd.example.attestations.v1",
				Refs:         []graph.Ref{child(attestation), subject(subjectImage)}},
		},
		{
			name:  "oci index without mediaType with subject",
			input: indexNoMTWithSubject,
			want: graph.Parsed{MediaType: v1.MediaTypeImageIndex,
				Refs: []graph.Ref{child(attestation), subject(subjectImage)}},
		},
		{
			name:  "schema1 unsigned",
			input: []byte(schema1Unsigned),
			want: graph.Parsed{MediaType: graph.MediaTypeSchema1,
				Refs: []graph.Ref{fsLayer(emptyLayerBlobSum), fsLayer(schema1Layer), fsLayer(emptyLayerBlobSum)}},
		},
		{
			name:  "schema1 unsigned without mediaType",
			input: []byte(strings.Replace(schema1Unsigned, `"mediaType": "application/vnd.docker.distribution.manifest.v1+json",`, "", 1)),
			want: graph.Parsed{MediaType: graph.MediaTypeSchema1,
				Refs: []graph.Ref{fsLayer(emptyLayerBlobSum), fsLayer(schema1Layer), fsLayer(emptyLayerBlobSum)}},
		},
		{
			name:  "schema1 signed",
			input: []byte(schema1Signed(graph.MediaTypeSchema1Signed)),
			want: graph.Parsed{MediaType: graph.MediaTypeSchema1Signed,
				Refs: []graph.Ref{fsLayer(emptyLayerBlobSum), fsLayer(schema1Layer)}},
		},
		{
			// Signed schema1 manifests usually carry no mediaType; the parser then
			// reports the unsigned type (the edges are the same).
			name:  "schema1 signed without mediaType",
			input: []byte(schema1Signed("")),
			want: graph.Parsed{MediaType: graph.MediaTypeSchema1,
				Refs: []graph.Ref{fsLayer(emptyLayerBlobSum), fsLayer(schema1Layer)}},
		},

		// Errors.
		{name: "empty input", input: nil, wantErr: errAny},
		{name: "not JSON", input: []byte("blob data, not a manifest"), wantErr: errAny},
		{name: "JSON array", input: []byte(`[{"schemaVersion":2}]`), wantErr: errAny},
		{name: "truncated schema2", input: dockerManifest[:len(dockerManifest)/2], wantErr: errAny},
		{name: "truncated oci index", input: ociIndex[:len(ociIndex)-2], wantErr: errAny},
		{name: "truncated schema1", input: []byte(schema1Unsigned[:200]), wantErr: errAny},
		{name: "schemaVersion as string", input: []byte(`{"schemaVersion":"2","mediaType":"application/vnd.oci.image.manifest.v1+json"}`), wantErr: errAny},
		{
			name:    "unknown mediaType: withdrawn OCI artifact manifest",
			input:   []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json","artifactType":"application/x","blobs":[{"mediaType":"application/x","digest":"` + string(ociL1.Digest) + `","size":11}]}`),
			wantErr: graph.ErrUnknownMediaType,
		},
		{
			name:    "unknown mediaType: image config",
			input:   []byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.container.image.v1+json"}`),
			wantErr: graph.ErrUnknownMediaType,
		},
		{
			name:    "config blob is not a manifest (no schemaVersion)",
			input:   []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`),
			wantErr: graph.ErrUnknownMediaType,
		},
		{name: "JSON null", input: []byte("null"), wantErr: graph.ErrUnknownMediaType},
		{
			name:    "schemaVersion 3",
			input:   []byte(`{"schemaVersion":3,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + string(ociCfg.Digest) + `","size":1}}`),
			wantErr: graph.ErrUnknownMediaType,
		},
		{
			name:    "schemaVersion 0",
			input:   []byte(`{"schemaVersion":0,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`),
			wantErr: graph.ErrUnknownMediaType,
		},
		{
			name:    "schemaVersion 1 with schema2 mediaType",
			input:   []byte(strings.Replace(string(dockerManifest), `"schemaVersion": 2`, `"schemaVersion": 1`, 1)),
			wantErr: graph.ErrUnknownMediaType,
		},
		{
			name:    "schemaVersion 2 with schema1 mediaType",
			input:   []byte(strings.Replace(schema1Unsigned, `"schemaVersion": 1`, `"schemaVersion": 2`, 1)),
			wantErr: graph.ErrUnknownMediaType,
		},
		{
			name:    "schema2 with a wrong mediaType inside",
			input:   []byte(strings.Replace(string(dockerManifest), schema2.MediaTypeManifest, "application/vnd.docker.distribution.manifest.v2+jsn", 1)),
			wantErr: graph.ErrUnknownMediaType,
		},
		{
			name:    "schema2 with a layer mediaType as its mediaType",
			input:   []byte(strings.Replace(string(dockerManifest), `"mediaType": "`+schema2.MediaTypeManifest, `"mediaType": "`+schema2.MediaTypeLayer, 1)),
			wantErr: graph.ErrUnknownMediaType,
		},
		{
			name:    "schema2 missing config",
			input:   []byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":1,"digest":"` + string(dockerL1.Digest) + `"}]}`),
			wantErr: errAny,
		},
		{
			name:    "schema2 layer with invalid digest",
			input:   []byte(strings.Replace(string(dockerManifest), string(dockerL2.Digest), "sha256:deadbeef", 1)),
			wantErr: digest.ErrDigestInvalidLength,
		},
		{
			name:    "schema2 config with unsupported algorithm",
			input:   []byte(strings.Replace(string(dockerManifest), string(dockerCfg.Digest), "md5:"+dockerCfg.Digest.Encoded(), 1)),
			wantErr: digest.ErrDigestUnsupported,
		},
		{
			name:    "schema2 layer with empty digest",
			input:   []byte(strings.Replace(string(dockerManifest), string(dockerL1.Digest), "", 1)),
			wantErr: errAny,
		},
		{
			name:    "manifest list child with invalid digest",
			input:   []byte(strings.Replace(string(dockerList), string(dl.Manifests[1].Digest), "sha256:"+strings.ToUpper(dl.Manifests[1].Digest.Encoded()), 1)),
			wantErr: digest.ErrDigestInvalidFormat,
		},
		{
			name:    "oci layer with invalid digest",
			input:   []byte(strings.Replace(string(ociManifest), string(ociL2.Digest), "sha256:not-hex", 1)),
			wantErr: errAny,
		},
		{
			name:    "oci index child with invalid digest",
			input:   []byte(strings.Replace(string(ociIndex), string(arm64Manifest.Digest), "sha256:0123", 1)),
			wantErr: digest.ErrDigestInvalidLength,
		},
		{
			name:    "oci subject with invalid digest",
			input:   []byte(strings.Replace(string(signature), string(subjectImage.Digest), "sha256:", 1)),
			wantErr: errAny,
		},
		{
			name:    "oci index subject with invalid digest",
			input:   []byte(strings.Replace(string(indexWithSubject), string(subjectImage.Digest), "subject", 1)),
			wantErr: errAny,
		},
		{
			name:    "schema1 blobSum with invalid digest",
			input:   []byte(strings.Replace(schema1Unsigned, string(schema1Layer), "sha256:abc", 1)),
			wantErr: digest.ErrDigestInvalidLength,
		},
		{
			name:    "oci manifest missing config",
			input:   []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":1,"digest":"` + string(ociL1.Digest) + `"}]}`),
			wantErr: errAny,
		},
		{
			name:    "oci manifest without mediaType missing config",
			input:   []byte(`{"schemaVersion":2,"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":1,"digest":"` + string(ociL1.Digest) + `"}]}`),
			wantErr: errAny,
		},
		{
			name:    "oci manifest with config lacking digest",
			input:   []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2},"layers":[]}`),
			wantErr: errAny,
		},
		{
			name:    "schema1 without fsLayers",
			input:   []byte(`{"schemaVersion":1,"name":"library/hello-world","tag":"latest","architecture":"amd64","fsLayers":[],"history":[]}`),
			wantErr: errAny,
		},
		{
			name:    "schema1 with a non-schema1 mediaType",
			input:   []byte(`{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","fsLayers":[{"blobSum":"` + emptyLayerBlobSum + `"}]}`),
			wantErr: graph.ErrUnknownMediaType,
		},
		{
			name:    "index with a child that is not an object",
			input:   []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":["` + string(amd64Manifest.Digest) + `"]}`),
			wantErr: errAny,
		},
	}
	runManifestCases(t, cases)
}

// TestParseManifestAmbiguous covers documents whose shape contradicts their media
// type: an index that also carries config and layers, a manifest that also carries
// manifests, a schemaVersion 2 document with fsLayers. distribution's own unmarshal
// functions (ocischema validateIndex / validateManifest, manifestlist
// validateManifestList — the CVE-2021-41190 fix) reject the first two. Reading such a
// document by one shape would silently drop the references of the other (fail-open
// for a garbage collector), so ParseManifest must refuse it.
func TestParseManifestAmbiguous(t *testing.T) {
	layers := `"config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":1,"digest":"` + string(ociCfg.Digest) +
		`"},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":1,"digest":"` + string(ociL1.Digest) + `"}]`
	children := `"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,"digest":"` + string(amd64Manifest.Digest) + `"}]`
	cases := []manifestCase{
		{
			name:    "no mediaType with both manifests and config/layers",
			input:   []byte(`{"schemaVersion":2,` + children + `,` + layers + `}`),
			wantErr: errAny,
		},
		{
			name:    "oci index mediaType with config/layers",
			input:   []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",` + children + `,` + layers + `}`),
			wantErr: errAny,
		},
		{
			name:    "docker manifest list mediaType with config/layers",
			input:   []byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json",` + layers + `}`),
			wantErr: errAny,
		},
		{
			name:    "docker schema2 with fsLayers",
			input:   []byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",` + layers + `,"fsLayers":[{"blobSum":"` + emptyLayerBlobSum + `"}]}`),
			wantErr: errAny,
		},
		{
			name:    "oci index without mediaType with fsLayers",
			input:   []byte(`{"schemaVersion":2,` + children + `,"fsLayers":[{"blobSum":"` + emptyLayerBlobSum + `"}]}`),
			wantErr: errAny,
		},
		{
			name:    "oci manifest mediaType with manifests",
			input:   []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",` + layers + `,` + children + `}`),
			wantErr: errAny,
		},
	}
	runManifestCases(t, cases)
}

// TestParseManifestDistributionAgrees checks, for the documents distribution builds,
// that ParseManifest's references are exactly distribution's References() (subject
// aside, which distribution does not report).
func TestParseManifestDistributionAgrees(t *testing.T) {
	s2, err := schema2.FromStruct(schema2.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: schema2.MediaTypeManifest,
		Config:    dockerCfg,
		Layers:    []v1.Descriptor{dockerL1, dockerL2},
	})
	if err != nil {
		t.Fatal(err)
	}
	ml, err := manifestlist.FromDescriptors([]manifestlist.ManifestDescriptor{
		{Descriptor: desc(schema2.MediaTypeManifest, "a")}, {Descriptor: desc(schema2.MediaTypeManifest, "b")},
	})
	if err != nil {
		t.Fatal(err)
	}
	om, err := ocischema.FromStruct(ocischema.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    ociCfg,
		Layers:    []v1.Descriptor{ociL1, ociL2},
	})
	if err != nil {
		t.Fatal(err)
	}
	oi, err := ocischema.FromDescriptors([]v1.Descriptor{amd64Manifest, childIndex}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []interface {
		Payload() (string, []byte, error)
		References() []v1.Descriptor
	}{s2, ml, om, oi} {
		mt, b, err := m.Payload()
		if err != nil {
			t.Fatal(err)
		}
		got, err := graph.ParseManifest(b)
		if err != nil {
			t.Errorf("%s: %v", mt, err)
			continue
		}
		if got.MediaType != mt {
			t.Errorf("MediaType %q, distribution says %q", got.MediaType, mt)
		}
		refs := m.References()
		if len(refs) != len(got.Refs) {
			t.Errorf("%s: %d refs, distribution has %d", mt, len(got.Refs), len(refs))
			continue
		}
		for i, r := range refs {
			if got.Refs[i].Digest != r.Digest {
				t.Errorf("%s: ref %d is %s, distribution has %s", mt, i, got.Refs[i].Digest, r.Digest)
			}
		}
	}
}

func TestEdgeKind(t *testing.T) {
	kinds := map[graph.EdgeKind]string{
		graph.EdgeConfig: "config", graph.EdgeLayer: "layer", graph.EdgeChild: "child",
		graph.EdgeSubject: "subject", graph.EdgeFSLayer: "fslayer",
	}
	// The byte values are stored in the index: they must never change.
	stored := map[graph.EdgeKind]byte{
		graph.EdgeConfig: 'c', graph.EdgeLayer: 'l', graph.EdgeChild: 'm',
		graph.EdgeSubject: 's', graph.EdgeFSLayer: 'f',
	}
	for k, want := range kinds {
		if got := k.String(); got != want {
			t.Errorf("EdgeKind(%c).String() = %q, want %q", byte(k), got, want)
		}
		if byte(k) != stored[k] {
			t.Errorf("EdgeKind %s = %q, stored as %q", want, byte(k), stored[k])
		}
	}
	if got := graph.EdgeKind('x').String(); got != "edge(x)" {
		t.Errorf("EdgeKind('x').String() = %q", got)
	}
}

func TestMaxManifestSize(t *testing.T) {
	// distribution's manifest store caps manifests at 4 MiB.
	if graph.MaxManifestSize != 4<<20 {
		t.Errorf("MaxManifestSize = %d, want %d", graph.MaxManifestSize, 4<<20)
	}
}
