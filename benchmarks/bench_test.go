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
	"github.com/regsweep/regsweep/gc/policy"
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

// BenchmarkRegsweepDryRunFS scans and plans as regsweep gc --dry-run does.
func BenchmarkRegsweepDryRunFS(b *testing.B) {
	benchDryRun(b, false, graph.WithScanOptions(rstorage.WithTagTimes(false)))
}

// BenchmarkRegsweepPolicyDryRunFS does the same with a retention policy: tag times
// stated, tags decided, the graph marked with and without the tag deletions.
func BenchmarkRegsweepPolicyDryRunFS(b *testing.B) {
	benchDryRun(b, true)
}

func benchDryRun(b *testing.B, withPolicy bool, build ...graph.BuildOption) {
	ctx := context.Background()
	root := tree(b)
	drv := rstorage.NewFilesystem(root)
	opts := []gc.Option{gc.WithGracePeriod(0)}
	if withPolicy {
		pol, err := policy.Parse("bench", []byte("policies:\n  - repositories: [\"**\"]\n    deleteUntagged: true\n    keepTags:\n      - mostRecentlyPushedCount: 4\n      - patterns: [\"^v1$\"]\n"))
		if err != nil {
			b.Fatal(err)
		}
		opts = append(opts, gc.WithPolicy(pol))
	}
	b.ResetTimer()
	for range b.N {
		dir, _ := os.MkdirTemp("", "idx")
		idx, err := graph.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		if err := graph.Build(ctx, drv, idx, append([]graph.BuildOption{graph.WithWorkers(32)}, build...)...); err != nil {
			b.Fatal(err)
		}
		p, err := gc.NewPlan(ctx, idx, opts...)
		if err != nil {
			b.Fatal(err)
		}
		if withPolicy && len(p.Tags) == 0 {
			b.Fatal("the policy deletes no tag")
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

// BenchmarkRegsweepRerunS3 plans again with the index of the last run, as a second
// dry run does on an unchanged bucket (20 repositories, 200 manifests, no added
// latency: what is left is the tool's own time).
func BenchmarkRegsweepRerunS3(b *testing.B) {
	ctx := context.Background()
	_, drv := benchenv.StartS3(b, "/")
	if _, err := synth.Generate(ctx, drv, 7, synth.Layout{Repos: 20, ManifestsPerRepo: 10, TagsPerRepo: 6, LayersPerManifest: 3, ShareRatio: 0.3, IndexFraction: 0.1, OrphanBlobs: 100}); err != nil {
		b.Fatal(err)
	}
	n, ao := rstorage.Concurrency(drv.Name(), 0)
	drv = rstorage.NewPatient(rstorage.NewAdaptive(drv, *ao), rstorage.PatientOptions{})
	dir := b.TempDir()
	run := func() {
		idx, err := graph.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		defer idx.Close()
		if err := graph.Build(ctx, drv, idx, graph.WithWorkers(n), graph.WithScanOptions(rstorage.WithTagTimes(false)), graph.WithTagLinkCache(true)); err != nil {
			b.Fatal(err)
		}
		if _, err := gc.NewPlan(ctx, idx, gc.WithGracePeriod(0)); err != nil {
			b.Fatal(err)
		}
	}
	run()
	b.ResetTimer()
	for range b.N {
		run()
	}
}
