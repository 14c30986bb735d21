package sweep_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/regsweep/regsweep/gc"
	"github.com/regsweep/regsweep/gc/sweep"
	"github.com/regsweep/regsweep/graph"
	"github.com/regsweep/regsweep/internal/regtest"
	"github.com/regsweep/regsweep/internal/synth"
	"github.com/regsweep/regsweep/storage"
)

// image is a manifest and everything it references, as bytes: enough to push it
// again after a sweep deleted its blobs.
type image struct {
	digest    digest.Digest
	mediaType string
	payload   []byte
	children  []*image
	blobs     map[digest.Digest][]byte
}

// saveImage reads manifest d and its closure from the blob store.
func saveImage(t *testing.T, root string, d digest.Digest) *image {
	t.Helper()
	read := func(d digest.Digest) []byte {
		b, err := os.ReadFile(regtest.FSPath(root, regtest.Path(t, storage.Spec{Kind: storage.BlobData, Digest: d})))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	img := &image{digest: d, payload: read(d), blobs: map[digest.Digest][]byte{}}
	m, err := graph.ParseManifest(img.payload)
	if err != nil {
		t.Fatal(err)
	}
	img.mediaType = m.MediaType
	for _, r := range m.Refs {
		switch r.Kind {
		case graph.EdgeChild:
			img.children = append(img.children, saveImage(t, root, r.Digest))
		case graph.EdgeSubject:
		default:
			img.blobs[r.Digest] = read(r.Digest)
		}
	}
	return img
}

// push pushes img to repo as a client does through the registry: children first,
// then each blob (uploaded; one already stored is linked, not written again), then
// the manifest, then the tag.
func push(ctx context.Context, ns distribution.Namespace, repo, tag string, img *image) error {
	if err := pushBlobs(ctx, ns, repo, img); err != nil {
		return err
	}
	return pushManifest(ctx, ns, repo, tag, img)
}

// pushBlobs is the first half of a push of an image (no index): its blobs.
func pushBlobs(ctx context.Context, ns distribution.Namespace, repo string, img *image) error {
	named, err := reference.WithName(repo)
	if err != nil {
		return err
	}
	r, err := ns.Repository(ctx, named)
	if err != nil {
		return err
	}
	for _, c := range img.children {
		if err := push(ctx, ns, repo, "", c); err != nil {
			return err
		}
	}
	for d, b := range img.blobs {
		w, err := r.Blobs(ctx).Create(ctx)
		if err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		if _, err := w.Commit(ctx, v1.Descriptor{Digest: d, Size: int64(len(b))}); err != nil {
			return fmt.Errorf("push blob %s: %w", d, err)
		}
	}
	return nil
}

// pushManifest is the second half: the manifest, which the registry accepts only if
// every blob it references is there, then the tag.
func pushManifest(ctx context.Context, ns distribution.Namespace, repo, tag string, img *image) error {
	named, err := reference.WithName(repo)
	if err != nil {
		return err
	}
	r, err := ns.Repository(ctx, named)
	if err != nil {
		return err
	}
	m, _, err := distribution.UnmarshalManifest(img.mediaType, img.payload)
	if err != nil {
		return err
	}
	ms, err := r.Manifests(ctx)
	if err != nil {
		return err
	}
	if _, err := ms.Put(ctx, m); err != nil {
		return fmt.Errorf("push manifest %s: %w", img.digest, err)
	}
	if tag == "" {
		return nil
	}
	return r.Tags(ctx).Tag(ctx, tag, v1.Descriptor{Digest: img.digest, MediaType: img.mediaType, Size: int64(len(img.payload))})
}

// pulls reports why repo:tag cannot be pulled through the registry's storage API
// (manifest through its revision link, every blob through its layer link), or "".
func pulls(ctx context.Context, ns distribution.Namespace, repo, tag string, img *image) string {
	named, _ := reference.WithName(repo)
	r, err := ns.Repository(ctx, named)
	if err != nil {
		return err.Error()
	}
	if desc, err := r.Tags(ctx).Get(ctx, tag); err != nil || desc.Digest != img.digest {
		return fmt.Sprintf("tag %s: %v %v", tag, desc.Digest, err)
	}
	var check func(img *image) string
	check = func(img *image) string {
		ms, _ := r.Manifests(ctx)
		if _, err := ms.Get(ctx, img.digest); err != nil {
			return fmt.Sprintf("manifest %s: %v", img.digest, err)
		}
		for d := range img.blobs {
			if _, err := r.Blobs(ctx).Stat(ctx, d); err != nil {
				return fmt.Sprintf("blob %s: %v", d, err)
			}
			if _, err := r.Blobs(ctx).Get(ctx, d); err != nil {
				return fmt.Sprintf("blob %s: %v", d, err)
			}
		}
		for _, c := range img.children {
			if why := check(c); why != "" {
				return why
			}
		}
		return ""
	}
	return check(img)
}

// A registry still taking pushes: images whose blobs the plan deletes are pushed
// again (reusing the stored blobs, so no new blob file appears) and untagged
// manifests are tagged, at every point between the scan and the last delete. Every
// image pushed before the last re-check must still pull.
func TestPushesDuringSweepSurvive(t *testing.T) {
	points := []string{"after scan", "after plan", "tag history and manifest revisions", "blobs", "layer links"}
	for _, m := range []bool{false, true} {
		for _, at := range points {
			t.Run(fmt.Sprintf("m=%v/%s", m, at), func(t *testing.T) { pushDuringSweep(t, m, at, false) })
		}
	}
	// Blobs and layer links in batches, as on S3: what the re-check keeps never
	// goes into one.
	for _, at := range points {
		t.Run("batched/"+at, func(t *testing.T) { pushDuringSweep(t, true, at, true) })
	}
}

// dirBatcher deletes each file's directory through the driver: the sweep's batch
// path (what it leaves out of a batch, and what it counts and journals after one)
// on a filesystem, where storage.NewBatcher gives none.
type dirBatcher struct {
	drv     driver.StorageDriver
	batches atomic.Int64
}

func (b *dirBatcher) DeleteFiles(ctx context.Context, files []string) error {
	b.batches.Add(1)
	for _, f := range files {
		if err := b.drv.Delete(ctx, path.Dir(f)); err != nil && !errors.As(err, new(driver.PathNotFoundError)) {
			return err
		}
	}
	return nil
}

func pushDuringSweep(t *testing.T, m bool, at string, batched bool) {
	ctx := context.Background()
	root := t.TempDir()
	_, ns, err := synth.NewFilesystem(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	cfg := synth.Small()
	cfg.Repos, cfg.DeleteFraction, cfg.UntagFraction = 4, 0.4, 0.3
	sum, err := synth.Populate(ctx, ns, 11, cfg)
	if err != nil {
		t.Fatal(err)
	}
	regtest.Age(t, root, time.Now().Add(-48*time.Hour))
	opts := []gc.Option{gc.WithDeleteUntagged(m), gc.WithGracePeriod(0), gc.WithNow(time.Now().Add(time.Hour))}

	// What the plan deletes, before anything is pushed: the images to push again.
	pre := regtest.Plan(t, root, nil, opts...)
	gone := map[digest.Digest]bool{}
	for _, b := range pre.Blobs {
		gone[b.Digest()] = true
	}
	type pushed struct {
		repo, tag string
		img       *image
	}
	var todo []pushed
	for _, ref := range sum.Deleted {
		if gone[ref.Digest] && len(todo) < 3 {
			todo = append(todo, pushed{ref.Repo, "again-" + ref.Digest.Encoded()[:8], saveImage(t, root, ref.Digest)})
		}
	}
	if m {
		for _, mi := range pre.Manifests {
			if gone[mi.Digest] && len(todo) < 5 {
				todo = append(todo, pushed{mi.Repository, "retag-" + mi.Digest.Encoded()[:8], saveImage(t, root, mi.Digest)})
			}
		}
	}
	// One more push is in progress at the injection point: its blobs are uploaded (and
	// linked), its manifest comes after the sweep.
	var half *pushed
	for _, ref := range sum.Deleted {
		if gone[ref.Digest] && !slices.ContainsFunc(todo, func(p pushed) bool { return p.img.digest == ref.Digest }) {
			if img := saveImage(t, root, ref.Digest); len(img.children) == 0 {
				half = &pushed{ref.Repo, "half-" + ref.Digest.Encoded()[:8], img}
				break
			}
		}
	}
	if len(todo) < 2 || half == nil {
		t.Fatalf("the seed leaves %d garbage images to push again: the test proves little", len(todo))
	}
	pushAll := func() error {
		for _, p := range todo {
			if err := push(ctx, ns, p.repo, p.tag, p.img); err != nil {
				return err
			}
		}
		return pushBlobs(ctx, ns, half.repo, half.img)
	}

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
	if at == "after scan" {
		if err := pushAll(); err != nil {
			t.Fatal(err)
		}
	}
	p, err := gc.NewPlan(ctx, idx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if at == "after plan" {
		if err := pushAll(); err != nil {
			t.Fatal(err)
		}
	}
	check := sweep.NewRootCheck(drv, p.Scanned(), meta.Started, 0, 4, true)
	sopts := []sweep.Option{sweep.WithWorkers(4), sweep.WithRecheck(check.Check, time.Minute),
		sweep.WithBeforePhase(func(phase string) error {
			if phase == at {
				return pushAll()
			}
			return nil
		})}
	batcher := &dirBatcher{drv: drv}
	if batched {
		sopts = append(sopts, sweep.WithBatcher(batcher))
	}
	res, err := sweep.Run(ctx, drv, p, sopts...)
	if err != nil {
		t.Fatal(err)
	}
	if batched && batcher.batches.Load() == 0 {
		t.Error("no batch was deleted")
	}
	if err := pushManifest(ctx, ns, half.repo, half.tag, half.img); err != nil {
		t.Errorf("a push whose blobs were uploaded %s fails after the sweep: %v", at, err)
	} else {
		todo = append(todo, *half)
	}
	for _, x := range todo {
		if why := pulls(ctx, ns, x.repo, x.tag, x.img); why != "" {
			t.Errorf("%s:%s pushed %s no longer pulls: %s", x.repo, x.tag, at, why)
		}
	}
	if res.RecheckRoots == 0 || res.KeptByRecheck == 0 {
		t.Errorf("result %+v: the re-check saw no push", res)
	}
	// Only what the pushes reference was kept back.
	if res.DeletedBlobs == 0 {
		t.Errorf("nothing was deleted: %+v", res)
	}
}
