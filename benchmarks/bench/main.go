// Command bench measures regsweep against distribution's storage.MarkAndSweep on the
// same generated registries, in one process, and prints one markdown table.
//
//	go run ./benchmarks/bench -scale small   # CI-sized, a few minutes
//	go run ./benchmarks/bench -scale full    # the RESULTS.md table
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"

	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/dustin/go-humanize"
	"github.com/sirupsen/logrus"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
	"github.com/regsweep/regsweep/internal/synth"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/policy"
	"github.com/regsweep/regsweep/gc/sweep"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/memlimit"
	rstorage "github.com/regsweep/regsweep/storage"
)

type scale struct {
	runs                   int
	fs                     synth.Layout
	s3                     synth.Layout
	s3Large                synth.Layout // 10× the manifests, without MarkAndSweep
	s3SlowRuns             int
	untaggedN              int
	sweepGarbage           int
	rssTreeBlobs, rssSynth int
}

var scales = map[string]scale{
	"small": {
		runs:       3,
		fs:         synth.Layout{Repos: 30, ManifestsPerRepo: 20, TagsPerRepo: 12, LayersPerManifest: 4, ShareRatio: 0.3, IndexFraction: 0.1, OrphanBlobs: 200},
		s3:         synth.Layout{Repos: 4, ManifestsPerRepo: 10, TagsPerRepo: 6, LayersPerManifest: 3, ShareRatio: 0.3, IndexFraction: 0.1, OrphanBlobs: 20},
		s3Large:    synth.Layout{Repos: 40, ManifestsPerRepo: 10, TagsPerRepo: 6, LayersPerManifest: 3, ShareRatio: 0.3, IndexFraction: 0.1, OrphanBlobs: 200},
		s3SlowRuns: 1, untaggedN: 200, sweepGarbage: 3000, rssTreeBlobs: 50_000, rssSynth: 500_000,
	},
	"full": {
		runs:       5,
		fs:         synth.Layout{Repos: 200, ManifestsPerRepo: 20, TagsPerRepo: 12, LayersPerManifest: 4, ShareRatio: 0.3, IndexFraction: 0.1, OrphanBlobs: 1000},
		s3:         synth.Layout{Repos: 20, ManifestsPerRepo: 10, TagsPerRepo: 6, LayersPerManifest: 3, ShareRatio: 0.3, IndexFraction: 0.1, OrphanBlobs: 100},
		s3Large:    synth.Layout{Repos: 200, ManifestsPerRepo: 10, TagsPerRepo: 6, LayersPerManifest: 3, ShareRatio: 0.3, IndexFraction: 0.1, OrphanBlobs: 1000},
		s3SlowRuns: 1, untaggedN: 1000, sweepGarbage: 20_000, rssTreeBlobs: 1_000_000, rssSynth: 10_000_000,
	},
}

var (
	workers    = flag.Int("workers", 0, "regsweep --workers (0: the default for the storage, as the CLI)")
	memLimit   = flag.Int64("memory-limit", 256<<20, "regsweep --memory-limit in bytes for the child processes (256 MiB: the CLI's default)")
	cpuprofile = flag.String("cpuprofile", "", "write a CPU profile of the regsweep runs to this file (-only scale: FILE.<blobs> for each child)")
	synthBlobs = flag.String("synth", "", "comma-separated blob counts for the synthetic-driver rows of -only scale (time per blob, peak RSS, index size on disk)")
)

// As the CLI: idle connections to the object store are kept.
func init() { rstorage.KeepConnections() }

