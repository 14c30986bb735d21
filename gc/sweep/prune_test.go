package sweep_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/sweep"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

// pruneFixture is a synthetic registry plus three repositories made for the test:
// team/app (its tags then deleted through the storage API, its blobs shared with
// other/keep), team/app/web nested below it, and other/keep.
type pruneFixture struct {
	root string
	ns   distribution.Namespace
	img  *image // pushed to team/app and other/keep
	web  *image // pushed to team/app/web
	// orphans hold only _layers links, of blobs no manifest references: an
	// abandoned first push.
	orphans []string
}

func newPruneFixture(t *testing.T) *pruneFixture {
	t.Helper()
	ctx := context.Background()
	root := t.TempDir()
	_, ns, err := synth.NewFilesystem(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	cfg := synth.Small()
	cfg.OrphanRepos = 2
	sum, err := synth.Populate(ctx, ns, 5, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var imgs []*image
	for _, repo := range sum.Repos {
		for _, tag := range slices.Sorted(maps.Keys(sum.Tags[repo])) {
			if len(imgs) < 2 {
				imgs = append(imgs, saveImage(t, root, sum.Tags[repo][tag]))
			}
		}
	}
	if len(imgs) < 2 {
		t.Fatal("the synthetic registry has fewer than 2 tags")
	}
	f := &pruneFixture{root: root, ns: ns, img: imgs[0], web: imgs[1], orphans: sum.OrphanRepos}
	if len(f.orphans) == 0 {
		t.Fatal("the synthetic registry has no orphan repository")
	}
	for _, x := range []struct {
		repo, tag string
		img       *image
	}{{"team/app", "v1", f.img}, {"team/app", "v2", f.img}, {"team/app/web", "latest", f.web}, {"other/keep", "v1", f.img}} {
		if err := push(ctx, ns, x.repo, x.tag, x.img); err != nil {
			t.Fatal(err)
		}
	}
	for _, tag := range []string{"v1", "v2"} {
		if err := regtest.Repository(t, ns, "team/app").Tags(ctx).Untag(ctx, tag); err != nil {
			t.Fatal(err)
		}
	}
	regtest.Age(t, root, time.Now().Add(-48*time.Hour))
	return f
}

func (f *pruneFixture) plan(t *testing.T, opts ...gc.Option) *gc.Plan {
	t.Helper()
	ctx := context.Background()
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idx.Close() })
	if err := graph.Build(ctx, storage.NewFilesystem(f.root), idx, graph.WithWorkers(4)); err != nil {
		t.Fatal(err)
	}
	p, err := gc.NewPlan(ctx, idx, append([]gc.Option{gc.WithGracePeriod(time.Hour), gc.WithNow(time.Now())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func emptyRepoNames(p *gc.Plan) []string {
	var out []string
	for _, r := range p.EmptyRepositories {
		out = append(out, r.Repository)
	}
	return out
}

func (f *pruneFixture) catalog(t *testing.T) []string {
	t.Helper()
	names := make([]string, 1000)
	n, _ := f.ns.Repositories(context.Background(), names, "")
	return names[:n]
}

// A repository whose tags are all deleted goes, with the layer links of blobs other
// repositories keep, and only its own directories: the repository nested below it,
// and the one sharing its blobs, still pull; the catalog no longer lists it; a push
// to the same name works again.
func TestPruneEmptyRepository(t *testing.T) {
	ctx := context.Background()
	f := newPruneFixture(t)
	p := f.plan(t, gc.WithDeleteUntagged(true), gc.WithPruneEmptyRepositories(true))
	names := emptyRepoNames(p)
	for _, want := range append([]string{"team/app"}, f.orphans...) {
		if !slices.Contains(names, want) {
			t.Fatalf("empty repositories %v: want %s among them", names, want)
		}
	}
	for _, n := range names {
		if n == "team/app/web" || n == "other/keep" {
			t.Fatalf("empty repositories %v name a repository with tags", names)
		}
	}
	for _, r := range p.EmptyRepositories {
		if r.Repository == "team/app" && (r.LayerLinks == 0 || r.Revisions == 0 || len(r.Links) != r.LayerLinks+r.Revisions) {
			t.Fatalf("team/app: %d revision and %d layer links, %d listed: its image lives on in other/keep, so pruning alone removes its links", r.Revisions, r.LayerLinks, len(r.Links))
		}
	}
	if p.Summary.DeleteRepositories != len(names) {
		t.Errorf("summary.delete_repositories = %d, want %d", p.Summary.DeleteRepositories, len(names))
	}
	res, err := sweep.Run(ctx, storage.NewFilesystem(f.root), p, sweep.WithWorkers(4), sweep.WithFilesystemRoot(f.root))
	if err != nil {
		t.Fatal(err)
	}
	if res.DeletedRepositories != len(names) || res.KeptRepositories != 0 {
		t.Errorf("deleted %d repositories, kept %d; want %d, 0", res.DeletedRepositories, res.KeptRepositories, len(names))
	}
	appDir := regtest.FSPath(f.root, storage.Root+"/repositories/team/app")
	for _, sub := range storage.RepoDataDirs {
		if _, err := os.Lstat(filepath.Join(appDir, sub)); !os.IsNotExist(err) {
			t.Errorf("team/app/%s is still there (%v)", sub, err)
		}
	}
	if why := pulls(ctx, f.ns, "team/app/web", "latest", f.web); why != "" {
		t.Errorf("nested team/app/web no longer pulls: %s", why)
	}
	if why := pulls(ctx, f.ns, "other/keep", "v1", f.img); why != "" {
		t.Errorf("other/keep, sharing team/app's blobs, no longer pulls: %s", why)
	}
	cat := f.catalog(t)
	for _, n := range names {
		if slices.Contains(cat, n) {
			t.Errorf("catalog %v still lists removed %s", cat, n)
		}
	}
	if !slices.Contains(cat, "team/app/web") {
		t.Errorf("catalog %v lost team/app/web", cat)
	}
	if err := push(ctx, f.ns, "team/app", "v3", f.img); err != nil {
		t.Fatalf("push to a removed repository's name: %v", err)
	}
	if why := pulls(ctx, f.ns, "team/app", "v3", f.img); why != "" {
		t.Errorf("team/app pushed again does not pull: %s", why)
	}
	// Fixed point: a second plan finds nothing more to remove but the orphans of
	// the synthetic registry, which went the first time.
	if again := f.plan(t, gc.WithDeleteUntagged(true), gc.WithPruneEmptyRepositories(true)); len(again.EmptyRepositories) != 0 {
		t.Errorf("second plan: empty repositories %v, want none", emptyRepoNames(again))
	}
}

// What keeps a repository: untagged revisions in default mode (they are roots), a
// young layer link (a push under way), an upload not yet stale, and the flag off.
func TestPruneKeepsRepositoriesInUse(t *testing.T) {
	f := newPruneFixture(t)
	if p := f.plan(t, gc.WithDeleteUntagged(true)); len(p.EmptyRepositories) != 0 {
		t.Errorf("without the option: empty repositories %v", emptyRepoNames(p))
	}
	if p := f.plan(t, gc.WithPruneEmptyRepositories(true)); slices.Contains(emptyRepoNames(p), "team/app") {
		t.Errorf("default mode: team/app's untagged revisions are roots, yet it is planned empty")
	}

	// A young layer link (the first half of a push): the index has no time for
	// layer links, so the sweep looks and keeps the repository.
	var d digest.Digest
	for x := range f.img.blobs {
		d = x
		break
	}
	link := regtest.FSPath(f.root, regtest.Path(t, storage.Spec{Kind: storage.LayerLink, Repo: "team/app", Digest: d}))
	now := time.Now()
	if err := os.Chtimes(link, now, now); err != nil {
		t.Fatal(err)
	}
	p := f.plan(t, gc.WithDeleteUntagged(true), gc.WithPruneEmptyRepositories(true))
	res, err := sweep.Run(context.Background(), storage.NewFilesystem(f.root), p, sweep.WithWorkers(4))
	if err != nil {
		t.Fatal(err)
	}
	if res.KeptRepositories != 1 {
		t.Errorf("kept %d repositories, want 1: team/app holds a layer link younger than grace", res.KeptRepositories)
	}
	if _, err := os.Stat(link); err != nil {
		t.Errorf("the young layer link is gone: %v", err)
	}
	if why := pulls(context.Background(), f.ns, "other/keep", "v1", f.img); why != "" {
		t.Errorf("other/keep no longer pulls: %s", why)
	}
	old := now.Add(-48 * time.Hour)
	if err := os.Chtimes(link, old, old); err != nil {
		t.Fatal(err)
	}

	// A file the layout does not know in a repository's data (the scan does not
	// list those directories whole): the sweep finds it and keeps the repository.
	stray := regtest.FSPath(f.root, storage.Root+"/repositories/team/app/_manifests/notes.txt")
	if err := os.WriteFile(stray, []byte("ops notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	regtest.Age(t, f.root, time.Now().Add(-48*time.Hour))
	p = f.plan(t, gc.WithDeleteUntagged(true), gc.WithPruneEmptyRepositories(true))
	if res, err = sweep.Run(context.Background(), storage.NewFilesystem(f.root), p, sweep.WithWorkers(4)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stray); err != nil || res.KeptRepositories == 0 {
		t.Errorf("a stray file in team/app: kept %d repositories, the file: %v", res.KeptRepositories, err)
	}
	if err := os.Remove(stray); err != nil {
		t.Fatal(err)
	}
	// A stray file beside repositories, which no repository owns: none goes.
	other := regtest.FSPath(f.root, storage.Root+"/repositories/team/README")
	if err := os.WriteFile(other, []byte("ops notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p := f.plan(t, gc.WithDeleteUntagged(true), gc.WithPruneEmptyRepositories(true)); len(p.EmptyRepositories) != 0 {
		t.Errorf("a stray file under repositories: empty repositories %v, want none", emptyRepoNames(p))
	}
	if err := os.Remove(other); err != nil {
		t.Fatal(err)
	}

	// An upload started an hour ago: not stale, so the repository is in use.
	w, err := regtest.Repository(t, f.ns, "team/app").Blobs(context.Background()).Create(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("half a layer")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if p := f.plan(t, gc.WithDeleteUntagged(true), gc.WithPruneEmptyRepositories(true)); slices.Contains(emptyRepoNames(p), "team/app") {
		t.Errorf("team/app holds an upload under way, yet it is planned empty")
	}
}

// A push to an empty repository after the plan keeps it: the sweep looks again just
// before removing it. Also when the files come with old times (restored from a
// backup, copied with rsync -t): they are not the links the plan knew.
func TestPruneKeepsRepositoryPushedSincePlan(t *testing.T) {
	t.Run("pushed", func(t *testing.T) { pruneAfterPush(t, false) })
	t.Run("restored with old times", func(t *testing.T) { pruneAfterPush(t, true) })
}

func pruneAfterPush(t *testing.T, oldTimes bool) {
	ctx := context.Background()
	f := newPruneFixture(t)
	p := f.plan(t, gc.WithDeleteUntagged(true), gc.WithPruneEmptyRepositories(true))
	if !slices.Contains(emptyRepoNames(p), "team/app") {
		t.Fatalf("empty repositories %v: want team/app", emptyRepoNames(p))
	}
	res, err := sweep.Run(ctx, storage.NewFilesystem(f.root), p, sweep.WithWorkers(4),
		sweep.WithBeforePhase(func(phase string) error {
			if phase != "empty repositories" {
				return nil
			}
			if err := push(ctx, f.ns, "team/app", "v9", f.web); err != nil {
				return err
			}
			if oldTimes {
				regtest.Age(t, f.root, time.Now().Add(-48*time.Hour))
			}
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	if res.KeptRepositories != 1 {
		t.Errorf("kept %d repositories, want 1 (team/app, pushed to)", res.KeptRepositories)
	}
	if why := pulls(ctx, f.ns, "team/app", "v9", f.web); why != "" {
		t.Errorf("team/app:v9 pushed before the repository phase no longer pulls: %s", why)
	}
}

// A symbolic link that appears in a repository's data directories by the time the
// sweep reaches it keeps the repository, and what it points at is left alone.
func TestPruneKeepsRepositoryWithSymlink(t *testing.T) {
	ctx := context.Background()
	f := newPruneFixture(t)
	p := f.plan(t, gc.WithDeleteUntagged(true), gc.WithPruneEmptyRepositories(true))
	if !slices.Contains(emptyRepoNames(p), "team/app") {
		t.Fatalf("empty repositories %v: want team/app", emptyRepoNames(p))
	}
	elsewhere := t.TempDir()
	kept := filepath.Join(elsewhere, "keep")
	if err := os.WriteFile(kept, []byte("an operator's data"), 0o644); err != nil {
		t.Fatal(err)
	}
	layers := filepath.Join(f.root, "docker/registry/v2/repositories/team/app/_layers/sha256")
	res, err := sweep.Run(ctx, storage.NewFilesystem(f.root), p, sweep.WithWorkers(4),
		sweep.WithBeforePhase(func(phase string) error {
			if phase != "empty repositories" {
				return nil
			}
			return os.Symlink(elsewhere, filepath.Join(layers, "linked"))
		}))
	if err != nil {
		t.Fatal(err)
	}
	if res.KeptRepositories != 1 {
		t.Errorf("kept %d repositories, want 1 (team/app, holding a symbolic link)", res.KeptRepositories)
	}
	if _, err := os.Lstat(filepath.Join(layers, "linked")); err != nil {
		t.Errorf("the symbolic link is gone: %v", err)
	}
	if b, err := os.ReadFile(kept); err != nil || string(b) != "an operator's data" {
		t.Errorf("what the link points at: %q, %v", b, err)
	}
}
