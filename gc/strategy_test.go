package gc_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

// TestScanStrategiesAgree: walking (as on object storage) and listing the layout's
// directories (as on a filesystem) must index the same registry, with any number of
// workers, and give the same plan.
func TestScanStrategiesAgree(t *testing.T) {
	ctx := context.Background()
	now := time.Now().Add(time.Hour)
	for seed := int64(1); seed <= 4; seed++ {
		root := t.TempDir()
		drv, ns, err := synth.NewFilesystem(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		cfg := synth.Small()
		cfg.Uploads = 2
		if _, err := synth.Populate(ctx, ns, seed, cfg); err != nil {
			t.Fatal(err)
		}
		var first []byte
		for _, walk := range []bool{true, false} {
			for _, workers := range []int{1, 64} {
				for _, mode := range []struct{ verify, deferStats bool }{{false, false}, {false, true}, {true, false}} {
					verify := mode.verify
					idx, err := graph.Open(t.TempDir())
					if err != nil {
						t.Fatal(err)
					}
					err = graph.Build(ctx, drv, idx, graph.WithWorkers(workers), graph.WithVerifyLinks(verify), graph.WithDeferredStats(mode.deferStats), graph.WithScanOptions(storage.WithWalk(walk)))
					if err != nil {
						t.Fatal(err)
					}
					p, err := gc.NewPlan(ctx, idx, gc.WithDeleteUntagged(true), gc.WithGracePeriod(0), gc.WithNow(now), gc.WithUploadAge(time.Nanosecond))
					idx.Close()
					if err != nil {
						t.Fatal(err)
					}
					b, _ := json.MarshalIndent(p, "", " ")
					if first == nil {
						first = b
						if len(p.Blobs) == 0 || len(p.Manifests) == 0 || len(p.Uploads) == 0 {
							t.Fatalf("seed %d: plan exercises too little: %d blobs, %d manifests, %d uploads", seed, len(p.Blobs), len(p.Manifests), len(p.Uploads))
						}
						continue
					}
					if d := cmp.Diff(string(first), string(b)); d != "" {
						t.Fatalf("seed %d walk=%v workers=%d %+v: plan differs (-first +this):\n%s", seed, walk, workers, mode, d)
					}
				}
			}
		}
	}
}