func main() {
	if len(os.Args) > 1 && os.Args[1] == "rss" {
		rssChild(os.Args[2:])
		return
	}
	scaleName := flag.String("scale", envOr("BENCH_SCALE", "small"), "small or full")
	only := flag.String("only", "", "comma-separated sections: fs,s3,untagged,sweep,rss")
	flag.Parse()
	sc, ok := scales[*scaleName]
	if !ok {
		log.Fatalf("unknown scale %q", *scaleName)
	}
	logrus.SetLevel(logrus.ErrorLevel)
	logrus.SetOutput(io.Discard)
	ctx := context.Background()
	want := func(s string) bool { return *only == "" || slices.Contains(strings.Split(*only, ","), s) }

	host, _ := os.Hostname()
	fmt.Printf("# regsweep benchmarks (scale %s)\n\n", *scaleName)
	fmt.Printf("%s, %s/%s, %d CPUs, %s; regsweep workers %d; medians of %d runs unless noted.\n\n",
		time.Now().UTC().Format("2006-01-02"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), host, *workers, sc.runs)
	fmt.Println("| scenario | tool | median time | driver calls / requests | vs MarkAndSweep |")
	fmt.Println("| --- | --- | ---: | ---: | ---: |")
	if want("fs") {
		benchFS(ctx, sc)
	}
	if want("s3") {
		benchS3(ctx, sc)
	}
	if want("untagged") {
		benchUntagged(ctx, sc)
	}
	if want("sweep") {
		benchSweep(ctx, sc)
		benchSweepS3(ctx, sc)
	}
	if want("rss") {
		benchRSS(ctx, sc)
	}
	if want("scale") && *only != "" {
		benchScale()
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

func tempDir(pattern string) string {
	d, err := os.MkdirTemp("", pattern)
	must(err)
	return d
}

// median runs fn n times and returns the median duration and the last run's calls.
func median(n int, fn func() int64) (time.Duration, int64) {
	var ds []time.Duration
	var calls int64
	for i := 0; i < n; i++ {
		start := time.Now()
		calls = fn()
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds[len(ds)/2], calls
}

func row(scenario, tool string, d time.Duration, calls int64, base time.Duration, baseCalls int64) {
	ratio := ""
	if base > 0 && tool != "MarkAndSweep" {
		ratio = fmt.Sprintf("%.1f× faster", float64(base)/float64(d))
		if baseCalls > 0 && calls > 0 {
			ratio += fmt.Sprintf(", %.0f× fewer calls", float64(baseCalls)/float64(calls))
		}
	}
	c := "—"
	if calls > 0 {
		c = fmt.Sprint(calls)
	}
	fmt.Printf("| %s | %s | %s | %s | %s |\n", scenario, tool, d.Round(time.Millisecond), c, ratio)
}

// regsweep runs a dry-run plan with a fresh index and returns driver calls.
func regsweep(ctx context.Context, drv driver.StorageDriver, m bool, count func() int64) int64 {
	dir := tempDir("bench-index-")
	defer os.RemoveAll(dir)
	return regsweepIn(ctx, dir, drv, m, count)
}

// lastPeak is the most requests in flight of the last regsweepIn on an object store.
var lastPeak int64

// lastBuild and lastPlan are the last regsweepIn's build and plan times.
var lastBuild, lastPlan time.Duration

// lastIndexBytes is the size on disk of the last regsweepIn's index.
var lastIndexBytes int64

// dirBytes returns the bytes allocated on disk to the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	must(filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512 // sparse value logs are allocated, not sized
		} else {
			n += fi.Size()
		}
		return nil
	}))
	return n
}

// asCLI wraps drv as regsweep gc does, with the workers the CLI would run: on
// object stores, the adaptive limit and patience.
func asCLI(drv driver.StorageDriver) (driver.StorageDriver, int, *rstorage.Adaptive) {
	if _, ok := drv.(*benchenv.Synthetic); ok {
		return drv, cmp.Or(*workers, 32), nil // as the rows recorded before 2026-12
	}
	n, ao := rstorage.Concurrency(drv.Name(), *workers)
	if ao == nil {
		return drv, n, nil
	}
	a := rstorage.NewAdaptive(drv, *ao)
	return rstorage.NewPatient(a, rstorage.PatientOptions{}), n, a
}

