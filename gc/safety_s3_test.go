package gc_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/google/go-cmp/cmp"

	"github.com/regsweep/regsweep/benchmarks/benchenv"
	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/sweep"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/storage"
)

// sampleS3 uploads the sample registry to a fake S3 bucket and returns the server
// and distribution's real s3 driver for it.
func sampleS3(t *testing.T) (*benchenv.S3, driver.StorageDriver) {
	t.Helper()
	ctx := context.Background()
	s3, err := benchenv.NewS3("registry")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s3.Close)
	drv, err := s3.Driver(ctx, "/prefix")
	if err != nil {
		t.Fatal(err)
	}
	if err := benchenv.PutTree(ctx, drv, "../testdata/sample/registry"); err != nil {
		t.Fatal(err)
	}
	return s3, drv
}

func planS3(t *testing.T, drv driver.StorageDriver, opts ...gc.Option) (*gc.Plan, error) {
	t.Helper()
	ctx := context.Background()
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := graph.Build(ctx, drv, idx, graph.WithWorkers(8)); err != nil {
		return nil, err
	}
	return gc.NewPlan(ctx, idx, append([]gc.Option{gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour))}, opts...)...)
}

// The blob-store cases on object storage: a prefix the credentials cannot list
// looks empty, and is refused; a listing that fails fails the run, naming the path.
func TestS3BlobStoreFaults(t *testing.T) {
	s3, drv := sampleS3(t)
	p, err := planS3(t, drv, gc.WithDeleteUntagged(true))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Blocked) > 0 || p.Summary.Blobs == 0 {
		t.Fatalf("healthy bucket: blocked %d, %d blobs", len(p.Blocked), p.Summary.Blobs)
	}

	s3.SetFault(benchenv.EmptyListing("/docker/registry/v2/blobs"))
	for _, m := range []bool{false, true} {
		if _, err := planS3(t, drv, gc.WithDeleteUntagged(m)); !errors.Is(err, gc.ErrIncompleteStorage) {
			t.Errorf("-m=%v, blob listing empty: err = %v, want ErrIncompleteStorage", m, err)
		}
	}

	for _, part := range []string{"/docker/registry/v2/blobs", "/docker/registry/v2/repositories/team"} {
		s3.SetFault(benchenv.FailListing(part, http.StatusForbidden))
		_, err := planS3(t, drv)
		if err == nil || errors.Is(err, gc.ErrIncompleteStorage) || !strings.Contains(err.Error(), part) {
			t.Errorf("listing %s fails: err = %v, want a scan error naming the path", part, err)
		}
	}
}

// On object storage the re-check lists with the native walk: a tag moved after the
// scan to an untagged manifest keeps that manifest and what it references.
func TestS3RootCheckSeesNewTag(t *testing.T) {
	ctx := context.Background()
	_, drv := sampleS3(t)
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := graph.Build(ctx, drv, idx, graph.WithWorkers(8)); err != nil {
		t.Fatal(err)
	}
	p, err := gc.NewPlan(ctx, idx, gc.WithDeleteUntagged(true), gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Manifests) == 0 {
		t.Fatal("the sample's -m plan deletes no revision")
	}
	victim := p.Manifests[0]
	// S3 times have a resolution of a second: a second after the sample's upload,
	// and as if the scan had started then (the check allows for clock skew).
	time.Sleep(1100 * time.Millisecond)
	check := sweep.NewRootCheck(drv, p.Scanned(), time.Now().Add(sweep.RecheckSlack), time.Hour, 4, true)
	if protect, roots, err := check.Check(ctx); err != nil || roots != 0 || len(protect) != 0 {
		t.Fatalf("nothing pushed: protect %v, %d roots, %v", protect, roots, err)
	}
	time.Sleep(1100 * time.Millisecond)
	tag := "/docker/registry/v2/repositories/" + victim.Repository + "/_manifests/tags/moved/current/link"
	if err := drv.PutContent(ctx, tag, []byte(victim.Digest)); err != nil {
		t.Fatal(err)
	}
	protect, roots, err := check.Check(ctx)
	if err != nil || roots != 1 || protect[victim.Digest] == "" {
		t.Fatalf("after a tag push: protect %v, %d roots, %v", protect, roots, err)
	}
	for _, b := range p.Blobs {
		if b.Digest() != victim.Digest && protect[b.Digest()] == "" {
			continue
		}
		if !strings.Contains(protect[b.Digest()], "moved") {
			t.Errorf("blob %s kept for %q", b.Digest(), protect[b.Digest()])
		}
	}
	if len(protect) < 2 {
		t.Errorf("only %d digests kept: the manifest's references are missing", len(protect))
	}
}

// One request in twenty is never answered: with storage.Patient the run ends, with
// the plan a healthy store gives.
func TestS3HungRequests(t *testing.T) {
	s3, drv := sampleS3(t)
	want, err := planS3(t, drv, gc.WithDeleteUntagged(true))
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	s3.SetFault(s3.Hang(func(*http.Request) bool { return n.Add(1)%7 == 0 }))
	patient := storage.NewPatient(drv, storage.PatientOptions{Timeout: 500 * time.Millisecond, Backoff: 10 * time.Millisecond})
	var got *gc.Plan
	done := make(chan struct{})
	go func() { defer close(done); got, err = planS3(t, patient, gc.WithDeleteUntagged(true)) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the run waits forever on a request the store never answers")
	}
	if err != nil {
		t.Fatal(err)
	}
	if patient.Retries() == 0 {
		t.Fatal("nothing was retried: the fault did not bite")
	}
	if d := cmp.Diff(want.Paths(), got.Paths()); d != "" {
		t.Errorf("plan under hangs differs (-healthy +hung):\n%s", d)
	}
}

