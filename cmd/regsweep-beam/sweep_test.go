package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/textio"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"
	"github.com/distribution/distribution/v3/registry/storage/driver"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/sweep"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

// beamSweep plans with the pipeline, writes the plan, and sweeps it with the
// pipeline, all on prism.
func beamSweep(t *testing.T, config string, now time.Time, m mode) error {
	t.Helper()
	p, err := beamPlan(t, config, now, m, 16)
	if err != nil {
		return err
	}
	return sweepPlanFile(t, config, p)
}

func sweepPlanFile(t *testing.T, config string, p *gc.Plan) error {
	t.Helper()
	dir := t.TempDir()
	f := filepath.Join(dir, "plan.json")
	if err := writePlan(f, p); err != nil {
		t.Fatal(err)
	}
	o := Options{Config: config, ConfigName: "config.yml", Workers: 4}
	pl, s := beam.NewPipelineWithRoot()
	textio.Write(s, filepath.Join(dir, "swept"), BuildSweep(s, o, f))
	return ptest.Run(pl)
}

// gcSweep is regsweep gc's plan and sweep, on one machine.
func gcSweep(t *testing.T, drv driver.StorageDriver, now time.Time, m mode) {
	t.Helper()
	p, err := gcPlanOn(t, drv, now, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sweep.Run(context.Background(), drv, p); err != nil {
		t.Fatal(err)
	}
}

// keys lists every file of a driver's tree.
func keys(t *testing.T, drv driver.StorageDriver) []string {
	t.Helper()
	var out []string
	err := drv.Walk(context.Background(), "/", func(fi driver.FileInfo) error {
		if !fi.IsDir() {
			out = append(out, fi.Path())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func sameTree(t *testing.T, name string, want, got []string) {
	t.Helper()
	for _, k := range want {
		if _, ok := slices.BinarySearch(got, k); !ok {
			t.Errorf("%s: the pipeline's sweep deleted %s, regsweep gc's kept it", name, k)
		}
	}
	for _, k := range got {
		if _, ok := slices.BinarySearch(want, k); !ok {
			t.Errorf("%s: the pipeline's sweep kept %s, regsweep gc's deleted it", name, k)
		}
	}
}

func populate(t *testing.T, root string, seed int64) {
	t.Helper()
	_, ns, err := synth.NewFilesystem(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := synth.Populate(context.Background(), ns, seed, synth.Small()); err != nil {
		t.Fatal(err)
	}
}

// s3Twins puts one seeded registry into two S3 servers: a for regsweep gc, b (served
// by s3b) for the pipeline.
func s3Twins(t *testing.T, seed int64) (a driver.StorageDriver, s3b *benchenv.S3, b driver.StorageDriver) {
	t.Helper()
	src := t.TempDir()
	populate(t, src, seed)
	_, a = benchenv.StartS3(t, "/")
	s3b, b = benchenv.StartS3(t, "/")
	for _, drv := range []driver.StorageDriver{a, b} {
		if err := benchenv.PutTree(context.Background(), drv, src); err != nil {
			t.Fatal(err)
		}
	}
	return a, s3b, b
}

// The pipeline's sweep of its plan ends in the tree regsweep gc's sweep leaves, on a
// filesystem and on S3.
func TestSweepEqualsGC(t *testing.T) {
	now := time.Now().Add(time.Hour)
	for _, m := range modes[:2] {
		t.Run("filesystem/"+m.name, func(t *testing.T) {
			src := t.TempDir()
			populate(t, src, 7)
			a, b := t.TempDir(), t.TempDir()
			regtest.CopyTree(t, src, a)
			regtest.CopyTree(t, src, b)
			gcSweep(t, storage.NewFilesystem(a), now, m)
			if err := beamSweep(t, fsConfig(b), now, m); err != nil {
				t.Fatal(err)
			}
			want, got := keys(t, storage.NewFilesystem(a)), keys(t, storage.NewFilesystem(b))
			if len(want) == len(keys(t, storage.NewFilesystem(src))) {
				t.Fatal("regsweep gc deleted nothing: the registry exercises nothing")
			}
			sameTree(t, m.name, want, got)
		})
		t.Run("s3/"+m.name, func(t *testing.T) {
			a, s3b, b := s3Twins(t, 8)
			gcSweep(t, a, now, m)
			p, err := beamPlan(t, s3b.Config("/"), now, m, 16)
			if err != nil {
				t.Fatal(err)
			}
			before := s3b.Requests()
			if err := sweepPlanFile(t, s3b.Config("/"), p); err != nil {
				t.Fatal(err)
			}
			sameTree(t, m.name, keys(t, a), keys(t, b))
			// Blob data and layer links go in batches: one request for many, where
			// the driver's Delete makes two for each.
			batched := len(p.Blobs) + len(p.LayerLinks)
			rest := 2 * (len(p.Manifests) + len(p.Uploads))
			for _, mi := range p.Manifests {
				rest += 2 * len(mi.TagIndex)
			}
			t.Logf("sweep: %d requests for %d blobs and layer links and %d requests' worth of other items", s3b.Requests()-before, batched, rest)
			if n := s3b.Requests() - before; batched < 4 || n-int64(rest) > int64(max(4, batched/8)) {
				t.Errorf("sweep made %d requests for %d blobs and layer links (and at most %d for the rest): not batched", n, batched, rest)
			}
		})
	}
}

// A sweep job that fails midway (a worker's delete fails after a few) and is
// rerun with the same plan ends where an uninterrupted one does.
func TestSweepRerunConverges(t *testing.T) {
	skipFailingJobsUnderRace(t)
	now := time.Now().Add(time.Hour)
	m := modes[1]
	src := t.TempDir()
	populate(t, src, 9)
	a, b := t.TempDir(), t.TempDir()
	regtest.CopyTree(t, src, a)
	regtest.CopyTree(t, src, b)
	gcSweep(t, storage.NewFilesystem(a), now, m)
	p, err := beamPlan(t, fsConfig(b), now, m, 16)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	beforeDelete = func(string) error {
		if n.Add(1) > 5 {
			return errors.New("the worker died")
		}
		return nil
	}
	err = sweepPlanFile(t, fsConfig(b), p)
	beforeDelete = nil
	if err == nil {
		t.Fatal("the interrupted sweep did not fail")
	}
	mid := keys(t, storage.NewFilesystem(b))
	if before := keys(t, storage.NewFilesystem(src)); len(mid) == len(before) || len(mid) == len(keys(t, storage.NewFilesystem(a))) {
		t.Fatalf("the interrupted sweep deleted %d of %d files: want some, not all", len(before)-len(mid), len(before)-len(keys(t, storage.NewFilesystem(a))))
	}
	if err := sweepPlanFile(t, fsConfig(b), p); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	sameTree(t, fmt.Sprint("rerun after ", n.Load(), " deletes"), keys(t, storage.NewFilesystem(a)), keys(t, storage.NewFilesystem(b)))
}

// On S3 a job that fails after its blob batches went (a worker dies in the layer
// links' phase) and is rerun deletes the same batches again, already gone, and
// ends where regsweep gc does.
func TestSweepRerunConvergesS3(t *testing.T) {
	skipFailingJobsUnderRace(t)
	now := time.Now().Add(time.Hour)
	m := modes[1]
	a, s3b, b := s3Twins(t, 9)
	gcSweep(t, a, now, m)
	p, err := beamPlan(t, s3b.Config("/"), now, m, 16)
	if err != nil {
		t.Fatal(err)
	}
	before := keys(t, b)
	beforeDelete = func(p string) error {
		if strings.Contains(p, "/_layers/") {
			return errors.New("the worker died")
		}
		return nil
	}
	err = sweepPlanFile(t, s3b.Config("/"), p)
	beforeDelete = nil
	if err == nil {
		t.Fatal("the interrupted sweep did not fail")
	}
	mid := keys(t, b)
	gone := 0
	for _, k := range before {
		if _, ok := slices.BinarySearch(mid, k); !ok {
			gone++
			if strings.Contains(k, "/_layers/") {
				t.Errorf("%s deleted by a job that died before its phase", k)
			}
		}
	}
	if gone < len(p.Blobs) {
		t.Fatalf("the interrupted sweep deleted %d files: want the %d blobs at least", gone, len(p.Blobs))
	}
	if err := sweepPlanFile(t, s3b.Config("/"), p); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	sameTree(t, "rerun", keys(t, a), keys(t, b))
}

// The pipeline's sweep deletes phase by phase, as regsweep gc does: references
// (tag history, revision links) before any blob, blobs before layer links, layer
// links before uploads; a job that dies midway leaves no link to a deleted blob
// that a later phase would have removed.
func TestSweepPhasesInOrder(t *testing.T) {
	now := time.Now().Add(time.Hour)
	root := t.TempDir()
	populate(t, root, 10)
	m := modes[1]
	m.uploadAge = 0
	p, err := beamPlan(t, fsConfig(root), now, m, 16)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		ranks []int
	)
	rank := func(path string) int {
		for i, part := range []string{"/_manifests/", "/blobs/", "/_layers/", "/_uploads/"} {
			if strings.Contains(path, part) {
				return i
			}
		}
		return -1
	}
	beforeDelete = func(path string) error {
		mu.Lock()
		defer mu.Unlock()
		ranks = append(ranks, rank(path))
		return nil
	}
	defer func() { beforeDelete = nil }()
	if err := sweepPlanFile(t, fsConfig(root), p); err != nil {
		t.Fatal(err)
	}
	seen := map[int]int{}
	for i, r := range ranks {
		seen[r]++
		if r < 0 || i > 0 && r < ranks[i-1] {
			t.Fatalf("delete %d is of phase %d after one of phase %d: %v", i, r, ranks[i-1], ranks)
		}
	}
	if len(seen) != 4 {
		t.Errorf("deletes by phase: %v; want all four phases exercised", seen)
	}
}
