package benchenv_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/memlimit"
	rstorage "github.com/regsweep/regsweep/storage"
)

func TestHeapSynthetic(t *testing.T) {
	if os.Getenv("HEAPTEST") == "" {
		t.Skip()
	}
	ctx := context.Background()
	n := 10_000_000
	if os.Getenv("MEMLIMIT") != "" {
		memlimit.Start(ctx, 256<<20, time.Second)
	}
	drv := benchenv.NewSynthetic(n, 100, max(10, n/100/100))
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	start := time.Now()
	err = graph.Build(ctx, drv, idx, graph.WithWorkers(32), graph.WithDeferredStats(true), graph.WithScanOptions(rstorage.WithTagTimes(false), rstorage.WithWalk(true)), graph.WithTagLinkCache(os.Getenv("LINKCACHE") != ""), graph.WithManifestCache(os.Getenv("NOCACHE") == ""))
	if err != nil {
		t.Fatal(err)
	}
	b1 := time.Since(start)
	gc.NewPlan(ctx, idx, gc.WithGracePeriod(0))
	b, _ := os.ReadFile("/proc/self/status")
	hwm := ""
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM") {
			hwm = l
		}
	}
	t.Logf("build %v, total %v, %s", b1, time.Since(start), hwm)
}
