package gc_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/sweep"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/storage"
)

// sweepRoot scans, plans and sweeps root as `regsweep gc` does.
func sweepRoot(t *testing.T, root string, planOpts []gc.Option, sweepOpts ...sweep.Option) (*gc.Plan, *sweep.Result, error) {
	t.Helper()
	ctx := context.Background()
	drv := storage.NewFilesystem(root)
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := graph.Build(ctx, drv, idx, graph.WithWorkers(4)); err != nil {
		t.Fatal(err)
	}
	p, err := gc.NewPlan(ctx, idx, append([]gc.Option{gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour))}, planOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sweep.Run(ctx, drv, p, append([]sweep.Option{sweep.WithJournal(idx)}, sweepOpts...)...)
	return p, res, err
}

func hasSymlinkWarning(p *gc.Plan, path string) bool {
	return slices.ContainsFunc(p.Warnings, func(w graph.Warning) bool { return w.Kind == "symlink" && w.Path == path })
}

// The case: an _uploads directory linked to a directory outside the root;
// with a short upload age, the directories behind it were deleted.
func TestSymlinkedUploadsLeftAlone(t *testing.T) {
	root := regtest.Sample(t)
	outside, check := regtest.OutsideTree(t, "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222")
	uploads := storage.Root + "/repositories/evil/up/_uploads"
	regtest.Symlink(t, outside, regtest.FSPath(root, uploads))
	// An upload holding a link, and an upload that is a link, in a real repository.
	other, checkOther := regtest.OutsideTree(t, "33333333-3333-3333-3333-333333333333")
	inRepo := storage.Root + "/repositories/library/debian/_uploads"
	regtest.Symlink(t, filepath.Join(other, "33333333-3333-3333-3333-333333333333"), regtest.FSPath(root, inRepo+"/33333333-3333-3333-3333-333333333333"))
	if err := os.MkdirAll(regtest.FSPath(root, inRepo+"/44444444-4444-4444-4444-444444444444"), 0o755); err != nil {
		t.Fatal(err)
	}
	regtest.Symlink(t, filepath.Join(other, "33333333-3333-3333-3333-333333333333", "startedat"), regtest.FSPath(root, inRepo+"/44444444-4444-4444-4444-444444444444/startedat"))

	p, res, err := sweepRoot(t, root, []gc.Option{gc.WithUploadAge(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	check()
	checkOther()
	for _, w := range []string{uploads, inRepo + "/33333333-3333-3333-3333-333333333333", inRepo + "/44444444-4444-4444-4444-444444444444/startedat"} {
		if !hasSymlinkWarning(p, w) {
			t.Errorf("no symlink warning naming %s: %+v", w, p.Warnings)
		}
	}
	for _, u := range p.Uploads {
		if strings.Contains(u.Path, "evil") || strings.Contains(u.Path, "33333333") || strings.Contains(u.Path, "44444444") {
			t.Errorf("upload behind or holding a link planned: %s", u.Path)
		}
	}
	if len(p.Blocked) > 0 || res.DeletedUploads == 0 {
		t.Errorf("links in uploads should not block, and the sample's own stale upload should go: blocked %v, deleted %d uploads", p.Blocked, res.DeletedUploads)
	}
	if _, err := os.Lstat(regtest.FSPath(root, uploads)); err != nil {
		t.Errorf("the link itself: %v; want it left alone", err)
	}
}

// The case: a repository directory linked to another registry's
// repositories. Under -m, 117 layer links and 24 revision links of the other
// registry were deleted. Now nothing behind the link is touched, the sweep refuses,
// and with the refusal overridden no blob or layer link is freed anywhere.
func TestSymlinkedRepositoryBlocks(t *testing.T) {
	root := regtest.Sample(t)
	other := regtest.Sample(t)
	before := regtest.Files(t, other)
	link := storage.Root + "/repositories/mirror"
	regtest.Symlink(t, regtest.FSPath(other, storage.Root+"/repositories"), regtest.FSPath(root, link))
	for _, ignore := range []bool{false, true} {
		p, res, err := sweepRoot(t, root, []gc.Option{gc.WithDeleteUntagged(true)}, sweep.WithIgnoreUnreadable(ignore))
		if !slices.ContainsFunc(p.Blocked, func(w graph.Warning) bool { return w.Path == link && w.Blocks }) {
			t.Fatalf("a linked repository does not block: %+v", p.Blocked)
		}
		if !ignore {
			if err == nil {
				t.Error("the sweep did not refuse")
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Blobs) > 0 || len(p.LayerLinks) > 0 || res.DeletedBlobs > 0 {
			t.Errorf("with a repository hidden behind a link, %d blobs and %d layer links were planned", len(p.Blobs), len(p.LayerLinks))
		}
	}
	if d := cmp.Diff(before, regtest.Files(t, other)); d != "" {
		t.Errorf("the other registry changed (-before +after):\n%s", d)
	}
}

// garbageBlob returns a blob the sample's -m plan deletes and that a layer link names.
func garbageBlob(t *testing.T, root string) gc.LinkItem {
	t.Helper()
	base := plan(t, root, gc.WithDeleteUntagged(true))
	for _, l := range base.LayerLinks {
		if slices.Contains(deletedBlobs(base), l.Digest) {
			return l
		}
	}
	t.Fatal("the sample's plan deletes no linked blob")
	return gc.LinkItem{}
}

// A blob directory, or its data file, that is a link is kept with its links: the
// registry would serve what the link points at.
func TestSymlinkedBlobKept(t *testing.T) {
	for _, what := range []string{"dir", "data"} {
		root := regtest.Sample(t)
		victim := garbageBlob(t, root)
		dir := regtest.FSPath(root, regtest.Path(t, storage.Spec{Kind: storage.BlobDir, Digest: victim.Digest}))
		moved := filepath.Join(t.TempDir(), "blob")
		if err := os.Rename(dir, moved); err != nil {
			t.Fatal(err)
		}
		link := regtest.Path(t, storage.Spec{Kind: storage.BlobDir, Digest: victim.Digest})
		if what == "dir" {
			regtest.Symlink(t, moved, dir)
		} else {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			regtest.Symlink(t, filepath.Join(moved, "data"), filepath.Join(dir, "data"))
			link += "/data"
		}
		p := plan(t, root, gc.WithDeleteUntagged(true))
		if !hasSymlinkWarning(p, link) {
			t.Errorf("%s: no symlink warning naming %s", what, link)
		}
		assertKept(t, p, victim.Digest)
		if slices.ContainsFunc(p.LayerLinks, func(l gc.LinkItem) bool { return l.Digest == victim.Digest }) {
			t.Errorf("%s: a layer link naming the linked blob is planned", what)
		}
		if len(p.Blocked) > 0 {
			t.Errorf("%s: one linked blob blocks the sweep: %+v", what, p.Blocked)
		}
		if _, _, err := sweepRoot(t, root, []gc.Option{gc.WithDeleteUntagged(true)}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(moved, "data")); err != nil {
			t.Errorf("%s: the data behind the link is gone", what)
		}
		if _, err := os.Lstat(regtest.FSPath(root, link)); err != nil {
			t.Errorf("%s: the link is gone", what)
		}
	}
}

// A layer link directory that is a link keeps the blob it names.
func TestSymlinkedLayerLinkKept(t *testing.T) {
	root := regtest.Sample(t)
	victim := garbageBlob(t, root)
	dir := filepath.Dir(regtest.FSPath(root, victim.Path))
	moved := filepath.Join(t.TempDir(), "layer")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	regtest.Symlink(t, moved, dir)
	p := plan(t, root, gc.WithDeleteUntagged(true))
	if !hasSymlinkWarning(p, filepath.ToSlash(filepath.Dir(victim.Path))) {
		t.Errorf("no symlink warning naming %s: %+v", filepath.Dir(victim.Path), p.Warnings)
	}
	assertKept(t, p, victim.Digest)
}

// A repository whose _manifests is a link: its manifests are unknown, so the sweep
// refuses and nothing in it or in the blob store is freed.
func TestSymlinkedManifestsPinsRepository(t *testing.T) {
	root := regtest.Sample(t)
	repo := "team/app/web"
	dir := regtest.FSPath(root, storage.Root+"/repositories/"+repo+"/_manifests")
	moved := filepath.Join(t.TempDir(), "_manifests")
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	regtest.Symlink(t, moved, dir)
	p := plan(t, root, gc.WithDeleteUntagged(true), gc.WithAllowMassDelete(true))
	if !slices.ContainsFunc(p.Blocked, func(w graph.Warning) bool { return w.Repository == repo && w.Blocks }) {
		t.Errorf("not blocked: %+v", p.Blocked)
	}
	if items := repoItems(p, repo); len(items) > 0 || len(p.Blobs) > 0 {
		t.Errorf("deletes %v in %s and %d blobs", items, repo, len(p.Blobs))
	}
}
