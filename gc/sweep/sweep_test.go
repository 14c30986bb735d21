package sweep_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/sweep"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/storage"
)

var errCrash = errors.New("crash injected by test")

type run struct {
	root  string
	idx   *graph.Index
	batch bool // blobs and layer links through a batcher (dirBatcher)
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
	opts := []sweep.Option{sweep.WithWorkers(workers), sweep.WithJournal(r.idx), sweep.WithFilesystemRoot(r.root), sweep.WithBeforeDelete(before)}
	if r.batch {
		opts = append(opts, sweep.WithBatcher(&dirBatcher{drv: drv}))
	}
	res, err := sweep.Run(ctx, drv, p, opts...)
	return p, res, err
}

func TestSweepMatchesPlan(t *testing.T) {
	for _, m := range []bool{false, true} {
		root := regtest.Sample(t)
		before := regtest.Files(t, root)
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
		after := regtest.Files(t, root)
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
			bytes += b.Size()
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
			dir := filepath.Dir(regtest.FSPath(root, b.Path()))
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
		ref := regtest.Sample(t)
		r := newRun(t, ref, t.TempDir())
		p, _, err := r.gcOnce(t, 4, m, nil)
		r.idx.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := regtest.Files(t, ref)
		total := len(p.Paths())
		for _, workers := range []int{1, 4, 0} { // 0: 4 workers, blobs and layer links in batches
			batch := workers == 0
			workers = max(workers, 4)
			for k := 0; k < total; k++ {
				root := regtest.Sample(t)
				indexDir := t.TempDir()
				r := newRun(t, root, indexDir)
				r.batch = batch
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
				if d := cmp.Diff(want, regtest.Files(t, root)); d != "" {
					t.Fatalf("-m=%v workers=%d k=%d: resumed tree differs (-want +got):\n%s", m, workers, k, d)
				}
				if res.Missing != 0 {
					t.Errorf("k=%d: rerun found %d planned items already gone: something was planned twice", k, res.Missing)
				}
				if empty := emptyDirs(t, regtest.FSPath(root, storage.Root+"/blobs")); len(empty) > 0 {
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
		_, err := os.Stat(regtest.FSPath(root, regtest.Path(t, storage.Spec{Kind: storage.BlobData, Digest: d})))
		return err == nil
	}
	err := filepath.WalkDir(regtest.FSPath(root, storage.Root+"/repositories"), func(p string, de fs.DirEntry, err error) error {
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
		m, err := graph.ParseManifest(regtest.ReadBlob(t, root, d))
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

// A path an interrupted sweep deleted and a push re-created is not hidden by the
// journal: the rerun deletes it with what it references, or keeps both.
func TestJournalDoesNotHideRecreatedPath(t *testing.T) {
	root := regtest.Sample(t)
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
		regtest.Write(t, root, storage.Spec{Kind: storage.RevisionLink, Repo: m.Repository, Digest: m.Digest}, []byte(m.Digest))
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
