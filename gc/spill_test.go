package gc_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

// A plan whose blob items spill to a file is the plan held in memory, item for
// item, in both modes and with retention's stats; runs of a few items make the
// sort merge many of them. Closing it leaves nothing in the spill directory.
func TestSpilledPlanEqualsPlanInMemory(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	drv := filesystem.New(filesystem.DriverParameters{RootDirectory: root, MaxThreads: 10})
	if _, err := synth.Generate(ctx, drv, 11, synth.Layout{Repos: 4, ManifestsPerRepo: 25, TagsPerRepo: 8, LayersPerManifest: 3, ShareRatio: 0.3, IndexFraction: 0.2, OrphanBlobs: 300, BlobSize: 50}); err != nil {
		t.Fatal(err)
	}
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := graph.Build(ctx, storage.NewFilesystem(root), idx, graph.WithWorkers(4)); err != nil {
		t.Fatal(err)
	}
	g, err := graph.Load(ctx, idx)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Add(time.Hour)
	for _, m := range []bool{false, true} {
		opts := []gc.Option{gc.WithGracePeriod(0), gc.WithNow(now), gc.WithDeleteUntagged(m)}
		want, err := gc.NewPlan(ctx, g, opts...)
		if err != nil {
			t.Fatal(err)
		}
		for _, run := range []int{7, 1 << 19} {
			restore := gc.SpillAll(run)
			dir := t.TempDir()
			got, err := gc.NewPlan(ctx, g, append(opts, gc.WithSpillDir(dir))...)
			restore()
			if err != nil {
				t.Fatal(err)
			}
			if !gc.Spilled(got) {
				t.Fatalf("-m=%v: the plan did not spill its %d blob items", m, len(got.Blobs))
			}
			if len(got.Blobs) < 300 {
				t.Fatalf("-m=%v: %d blob items, want the 300 orphans at least", m, len(got.Blobs))
			}
			a, _ := json.Marshal(want)
			b, _ := json.Marshal(got)
			if !bytes.Equal(a, b) {
				t.Errorf("-m=%v, runs of %d: the spilled plan differs from the plan in memory:\n%s\nwant\n%s", m, run, b, a)
			}
			if es, _ := os.ReadDir(dir); len(es) != 0 {
				t.Errorf("spill files left in the directory: %v", es)
			}
			if err := got.Close(); err != nil {
				t.Fatal(err)
			}
			if got.Blobs != nil {
				t.Error("blob items still reachable after Close")
			}
		}
	}
}
