package gc_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

// TestEdgesFromIndex: planning with references read per manifest from the index and
// blob sizes from a file (as for large registries) gives the same plan as with all of
// them held.
func TestEdgesFromIndex(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS("../testdata/sample/registry")); err != nil {
		t.Fatal(err)
	}
	roots := map[string]string{"sample": root}
	for _, seed := range []int64{1, 2} {
		r := t.TempDir()
		_, ns, err := synth.NewFilesystem(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := synth.Populate(ctx, ns, seed, synth.Small()); err != nil {
			t.Fatal(err)
		}
		roots["synth"+string(rune('0'+seed))] = r
	}
	now := time.Now().Add(time.Hour)
	for name, r := range roots {
		idx, err := graph.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := graph.Build(ctx, storage.NewFilesystem(r), idx); err != nil {
			t.Fatal(err)
		}
		for _, m := range []bool{false, true} {
			plan := func(held int, sizes int64) string {
				g, err := graph.Load(ctx, idx, graph.WithMaxHeldEdges(held), graph.WithSizeMemory(sizes))
				if err != nil {
					t.Fatal(err)
				}
				p, err := gc.NewPlan(ctx, g, gc.WithDeleteUntagged(m), gc.WithGracePeriod(0), gc.WithNow(now))
				if err != nil {
					t.Fatal(err)
				}
				b, _ := json.Marshal(p)
				return string(b)
			}
			if d := cmp.Diff(plan(1<<30, 1<<30), plan(0, 0)); d != "" {
				t.Errorf("%s -m=%v: plans differ (-held +from index):\n%s", name, m, d)
			}
		}
		idx.Close()
	}
}