// regsweepIn plans with the index in dir, which may hold an earlier build's
// manifest cache.
func regsweepIn(ctx context.Context, dir string, drv driver.StorageDriver, m bool, count func() int64) int64 {
	idx, err := graph.Open(dir)
	must(err)
	defer idx.Close()
	before := count()
	drv, n, a := asCLI(drv)
	// As regsweep gc without a policy builds.
	opts := []graph.BuildOption{graph.WithWorkers(n), graph.WithDeferredStats(true), graph.WithScanOptions(rstorage.WithTagTimes(false)), graph.WithTagLinkCache(true)}
	if _, ok := drv.(*benchenv.Synthetic); ok {
		opts = append(opts, graph.WithScanOptions(rstorage.WithWalk(true)))
	}
	start := time.Now()
	must(graph.Build(ctx, drv, idx, opts...))
	built := time.Now()
	_, err = gc.NewPlan(ctx, idx, gc.WithDeleteUntagged(m), gc.WithGracePeriod(0), gc.WithSpillDir(dir)) // as regsweep gc: beside the index
	must(err)
	lastBuild, lastPlan = built.Sub(start), time.Since(built)
	lastIndexBytes = dirBytes(dir)
	if a != nil {
		lastPeak = a.Peak()
	}
	return count() - before
}

// benchPolicy keeps the 4 most recently pushed tags of every repository and v1.
const benchPolicy = "policies:\n  - repositories: [\"**\"]\n    deleteUntagged: true\n    keepTags:\n      - mostRecentlyPushedCount: 4\n      - patterns: [\"^v1$\"]\n"

// regsweepPolicy runs a dry-run plan with a retention policy, as regsweep gc
// --policy does: tag times stated, tags decided, the graph marked with and without
// the tag deletions.
func regsweepPolicy(ctx context.Context, drv driver.StorageDriver, _ bool, count func() int64) int64 {
	dir := tempDir("bench-index-")
	defer os.RemoveAll(dir)
	idx, err := graph.Open(dir)
	must(err)
	defer idx.Close()
	pol, err := policy.Parse("bench", []byte(benchPolicy))
	must(err)
	before := count()
	drv, n, _ := asCLI(drv)
	must(graph.Build(ctx, drv, idx, graph.WithWorkers(n), graph.WithDeferredStats(true)))
	p, err := gc.NewPlan(ctx, idx, gc.WithPolicy(pol), gc.WithGracePeriod(0))
	must(err)
	if len(p.Tags) == 0 {
		must(fmt.Errorf("the benchmark policy deletes no tag"))
	}
	return count() - before
}

func markAndSweep(ctx context.Context, drv driver.StorageDriver, m bool, count func() int64) int64 {
	ns, err := storage.NewRegistry(ctx, drv, storage.EnableDelete)
	must(err)
	before := count()
	must(storage.MarkAndSweep(ctx, drv, ns, storage.GCOpts{DryRun: true, RemoveUntagged: m, Quiet: true}))
	return count() - before
}

func genFS(ctx context.Context, l synth.Layout) (string, *synth.LayoutStats) {
	root := tempDir("bench-registry-")
	st, err := synth.Generate(ctx, benchenv.NewFastFS(root), 42, l)
	must(err)
	return root, st
}

// fsDriver is a filesystem driver, and the same wrapped to count calls. Times are
// measured on the plain driver; calls in one extra run on the counting one.
type fsDriver struct {
	plain   driver.StorageDriver
	counted *rstorage.Counting
}

// fsDrivers returns distribution's filesystem driver, for MarkAndSweep, and the one
// regsweep runs on (storage.FS: distribution's, never following a symbolic link).
func fsDrivers(root string) (dist, ours fsDriver) {
	d := filesystem.New(filesystem.DriverParameters{RootDirectory: root, MaxThreads: 100})
	fs := rstorage.NewFS(d, root)
	return fsDriver{d, rstorage.NewCounting(d)}, fsDriver{fs, rstorage.NewCounting(fs)}
}

type tool func(ctx context.Context, drv driver.StorageDriver, m bool, count func() int64) int64

// measure returns the median time of runs on plain and the calls of one run on counted.
func measure(ctx context.Context, runs int, t tool, drv fsDriver, m bool) (time.Duration, int64) {
	d, _ := median(runs, func() int64 { return t(ctx, drv.plain, m, func() int64 { return 0 }) })
	return d, t(ctx, drv.counted, m, drv.counted.Total)
}

