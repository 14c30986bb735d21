package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/textio"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/storage"
)

// BenchmarkPlanSynthetic plans the synthetic registry of BEAM_BENCH_BLOBS blobs
// (default 1M; 100 blobs a manifest) with the single-machine engine and with the
// pipeline on prism, each in a process of its own: time per blob and peak RSS,
// and the ratio of the two in the same run (make bench-beam).
func BenchmarkPlanSynthetic(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("BEAM_BENCH_BLOBS")); err == nil && v > 0 {
		n = v
	}
	took := map[string]time.Duration{}
	for _, engine := range []string{"regsweep", "prism"} {
		b.Run(engine, func(b *testing.B) {
			for b.Loop() {
				start := time.Now()
				cmd := exec.Command(os.Args[0], "-test.run=^TestBenchChild$", "-test.count=1")
				cmd.Env = append(os.Environ(), "BEAM_BENCH_CHILD="+engine, fmt.Sprintf("BEAM_BENCH_BLOBS=%d", n))
				if _, set := os.LookupEnv("GOMEMLIMIT"); !set && engine == "prism" {
					// prism holds every collection in memory: without a limit the
					// collector lets a 1M-blob run pass 24 GiB.
					cmd.Env = append(cmd.Env, "GOMEMLIMIT=14GiB")
				}
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("%s: %v\n%s", engine, err, out)
				}
				d := time.Since(start)
				took[engine] = d
				b.ReportMetric(float64(d.Nanoseconds())/float64(n), "ns/blob")
				b.ReportMetric(float64(peakKiB(string(out)))/1024, "peak-MiB")
			}
		})
	}
	if took["regsweep"] > 0 {
		b.Logf("%d blobs: prism %v, regsweep %v: %.1fx", n, took["prism"].Round(time.Millisecond), took["regsweep"].Round(time.Millisecond),
			float64(took["prism"])/float64(took["regsweep"]))
	}
}

func peakKiB(out string) int64 {
	at := strings.LastIndex(out, "VmHWM:")
	if at < 0 {
		return 0
	}
	var kib int64
	fmt.Sscanf(out[at:], "VmHWM: %d kB", &kib)
	return kib
}

// TestBenchChild is one engine's run for BenchmarkPlanSynthetic; it does nothing
// in a normal test run.
func TestBenchChild(t *testing.T) {
	engine := os.Getenv("BEAM_BENCH_CHILD")
	if engine == "" {
		t.Skip("run by BenchmarkPlanSynthetic")
	}
	if f := os.Getenv("BEAM_BENCH_HEAP"); f != "" {
		// Heap profiles every two seconds, each over the last: where the peak is.
		go func() {
			for range time.Tick(2 * time.Second) {
				if w, err := os.Create(f); err == nil {
					pprof.WriteHeapProfile(w)
					w.Close()
				}
			}
		}()
	}
	n, _ := strconv.Atoi(os.Getenv("BEAM_BENCH_BLOBS"))
	repos, per := 100, max(1, n/100/100)
	ctx := context.Background()
	now := time.Now().Add(time.Hour)
	switch engine {
	case "regsweep":
		idx, err := graph.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer idx.Close()
		drv := benchenv.NewSynthetic(n, repos, per)
		if err := graph.Build(ctx, drv, idx, graph.WithWorkers(32), graph.WithScanOptions(storage.WithWalk(true), storage.WithTagTimes(false))); err != nil {
			t.Fatal(err)
		}
		p, err := gc.NewPlan(ctx, idx, gc.WithGracePeriod(0), gc.WithNow(now))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("deletes %d blobs\n", len(p.Blobs))
	case "prism":
		benchenv.RegisterSynthetic()
		o := Options{Config: fmt.Sprintf("version: 0.1\nstorage:\n  synthetic:\n    blobs: %d\n    repos: %d\n    perrepo: %d\n", n, repos, per),
			ConfigName: "synthetic.yml", KeepReferrers: true, Cutoff: now.UnixNano(), UploadCutoff: now.Add(-168 * time.Hour).UnixNano(),
			Workers: 32, Rounds: 16, ReadRounds: 4, Walk: true}
		recs := filepath.Join(t.TempDir(), "records")
		p, s := beam.NewPipelineWithRoot()
		textio.Write(s, recs, Build(s, o))
		if err := ptest.Run(p); err != nil {
			t.Fatal(err)
		}
		plan, err := assemble(ctx, recs, o, now, 0, 168*time.Hour, false)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("deletes %d blobs\n", len(plan.Blobs))
	}
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			fmt.Println(strings.Join(strings.Fields(l), " "))
		}
	}
}
