package graph

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/storage"
)

// sampleManifests returns the manifests of the sample registry, to seed fuzzing.
func sampleManifests(f *testing.F) [][]byte {
	f.Helper()
	var out [][]byte
	root := "../testdata/sample/registry/docker/registry/v2/blobs"
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if b, err := os.ReadFile(p); err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
			out = append(out, b)
		}
		return nil
	})
	return out
}

// FuzzParseManifest: parsing never panics; what parses has valid digests only and
// parses the same twice; and no reference distribution's own parser sees for the
// same media type is missing: a reference missed is a blob deleted under a live
// image.
func FuzzParseManifest(f *testing.F) {
	for _, b := range sampleManifests(f) {
		f.Add(b)
	}
	f.Add([]byte(`{"schemaVersion":1,"name":"a/b","tag":"t","architecture":"amd64","fsLayers":[{"blobSum":"sha256:` + strings.Repeat("d", 64) + `"}],"history":[{"v1Compatibility":"{}"}]}`))
	f.Add([]byte(`{"schemaVersion":2,"manifests":[{"digest":"sha256:` + strings.Repeat("a", 64) + `"}]}`))
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:` + strings.Repeat("b", 64) + `"},"layers":[],"subject":{"digest":"sha256:` + strings.Repeat("c", 64) + `"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseManifest(b)
		if err != nil {
			return
		}
		for _, r := range p.Refs {
			if err := storage.ValidDigest(r.Digest); err != nil {
				t.Fatalf("ref %q is not a valid digest", r.Digest)
			}
		}
		again, err := ParseManifest(b)
		if err != nil || !slices.Equal(p.Refs, again.Refs) || p.MediaType != again.MediaType {
			t.Fatalf("parse is not stable: %+v then %+v, %v", p, again, err)
		}
		m, _, err := distribution.UnmarshalManifest(p.MediaType, b)
		if err != nil {
			return
		}
		for _, d := range m.References() {
			if !slices.ContainsFunc(p.Refs, func(r Ref) bool { return r.Digest == d.Digest }) {
				t.Fatalf("distribution sees reference %s in %s; ParseManifest does not (%+v)", d.Digest, p.MediaType, p.Refs)
			}
		}
	})
}

// FuzzStreamMentions: digests found by reading in chunks, however small, are those
// found in the whole at once.
func FuzzStreamMentions(f *testing.F) {
	d1 := digest.FromString("one").String()
	d2 := digest.SHA512.FromString("two").String()
	f.Add([]byte("xx"+d1+"yy"+d2), uint16(7))
	f.Add([]byte(d1+d1+d2), uint16(64))
	f.Add([]byte(`{"layers":[{"digest":"`+d1+`"}]}`), uint16(1))
	f.Fuzz(func(t *testing.T, b []byte, chunk uint16) {
		if chunk == 0 {
			return
		}
		want := map[string]bool{}
		for _, m := range digestRE.FindAll(b, -1) {
			want[string(m)] = true
		}
		got := map[string]bool{}
		collect := func(c []byte) {
			for _, m := range digestRE.FindAll(c, -1) {
				got[string(m)] = true
			}
		}
		// As readManifest does: the first part at once, the rest streamed with the
		// first part's tail carried.
		split := len(b) / 2
		collect(b[:split])
		tail := b[max(0, split-int(maxMentionLen-1)):split]
		if err := streamMentions(bytes.NewReader(b[split:]), tail, int(chunk), collect); err != nil {
			t.Fatal(err)
		}
		for m := range want {
			if !got[m] {
				t.Fatalf("chunk %d: %s not found", chunk, m)
			}
		}
		for m := range got {
			if !bytes.Contains(b, []byte(m)) {
				t.Fatalf("found %s, which is not in the bytes", m)
			}
		}
	})
}
