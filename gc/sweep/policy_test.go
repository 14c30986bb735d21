package sweep_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/go-digest"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/policy"
	"github.com/regsweep/regsweep/gc/sweep"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

const dropAllTags = "policies:\n  - repositories: [\"**\"]\n    deleteUntagged: true\n    allowEmpty: true\n    keepTags:\n      - patterns: [\"^none$\"]\n"

func mustPolicy(t *testing.T, src string) *policy.File {
	t.Helper()
	f, err := policy.Parse("policy.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// A tag the plan deletes and someone pushes again, at any point of the sweep, pulls
// afterwards: before the tag phase the check just before each tag delete keeps it;
// after, the re-check of the roots keeps what it names.
func TestPolicyTagPushedAgainDuringSweep(t *testing.T) {
	for _, at := range []string{"after plan", "tags", "tag history and manifest revisions", "blobs", "layer links"} {
		t.Run(at, func(t *testing.T) { policyPushDuringSweep(t, at) })
	}
}

func policyPushDuringSweep(t *testing.T, at string) {
	ctx := context.Background()
	root := t.TempDir()
	_, ns, err := synth.NewFilesystem(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	cfg := synth.Small()
	cfg.Repos = 4
	if _, err := synth.Populate(ctx, ns, 21, cfg); err != nil {
		t.Fatal(err)
	}
	regtest.Age(t, root, time.Now().Add(-48*time.Hour))
	drv := storage.NewFilesystem(root)
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := graph.Build(ctx, drv, idx, graph.WithWorkers(4)); err != nil {
		t.Fatal(err)
	}
	meta, err := idx.Meta()
	if err != nil {
		t.Fatal(err)
	}
	p, err := gc.NewPlan(ctx, idx, gc.WithPolicy(mustPolicy(t, dropAllTags)), gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	gone := map[digest.Digest]bool{}
	for _, b := range p.Blobs {
		gone[b.Digest()] = true
	}
	type again struct {
		repo, tag string
		img       *image
	}
	var todo []again
	for _, it := range p.Tags {
		if gone[it.Digest] && len(todo) < 3 {
			todo = append(todo, again{it.Repository, it.Tag, saveImage(t, root, it.Digest)})
		}
	}
	if len(todo) < 3 {
		t.Fatalf("the plan frees %d tagged images: the test proves little", len(todo))
	}
	pushAll := func() error {
		for _, x := range todo {
			if err := push(ctx, ns, x.repo, x.tag, x.img); err != nil {
				return err
			}
		}
		return nil
	}
	if at == "after plan" {
		if err := pushAll(); err != nil {
			t.Fatal(err)
		}
	}
	check := sweep.NewRootCheck(drv, p.Scanned(), meta.Started, 0, 4, true)
	res, err := sweep.Run(ctx, drv, p, sweep.WithWorkers(4), sweep.WithRecheck(check.Check, time.Minute),
		sweep.WithBeforePhase(func(phase string) error {
			if phase == at {
				return pushAll()
			}
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range todo {
		if why := pulls(ctx, ns, x.repo, x.tag, x.img); why != "" {
			t.Errorf("%s:%s pushed again %s no longer pulls: %s", x.repo, x.tag, at, why)
		}
	}
	if at == "after plan" && res.KeptTags != len(todo) {
		t.Errorf("kept %d tags pushed again before the tag phase, want %d", res.KeptTags, len(todo))
	}
	if res.DeletedTags == 0 || res.DeletedBlobs == 0 {
		t.Errorf("result %+v: nothing deleted", res)
	}
}

// A sweep that reaches its deadline stops: no delete starts after it, what is left is
// reported, and a later run (a new scan and plan) finishes it: the storage ends as one
// uninterrupted run leaves it.
func TestSweepStopsAtDeadlineAndContinues(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	orig := filepath.Join(base, "orig")
	_, ns, err := synth.NewFilesystem(ctx, orig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := synth.Populate(ctx, ns, 31, synth.Small()); err != nil {
		t.Fatal(err)
	}
	regtest.Age(t, orig, time.Now().Add(-48*time.Hour))
	pol := mustPolicy(t, "policies:\n  - repositories: [\"**\"]\n    deleteUntagged: true\n    keepTags:\n      - mostRecentlyPushedCount: 1\n")
	now := time.Now().Add(time.Hour)
	plan := func(root string) *gc.Plan {
		return regtest.Plan(t, root, nil, gc.WithPolicy(pol), gc.WithNow(now))
	}

	// One run, uninterrupted.
	whole := filepath.Join(base, "whole")
	regtest.CopyTree(t, orig, whole)
	pw := plan(whole)
	if _, err := sweep.Run(ctx, storage.NewFilesystem(whole), pw, sweep.WithWorkers(4)); err != nil {
		t.Fatal(err)
	}

	// The same, stopped after 25 deletes by a clock that jumps to the deadline.
	cut := filepath.Join(base, "cut")
	regtest.CopyTree(t, orig, cut)
	p1 := plan(cut)
	deadline := time.Now().Add(time.Hour)
	var (
		mu            sync.Mutex // the hook runs on a worker, the clock is read everywhere
		clock         = time.Now()
		n             int
		afterDeadline []string
	)
	readClock := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	res, err := sweep.Run(ctx, storage.NewFilesystem(cut), p1, sweep.WithWorkers(1), sweep.WithDeadline(deadline),
		sweep.WithClock(readClock),
		sweep.WithBeforeDelete(func(p string) error {
			mu.Lock()
			defer mu.Unlock()
			if !clock.Before(deadline) {
				afterDeadline = append(afterDeadline, p)
			}
			if n++; n == 25 {
				clock = deadline
			}
			return nil
		}))
	if !errors.Is(err, sweep.ErrWindowEnded) {
		t.Fatalf("err = %v, want ErrWindowEnded", err)
	}
	if len(afterDeadline) > 0 {
		t.Errorf("deletes started after the deadline: %v", afterDeadline)
	}
	if res.Remaining == nil || res.StoppedAt.IsZero() {
		t.Fatalf("result %+v: no remaining work reported", res)
	}
	done := res.DeletedTags + res.DeletedTagIndex + res.DeletedManifests + res.DeletedBlobs + res.DeletedLayerLinks + res.DeletedUploads
	total := len(p1.Tags) + len(p1.Manifests) + len(p1.Blobs) + len(p1.LayerLinks) + len(p1.Uploads)
	for _, m := range p1.Manifests {
		total += len(m.TagIndex)
	}
	if done != 25 || res.Remaining.Items() != total-25 {
		t.Errorf("deleted %d, remaining %+v (%d), of %d planned: want 25 and %d", done, *res.Remaining, res.Remaining.Items(), total, total-25)
	}
	if res.DeletedTags == 0 || res.DeletedTags != len(p1.Tags)-res.Remaining.Tags {
		t.Errorf("tags: deleted %d, remaining %d, of %d", res.DeletedTags, res.Remaining.Tags, len(p1.Tags))
	}
	// The next run continues from a new scan.
	p2 := plan(cut)
	if len(p2.Tags) != res.Remaining.Tags {
		t.Errorf("the next plan deletes %d tags, %d were left", len(p2.Tags), res.Remaining.Tags)
	}
	if _, err := sweep.Run(ctx, storage.NewFilesystem(cut), p2, sweep.WithWorkers(4)); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(regtest.Files(t, whole), regtest.Files(t, cut)); d != "" {
		t.Errorf("stopped and continued differs from one run (-one +two):\n%s", d)
	}
}

// In batches too, no delete starts after the window's end: the clock passes the
// deadline while a batch of blobs is made up, and the batch does not go.
func TestBatchStopsAtDeadline(t *testing.T) {
	ctx := context.Background()
	root := regtest.Sample(t)
	p := regtest.Plan(t, root, nil, gc.WithDeleteUntagged(true))
	if len(p.Blobs) < 2 {
		t.Fatalf("the plan deletes %d blobs: nothing to batch", len(p.Blobs))
	}
	deadline := time.Now().Add(time.Hour)
	var (
		mu    sync.Mutex
		clock = time.Now()
	)
	readClock := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	drv := storage.NewFilesystem(root)
	batcher := &dirBatcher{drv: drv}
	res, err := sweep.Run(ctx, drv, p, sweep.WithWorkers(1), sweep.WithDeadline(deadline), sweep.WithClock(readClock),
		sweep.WithBatcher(batcher),
		sweep.WithBeforeDelete(func(path string) error {
			if strings.HasSuffix(path, "/data") {
				mu.Lock()
				clock = deadline
				mu.Unlock()
			}
			return nil
		}))
	if !errors.Is(err, sweep.ErrWindowEnded) {
		t.Fatalf("err = %v, want ErrWindowEnded", err)
	}
	if res.DeletedBlobs != 0 || batcher.batches.Load() != 0 {
		t.Errorf("%d blobs deleted in %d batches after the window's end", res.DeletedBlobs, batcher.batches.Load())
	}
	for _, b := range p.Blobs {
		if _, err := os.Stat(regtest.FSPath(root, b.Path())); err != nil {
			t.Errorf("blob %s: %v", b.Digest(), err)
		}
	}
	if res.Remaining == nil || res.Remaining.Blobs != len(p.Blobs) {
		t.Errorf("remaining %+v, want all %d blobs", res.Remaining, len(p.Blobs))
	}
}
