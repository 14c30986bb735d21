package graph

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/google/go-cmp/cmp"

	"github.com/regsweep/regsweep/benchmarks/synth"
	"github.com/regsweep/regsweep/storage"
)

// A build with deferred stats holds the same graph as one that stats everything
// (sizes from the manifests, tag history where a revision may go), with fewer stats,
// and still drops what a stat finds gone where a plan could delete it.
func TestDeferredStats(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	drv := filesystem.New(filesystem.DriverParameters{RootDirectory: root, MaxThreads: 50})
	st, err := synth.Generate(ctx, drv, 3, synth.Layout{Repos: 3, ManifestsPerRepo: 12, TagsPerRepo: 6, LayersPerManifest: 3, ShareRatio: 0.3, IndexFraction: 0.3, OrphanBlobs: 30, BlobSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	// An orphan blob directory without data, and a layer link whose file an API
	// delete removed: only a stat tells, and neither may count as there.
	empty := filepath.Join(root, "docker/registry/v2/blobs/sha256/ab", "ab"+strings.Repeat("0", 62))
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	var unlinked string
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && unlinked == "" && strings.Contains(p, "/_layers/") && d.Name() == "link" {
			unlinked = p
		}
		return err
	})
	if err != nil || unlinked == "" {
		t.Fatalf("no layer link found: %v", err)
	}
	if err := os.Remove(unlinked); err != nil {
		t.Fatal(err)
	}

	build := func(deferStats bool) (string, int64) {
		t.Helper()
		x, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer x.Close()
		c := storage.NewCounting(drv)
		if err := Build(ctx, c, x, WithWorkers(8), WithDeferredStats(deferStats)); err != nil {
			t.Fatal(err)
		}
		return dump(t, x), c.Count(storage.OpStat)
	}
	full, fullStats := build(false)
	def, defStats := build(true)
	if diff := cmp.Diff(full, def); diff != "" {
		t.Errorf("deferred build holds another graph (-full +deferred):\n%s", diff)
	}
	if !strings.Contains(full, "history ") {
		t.Fatal("registry has no tag history to check")
	}
	t.Logf("%d blobs, %d files: %d stats, %d deferred", st.Blobs, st.Files, fullStats, defStats)
	if defStats >= fullStats*3/4 {
		t.Errorf("deferred build made %d stats, the full one %d: expected far fewer", defStats, fullStats)
	}
}
