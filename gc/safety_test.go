package gc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

// repoItems returns what p deletes in repo: revision links and layer links.
func repoItems(p *gc.Plan, repo string) []string {
	var out []string
	for _, m := range p.Manifests {
		if m.Repository == repo {
			out = append(out, m.Path)
		}
	}
	for _, l := range p.LayerLinks {
		if l.Repository == repo {
			out = append(out, l.Path)
		}
	}
	return out
}

// A tag and a revision link naming a manifest whose blob is gone are a broken root:
// the sweep refuses, names the repository, the tag and the path, and nothing the
// repository links is deleted.
func TestBrokenRootBlocks(t *testing.T) {
	root := regtest.Sample(t)
	base := plan(t, root, gc.WithDeleteUntagged(true))
	if len(repoItems(base, "team/app/web")) == 0 {
		t.Fatal("baseline deletes nothing in team/app/web: the test proves nothing")
	}
	missing := digest.FromString(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	regtest.Write(t, root, storage.Spec{Kind: storage.RevisionLink, Repo: "team/app/web", Digest: missing}, []byte(missing))
	regtest.Write(t, root, storage.Spec{Kind: storage.TagCurrentLink, Repo: "team/app/web", Tag: "ghost"}, []byte(missing))
	for _, m := range []bool{false, true} {
		// The sample is small: two broken roots are over the incomplete-storage share.
		p := plan(t, root, gc.WithDeleteUntagged(m), gc.WithAllowMassDelete(true))
		w := findWarning(t, p, "broken_root", missing.Encoded())
		if w.Repository != "team/app/web" || !strings.Contains(w.Detail, "ghost") || !strings.Contains(w.Detail, "/revisions/sha256/"+missing.Encoded()) {
			t.Errorf("-m=%v: warning does not name repository, tag and link: %+v", m, w)
		}
		if !slices.ContainsFunc(p.Blocked, func(b graph.Warning) bool { return b.Kind == "broken_root" }) {
			t.Errorf("-m=%v: a broken root does not block the sweep", m)
		}
		if items := repoItems(p, "team/app/web"); len(items) > 0 {
			t.Errorf("-m=%v: a repository with a broken root loses %v", m, items)
		}
		assertNoMoreThan(t, p, base)
	}
}

// A revision link whose manifest blob is missing blocks even when no tag names it:
// the blob is lost or a listing missed it, and either way what it was (a live
// image's signature, say) is unknown. Its repository's links are kept.
func TestUntaggedMissingManifestBlocks(t *testing.T) {
	root := regtest.Sample(t)
	missing := digest.FromString("gone")
	regtest.Write(t, root, storage.Spec{Kind: storage.RevisionLink, Repo: "library/debian", Digest: missing}, []byte(missing))
	for _, m := range []bool{false, true} {
		p := plan(t, root, gc.WithDeleteUntagged(m), gc.WithAllowMassDelete(true))
		if !slices.ContainsFunc(p.Blocked, func(w graph.Warning) bool { return w.Kind == "broken_root" && w.Digest == missing.String() }) {
			t.Errorf("-m=%v: an untagged revision link to a missing manifest does not block: %+v", m, p.Blocked)
		}
		if items := repoItems(p, "library/debian"); len(items) > 0 {
			t.Errorf("-m=%v: its repository loses %v", m, items)
		}
	}
}

// A tag whose repository has no revision link for its manifest keeps that
// manifest and what it references, in both modes.
func TestDanglingTagKeepsItsImage(t *testing.T) {
	root := regtest.Sample(t)
	base := plan(t, root, gc.WithDeleteUntagged(true))
	if len(base.Manifests) == 0 {
		t.Fatal("the sample's -m plan deletes no manifest")
	}
	victim := base.Manifests[0]
	var man v1.Manifest
	regtest.ReadJSON(t, root, victim.Digest, &man)
	refs := []digest.Digest{victim.Digest, man.Config.Digest}
	for _, l := range man.Layers {
		refs = append(refs, l.Digest)
	}
	// The victim is tagged in another repository that has no revision link for it.
	other := "team/app/web"
	if victim.Repository == other {
		other = "library/debian"
	}
	regtest.Write(t, root, storage.Spec{Kind: storage.TagCurrentLink, Repo: other, Tag: "dangling"}, []byte(victim.Digest))
	for _, m := range []bool{false, true} {
		p := plan(t, root, gc.WithDeleteUntagged(m))
		findWarning(t, p, "dangling_tag", "/tags/dangling/")
		assertKept(t, p, refs...)
	}
}

// emptyBlobStore removes every blob directory, as an unmounted volume or a wrong
// prefix looks.
func emptyBlobStore(t *testing.T, root string, keepDir bool) {
	t.Helper()
	dir := regtest.FSPath(root, storage.Root+"/blobs")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if keepDir {
		if err := os.MkdirAll(filepath.Join(dir, "sha256"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func planErr(t *testing.T, drvRoot string, opts ...gc.Option) (*gc.Plan, error) {
	t.Helper()
	ctx := context.Background()
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := graph.Build(ctx, storage.NewFilesystem(drvRoot), idx, graph.WithWorkers(4)); err != nil {
		t.Fatal(err)
	}
	return gc.NewPlan(ctx, idx, append([]gc.Option{gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour))}, opts...)...)
}

func TestEmptyBlobStoreRefused(t *testing.T) {
	for _, keepDir := range []bool{true, false} {
		root := regtest.Sample(t)
		emptyBlobStore(t, root, keepDir)
		for _, m := range []bool{false, true} {
			_, err := planErr(t, root, gc.WithDeleteUntagged(m))
			if !errors.Is(err, gc.ErrIncompleteStorage) || !strings.Contains(err.Error(), "no blob") || !strings.Contains(err.Error(), "mounted") {
				t.Errorf("blobs dir kept=%v -m=%v: err = %v, want ErrIncompleteStorage saying what to check", keepDir, m, err)
			}
			// Overridden, every root is broken: nothing is deleted in any repository.
			p, err := planErr(t, root, gc.WithDeleteUntagged(m), gc.WithAllowMassDelete(true))
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Blocked) == 0 || len(p.LayerLinks) > 0 || len(p.Manifests) > 0 {
				t.Errorf("blobs dir kept=%v -m=%v: overridden plan blocked=%d deletes %d layer links, %d revisions", keepDir, m, len(p.Blocked), len(p.LayerLinks), len(p.Manifests))
			}
		}
	}
}

// One broken root among many passes the incomplete-storage check (it still blocks
// the sweep); a tenth and more of them is refused.
func TestBrokenRootShare(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	_, ns, err := synth.NewFilesystem(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	cfg := synth.Small()
	cfg.Repos, cfg.ImagesPerRepo, cfg.DeleteFraction = 6, 4, 0
	sum, err := synth.Populate(ctx, ns, 3, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var tagged []digest.Digest
	for _, repo := range sum.Repos {
		for _, d := range sum.Tags[repo] {
			if !slices.Contains(tagged, d) {
				tagged = append(tagged, d)
			}
		}
	}
	slices.Sort(tagged)
	remove := func(d digest.Digest) {
		if err := os.RemoveAll(regtest.FSPath(root, regtest.Path(t, storage.Spec{Kind: storage.BlobDir, Digest: d}))); err != nil {
			t.Fatal(err)
		}
	}
	remove(tagged[0])
	p, err := planErr(t, root)
	if err != nil {
		t.Fatalf("one broken root refused as incomplete storage: %v", err)
	}
	if len(p.Blocked) == 0 {
		t.Error("a broken root does not block")
	}
	for _, d := range tagged[1:] {
		remove(d)
	}
	if _, err := planErr(t, root); !errors.Is(err, gc.ErrIncompleteStorage) || !strings.Contains(err.Error(), "name a manifest whose blob is missing") {
		t.Errorf("every tagged manifest missing: err = %v, want ErrIncompleteStorage", err)
	}
}

// bigManifest stores a tagged "manifest" larger than the read window whose only
// references lie at both sides of the window's end, across a later chunk boundary,
// and at its very end; the blobs they name are linked nowhere, so only the bytes of
// the manifest say they might be needed.
func bigManifest(t *testing.T, root string) (digest.Digest, []digest.Digest) {
	t.Helper()
	var refs []digest.Digest
	for i := range 3 {
		refs = append(refs, regtest.PutBlob(t, root, "", []byte(fmt.Sprintf("blob %d that only a large manifest names", i))))
	}
	b := make([]byte, graph.MaxManifestSize+3<<20)
	for i := range b {
		b[i] = 'x'
	}
	copy(b, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"pad":"`)
	at := []int{graph.MaxManifestSize - 20, graph.MaxManifestSize + 1<<20 - 10, len(b) - len(refs[2]) - 2}
	for i, off := range at {
		copy(b[off:], refs[i])
	}
	m := regtest.PutManifest(t, root, "team/app/web", "huge", b)
	return m, refs
}

// --ignore-unreadable promises to keep every blob an unreadable manifest might
// reference, however large it is.
func TestUnreadableManifestLargerThanWindow(t *testing.T) {
	root := regtest.Sample(t)
	m, refs := bigManifest(t, root)
	for _, mode := range []bool{false, true} {
		p := plan(t, root, gc.WithDeleteUntagged(mode))
		w := findWarning(t, p, "unreadable_manifest", m.Encoded())
		if !strings.Contains(w.Detail, "larger than") {
			t.Errorf("detail = %q", w.Detail)
		}
		if len(p.Blocked) == 0 {
			t.Errorf("-m=%v: not blocked", mode)
		}
		assertKept(t, p, append(refs, m)...)
	}
}

// failAfter makes reads of one path fail after n bytes.
type failAfter struct {
	driver.StorageDriver
	path string
	n    int64
}

func (f failAfter) Reader(ctx context.Context, p string, off int64) (io.ReadCloser, error) {
	rc, err := f.StorageDriver.Reader(ctx, p, off)
	if err != nil || p != f.path {
		return rc, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, f.n), iotest.ErrReader(errors.New("injected read error"))), rc}, nil
}

// An unreadable manifest that cannot even be read to its end might reference any
// blob: nothing is freed, and the sweep refuses.
func TestUnreadableManifestReadFailsKeepsEverything(t *testing.T) {
	root := regtest.Sample(t)
	m, _ := bigManifest(t, root)
	ctx := context.Background()
	drv := failAfter{storage.NewFilesystem(root), regtest.Path(t, storage.Spec{Kind: storage.BlobData, Digest: m}), graph.MaxManifestSize + 100}
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := graph.Build(ctx, drv, idx); err != nil {
		t.Fatal(err)
	}
	p, err := gc.NewPlan(ctx, idx, gc.WithDeleteUntagged(true), gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Blocked) == 0 || len(p.Blobs) > 0 || len(p.LayerLinks) > 0 {
		t.Errorf("blocked %d, deletes %d blobs and %d layer links; want blocked and nothing freed", len(p.Blocked), len(p.Blobs), len(p.LayerLinks))
	}
	if !slices.ContainsFunc(p.Warnings, func(w graph.Warning) bool {
		return w.Kind == "unreadable_manifest" && strings.Contains(w.Detail, "injected read error")
	}) {
		t.Errorf("no warning names the read error: %+v", p.Warnings)
	}
}

// A stray regular file where the layout has directories is a warning naming it,
// never an error that stops all collection, and changes nothing else.
func TestStrayFiles(t *testing.T) {
	root := regtest.Sample(t)
	base := plan(t, regtest.Sample(t), gc.WithDeleteUntagged(true))
	hex := strings.Repeat("ab", 32)
	stray := []string{
		"blobs/.DS_Store", "blobs/sha256/.DS_Store", "blobs/sha256/ab/.DS_Store", "blobs/sha256/ab/" + hex,
		"repositories/.DS_Store", "repositories/library/.DS_Store", "repositories/library/debian/.DS_Store",
		"repositories/library/debian/_layers/sha256/.DS_Store", "repositories/library/debian/_manifests/tags/.DS_Store",
		"repositories/library/debian/_manifests/revisions/sha256/" + hex,
	}
	for _, f := range stray {
		p := regtest.FSPath(root, storage.Root+"/"+f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("stray"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := plan(t, root, gc.WithDeleteUntagged(true))
	for _, f := range stray {
		if !slices.ContainsFunc(p.Warnings, func(w graph.Warning) bool { return w.Path == storage.Root+"/"+f }) {
			t.Errorf("no warning names %s", f)
		}
	}
	if d := cmp.Diff(base.Paths(), p.Paths()); d != "" {
		t.Errorf("stray files change the plan (-without +with):\n%s", d)
	}
}

// A live image's layer whose data a listing did not show (or that is lost): its
// layer link stays, since deleting it frees nothing and, if the listing was wrong,
// breaks the image.
func TestLiveBlobMissingKeepsItsLink(t *testing.T) {
	root := regtest.Sample(t)
	_, reach := apiIndex(t, root)
	layer := reach[len(reach)-1]
	if err := os.RemoveAll(regtest.FSPath(root, regtest.Path(t, storage.Spec{Kind: storage.BlobDir, Digest: layer}))); err != nil {
		t.Fatal(err)
	}
	link := regtest.Path(t, storage.Spec{Kind: storage.LayerLink, Repo: "team/app/api", Digest: layer})
	if _, err := os.Stat(regtest.FSPath(root, link)); err != nil {
		t.Fatalf("the sample does not link %s in team/app/api: %v", layer, err)
	}
	for _, m := range []bool{false, true} {
		p := plan(t, root, gc.WithDeleteUntagged(m))
		findWarning(t, p, "missing_blob", layer.Encoded())
		if slices.ContainsFunc(p.LayerLinks, func(l gc.LinkItem) bool { return l.Path == link }) {
			t.Errorf("-m=%v: the layer link of a live blob whose data is missing is planned for deletion", m)
		}
	}
}
