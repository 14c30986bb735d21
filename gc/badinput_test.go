package gc_test

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/storage"
)

// plan indexes root reading every link (which a corrupt link needs), and checks
// that the default build, which reads no link and stats only what the plan may
// need, plans the same.
func plan(t *testing.T, root string, opts ...gc.Option) *gc.Plan {
	t.Helper()
	p := regtest.Plan(t, root, []graph.BuildOption{graph.WithVerifyLinks(true)}, opts...)
	if !strings.Contains(t.Name(), "Corrupt") {
		d := regtest.Plan(t, root, nil, opts...)
		x, y := *p, *d
		x.Mode.Now, y.Mode.Now = time.Time{}, time.Time{} // each plan's own
		a, _ := json.MarshalIndent(x, "", " ")
		b, _ := json.MarshalIndent(y, "", " ")
		if diff := cmp.Diff(string(a), string(b)); diff != "" {
			t.Errorf("default build plans differently (-verified +default):\n%s", diff)
		}
	}
	return p
}

func deletedBlobs(p *gc.Plan) []digest.Digest {
	var out []digest.Digest
	for _, b := range p.Blobs {
		out = append(out, b.Digest())
	}
	return out
}

func findWarning(t *testing.T, p *gc.Plan, kind, pathPart string) graph.Warning {
	t.Helper()
	for _, w := range p.Warnings {
		if w.Kind == kind && strings.Contains(w.Path, pathPart) {
			return w
		}
	}
	t.Fatalf("no %s warning naming %s; warnings: %+v", kind, pathPart, p.Warnings)
	return graph.Warning{}
}

// assertKept fails if any of ds is planned for deletion.
func assertKept(t *testing.T, p *gc.Plan, ds ...digest.Digest) {
	t.Helper()
	del := deletedBlobs(p)
	for _, d := range ds {
		if slices.Contains(del, d) {
			t.Errorf("blob %s is planned for deletion; want kept", d)
		}
	}
}

// assertNoMoreThan fails if p deletes a blob that base does not.
func assertNoMoreThan(t *testing.T, p, base *gc.Plan) {
	t.Helper()
	del := deletedBlobs(base)
	for _, d := range deletedBlobs(p) {
		if !slices.Contains(del, d) {
			t.Errorf("bad input made blob %s garbage; baseline keeps it", d)
		}
	}
}

// apiIndex returns the digest of team/app/api:v1 (an OCI index) and every blob it reaches.
func apiIndex(t *testing.T, root string) (digest.Digest, []digest.Digest) {
	idx := regtest.ReadLink(t, root, storage.Spec{Kind: storage.TagCurrentLink, Repo: "team/app/api", Tag: "v1"})
	var index v1.Index
	regtest.ReadJSON(t, root, idx, &index)
	all := []digest.Digest{idx}
	for _, c := range index.Manifests {
		all = append(all, c.Digest)
		var m v1.Manifest
		regtest.ReadJSON(t, root, c.Digest, &m)
		all = append(all, m.Config.Digest)
		for _, l := range m.Layers {
			all = append(all, l.Digest)
		}
	}
	return idx, all
}

func TestCorruptRevisionLink(t *testing.T) {
	root := regtest.Sample(t)
	idx, reach := apiIndex(t, root)
	link := storage.Spec{Kind: storage.RevisionLink, Repo: "team/app/api", Digest: idx}
	regtest.Write(t, root, link, []byte("not a digest"))
	for _, m := range []bool{false, true} {
		p := plan(t, root, gc.WithDeleteUntagged(m))
		w := findWarning(t, p, "corrupt_link", regtest.Path(t, link))
		if w.Repository != "team/app/api" {
			t.Errorf("warning repository = %q", w.Repository)
		}
		assertKept(t, p, reach...)
		for _, mi := range p.Manifests {
			if mi.Digest == idx {
				t.Errorf("-m=%v: revision with a corrupt link is planned for deletion", m)
			}
		}
	}
}

