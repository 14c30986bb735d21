package gc_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/sweep"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/storage"
)

// TestApplyRechecks: a tag pushed after the plan was made wins at apply time.
func TestApplyRechecks(t *testing.T) {
	root := regtest.Sample(t)
	ctx := context.Background()
	drv := storage.NewFilesystem(root)
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := graph.Build(ctx, drv, idx); err != nil {
		t.Fatal(err)
	}
	opts := []gc.Option{gc.WithDeleteUntagged(true), gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour))}
	old, err := gc.NewPlan(ctx, idx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	// The plan deletes debian's untagged 12.0 image. Tag it again before applying.
	var revived digest.Digest
	for _, m := range old.Manifests {
		if m.Repository == "library/debian" {
			revived = m.Digest
		}
	}
	if revived == "" {
		t.Fatal("plan deletes no debian manifest")
	}
	regtest.Write(t, root, storage.Spec{Kind: storage.TagCurrentLink, Repo: "library/debian", Tag: "12.0"}, []byte(revived))
	// And push a new image whose blob the plan would otherwise count as orphan: the
	// orphan blob gets linked by a new layer link and manifest.
	if err := graph.Build(ctx, drv, idx); err != nil {
		t.Fatal(err)
	}
	p, err := gc.NewPlan(ctx, idx, append(opts, gc.WithOnly(old))...)
	if err != nil {
		t.Fatal(err)
	}
	dropped := old.Dropped(p)
	if len(dropped) == 0 {
		t.Fatal("re-check dropped nothing")
	}
	if _, err := sweep.Run(ctx, drv, p, sweep.WithJournal(idx)); err != nil {
		t.Fatal(err)
	}
	// Every blob the re-tagged manifest reaches is still there.
	var man struct {
		Config struct{ Digest digest.Digest }
		Layers []struct{ Digest digest.Digest }
	}
	regtest.ReadJSON(t, root, revived, &man)
	for _, d := range append([]digest.Digest{revived, man.Config.Digest}, man.Layers[0].Digest, man.Layers[1].Digest) {
		if _, err := os.Stat(regtest.FSPath(root, regtest.Path(t, storage.Spec{Kind: storage.BlobData, Digest: d}))); err != nil {
			t.Errorf("blob %s of the re-tagged manifest was deleted", d)
		}
	}
	if _, err := os.Stat(regtest.FSPath(root, regtest.Path(t, storage.Spec{Kind: storage.RevisionLink, Repo: "library/debian", Digest: revived}))); err != nil {
		t.Error("revision link of the re-tagged manifest was deleted")
	}
	// Still deleted: web's dead image, which nothing revived.
	if !slices.ContainsFunc(p.Blobs, func(b gc.BlobItem) bool { return true }) {
		t.Error("apply deleted nothing at all")
	}
}