// floor is a plain single-threaded walk of the tree plus one read of every manifest.
func floor(root string) int64 {
	var manifests []string
	var n int64
	must(filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n++
		if !d.IsDir() && strings.Contains(p, "/_manifests/revisions/") {
			hex := filepath.Base(filepath.Dir(p))
			manifests = append(manifests, filepath.Join(root, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data"))
		}
		return nil
	}))
	for _, m := range manifests {
		_, err := os.ReadFile(m)
		must(err)
	}
	return n + int64(len(manifests))
}

func benchFS(ctx context.Context, sc scale) {
	root, st := genFS(ctx, sc.fs)
	defer os.RemoveAll(root)
	scen := fmt.Sprintf("filesystem, %d repos / %d manifests / %d blobs (%d files)", st.Repos, st.Manifests, st.Blobs, st.Files)
	dist, ours := fsDrivers(root)
	floor(root) // warm the page cache for everyone
	mas, masCalls := measure(ctx, sc.runs, markAndSweep, dist, false)
	row(scen, "MarkAndSweep", mas, masCalls, 0, 0)
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		must(err)
		must(pprof.StartCPUProfile(f))
	}
	d, calls := measure(ctx, sc.runs, regsweep, ours, false)
	pprof.StopCPUProfile()
	row(scen, "regsweep", d, calls, mas, masCalls)
	d, calls = measure(ctx, sc.runs, regsweep, ours, true)
	row(scen, "regsweep -m", d, calls, mas, masCalls)
	d, calls = measure(ctx, sc.runs, regsweepPolicy, ours, true)
	row(scen, "regsweep --policy (MarkAndSweep has none)", d, calls, mas, masCalls)
	d, _ = median(sc.runs, func() int64 { return floor(root) })
	row(scen, "floor: 1-thread walk + read manifests", d, 0, mas, 0)
	if _, err := exec.LookPath("find"); err == nil {
		d, _ = median(sc.runs, func() int64 {
			c := exec.Command("find", root)
			c.Stdout = io.Discard
			must(c.Run())
			return 0
		})
		row(scen, "floor: find (1 thread)", d, 0, mas, 0)
	}
}

func benchS3(ctx context.Context, sc scale) {
	for _, size := range []struct {
		layout synth.Layout
		mas    bool // MarkAndSweep takes ~0.5 s a manifest at 20 ms: the small one only
	}{{sc.s3, true}, {sc.s3Large, false}} {
		s3, err := benchenv.NewS3("registry")
		must(err)
		drv, err := s3.Driver(ctx, "/")
		must(err)
		st, err := synth.Generate(ctx, drv, 7, size.layout)
		must(err)
		for _, lat := range []time.Duration{0, 20 * time.Millisecond, 100 * time.Millisecond} {
			s3.SetLatency(lat)
			runs := sc.runs
			if lat > 0 {
				runs = sc.s3SlowRuns
			}
			scen := fmt.Sprintf("S3 (gofakes3) +%v/request, %d repos / %d manifests / %d blobs", lat, st.Repos, st.Manifests, st.Blobs)
			var mas time.Duration
			var masCalls int64
			if size.mas && lat <= 20*time.Millisecond {
				mas, masCalls = median(runs, func() int64 { return markAndSweep(ctx, drv, false, s3.Requests) })
				row(scen, "MarkAndSweep", mas, masCalls, 0, 0)
			}
			d, calls := median(max(runs, 3), func() int64 { return regsweep(ctx, drv, false, s3.Requests) })
			peak := lastPeak
			row(scen, fmt.Sprintf("regsweep (default flags; peak %d in flight)", peak), d, calls, mas, masCalls)
			if lat == 0 {
				continue
			}
			// The request floor at the concurrency the run reached: every list page
			// (blob prefixes and repositories, 1000 keys a page) and one GET per
			// manifest and tag link, spread over that many requests in flight, plus
			// one round for index children, which are known only once their index
			// is read.
			pages := int64(256 + st.Repos)
			gets := int64(st.Manifests + st.Indexes + st.Tags)
			w := max(peak, 1)
			rounds := (pages+w-1)/w + (gets+w-1)/w + 1
			fl := time.Duration(rounds) * lat
			row(scen, fmt.Sprintf("request floor (computed, %d in flight)", w), fl, pages+gets, mas, masCalls)
			fmt.Printf("| %s | regsweep ÷ floor | %.2f× | | |\n", scen, float64(d)/float64(fl))
			// A rerun with the index of the last: manifests come from its cache.
			dir := tempDir("bench-index-")
			regsweepIn(ctx, dir, drv, false, s3.Requests)
			rd, rcalls := median(max(runs, 3), func() int64 { return regsweepIn(ctx, dir, drv, false, s3.Requests) })
			os.RemoveAll(dir)
			row(scen, fmt.Sprintf("regsweep rerun, manifest cache (%.1f× faster than the first run)", float64(d)/float64(rd)), rd, rcalls, mas, masCalls)
		}
		s3.Close()
	}
}

