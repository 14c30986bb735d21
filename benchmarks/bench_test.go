package benchmarks

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/sirupsen/logrus"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/synth"
	rstorage "github.com/regsweep/regsweep/storage"
)

var layout = synth.Layout{Repos: 30, ManifestsPerRepo: 20, TagsPerRepo: 12, LayersPerManifest: 4, ShareRatio: 0.3, IndexFraction: 0.1, OrphanBlobs: 200}

func tree(b *testing.B) string {
	b.Helper()
	root := b.TempDir()
	if _, err := synth.Generate(context.Background(), benchenv.NewFastFS(root), 42, layout); err != nil {
		b.Fatal(err)
	}
	return root
}

func BenchmarkRegsweepDryRunFS(b *testing.B) {
	ctx := context.Background()
	root := tree(b)
	drv := rstorage.NewFilesystem(root)
	b.ResetTimer()
	for range b.N {
		dir, _ := os.MkdirTemp("", "idx")
		idx, err := graph.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		if err := graph.Build(ctx, drv, idx, graph.WithWorkers(32)); err != nil {
			b.Fatal(err)
		}
		if _, err := gc.NewPlan(ctx, idx, gc.WithGracePeriod(0)); err != nil {
			b.Fatal(err)
		}
		idx.Close()
		os.RemoveAll(dir)
	}
}

func BenchmarkMarkAndSweepDryRunFS(b *testing.B) {
	logrus.SetOutput(io.Discard)
	ctx := context.Background()
	root := tree(b)
	drv := filesystem.New(filesystem.DriverParameters{RootDirectory: root, MaxThreads: 100})
	ns, err := storage.NewRegistry(ctx, drv, storage.EnableDelete)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := storage.MarkAndSweep(ctx, drv, ns, storage.GCOpts{DryRun: true, Quiet: true}); err != nil {
			b.Fatal(err)
		}
	}
}