func TestCorruptTagLinkKeepsRepository(t *testing.T) {
	root := regtest.Sample(t)
	base := plan(t, regtest.Sample(t), gc.WithDeleteUntagged(true))
	tag := storage.Spec{Kind: storage.TagCurrentLink, Repo: "library/debian", Tag: "12"}
	regtest.Write(t, root, tag, []byte("sha256:zzzz"))
	p := plan(t, root, gc.WithDeleteUntagged(true))
	findWarning(t, p, "corrupt_link", regtest.Path(t, tag))
	for _, m := range p.Manifests {
		if m.Repository == "library/debian" {
			t.Errorf("manifest %s of a repository with an unreadable tag is planned for deletion", m.Digest)
		}
	}
	assertNoMoreThan(t, p, base)
	// The baseline does delete debian's untagged manifest: the corrupt tag is what keeps it.
	if !slices.ContainsFunc(base.Manifests, func(m gc.ManifestItem) bool { return m.Repository == "library/debian" }) {
		t.Fatal("baseline deletes no debian manifest: the test proves nothing")
	}
}

func TestCorruptLayerLink(t *testing.T) {
	root := regtest.Sample(t)
	base := plan(t, regtest.Sample(t))
	// The orphan-ish blob: a deleted web layer that the baseline deletes.
	var victim gc.LinkItem
	for _, l := range base.LayerLinks {
		if l.Repository == "team/app/web" {
			victim = l
		}
	}
	if victim.Path == "" {
		t.Fatal("baseline deletes no web layer link")
	}
	regtest.Write(t, root, storage.Spec{Kind: storage.LayerLink, Repo: victim.Repository, Digest: victim.Digest}, []byte("garbage\n"))
	p := plan(t, root)
	findWarning(t, p, "corrupt_link", victim.Path)
	assertKept(t, p, victim.Digest)
	assertNoMoreThan(t, p, base)
	for _, l := range p.LayerLinks {
		if l.Path == victim.Path {
			t.Error("corrupt layer link planned for deletion")
		}
	}
}