// Retention on object storage: the push times the scan lists and those the sweep
// states just before each tag delete agree, so no tag looks pushed again; the tag
// directories go whole.
func TestS3PolicySweep(t *testing.T) {
	_, drv := sampleS3(t)
	ctx := context.Background()
	pol := mustPolicy(t, "policies:\n  - repositories: [\"**\"]\n    deleteUntagged: true\n    allowEmpty: true\n    keepTags:\n      - patterns: [\"^latest$\"]\n")
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if err := graph.Build(ctx, drv, idx, graph.WithWorkers(8)); err != nil {
		t.Fatal(err)
	}
	meta, err := idx.Meta()
	if err != nil {
		t.Fatal(err)
	}
	p, err := gc.NewPlan(ctx, idx, gc.WithPolicy(pol), gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tags) != 3 {
		t.Fatalf("plan deletes %d tags, want 12, v1 and multi", len(p.Tags))
	}
	for _, it := range p.Tags {
		if it.PushedAt.IsZero() {
			t.Errorf("%s:%s has no push time on S3", it.Repository, it.Tag)
		}
	}
	check := sweep.NewRootCheck(drv, p.Scanned(), meta.Started, 0, 4, true)
	res, err := sweep.Run(ctx, drv, p, sweep.WithWorkers(4), sweep.WithRecheck(check.Check, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if res.DeletedTags != 3 || res.KeptTags != 0 || res.DeletedBlobs == 0 {
		t.Errorf("result %+v: want 3 tags deleted, none kept as pushed again", res)
	}
	for _, it := range p.Tags {
		if _, err := drv.Stat(ctx, it.Path+"/current/link"); !errors.As(err, new(driver.PathNotFoundError)) {
			t.Errorf("%s: %v", it.Path, err)
		}
	}
	if _, err := drv.Stat(ctx, "/docker/registry/v2/repositories/team/app/web/_manifests/tags/latest/current/link"); err != nil {
		t.Errorf("the kept tag: %v", err)
	}
}

// --prune-empty-repositories on S3 with one request in flight (--workers 1): the
// repository is listed, then its files stated after the listing, not from inside it
// (a call made inside a walk would wait forever for the slot the walk holds).
func TestS3PruneEmptyRepositoryOneWorker(t *testing.T) {
	_, drv := sampleS3(t)
	ctx := context.Background()
	if err := drv.Delete(ctx, "/docker/registry/v2/repositories/library/debian/_manifests/tags"); err != nil {
		t.Fatal(err)
	}
	_, ao := storage.Concurrency(drv.Name(), 1)
	one := storage.NewPatient(storage.NewAdaptive(drv, *ao), storage.PatientOptions{})
	idx, err := graph.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	built := make(chan error, 1)
	go func() { built <- graph.Build(ctx, one, idx, graph.WithWorkers(1)) }()
	select {
	case err := <-built:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the scan waits forever with one request in flight")
	}
	p, err := gc.NewPlan(ctx, idx, gc.WithDeleteUntagged(true), gc.WithPruneEmptyRepositories(true), gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.EmptyRepositories) != 1 || p.EmptyRepositories[0].Repository != "library/debian" {
		t.Fatalf("empty repositories %+v", p.EmptyRepositories)
	}
	done := make(chan struct{})
	var res *sweep.Result
	go func() {
		defer close(done)
		res, err = sweep.Run(ctx, one, p, sweep.WithWorkers(1))
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("the sweep waits forever with one request in flight")
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.DeletedRepositories != 1 {
		t.Errorf("removed %d repositories, want 1", res.DeletedRepositories)
	}
	if _, err := drv.List(ctx, "/docker/registry/v2/repositories/library/debian"); err == nil {
		t.Errorf("library/debian still lists after the sweep")
	}
}

// On S3 a key can be both a file and the prefix of other keys. A stray object
// named like one of a repository's directories is a file the plan did not know:
// the sweep keeps the repository, and the object with it; a plan warns of it.
func TestS3PruneKeepsFileNamedLikeDirectory(t *testing.T) {
	_, drv := sampleS3(t)
	ctx := context.Background()
	repo := "/docker/registry/v2/repositories/library/debian"
	if err := drv.Delete(ctx, repo+"/_manifests/tags"); err != nil {
		t.Fatal(err)
	}
	p, err := planS3(t, drv, gc.WithDeleteUntagged(true), gc.WithPruneEmptyRepositories(true))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.EmptyRepositories) != 1 || p.EmptyRepositories[0].Repository != "library/debian" {
		t.Fatalf("empty repositories %+v", p.EmptyRepositories)
	}
	// Put after the plan, as by a hand or a tool while the plan waited.
	if err := drv.PutContent(ctx, repo+"/_manifests", []byte("stray")); err != nil {
		t.Fatal(err)
	}
	res, err := sweep.Run(ctx, drv, p)
	if err != nil {
		t.Fatal(err)
	}
	if res.DeletedRepositories != 0 || res.KeptRepositories != 1 {
		t.Errorf("removed %d repositories and kept %d, want 0 and 1", res.DeletedRepositories, res.KeptRepositories)
	}
	b, err := drv.GetContent(ctx, repo+"/_manifests")
	if err != nil || string(b) != "stray" {
		t.Fatalf("the stray object is gone: %q, %v", b, err)
	}
	p, err = planS3(t, drv, gc.WithDeleteUntagged(true), gc.WithPruneEmptyRepositories(true))
	if err != nil {
		t.Fatal(err)
	}
	warned := false
	for _, w := range p.Warnings {
		warned = warned || strings.HasSuffix(w.Path, "library/debian/_manifests")
	}
	if !warned {
		t.Errorf("no warning names the stray object; warnings %+v", p.Warnings)
	}
}