// TestGraceProtectsRacingPush: blobs and links written after the run started are
// never planned, even when a link to an old garbage blob is new.
func TestGraceProtectsRacingPush(t *testing.T) {
	root := regtest.Sample(t)
	ctx := context.Background()
	drv := storage.NewFilesystem(root)
	old := time.Now().Add(-48 * time.Hour)
	filepath.WalkDir(root, func(p string, _ fs.DirEntry, _ error) error { return os.Chtimes(p, old, old) })
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := graph.Build(ctx, drv, idx); err != nil {
		t.Fatal(err)
	}
	base, err := gc.NewPlan(ctx, idx, gc.WithGracePeriod(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(base.Blobs) == 0 {
		t.Fatal("nothing to collect in the aged sample")
	}
	// A client mounts an old garbage blob into a repository (a fresh layer link) and
	// uploads a new blob: both must be kept.
	victim := base.Blobs[0].Digest()
	regtest.Write(t, root, storage.Spec{Kind: storage.LayerLink, Repo: "team/app/api", Digest: victim}, []byte(victim))
	fresh := regtest.PutBlob(t, root, "team/app/api", []byte("a layer pushed during the run"))
	if err := graph.Build(ctx, drv, idx); err != nil {
		t.Fatal(err)
	}
	p, err := gc.NewPlan(ctx, idx, gc.WithGracePeriod(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	assertKept(t, p, victim, fresh)
	if p.Summary.KeptByGrace < 2 {
		t.Errorf("kept_by_grace = %d, want >= 2", p.Summary.KeptByGrace)
	}
}

// TestYoungUntaggedManifestReportedKept: under -m, an untagged manifest whose revision
// link is younger than grace is kept and reported as such, with its blobs.
func TestYoungUntaggedManifestReportedKept(t *testing.T) {
	root := regtest.Sample(t)
	old := time.Now().Add(-48 * time.Hour)
	filepath.WalkDir(root, func(p string, _ fs.DirEntry, _ error) error { return os.Chtimes(p, old, old) })
	base := plan(t, root, gc.WithDeleteUntagged(true), gc.WithGracePeriod(time.Hour), gc.WithNow(time.Now()))
	var m gc.ManifestItem
	for _, x := range base.Manifests {
		if x.Repository == "library/debian" {
			m = x
		}
	}
	if m.Path == "" {
		t.Fatal("aged sample deletes no debian manifest")
	}
	now := time.Now()
	link := regtest.FSPath(root, m.Path+"/link")
	if err := os.Chtimes(link, now, now); err != nil {
		t.Fatal(err)
	}
	p := plan(t, root, gc.WithDeleteUntagged(true), gc.WithGracePeriod(time.Hour), gc.WithNow(time.Now()))
	if slices.ContainsFunc(p.Manifests, func(x gc.ManifestItem) bool { return x.Digest == m.Digest }) {
		t.Fatal("young revision planned for deletion")
	}
	if !slices.ContainsFunc(p.Kept, func(k gc.KeptItem) bool {
		return k.Kind == "manifest" && k.Digest == m.Digest && k.Repository == "library/debian" && k.Reason == "younger than grace"
	}) {
		t.Errorf("young revision not reported kept: %+v", p.Kept)
	}
	if p.Summary.KeptByGrace < 3 { // the manifest, its blob and its unique layer and config
		t.Errorf("kept_by_grace = %d", p.Summary.KeptByGrace)
	}
	assertKept(t, p, m.Digest)
}

func TestKeptReferrersCounted(t *testing.T) {
	root := regtest.Sample(t)
	keep := plan(t, root, gc.WithDeleteUntagged(true))
	drop := plan(t, root, gc.WithDeleteUntagged(true), gc.WithKeepReferrers(false))
	// The sample's one signature (of team/app/api:v1) is kept, and only by the rule.
	if keep.Summary.KeptReferrers != 1 || drop.Summary.KeptReferrers != 0 {
		t.Errorf("kept_referrers = %d (keep), %d (drop); want 1 and 0", keep.Summary.KeptReferrers, drop.Summary.KeptReferrers)
	}
	if drop.Summary.DeleteManifests != keep.Summary.DeleteManifests+1 {
		t.Errorf("dropping referrers deletes %d manifests, keeping %d: want one more", drop.Summary.DeleteManifests, keep.Summary.DeleteManifests)
	}
	if def := plan(t, root); def.Summary.KeptReferrers != 0 {
		t.Errorf("default mode counts %d kept referrers; every revision is a root there", def.Summary.KeptReferrers)
	}
}

// A blob written a moment ago and linked nowhere yet is a push in progress: the
// registry writes the blob before any link. Grace alone keeps it.
func TestGraceKeepsYoungUnlinkedBlob(t *testing.T) {
	root := regtest.Sample(t)
	old := time.Now().Add(-48 * time.Hour)
	filepath.WalkDir(root, func(p string, _ fs.DirEntry, _ error) error { return os.Chtimes(p, old, old) })
	young := regtest.PutBlob(t, root, "", []byte("a blob whose push has not linked it yet"))
	for _, m := range []bool{false, true} {
		p := regtest.Plan(t, root, nil, gc.WithDeleteUntagged(m), gc.WithGracePeriod(time.Hour), gc.WithNow(time.Now()))
		assertKept(t, p, young)
		if !slices.ContainsFunc(p.Kept, func(k gc.KeptItem) bool { return k.Digest == young && k.Reason == "younger than grace" }) {
			t.Errorf("-m=%v: the young blob is not reported as kept by grace: %+v", m, p.Kept)
		}
		if len(p.Blobs) == 0 {
			t.Errorf("-m=%v: the aged sample's garbage is kept too", m)
		}
	}
}