func TestTruncatedManifest(t *testing.T) {
	root := regtest.Sample(t)
	idx, reach := apiIndex(t, root)
	blob := regtest.FSPath(root, regtest.Path(t, storage.Spec{Kind: storage.BlobData, Digest: idx}))
	b, _ := os.ReadFile(blob)
	if err := os.WriteFile(blob, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, m := range []bool{false, true} {
		p := plan(t, root, gc.WithDeleteUntagged(m))
		w := findWarning(t, p, "unreadable_manifest", regtest.Path(t, storage.Spec{Kind: storage.BlobData, Digest: idx}))
		if w.Repository != "team/app/api" || w.Digest != idx.String() {
			t.Errorf("warning names %q %q", w.Repository, w.Digest)
		}
		if len(p.Blocked) == 0 {
			t.Errorf("-m=%v: a reachable truncated manifest does not block the sweep", m)
		}
		assertKept(t, p, reach...)
		if p.Summary.UnreadableManifests != 1 {
			t.Errorf("unreadable_manifests = %d", p.Summary.UnreadableManifests)
		}
	}
}

func TestUnknownMediaType(t *testing.T) {
	root := regtest.Sample(t)
	cfg := regtest.PutBlob(t, root, "team/app/api", []byte(`{"some":"config"}`))
	layer := regtest.PutBlob(t, root, "team/app/api", []byte("a layer of an unknown artifact"))
	m := regtest.PutManifest(t, root, "team/app/api", "weird", []byte(`{"schemaVersion":2,"mediaType":"application/vnd.example.thing.v1+json","config":{"digest":"`+cfg.String()+`"},"parts":[{"digest":"`+layer.String()+`"}]}`))
	p := plan(t, root, gc.WithDeleteUntagged(true))
	w := findWarning(t, p, "unreadable_manifest", m.Encoded())
	if !strings.Contains(w.Detail, "unknown manifest media type") {
		t.Errorf("detail = %q", w.Detail)
	}
	assertKept(t, p, m, cfg, layer)
	if len(p.Blocked) != 1 {
		t.Errorf("blocked = %+v", p.Blocked)
	}
}

func TestSchema1Manifest(t *testing.T) {
	root := regtest.Sample(t)
	l1 := regtest.PutBlob(t, root, "legacy/app", []byte("schema1 layer one"))
	l2 := regtest.PutBlob(t, root, "legacy/app", []byte("schema1 layer two"))
	m := regtest.PutManifest(t, root, "legacy/app", "old", []byte(`{"schemaVersion":1,"name":"legacy/app","tag":"old","architecture":"amd64",
 "fsLayers":[{"blobSum":"`+l2.String()+`"},{"blobSum":"`+l1.String()+`"}],"history":[{"v1Compatibility":"{}"},{"v1Compatibility":"{}"}]}`))
	for _, mode := range []bool{false, true} {
		p := plan(t, root, gc.WithDeleteUntagged(mode))
		findWarning(t, p, "schema1_manifest", m.Encoded())
		assertKept(t, p, m, l1, l2)
		if len(p.Blocked) != 0 {
			t.Errorf("schema1 is readable, yet blocked: %+v", p.Blocked)
		}
	}
}

func TestLinkToMissingBlob(t *testing.T) {
	root := regtest.Sample(t)
	base := plan(t, regtest.Sample(t))
	missing := digest.FromString("never uploaded")
	link := storage.Spec{Kind: storage.LayerLink, Repo: "library/debian", Digest: missing}
	regtest.Write(t, root, link, []byte(missing))
	p := plan(t, root)
	findWarning(t, p, "dangling_link", regtest.Path(t, link))
	if !slices.ContainsFunc(p.LayerLinks, func(l gc.LinkItem) bool { return l.Path == regtest.Path(t, link) && l.Reason == "blob data missing" }) {
		t.Errorf("dangling layer link not planned: %+v", p.LayerLinks)
	}
	assertNoMoreThan(t, p, base)
	if len(p.Blobs) != len(base.Blobs) {
		t.Errorf("deleted blobs %d, baseline %d", len(p.Blobs), len(base.Blobs))
	}
}

func TestInvalidRepositoryName(t *testing.T) {
	root := regtest.Sample(t)
	// A copy of library/debian under a name the registry would refuse.
	src := regtest.FSPath(root, storage.Root+"/repositories/library/debian")
	dst := regtest.FSPath(root, storage.Root+"/repositories/Library/Debian")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	base := plan(t, regtest.Sample(t), gc.WithDeleteUntagged(true))
	p := plan(t, root, gc.WithDeleteUntagged(true))
	w := findWarning(t, p, "invalid_repository", "/repositories/Library/Debian")
	if w.Repository != "Library/Debian" {
		t.Errorf("repository = %q", w.Repository)
	}
	for _, m := range p.Manifests {
		if m.Repository == "Library/Debian" {
			t.Errorf("manifest in an invalid repository planned for deletion: %s", m.Path)
		}
	}
	for _, l := range p.LayerLinks {
		if l.Repository == "Library/Debian" {
			t.Errorf("layer link in an invalid repository planned for deletion: %s", l.Path)
		}
	}
	assertNoMoreThan(t, p, base)
	// Baseline deletes debian's untagged manifest blob; the invalid copy links it, so it stays.
	if len(p.Blobs) >= len(base.Blobs) {
		t.Errorf("deleted blobs %d, baseline %d: the invalid repository's links kept nothing", len(p.Blobs), len(base.Blobs))
	}
}

func TestNoRegistry(t *testing.T) {
	drv := storage.NewFilesystem(t.TempDir())
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	err = graph.Build(context.Background(), drv, idx)
	if err == nil || !strings.Contains(err.Error(), "docker/registry/v2") {
		t.Fatalf("err = %v, want one naming docker/registry/v2", err)
	}
}

func TestWhatIf(t *testing.T) {
	root := regtest.Sample(t)
	base := plan(t, root, gc.WithDeleteUntagged(true))
	// Untagging debian:12 frees its image but not the base layer, which api and web share.
	p := plan(t, root, gc.WithDeleteUntagged(true), gc.WithoutTags("library/debian:12"))
	if p.Summary.DeleteBytes <= base.Summary.DeleteBytes {
		t.Fatalf("untag frees nothing more: %d vs %d", p.Summary.DeleteBytes, base.Summary.DeleteBytes)
	}
	tag := regtest.ReadLink(t, root, storage.Spec{Kind: storage.TagCurrentLink, Repo: "library/debian", Tag: "12"})
	var man v1.Manifest
	regtest.ReadJSON(t, root, tag, &man)
	del := deletedBlobs(p)
	if !slices.Contains(del, tag) || !slices.Contains(del, man.Layers[1].Digest) {
		t.Error("untagged image's manifest and unique layer are not freed")
	}
	if slices.Contains(del, man.Layers[0].Digest) {
		t.Error("shared base layer freed by untagging one repository's tag")
	}
	// Deleting a repository frees exactly its unique bytes (plus garbage already there).
	var unique int64
	for _, r := range base.Repositories {
		if r.Name == "team/app/api" {
			unique = r.UniqueBytes
		}
	}
	p = plan(t, root, gc.WithDeleteUntagged(true), gc.WithoutRepos("team/app/api"))
	if got := p.Summary.DeleteBytes - base.Summary.DeleteBytes; got != unique {
		t.Errorf("deleting team/app/api frees %d more bytes, its unique_bytes is %d", got, unique)
	}
	if _, err := gc.NewPlan(context.Background(), nil, gc.WithoutTags("no-tag")); err == nil {
		t.Error("bad what-if tag accepted")
	}
}

// An unreadable manifest that mentions a manifest of another repository might be an
// index of it: under -m that manifest, untagged there, is kept with what it
// references, wherever the walk meets it first.
func TestUnreadableManifestKeepsWhatItMentions(t *testing.T) {
	root := regtest.Sample(t)
	base := plan(t, root, gc.WithDeleteUntagged(true))
	if len(base.Manifests) == 0 {
		t.Fatal("sample has no untagged manifest to mention")
	}
	victim := base.Manifests[0]
	var man v1.Manifest
	regtest.ReadJSON(t, root, victim.Digest, &man)
	refs := []digest.Digest{victim.Digest, man.Config.Digest}
	for _, l := range man.Layers {
		refs = append(refs, l.Digest)
	}
	// Half an index naming the victim, linked and tagged in another repository.
	bad := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + victim.Digest.String() + `","si`)
	d := digest.FromBytes(bad)
	repo := "team/app/web"
	if victim.Repository == repo {
		repo = "library/debian"
	}
	regtest.Write(t, root, storage.Spec{Kind: storage.BlobData, Digest: d}, bad)
	regtest.Write(t, root, storage.Spec{Kind: storage.RevisionLink, Repo: repo, Digest: d}, []byte(d))
	regtest.Write(t, root, storage.Spec{Kind: storage.TagCurrentLink, Repo: repo, Tag: "half"}, []byte(d))
	p := plan(t, root, gc.WithDeleteUntagged(true))
	if len(p.Blocked) == 0 {
		t.Fatal("a tagged unreadable manifest does not block the sweep")
	}
	for _, m := range p.Manifests {
		if m.Digest == victim.Digest {
			t.Errorf("mentioned manifest %s: revision in %s planned for deletion", victim.Digest, m.Repository)
		}
	}
	assertKept(t, p, refs...)
}
