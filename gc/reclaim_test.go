package gc_test

import (
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/storage"
)

// A repository's reclaimable bytes are the deleted blobs it links, each once,
// however it links them: here an untagged manifest that its repository also links
// as a layer, and garbage layers linked from two repositories.
func TestReclaimableBytesCountEachBlobOnce(t *testing.T) {
	root := regtest.Sample(t)
	m := regtest.PutManifest(t, root, "team/app/api", "", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:`+strings.Repeat("c", 64)+`"},"layers":[]}`))
	regtest.Write(t, root, storage.Spec{Kind: storage.LayerLink, Repo: "team/app/api", Digest: m}, []byte(m))
	shared := regtest.PutBlob(t, root, "team/app/api", []byte("garbage layer in two repositories"))
	regtest.Write(t, root, storage.Spec{Kind: storage.LayerLink, Repo: "team/app/web", Digest: shared}, []byte(shared))
	p := regtest.Plan(t, root, nil, gc.WithDeleteUntagged(true))
	size := map[digest.Digest]int64{}
	for _, b := range p.Blobs {
		size[b.Digest()] = b.Size()
	}
	if size[m] == 0 || size[shared] == 0 {
		t.Fatalf("the plan does not delete the manifest (%d bytes) and the shared layer (%d bytes)", size[m], size[shared])
	}
	// The oracle: every link file in a repository to a deleted blob, by digest.
	want := map[string]int64{}
	linked := map[string]map[digest.Digest]bool{}
	for _, f := range regtest.Files(t, root) {
		s, err := storage.Parse("/" + f)
		if err != nil || (s.Kind != storage.LayerLink && s.Kind != storage.RevisionLink) || size[s.Digest] == 0 {
			continue
		}
		if linked[s.Repo] == nil {
			linked[s.Repo] = map[digest.Digest]bool{}
		}
		if !linked[s.Repo][s.Digest] {
			linked[s.Repo][s.Digest] = true
			want[s.Repo] += size[s.Digest]
		}
	}
	for _, r := range p.Repositories {
		if r.ReclaimableBytes != want[r.Name] {
			t.Errorf("%s: reclaimable %d bytes, want %d", r.Name, r.ReclaimableBytes, want[r.Name])
		}
	}
}