func benchUntagged(ctx context.Context, sc scale) {
	n := sc.untaggedN
	root, st := genFS(ctx, synth.Layout{Repos: 1, ManifestsPerRepo: n, TagsPerRepo: n, LayersPerManifest: 1, ShareRatio: 0.5})
	defer os.RemoveAll(root)
	scen := fmt.Sprintf("-m, one repository, %d tags × %d manifests", st.Tags, st.Manifests)
	dist, ours := fsDrivers(root)
	floor(root)
	mas, masCalls := measure(ctx, max(1, sc.runs/2), markAndSweep, dist, true)
	row(scen, "MarkAndSweep -m", mas, masCalls, 0, 0)
	d, calls := measure(ctx, sc.runs, regsweep, ours, true)
	row(scen, "regsweep -m", d, calls, mas, masCalls)
	// Linear in tags: half the size.
	root2, st2 := genFS(ctx, synth.Layout{Repos: 1, ManifestsPerRepo: n / 2, TagsPerRepo: n / 2, LayersPerManifest: 1, ShareRatio: 0.5})
	defer os.RemoveAll(root2)
	_, ours2 := fsDrivers(root2)
	d2, calls2 := measure(ctx, sc.runs, regsweep, ours2, true)
	row(fmt.Sprintf("-m, one repository, %d tags × %d manifests", st2.Tags, st2.Manifests), "regsweep -m", d2, calls2, 0, 0)
}

func benchSweep(ctx context.Context, sc scale) {
	var ds []time.Duration
	var deleted int
	for i := 0; i < sc.runs; i++ {
		root, _ := genFS(ctx, synth.Layout{Repos: 2, ManifestsPerRepo: 5, TagsPerRepo: 5, LayersPerManifest: 2, OrphanBlobs: sc.sweepGarbage})
		drv := rstorage.NewFilesystem(root)
		dir := tempDir("bench-index-")
		idx, err := graph.Open(dir)
		must(err)
		n, _ := rstorage.Concurrency(drv.Name(), *workers)
		must(graph.Build(ctx, drv, idx, graph.WithWorkers(n)))
		meta, err := idx.Meta()
		must(err)
		p, err := gc.NewPlan(ctx, idx, gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour)))
		must(err)
		// As regsweep gc sweeps: roots checked again before each phase.
		check := sweep.NewRootCheck(drv, p.Scanned(), meta.Started, 0, n, true)
		start := time.Now()
		res, err := sweep.Run(ctx, drv, p, sweep.WithWorkers(n), sweep.WithJournal(idx), sweep.WithRecheck(check.Check, time.Minute))
		must(err)
		ds = append(ds, time.Since(start))
		deleted = res.DeletedBlobs
		idx.Close()
		os.RemoveAll(dir)
		os.RemoveAll(root)
	}
	slices.Sort(ds)
	d := ds[len(ds)/2]
	fmt.Printf("| sweep, filesystem, %d garbage blobs | regsweep gc | %s | %d deletes | %.0f deletes/s |\n",
		deleted, d.Round(time.Millisecond), deleted, float64(deleted)/d.Seconds())
}

