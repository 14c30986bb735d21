package gc_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/sweep"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/storage"
)

// files lists every regular file under root, relative to it.
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

type run struct {
	root string
	idx  *graph.Index
}

func newRun(t *testing.T, root, indexDir string) *run {
	t.Helper()
	idx, err := graph.Open(indexDir)
	if err != nil {
		t.Fatal(err)
	}
	return &run{root: root, idx: idx}
}

// gcOnce scans, plans and sweeps like `regsweep gc` does, with the index as journal.
func (r *run) gcOnce(t *testing.T, workers int, m bool, before func(string) error) (*gc.Plan, *sweep.Result, error) {
	t.Helper()
	ctx := context.Background()
	drv := storage.NewFilesystem(r.root)
	if err := graph.Build(ctx, drv, r.idx, graph.WithWorkers(workers)); err != nil {
		t.Fatal(err)
	}
	p, err := gc.NewPlan(ctx, r.idx, gc.WithDeleteUntagged(m), gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := sweep.Run(ctx, drv, p, sweep.WithWorkers(workers), sweep.WithJournal(r.idx), sweep.WithFilesystemRoot(r.root), sweep.WithBeforeDelete(before))
	return p, res, err
}

var errCrash = errors.New("crash injected by test")

func TestSweepMatchesPlan(t *testing.T) {
	for _, m := range []bool{false, true} {
		root := sample(t)
		before := files(t, root)
		r := newRun(t, root, t.TempDir())
		p, res, err := r.gcOnce(t, 8, m, nil)
		r.idx.Close()
		if err != nil {
			t.Fatal(err)
		}
		// Exactly the planned files are gone.
		planned := map[string]bool{}
		for _, f := range before {
			abs := "/" + f
			for q := range p.Paths() {
				if abs == q || len(abs) > len(q) && abs[:len(q)+1] == q+"/" {
					planned[f] = true
				}
			}
			// Layer links are deleted with their directory; it holds only the link.
		}
		after := files(t, root)
		var want []string
		for _, f := range before {
			if !planned[f] {
				want = append(want, f)
			}
		}
		if d := cmp.Diff(want, after); d != "" {
			t.Errorf("-m=%v: files after sweep differ from plan (-want +got):\n%s", m, d)
		}
		var bytes int64
		for _, b := range p.Blobs {
			bytes += b.Size
		}
		if res.FreedBytes != bytes || res.DeletedBlobs != len(p.Blobs) || res.DeletedManifests != len(p.Manifests) ||
			res.DeletedLayerLinks != len(p.LayerLinks) || res.DeletedUploads != len(p.Uploads) {
			t.Errorf("-m=%v: result %+v does not match plan (%d bytes)", m, res, bytes)
		}
		// Nothing is left to collect.
		r2 := newRun(t, root, t.TempDir())
		p2, _, err := r2.gcOnce(t, 8, m, nil)
		r2.idx.Close()
		if err != nil {
			t.Fatal(err)
		}
		if n := len(p2.Paths()); n != 0 {
			t.Errorf("-m=%v: a second run still finds %d paths: %v", m, n, p2.Paths())
		}
		// No empty blob prefix directory is left behind.
		for _, b := range p.Blobs {
			dir := filepath.Dir(fsPath(root, b.Path()))
			if ents, err := os.ReadDir(dir); err == nil && len(ents) == 0 {
				t.Errorf("empty directory left: %s", dir)
			}
		}
	}
}

// TestCrashAndResume kills the sweep after the k-th delete for every k and reruns
// the same command: the final tree must equal an uninterrupted run's.
func TestCrashAndResume(t *testing.T) {
	for _, m := range []bool{false, true} {
		ref := sample(t)
		r := newRun(t, ref, t.TempDir())
		p, _, err := r.gcOnce(t, 4, m, nil)
		r.idx.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := files(t, ref)
		total := len(p.Paths())
		for _, workers := range []int{1, 4} {
			for k := 0; k < total; k++ {
				root := sample(t)
				indexDir := t.TempDir()
				r := newRun(t, root, indexDir)
				var n atomic.Int64
				_, _, err := r.gcOnce(t, workers, m, func(string) error {
					if n.Add(1) > int64(k) {
						return errCrash
					}
					return nil
				})
				if !errors.Is(err, errCrash) {
					t.Fatalf("k=%d: sweep did not crash: %v", k, err)
				}
				// The delete order: whatever was deleted so far, no tag or revision
				// names a manifest that is gone, and no live manifest a blob that is.
				if bad := dangling(t, root); len(bad) > 0 {
					t.Fatalf("-m=%v workers=%d: crashed after %d deletes, storage has dangling references: %v", m, workers, k, bad)
				}
				// Same command again, same index.
				_, res, err := r.gcOnce(t, workers, m, nil)
				r.idx.Close()
				if err != nil {
					t.Fatalf("k=%d: rerun: %v", k, err)
				}
				if d := cmp.Diff(want, files(t, root)); d != "" {
					t.Fatalf("-m=%v workers=%d k=%d: resumed tree differs (-want +got):\n%s", m, workers, k, d)
				}
				if res.Missing != 0 {
					t.Errorf("k=%d: rerun found %d planned items already gone: something was planned twice", k, res.Missing)
				}
				if empty := emptyDirs(t, fsPath(root, storage.Root+"/blobs")); len(empty) > 0 {
					t.Errorf("k=%d: the rerun left empty directories: %v", k, empty)
				}
			}
		}
	}
}

// emptyDirs lists the empty directories below dir.
func emptyDirs(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if ents, err := os.ReadDir(p); err == nil && len(ents) == 0 {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dangling lists every tag and revision link whose manifest blob is missing, and
// every blob a revision-linked manifest references that is missing: what a crash
// must never leave.
func dangling(t *testing.T, root string) []string {
	t.Helper()
	var bad []string
	present := func(d digest.Digest) bool {
		_, err := os.Stat(fsPath(root, spath(t, storage.Spec{Kind: storage.BlobData, Digest: d})))
		return err == nil
	}
	err := filepath.WalkDir(fsPath(root, storage.Root+"/repositories"), func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		rel := "/" + filepath.ToSlash(strings.TrimPrefix(p, root+string(filepath.Separator)))
		s, err := storage.Parse(rel)
		if err != nil || s.Kind != storage.RevisionLink && s.Kind != storage.TagCurrentLink {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		d := digest.Digest(b)
		if !present(d) {
			bad = append(bad, rel+" -> "+d.String())
			return nil
		}
		m, err := graph.ParseManifest(readBlob(t, root, d))
		if err != nil {
			return nil
		}
		for _, ref := range m.Refs {
			if ref.Kind != graph.EdgeSubject && ref.Kind != graph.EdgeChild && !present(ref.Digest) {
				bad = append(bad, rel+" -> "+d.String()+" -> "+ref.Digest.String())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return bad
}

func readBlob(t *testing.T, root string, d digest.Digest) []byte {
	t.Helper()
	b, err := os.ReadFile(fsPath(root, spath(t, storage.Spec{Kind: storage.BlobData, Digest: d})))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A path an interrupted sweep deleted and a push re-created is not hidden by the
// journal: the rerun deletes it with what it references, or keeps both.
func TestJournalDoesNotHideRecreatedPath(t *testing.T) {
	root := sample(t)
	r := newRun(t, root, t.TempDir())
	ctx := context.Background()
	drv := storage.NewFilesystem(root)
	if err := graph.Build(ctx, drv, r.idx); err != nil {
		t.Fatal(err)
	}
	p, err := gc.NewPlan(ctx, r.idx, gc.WithDeleteUntagged(true), gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Manifests) == 0 {
		t.Fatal("the plan deletes no revision")
	}
	// Crash once the revisions are gone, before the blobs.
	_, err = sweep.Run(ctx, drv, p, sweep.WithJournal(r.idx), sweep.WithBeforePhase(func(phase string) error {
		if phase == "blobs" {
			return errCrash
		}
		return nil
	}))
	if !errors.Is(err, errCrash) {
		t.Fatalf("sweep did not crash: %v", err)
	}
	// The untagged manifests are pushed again: their revision links are back.
	for _, m := range p.Manifests {
		write(t, root, storage.Spec{Kind: storage.RevisionLink, Repo: m.Repository, Digest: m.Digest}, []byte(m.Digest))
	}
	_, res, err := r.gcOnce(t, 4, true, nil)
	r.idx.Close()
	if err != nil {
		t.Fatal(err)
	}
	if bad := dangling(t, root); len(bad) > 0 {
		t.Errorf("the rerun left dangling references: %v (result %+v)", bad, res)
	}
}

// TestApplyRechecks: a tag pushed after the plan was made wins at apply time.
func TestApplyRechecks(t *testing.T) {
	root := sample(t)
	ctx := context.Background()
	drv := storage.NewFilesystem(root)
	r := newRun(t, root, t.TempDir())
	defer r.idx.Close()
	if err := graph.Build(ctx, drv, r.idx); err != nil {
		t.Fatal(err)
	}
	opts := []gc.Option{gc.WithDeleteUntagged(true), gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour))}
	old, err := gc.NewPlan(ctx, r.idx, opts...)
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
	write(t, root, storage.Spec{Kind: storage.TagCurrentLink, Repo: "library/debian", Tag: "12.0"}, []byte(revived))
	// And push a new image whose blob the plan would otherwise count as orphan: the
	// orphan blob gets linked by a new layer link and manifest.
	if err := graph.Build(ctx, drv, r.idx); err != nil {
		t.Fatal(err)
	}
	p, err := gc.NewPlan(ctx, r.idx, append(opts, gc.WithOnly(old))...)
	if err != nil {
		t.Fatal(err)
	}
	dropped := old.Dropped(p)
	if len(dropped) == 0 {
		t.Fatal("re-check dropped nothing")
	}
	if _, err := sweep.Run(ctx, drv, p, sweep.WithJournal(r.idx)); err != nil {
		t.Fatal(err)
	}
	// Every blob the re-tagged manifest reaches is still there.
	var man struct {
		Config struct{ Digest digest.Digest }
		Layers []struct{ Digest digest.Digest }
	}
	readJSON(t, root, revived, &man)
	for _, d := range append([]digest.Digest{revived, man.Config.Digest}, man.Layers[0].Digest, man.Layers[1].Digest) {
		if _, err := os.Stat(fsPath(root, spath(t, storage.Spec{Kind: storage.BlobData, Digest: d}))); err != nil {
			t.Errorf("blob %s of the re-tagged manifest was deleted", d)
		}
	}
	if _, err := os.Stat(fsPath(root, spath(t, storage.Spec{Kind: storage.RevisionLink, Repo: "library/debian", Digest: revived}))); err != nil {
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
	root := sample(t)
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
	write(t, root, storage.Spec{Kind: storage.LayerLink, Repo: "team/app/api", Digest: victim}, []byte(victim))
	fresh := putBlob(t, root, "team/app/api", []byte("a layer pushed during the run"))
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
	root := sample(t)
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
	link := fsPath(root, m.Path+"/link")
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
	root := sample(t)
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
	root := sample(t)
	old := time.Now().Add(-48 * time.Hour)
	filepath.WalkDir(root, func(p string, _ fs.DirEntry, _ error) error { return os.Chtimes(p, old, old) })
	young := putBlob(t, root, "", []byte("a blob whose push has not linked it yet"))
	for _, m := range []bool{false, true} {
		p := planWith(t, root, nil, gc.WithDeleteUntagged(m), gc.WithGracePeriod(time.Hour), gc.WithNow(time.Now()))
		assertKept(t, p, young)
		if !slices.ContainsFunc(p.Kept, func(k gc.KeptItem) bool { return k.Digest == young && k.Reason == "younger than grace" }) {
			t.Errorf("-m=%v: the young blob is not reported as kept by grace: %+v", m, p.Kept)
		}
		if len(p.Blobs) == 0 {
			t.Errorf("-m=%v: the aged sample's garbage is kept too", m)
		}
	}
}
