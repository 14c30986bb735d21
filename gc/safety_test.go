package gc_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/benchmarks/synth"
	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
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
	root := sample(t)
	base := plan(t, root, gc.WithDeleteUntagged(true))
	if len(repoItems(base, "team/app/web")) == 0 {
		t.Fatal("baseline deletes nothing in team/app/web: the test proves nothing")
	}
	missing := digest.FromString(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	write(t, root, storage.Spec{Kind: storage.RevisionLink, Repo: "team/app/web", Digest: missing}, []byte(missing))
	write(t, root, storage.Spec{Kind: storage.TagCurrentLink, Repo: "team/app/web", Tag: "ghost"}, []byte(missing))
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

// A missing manifest that no root reaches (an untagged revision under -m) is
// garbage like any other: it blocks nothing.
func TestUnreachedMissingManifestDoesNotBlock(t *testing.T) {
	root := sample(t)
	missing := digest.FromString("gone")
	write(t, root, storage.Spec{Kind: storage.RevisionLink, Repo: "library/debian", Digest: missing}, []byte(missing))
	p := plan(t, root, gc.WithDeleteUntagged(true), gc.WithAllowMassDelete(true))
	if len(p.Blocked) > 0 {
		t.Errorf("blocked by an untagged missing manifest: %+v", p.Blocked)
	}
	if !slices.ContainsFunc(p.Manifests, func(m gc.ManifestItem) bool { return m.Digest == missing }) {
		t.Error("the dangling untagged revision link is not planned for deletion")
	}
}

// emptyBlobStore removes every blob directory, as an unmounted volume or a wrong
// prefix looks.
func emptyBlobStore(t *testing.T, root string, keepDir bool) {
	t.Helper()
	dir := fsPath(root, storage.Root+"/blobs")
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
		root := sample(t)
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
		if err := os.RemoveAll(fsPath(root, spath(t, storage.Spec{Kind: storage.BlobDir, Digest: d}))); err != nil {
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