// benchSweepS3 sweeps garbage blobs on S3 at 20 ms a request, one by one (the
// driver's Delete: a listing and a DeleteObjects each) and in batches
// (storage.NewBatcher), as regsweep gc does.
func benchSweepS3(ctx context.Context, sc scale) {
	n := sc.sweepGarbage / 4
	for _, batched := range []bool{false, true} {
		var ds []time.Duration
		var deleted int
		var requests int64
		for i := 0; i < max(1, sc.runs/2); i++ {
			s3, err := benchenv.NewS3("registry")
			must(err)
			drv, err := s3.Driver(ctx, "/")
			must(err)
			_, err = synth.Generate(ctx, drv, 5, synth.Layout{Repos: 2, ManifestsPerRepo: 5, TagsPerRepo: 5, LayersPerManifest: 2, OrphanBlobs: n})
			must(err)
			dir := tempDir("bench-index-")
			idx, err := graph.Open(dir)
			must(err)
			wrapped, workers, _ := asCLI(drv)
			must(graph.Build(ctx, wrapped, idx, graph.WithWorkers(workers)))
			p, err := gc.NewPlan(ctx, idx, gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour)))
			must(err)
			opts := []sweep.Option{sweep.WithWorkers(workers), sweep.WithJournal(idx)}
			if b, ok := rstorage.NewBatcher(wrapped); ok && batched {
				opts = append(opts, sweep.WithBatcher(b))
			}
			s3.SetLatency(20 * time.Millisecond)
			before := s3.Requests()
			start := time.Now()
			res, err := sweep.Run(ctx, wrapped, p, opts...)
			must(err)
			ds = append(ds, time.Since(start))
			requests = s3.Requests() - before
			deleted = res.DeletedBlobs
			idx.Close()
			os.RemoveAll(dir)
			s3.Close()
		}
		slices.Sort(ds)
		d := ds[len(ds)/2]
		how := "one by one"
		if batched {
			how = "in batches of 1000"
		}
		fmt.Printf("| sweep, S3 (gofakes3) +20ms/request, %d garbage blobs | regsweep gc, %s | %s | %d requests | %.0f blobs/s |\n",
			deleted, how, d.Round(time.Millisecond), requests, float64(deleted)/d.Seconds())
	}
}

// benchRSS measures peak RSS in child processes, one per tool and tree.
func benchRSS(ctx context.Context, sc scale) {
	root, st := genFS(ctx, synth.Layout{Repos: 50, ManifestsPerRepo: 20, TagsPerRepo: 10, LayersPerManifest: 4, ShareRatio: 0.3, OrphanBlobs: sc.rssTreeBlobs})
	defer os.RemoveAll(root)
	scen := fmt.Sprintf("peak RSS, filesystem, %d blobs", st.Blobs)
	masT, masRSS := child("marksweep", "fs:"+root)
	fmt.Printf("| %s | MarkAndSweep | %s | %s | |\n", scen, masT.Round(time.Millisecond), mib(masRSS))
	t, rss := child("regsweep", "fs:"+root)
	mem := fmt.Sprintf("%.1f× less memory", float64(masRSS)/float64(rss))
	if rss > masRSS {
		mem = fmt.Sprintf("%.1f× the memory", float64(rss)/float64(masRSS))
	}
	fmt.Printf("| %s | regsweep | %s | %s | %.1f× faster, %s |\n", scen, t.Round(time.Millisecond), mib(rss), float64(masT)/float64(t), mem)
	t, rss = child("regsweep", fmt.Sprintf("synthetic:%d", sc.rssSynth))
	fmt.Printf("| peak RSS, synthetic driver, %d blobs | regsweep | %s | %s | |\n", sc.rssSynth, t.Round(time.Millisecond), mib(rss))
}

// benchScale runs the synthetic driver at each -synth count in a process of its own:
// time per blob and peak RSS as the blob count grows (make bench-scale).
func benchScale() {
	for _, f := range strings.Split(cmp.Or(*synthBlobs, "1000000,3000000,10000000"), ",") {
		var n int
		if _, err := fmt.Sscan(f, &n); err != nil || n <= 0 {
			must(fmt.Errorf("-synth %q: want blob counts", f))
		}
		t, rss, disk := childIndex("regsweep", fmt.Sprintf("synthetic:%d", n))
		limit := ""
		if *memLimit != 256<<20 {
			limit = fmt.Sprintf(", --memory-limit %s", humanize.IBytes(uint64(*memLimit)))
		}
		fmt.Printf("| scale, synthetic driver, %d blobs, %d manifests%s | regsweep | %s | %s | %.2f µs a blob, index %.0f bytes a blob on disk |\n",
			n, n/100, limit, t.Round(time.Millisecond), mib(rss), float64(t.Microseconds())/float64(n), float64(disk)/float64(n))
	}
}

func mib(kib int64) string { return fmt.Sprintf("%.0f MiB peak RSS", float64(kib)/1024) }

// child runs one tool in a process of its own and returns its time and peak RSS in
// KiB. The peak is the child's own VmHWM: the rusage of a child started with
// CLONE_VM (as Go starts them) counts the parent's peak too, so it would report the
// harness's memory whenever that is larger.
func child(tool, source string) (time.Duration, int64) {
	t, kib, _ := childIndex(tool, source)
	return t, kib
}

// childIndex is child, and the size of the index regsweep built (0 for other tools).
func childIndex(tool, source string) (time.Duration, int64, int64) {
	c := exec.Command(os.Args[0], "rss", tool, source, fmt.Sprint(*workers), fmt.Sprint(*memLimit))
	c.Stderr = os.Stderr
	if *cpuprofile != "" && tool == "regsweep" {
		_, n, _ := strings.Cut(source, ":")
		c.Env = append(os.Environ(), "BENCH_CHILD_CPUPROFILE="+*cpuprofile+"."+filepath.Base(n))
	}
	start := time.Now()
	out, err := c.Output()
	must(err)
	took := time.Since(start)
	var kib int64
	at := max(0, strings.LastIndex(string(out), "VmHWM:"))
	if _, err := fmt.Sscanf(string(out[at:]), "VmHWM: %d kB", &kib); err != nil {
		must(fmt.Errorf("rss child printed %q, not its VmHWM: %w", out, err))
	}
	var disk int64
	if at := strings.LastIndex(string(out), "IndexBytes:"); at >= 0 {
		fmt.Sscanf(string(out[at:]), "IndexBytes: %d", &disk)
	}
	return took, kib, disk
}

// printPeak prints this process's peak RSS as /proc/self/status has it.
func printPeak() {
	b, err := os.ReadFile("/proc/self/status")
	must(err)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			fmt.Println(strings.Join(strings.Fields(l), " "))
		}
	}
}

func rssChild(args []string) {
	logrus.SetLevel(logrus.ErrorLevel)
	logrus.SetOutput(io.Discard)
	ctx := context.Background()
	tool, source := args[0], args[1]
	fmt.Sscan(args[2], workers)
	var drv driver.StorageDriver
	switch {
	case strings.HasPrefix(source, "fs:"):
		root := strings.TrimPrefix(source, "fs:")
		drv = filesystem.New(filesystem.DriverParameters{RootDirectory: root, MaxThreads: 100})
		if tool == "regsweep" {
			drv = rstorage.NewFS(drv, root)
		}
	case strings.HasPrefix(source, "synthetic:"):
		var n int
		fmt.Sscan(strings.TrimPrefix(source, "synthetic:"), &n)
		drv = benchenv.NewSynthetic(n, 100, max(10, n/100/100))
	}
	none := func() int64 { return 0 }
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set && tool == "regsweep" {
		limit := int64(256 << 20)
		if len(args) > 3 {
			fmt.Sscan(args[3], &limit)
		}
		memlimit.Start(ctx, limit, memlimit.Every) // as the regsweep command does with --memory-limit
	}
	if p := os.Getenv("BENCH_CHILD_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		must(err)
		must(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	if tool == "marksweep" {
		markAndSweep(ctx, drv, false, none)
	} else {
		regsweep(ctx, drv, false, none)
		fmt.Printf("IndexBytes: %d\n", lastIndexBytes)
		fmt.Fprintf(os.Stderr, "%s: build %s, plan %s\n", source, lastBuild.Round(time.Millisecond), lastPlan.Round(time.Millisecond))
	}
	printPeak()
}
